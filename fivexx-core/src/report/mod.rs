//! The summary report: failures per workload and cause, episodes, fixes.
//!
//! Built by streaming verdicts into a [`ReportBuilder`] (memory bounded by
//! workloads and episodes, plus at most `max_verdicts` verdicts kept in
//! full), then rendered by pure functions: [`render_table`],
//! [`render_wide`] and [`render_json`] (schema: `docs/explain-json.md`).

mod html;
mod lines;
mod render;
mod settings;
mod time;

pub use html::render_html;
pub use lines::{
    clock, event_detail, event_line, is_failure, verdict_line, LineLayout, NODE_TABLE_HEADER,
};
pub use render::{render_json, render_table, render_wide};
pub use settings::{Overrides, SettingSource, SettingsUsed};
pub use time::{format_duration, format_time, parse_time, TimeError};

use crate::explain::{fix_for, Cause, EngineStats, EpisodeKind, Measurements, PodTrack, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Version of the JSON report schema. Bumped on incompatible changes only;
/// fields may be added without a bump.
pub const SCHEMA_VERSION: u32 = 3;

/// Which verdicts the report covers. Lifecycle facts outside the window
/// still inform the verdicts; only failures are filtered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportFilter {
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// `deploy/api`, `deployment/api`, `ns/deployment/api` or just `api`.
    pub workload: Option<String>,
    /// Pod name or `namespace/name`.
    pub pod: Option<String>,
}

impl ReportFilter {
    pub fn matches(&self, v: &Verdict) -> bool {
        let t = v.at_ns();
        if self.since_ns.is_some_and(|s| t < s) || self.until_ns.is_some_and(|u| t > u) {
            return false;
        }
        if let Some(w) = &self.workload {
            let Some(key) = &v.involved.workload_key else {
                return false;
            };
            if !workload_matches(key, w) {
                return false;
            }
        }
        if let Some(p) = &self.pod {
            let Some(pod) = &v.involved.pod else {
                return false;
            };
            let name = pod.rsplit('/').next().unwrap_or(pod);
            if pod != p && name != p {
                return false;
            }
        }
        true
    }
}

impl ReportFilter {
    /// Whether a pod's track belongs in the report (its workload and pod;
    /// the time window cuts no pod in half).
    pub fn matches_track(&self, t: &PodTrack) -> bool {
        let workload = self.workload.as_ref().is_none_or(|w| {
            t.workload_key
                .as_deref()
                .is_some_and(|k| workload_matches(k, w))
        });
        let pod = self.pod.as_ref().is_none_or(|p| {
            let name = t.pod.rsplit('/').next().unwrap_or(&t.pod);
            &t.pod == p || name == p
        });
        workload && pod
    }
}

fn workload_matches(key: &str, want: &str) -> bool {
    let want = want.to_ascii_lowercase();
    let (kind, name) = match want.split_once('/') {
        Some((k, n)) if !n.contains('/') => (Some(k.to_string()), n.to_string()),
        _ => (None, want.clone()),
    };
    let kind = kind.map(|k| {
        match k.as_str() {
            "deploy" | "deployments" => "deployment",
            "sts" | "statefulsets" => "statefulset",
            "ds" | "daemonsets" => "daemonset",
            "svc" | "services" => "service",
            "po" | "pods" => "pod",
            other => other,
        }
        .to_string()
    });
    let key_l = key.to_ascii_lowercase();
    if key_l == want {
        return true;
    }
    let mut parts = key_l.rsplitn(3, '/');
    let (kname, kkind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    kname == name && kind.as_deref().is_none_or(|k| k == kkind)
}

/// What the capture said about itself, for the report's header.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CaptureInfo {
    pub format_version: String,
    pub tool_version: String,
    pub context: Option<String>,
    pub nodes: Vec<String>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// Read to its end record with no damage.
    pub complete: bool,
    /// Problems met while reading (first 100), as sentences.
    pub problems: Vec<String>,
    pub problem_count: u64,
    /// Events the agents could not deliver, by node.
    pub drops: BTreeMap<String, crate::protocol::DropCounts>,
    /// Nodes whose agent stream ended mid-session: where their kernel
    /// facts stop.
    pub agents_gone: Vec<crate::model::AgentGoneFact>,
}

