//! The pure heart of kubectl-fivexx: the event and timeline model, the wire
//! protocol, the capture format and the explain engine.
//!
//! Nothing in this crate does I/O or talks to Kubernetes, so that a live
//! `trace` and an offline `explain FILE` run exactly the same code over the
//! same recorded facts. Readers and writers are passed in by callers.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod capability;
pub mod capture;
pub mod event;
pub mod explain;
pub mod model;
pub mod protocol;
pub mod proxylog;
pub mod report;
/// Synthetic timelines and whole-input drivers for tests and benchmarks;
/// never in a release build (the `testkit` feature, on for tests only).
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use event::{
    ExitStatus, FourTuple, KernelEvent, KernelEventKind, SignalResult, TaskRef, TcpState,
};
pub use model::Fact;
