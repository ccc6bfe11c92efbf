//! What one run counted and measured, handed to the report at the end.

use super::measure::WorkloadStats;
use super::verdict::Cause;
use std::collections::BTreeMap;

/// Totals of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    pub facts: u64,
    /// Facts with a timestamp outside 1970..2200, ignored (a broken clock
    /// or agent); counted so that the report can say so.
    pub rejected_facts: u64,
    pub kernel_facts: u64,
    pub api_facts: u64,
    pub failures: u64,
    pub pods_forgotten: u64,
    /// Late halves of connections already closed out (a slow stream), dropped.
    pub late_events: u64,
    /// Resets a side made of its own connection (an abortive close, a
    /// peeked proxy closing its upstream with a RST as HAProxy does): no
    /// failure, counted.
    #[serde(default)]
    pub own_aborts: u64,
    /// Failed connections from outside the cluster with no other near
    /// them: a load balancer's health checks, no client's request.
    #[serde(default)]
    pub health_checks: u64,
    /// What the peeked proxies answered, by the cause of the upstream
    /// failure behind each answer.
    pub http: HttpTotals,
}

/// 5xx answers and retried failures of the proxies whose status lines were
/// peeked (plain HTTP/1.x).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpTotals {
    /// 5xx the proxies sent, by the cause of their upstream failure
    /// (`unexplained`: no upstream failure before it, the app's own 5xx).
    pub sent_5xx: BTreeMap<Cause, u64>,
    /// Upstream failures the proxies retried, unseen by clients: those of
    /// a peeked proxy that no 5xx followed (retried into a good answer),
    /// and the earlier tries of a request that still failed (its 5xx
    /// stands for the last try).
    pub hidden_by_retry: BTreeMap<Cause, u64>,
    /// Access-log 5xx lines the kernel had already seen (not counted twice).
    pub confirmed_by_log: u64,
    /// Failed upstream tries the access logs show inside requests that
    /// still got a non-5xx answer: retries, by the proxy's own account.
    pub retried_in_log: u64,
}

/// What the engine measured, handed to the report at the end.
#[derive(Clone, Debug, Default)]
pub struct Measurements {
    pub workloads: BTreeMap<crate::model::WorkloadKey, WorkloadStats>,
    pub stats: EngineStats,
    /// The pods' timelines, for the report's picture (at most
    /// [`MAX_TRACKS`](super::track::MAX_TRACKS)).
    pub tracks: Vec<super::track::PodTrack>,
}