impl CaptureInfo {
    /// One sentence per node whose agent stream ended: where its facts
    /// stop, so that its silence afterwards is not read as calm.
    pub fn agent_gone_lines(&self) -> Vec<String> {
        self.agents_gone
            .iter()
            .map(|g| {
                format!(
                    "node {}: its agent's stream ended at {} ({}); that node's kernel facts stop there",
                    g.node,
                    format_time(g.at_ns),
                    g.reason
                )
            })
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Failed requests: one per verdict. A proxy's 5xx and the failed
    /// upstream connection behind it are one failure with two pieces of
    /// evidence; a failed connection whose answer was not seen (no peek,
    /// TLS, an external load balancer) is one too. Upstream failures the
    /// proxies retried are not failures: `engine.http.hidden_by_retry`.
    pub failures: u64,
    /// The failed upstream connections behind them (a request the proxy
    /// retried before it gave up stands for several).
    pub upstream_failures: u64,
    /// HTTP status the client got, for the failures whose answer was seen.
    pub by_status: BTreeMap<u16, u64>,
    /// By failure kind: `refused`, `reset`, `timed_out`, ..., `http_5xx`.
    pub by_kind: BTreeMap<String, u64>,
    pub explained: u64,
    pub unexplained: u64,
    pub by_cause: BTreeMap<Cause, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpisodeSummary {
    pub id: String,
    pub kind: EpisodeKind,
    pub subject: String,
    /// "drain of node-2", "rollout of shop/deployment/api", ...
    pub label: String,
    pub start_ns: i64,
    pub first_failure_ns: i64,
    pub last_failure_ns: i64,
    pub failures: u64,
    /// All failures in the report, for "caused 37 of 41".
    pub of_total: u64,
    pub pods: u64,
    /// The pods behind its failures (`namespace/name`, first few): the
    /// evidence, where the label names the workload.
    pub pod_names: Vec<String>,
    /// The workloads behind its failures (`deployment shop/web`, first
    /// few): a drain names its node, and these say whose pods it moved.
    pub workloads: Vec<String>,
    pub by_cause: BTreeMap<Cause, u64>,
    pub by_status: BTreeMap<u16, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FixSummary {
    pub cause: Cause,
    pub action: String,
    pub because: String,
    pub params: BTreeMap<String, f64>,
}

/// The next command for one cause of a workload's failures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CauseStep {
    pub cause: Cause,
    pub command: String,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadSummary {
    /// `namespace/kind/name`; `None` for the failures no workload could be
    /// found for.
    pub workload: Option<String>,
    /// For a person: `deployment shop/web`.
    pub label: String,
    pub failures: u64,
    pub by_cause: BTreeMap<Cause, u64>,
    pub by_status: BTreeMap<u16, u64>,
    /// Per cause, the statuses clients got: each proxy answers the same
    /// kernel fact in its own words (a refused connect is nginx's 502,
    /// Envoy's 503), so they are counted, never assumed.
    #[serde(default)]
    pub by_cause_status: BTreeMap<Cause, BTreeMap<u16, u64>>,
    /// Per cause: the command to run next (that of its first verdict).
    pub next: Vec<CauseStep>,
    pub first_failure_ns: i64,
    pub last_failure_ns: i64,
    pub fixes: Vec<FixSummary>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub capture: Option<CaptureInfo>,
    pub filter: ReportFilter,
    pub totals: Totals,
    /// Biggest first.
    pub episodes: Vec<EpisodeSummary>,
    /// Most failures first.
    pub workloads: Vec<WorkloadSummary>,
    /// Verdicts in time order (at most `max_verdicts`).
    pub verdicts: Vec<Verdict>,
    /// Each pod's lifecycle, readiness and endpoint membership, for the
    /// timeline (`-o html`); by pod name.
    pub pods: Vec<PodTrack>,
    pub verdicts_omitted: u64,
    pub engine: EngineStats,
    /// The engine settings the verdicts were made with, and where each
    /// came from (recorded, a flag, or the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsUsed>,
}

#[derive(Debug)]
struct EpisodeAcc {
    summary: EpisodeSummary,
    pods: std::collections::BTreeSet<String>,
    /// The pod of the previous verdict of this episode.
    last_pod: Option<String>,
}

impl EpisodeAcc {
    fn new(e: &crate::explain::EpisodeRef, t: i64) -> EpisodeAcc {
        EpisodeAcc {
            summary: EpisodeSummary {
                id: e.id.clone(),
                kind: e.kind,
                subject: e.subject.clone(),
                label: episode_label(e.kind, &e.subject),
                start_ns: e.start_ns,
                first_failure_ns: t,
                last_failure_ns: t,
                failures: 0,
                of_total: 0,
                pods: 0,
                pod_names: Vec::new(),
                workloads: Vec::new(),
                by_cause: BTreeMap::new(),
                by_status: BTreeMap::new(),
            },
            pods: Default::default(),
            last_pod: None,
        }
    }
}

/// Accumulates verdicts into a report in bounded memory.
#[derive(Debug)]
pub struct ReportBuilder {
    filter: ReportFilter,
    max_verdicts: usize,
    totals: Totals,
    episodes: BTreeMap<String, EpisodeAcc>,
    workloads: BTreeMap<Option<String>, WorkloadSummary>,
    verdicts: Vec<Verdict>,
    omitted: u64,
}

/// Pods remembered per episode, only to count them: the count saturates
/// here so that memory stays flat over very long captures.
const MAX_EPISODE_PODS: usize = 10_000;

/// Pod names an episode lists as its evidence.
const MAX_POD_NAMES: usize = 20;

impl ReportBuilder {
    pub fn new(filter: ReportFilter, max_verdicts: usize) -> ReportBuilder {
        ReportBuilder {
            filter,
            max_verdicts,
            totals: Totals::default(),
            episodes: BTreeMap::new(),
            workloads: BTreeMap::new(),
            verdicts: Vec::new(),
            omitted: 0,
        }
    }

    pub fn add(&mut self, v: Verdict) {
        if !self.filter.matches(&v) {
            return;
        }
        let t = v.at_ns();
        let status = v.failure.http_status();
        self.totals.failures += 1;
        self.totals.upstream_failures += match &v.failure {
            crate::explain::Failure::Connection(_) => 1,
            crate::explain::Failure::Answer(a) => u64::from(a.upstream_failures),
        };
        if let Some(st) = status {
            *self.totals.by_status.entry(st).or_default() += 1;
        }
        if v.cause == Cause::Unexplained {
            self.totals.unexplained += 1;
        } else {
            self.totals.explained += 1;
        }
        *self.totals.by_cause.entry(v.cause).or_default() += 1;
        let kind = v.failure.kind().name();
        match self.totals.by_kind.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.totals.by_kind.insert(kind.to_string(), 1);
            }
        }
        if let Some(e) = &v.episode {
            // Verdicts come in runs of one episode: look up before cloning
            // the key.
            if !self.episodes.contains_key(&e.id) {
                self.episodes.insert(e.id.clone(), EpisodeAcc::new(e, t));
            }
            let Some(acc) = self.episodes.get_mut(&e.id) else {
                return;
            };
            let s = &mut acc.summary;
            s.start_ns = s.start_ns.min(e.start_ns);
            s.first_failure_ns = s.first_failure_ns.min(t);
            s.last_failure_ns = s.last_failure_ns.max(t);
            s.failures += 1;
            *s.by_cause.entry(v.cause).or_default() += 1;
            if let Some(st) = status {
                *s.by_status.entry(st).or_default() += 1;
            }
            if let Some(uid) = &v.involved.pod_uid {
                // Runs of verdicts cite the same pod: skip the set then.
                if acc.last_pod.as_deref() != Some(uid.as_str()) {
                    if acc.pods.len() < MAX_EPISODE_PODS && !acc.pods.contains(uid) {
                        acc.pods.insert(uid.clone());
                        if let Some(name) = &v.involved.pod {
                            if s.pod_names.len() < MAX_POD_NAMES {
                                s.pod_names.push(name.clone());
                            }
                        }
                        if let Some(key) = &v.involved.workload_key {
                            let label = crate::model::workload_label(key);
                            if s.workloads.len() < MAX_POD_NAMES && !s.workloads.contains(&label) {
                                s.workloads.push(label);
                            }
                        }
                    }
                    acc.last_pod.clone_from(&v.involved.pod_uid);
                }
            }
        }
        let key = &v.involved.workload_key;
        if !self.workloads.contains_key(key) {
            self.workloads.insert(
                key.clone(),
                WorkloadSummary {
                    workload: key.clone(),
                    label: key.as_deref().map_or_else(
                        || "no known workload".to_string(),
                        crate::model::workload_label,
                    ),
                    failures: 0,
                    by_cause: BTreeMap::new(),
                    by_status: BTreeMap::new(),
                    by_cause_status: BTreeMap::new(),
                    next: Vec::new(),
                    first_failure_ns: t,
                    last_failure_ns: t,
                    fixes: Vec::new(),
                },
            );
        }
        let Some(w) = self.workloads.get_mut(key) else {
            return;
        };
        w.failures += 1;
        w.first_failure_ns = w.first_failure_ns.min(t);
        w.last_failure_ns = w.last_failure_ns.max(t);
        *w.by_cause.entry(v.cause).or_default() += 1;
        if let Some(st) = status {
            *w.by_status.entry(st).or_default() += 1;
            *w.by_cause_status
                .entry(v.cause)
                .or_default()
                .entry(st)
                .or_default() += 1;
        }
        if let Some(n) = &v.next {
            if !w.next.iter().any(|s| s.cause == v.cause) {
                w.next.push(CauseStep {
                    cause: v.cause,
                    command: n.command.clone(),
                    why: n.why.clone(),
                });
            }
        }
        if self.verdicts.len() < self.max_verdicts {
            self.verdicts.push(v);
        } else {
            self.omitted += 1;
        }
    }

    pub fn finish(self, m: &Measurements, capture: Option<CaptureInfo>) -> Report {
        let total = self.totals.failures;
        let mut episodes: Vec<EpisodeSummary> = self
            .episodes
            .into_values()
            .map(|a| EpisodeSummary {
                of_total: total,
                pods: a.pods.len() as u64,
                ..a.summary
            })
            .collect();
        episodes.sort_by(|a, b| {
            b.failures
                .cmp(&a.failures)
                .then(a.start_ns.cmp(&b.start_ns))
        });
        let mut workloads: Vec<WorkloadSummary> = self
            .workloads
            .into_values()
            .map(|mut w| {
                let key: crate::model::WorkloadKey = w.workload.as_deref().map(Arc::from);
                let stats = m.workloads.get(&key).cloned().unwrap_or_default();
                w.fixes = w
                    .by_cause
                    .keys()
                    .filter_map(|c| {
                        fix_for(*c, &stats).map(|f| FixSummary {
                            cause: *c,
                            action: f.action,
                            because: f.because,
                            params: f.params,
                        })
                    })
                    .collect();
                w
            })
            .collect();
        workloads.sort_by(|a, b| {
            b.failures
                .cmp(&a.failures)
                .then(a.workload.cmp(&b.workload))
        });
        let mut verdicts = self.verdicts;
        verdicts.sort_by_key(|v| v.at_ns());
        Report {
            schema_version: SCHEMA_VERSION,
            capture,
            totals: self.totals,
            episodes,
            workloads,
            verdicts,
            pods: m
                .tracks
                .iter()
                .filter(|t| self.filter.matches_track(t))
                .cloned()
                .collect(),
            verdicts_omitted: self.omitted,
            engine: m.stats.clone(),
            settings: None,
            filter: self.filter,
        }
    }
}

/// What happened, named for a person: "rollout of deployment shop/web",
/// "drain of node lab-node-2", "OOM kills in deployment shop/api".
fn episode_label(kind: EpisodeKind, subject: &str) -> String {
    let w = crate::model::workload_label(subject);
    match kind {
        EpisodeKind::Drain => format!("drain of node {subject}"),
        EpisodeKind::Rollout => format!("rollout of {w}"),
        EpisodeKind::Oom => format!("OOM kills in {w}"),
        EpisodeKind::Startup => format!("start of pod {subject}"),
        EpisodeKind::Termination => format!("termination of pod {subject}"),
        EpisodeKind::NoEndpoints => format!("no endpoints for {w}"),
        EpisodeKind::IdleTimeout => format!("idle keep-alive closes racing the proxy in {w}"),
        EpisodeKind::NodeLost => format!("loss of node {subject} (no drain)"),
    }
}
