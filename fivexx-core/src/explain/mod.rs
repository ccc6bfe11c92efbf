//! The explain engine: facts in, one [`Verdict`] per failed connection out.
//!
//! It streams. Facts are applied as they arrive (in any order within the
//! clock-skew window); a failure is classified once the event-time
//! watermark (latest fact time minus the skew) has passed the failure plus
//! `lookahead_ns`, using only facts up to that horizon. So a live session
//! and an offline `explain` of its capture give the same verdicts, and
//! memory depends on the failures in flight and the pods alive, not on the
//! number of facts.
//!
//! Layout: `engine` drives the watermark and the pending failures;
//! `connections` joins kernel events into failed connections; `answers`
//! joins proxies' 5xx to the upstream failures behind them and counts
//! retries; `classify` holds the rules; `assemble` places a classification
//! in its workload, episode and fix; `outside` tells an external load
//! balancer's traffic from its health checks; `measure` turns measurements into
//! fixes (`infra_fix` those of the causes outside the pods); `config` and
//! `stats` are the tunables and the totals.

mod answers;
mod assemble;
pub mod burst;
mod classification;
mod classify;
mod config;
mod connections;
mod engine;
mod episode;
mod fix;
pub mod hook;
mod infra_fix;
pub mod measure;
mod next;
mod outside;
mod services;
mod stats;
pub mod track;
pub mod verdict;

pub use crate::model::{workload_key, workload_label, Evidence, Observation};
pub use config::ExplainConfig;
pub use connections::FailureJoiner;
pub use engine::Explainer;
pub use fix::fix_for;
pub use measure::{percentile, prestop_for_lag, WorkloadStats};
pub use stats::{EngineStats, HttpTotals, Measurements};
pub use track::{Mark, MarkKind, PodTrack, Span};
pub use verdict::{
    Cause, Confidence, EpisodeKind, EpisodeRef, FailedConnection, Failure, FailureKind, Fix,
    HttpAnswer, Involved, NextStep, ProxyRef, Verdict,
};
