//! The explain engine: facts in, one [`Verdict`] per failed connection out.
//!
//! It streams. Facts are applied as they arrive (in any order within the
//! clock-skew window); a failure is classified once the event-time
//! watermark (latest fact time minus the skew) has passed the failure plus
//! `lookahead_ns`, using only facts up to that horizon. So a live session
//! and an offline `explain` of its capture give the same verdicts, and
//! memory depends on the failures in flight and the pods alive, not on the
//! number of facts.

mod classify;
mod episode;
mod failure;
pub mod measure;
pub mod verdict;

pub use crate::model::{workload_key, Evidence, Observation};
pub use failure::FailureJoiner;
pub use measure::{fix_for, percentile, prestop_for_lag, WorkloadStats};
pub use verdict::{
    Cause, Confidence, EpisodeKind, EpisodeRef, FailedConnection, FailureKind, Fix, ProxyRef,
    Verdict,
};

use crate::model::Fact;
use crate::KernelEventKind;
use classify::{classify, Classification};
use episode::EpisodeTracker;
use foldhash::HashMap;
use measure::PodMeasure;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

const SECOND: i64 = 1_000_000_000;
/// 2200-01-01T00:00:00Z: later timestamps are broken clocks.
const MAX_SANE_NS: i64 = 7_258_118_400 * SECOND;
/// Largest window a config may set (a day), so `t + window` cannot overflow.
const MAX_WINDOW_NS: i64 = 86_400 * SECOND;

/// Tunables of the engine. The defaults suit Kubernetes defaults.
#[derive(Clone, Debug)]
pub struct ExplainConfig {
    /// Tolerated clock difference between nodes and the API server.
    pub skew_ns: i64,
    /// How long after a failure to wait for facts that explain it (endpoint
    /// removal, a SIGKILL whose RSTs arrived first, ...).
    pub lookahead_ns: i64,
    /// Kernel events of one connection closer than this are joined.
    pub join_ns: i64,
    /// Allowance for proxies to apply an endpoint removal.
    pub proxy_propagation_ns: i64,
    /// Resets up to this long after a SIGKILL are caused by it.
    pub kill_window_ns: i64,
    /// SIGKILL within this of deletion + grace counts as grace expiry.
    pub grace_tolerance_ns: i64,
    /// A refusal this long after a pod started can be "not ready at start".
    pub startup_window_ns: i64,
    /// Failures this long after an OOM kill are caused by it.
    pub oom_window_ns: i64,
    /// A connect with SYN retransmits only is abandoned after this.
    pub syn_timeout_ns: i64,
    /// A proxy's 5xx is joined to its node's latest failed upstream
    /// connection at most this long before it.
    pub http_match_ns: i64,
    /// Terminations of one workload closer than this are one rollout.
    pub rollout_gap_ns: i64,
    /// Pods gone for longer than this are forgotten.
    pub prune_horizon_ns: i64,
    /// Proxy addresses whose HTTP answers are peeked from the start (the
    /// plugin asked for them). Their upstream failures that no 5xx claims
    /// count as hidden by retry even before their first 5xx.
    pub peeked_proxies: Vec<std::net::IpAddr>,
}

impl ExplainConfig {
    /// The configuration a recording (or its replay) runs with: the
    /// recorded settings and peeked proxies, the build's constants for the
    /// rest.
    pub fn recorded(
        settings: crate::capture::EngineSettings,
        peeked_proxies: Vec<std::net::IpAddr>,
    ) -> ExplainConfig {
        ExplainConfig {
            skew_ns: settings.skew_ns,
            lookahead_ns: settings.lookahead_ns,
            peeked_proxies,
            ..ExplainConfig::default()
        }
    }
}

impl Default for ExplainConfig {
    fn default() -> Self {
        let recorded = crate::capture::EngineSettings::default();
        ExplainConfig {
            skew_ns: recorded.skew_ns,
            lookahead_ns: recorded.lookahead_ns,
            join_ns: SECOND,
            proxy_propagation_ns: 2 * SECOND,
            kill_window_ns: SECOND,
            grace_tolerance_ns: 2 * SECOND,
            startup_window_ns: 60 * SECOND,
            oom_window_ns: 30 * SECOND,
            syn_timeout_ns: 135 * SECOND,
            http_match_ns: SECOND,
            rollout_gap_ns: 300 * SECOND,
            prune_horizon_ns: 600 * SECOND,
            peeked_proxies: Vec::new(),
        }
    }
}

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
    /// Upstream failures of a peeked proxy that no 5xx followed: the proxy
    /// retried another upstream and the client never saw them.
    pub hidden_by_retry: BTreeMap<Cause, u64>,
    /// Access-log 5xx lines the kernel had already seen (not counted twice).
    pub confirmed_by_log: u64,
    /// Failed upstream tries the access logs show inside requests that
    /// still got a non-5xx answer: retries, by the proxy's own account.
    pub retried_in_log: u64,
}

/// A 5xx the peek saw, kept briefly so that the same answer in the access
/// log is recognised.
#[derive(Debug)]
struct Answer {
    client: std::net::IpAddr,
    status: u16,
    at_ns: i64,
    logged: bool,
}

/// A proxy's logged 5xx, kept so that a peeked 5xx with no failed upstream
/// connection can learn which upstream its answer came from (see
/// [`Explainer::closed_by_death`]).
struct LoggedTwin {
    client: std::net::IpAddr,
    status: u16,
    /// The logged time, and the end of its slack.
    from_ns: i64,
    to_ns: i64,
    upstream: std::net::SocketAddr,
    upstream_status: Option<u16>,
    evidence: Evidence,
}

/// What the engine measured, handed to the report at the end.
#[derive(Clone, Debug, Default)]
pub struct Measurements {
    pub workloads: BTreeMap<String, WorkloadStats>,
    pub stats: EngineStats,
}

/// A failure waiting for its lookahead, ordered by time then tuple so that
/// verdicts come out in a deterministic order. Boxed: the heap moves only
/// the key and a pointer when it sifts.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    /// Time, then connections before the 5xx they caused, then the tuple.
    key: (i64, bool, std::net::IpAddr, u16, std::net::IpAddr, u16),
    failure: Box<FailedConnection>,
}

impl Pending {
    fn new(f: FailedConnection) -> Pending {
        let t = &f.tuple;
        Pending {
            key: (
                f.at_ns,
                f.kind == FailureKind::Http5xx,
                t.saddr,
                t.sport,
                t.daddr,
                t.dport,
            ),
            failure: Box::new(f),
        }
    }
}

impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// The streaming engine. Feed facts with [`push`](Self::push), collect
/// verdicts from the callback, and call [`finish`](Self::finish) at the end.
pub struct Explainer {
    cfg: ExplainConfig,
    tl: crate::model::ClusterTimeline,
    joiner: FailureJoiner,
    pending: BinaryHeap<Reverse<Pending>>,
    done: Vec<FailedConnection>,
    max_seen: i64,
    last_expire: i64,
    last_prune: i64,
    episodes: EpisodeTracker,
    workloads: BTreeMap<String, WorkloadStats>,
    /// Per pod: latest endpoint-lag failure after termination began.
    proxy_lag: HashMap<String, i64>,
    /// Per address: the latest failed new connection to it seen so far. A
    /// verdict is final only `lookahead` after its failure, so this already
    /// knows how long proxies went on routing to a terminating pod when the
    /// first of its failures is explained, not just that first failure.
    last_connect_failure: HashMap<std::net::IpAddr, i64>,
    /// Per pod (or service): the last fix and the numbers it came from.
    fix_cache: HashMap<String, (FixKey, Option<Arc<Fix>>)>,
    /// Whether the stream has HTTP 5xx events (then recent upstream
    /// verdicts are kept per proxy node to explain them).
    saw_http: bool,
    /// Per proxy node: recent upstream verdicts, and whether a 5xx has
    /// claimed each one yet.
    recent_upstream: HashMap<String, std::collections::VecDeque<(Verdict, bool)>>,
    /// Proxy addresses whose answers are peeked, and since when (`i64::MIN`:
    /// from the start, or proven by a 5xx): an upstream failure of theirs
    /// after that time that no 5xx followed was retried.
    peeked_proxies: HashMap<std::net::IpAddr, i64>,
    recent_answers: std::collections::VecDeque<Answer>,
    logged_twins: std::collections::VecDeque<LoggedTwin>,
    stats: EngineStats,
}

/// The numbers a per-verdict fix depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FixKey {
    cause: Cause,
    endpoint_lag: Option<i64>,
    proxy_lag: Option<i64>,
    exit_after_term: Option<i64>,
    killed: u32,
    grace: Option<u32>,
    ignored_by: bool,
    oom: u32,
    startup: i64,
    no_endpoints: i64,
}

impl Explainer {
    pub fn new(cfg: ExplainConfig) -> Explainer {
        let w = |x: i64| x.clamp(0, MAX_WINDOW_NS);
        let cfg = ExplainConfig {
            skew_ns: w(cfg.skew_ns),
            lookahead_ns: w(cfg.lookahead_ns),
            join_ns: w(cfg.join_ns),
            proxy_propagation_ns: w(cfg.proxy_propagation_ns),
            kill_window_ns: w(cfg.kill_window_ns),
            grace_tolerance_ns: w(cfg.grace_tolerance_ns),
            startup_window_ns: w(cfg.startup_window_ns),
            oom_window_ns: w(cfg.oom_window_ns),
            syn_timeout_ns: w(cfg.syn_timeout_ns),
            http_match_ns: w(cfg.http_match_ns),
            rollout_gap_ns: w(cfg.rollout_gap_ns),
            prune_horizon_ns: w(cfg.prune_horizon_ns),
            peeked_proxies: cfg.peeked_proxies,
        };
        let peeked: HashMap<_, _> = cfg
            .peeked_proxies
            .iter()
            .map(|ip| (*ip, i64::MIN))
            .collect();
        Explainer {
            cfg,
            tl: crate::model::ClusterTimeline::default(),
            joiner: FailureJoiner::default(),
            pending: BinaryHeap::new(),
            done: Vec::new(),
            max_seen: i64::MIN,
            last_expire: i64::MIN,
            last_prune: i64::MIN,
            episodes: EpisodeTracker::default(),
            workloads: BTreeMap::new(),
            proxy_lag: HashMap::default(),
            last_connect_failure: HashMap::default(),
            fix_cache: HashMap::default(),
            // Peeked from the start: failures long before the first 5xx
            // must be kept too, to count the retried ones.
            saw_http: !peeked.is_empty(),
            recent_upstream: HashMap::default(),
            peeked_proxies: peeked,
            recent_answers: Default::default(),
            logged_twins: Default::default(),
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &ExplainConfig {
        &self.cfg
    }

    /// The cluster as known so far.
    pub fn timeline(&self) -> &crate::model::ClusterTimeline {
        &self.tl
    }

    /// Applies one fact; verdicts that became final are passed to `out`.
    pub fn push(&mut self, fact: &Fact, out: &mut impl FnMut(Verdict)) {
        self.stats.facts += 1;
        // Every window the engine adds to a time stays far below i64::MAX
        // for times in this range, so its arithmetic cannot overflow.
        if !(0..=MAX_SANE_NS).contains(&fact.at_ns()) {
            self.stats.rejected_facts += 1;
            return;
        }
        match fact {
            Fact::Kernel(e) if e.kind == KernelEventKind::HttpResponse => {
                self.stats.kernel_facts += 1;
                if let (Some(status), Some(tuple)) = (e.http_status, e.tuple) {
                    if status >= 500 {
                        self.saw_http = true;
                        self.done.push(http_failure(e, status, tuple));
                    }
                }
            }
            Fact::Kernel(e) => {
                self.stats.kernel_facts += 1;
                self.tl.apply_kernel_process(e);
                self.joiner.push(e, &mut self.done);
            }
            Fact::Pod(p) => self.tl.apply_pod(p),
            Fact::Endpoint(e) => self.tl.apply_endpoint(e),
            Fact::Service(s) => self.tl.apply_service(s),
            Fact::Node(n) => self.tl.apply_node(n),
            Fact::Event(e) => self.tl.apply_event(e),
            Fact::HttpPeek(p) => {
                self.saw_http = true;
                let since = self.peeked_proxies.entry(p.proxy_ip).or_insert(p.at_ns);
                *since = (*since).min(p.at_ns);
            }
            Fact::ProxyLog(l) => {
                if l.status >= 500 {
                    self.saw_http = true;
                    let last = last_failed_upstream(l);
                    let f = logged_failure(l, last.map(|(a, _)| a));
                    if let (Some((upstream, upstream_status)), Some(evidence)) =
                        (last, f.evidence.first())
                    {
                        if self.logged_twins.len() >= 8192 {
                            self.logged_twins.pop_front();
                        }
                        self.logged_twins.push_back(LoggedTwin {
                            client: l.client,
                            status: l.status,
                            from_ns: f.first_ns,
                            to_ns: f.at_ns,
                            upstream,
                            upstream_status,
                            evidence: evidence.clone(),
                        });
                    }
                    self.done.push(f);
                } else {
                    let failed_tries = l
                        .upstream_statuses
                        .iter()
                        .filter(|s| s.is_none_or(|s| s >= 500))
                        .count();
                    self.stats.http.retried_in_log += failed_tries as u64;
                }
            }
        }
        if !matches!(fact, Fact::Kernel(_)) {
            self.stats.api_facts += 1;
        }
        let at = fact.at_ns();
        if at > self.max_seen {
            self.max_seen = at;
        }
        let wm = self.max_seen.saturating_sub(self.cfg.skew_ns);
        if wm.saturating_sub(self.last_expire) >= 50_000_000 || !self.done.is_empty() {
            self.last_expire = wm;
            self.joiner.expire(
                wm.saturating_sub(self.cfg.join_ns),
                wm.saturating_sub(self.cfg.syn_timeout_ns),
                &mut self.done,
            );
            self.enqueue_done();
            self.emit_ripe(wm.saturating_sub(self.cfg.lookahead_ns), out);
        }
        if wm.saturating_sub(self.last_prune) >= 10 * SECOND {
            self.last_prune = wm;
            self.prune(wm);
        }
    }

    fn enqueue_done(&mut self) {
        for f in self.done.drain(..) {
            self.stats.failures += 1;
            if f.kind.is_new_connection() {
                let t = f.first_ns.min(f.at_ns);
                let e = self.last_connect_failure.entry(f.tuple.daddr).or_insert(t);
                *e = (*e).max(t);
            }
            self.pending.push(Reverse(Pending::new(f)));
        }
    }

    fn emit_ripe(&mut self, before: i64, out: &mut impl FnMut(Verdict)) {
        while let Some(Reverse(p)) = self.pending.peek() {
            if p.key.0 >= before && before != i64::MAX {
                break;
            }
            let Some(Reverse(Pending { failure, .. })) = self.pending.pop() else {
                break;
            };
            let f = *failure;
            let horizon = if before == i64::MAX {
                i64::MAX
            } else {
                f.at_ns.saturating_add(self.cfg.lookahead_ns)
            };
            if f.kind == FailureKind::Http5xx {
                let v = self.http_verdict(f, horizon);
                *self.stats.http.sent_5xx.entry(v.cause).or_default() += 1;
                out(v);
                continue;
            }
            if f.kind == FailureKind::Http5xxLogged {
                if let Some(v) = self.logged_verdict(f) {
                    *self.stats.http.sent_5xx.entry(v.cause).or_default() += 1;
                    out(v);
                }
                continue;
            }
            let v = self.verdict(f, horizon);
            if self.saw_http {
                self.remember_upstream(&v);
            }
            out(v);
        }
    }

    /// Keeps the recent upstream verdicts of each proxy node, for 5xx.
    /// Verdicts come out in time order, so one older than the window can no
    /// longer be claimed by a 5xx: if none claimed it, it was retried.
    fn remember_upstream(&mut self, v: &Verdict) {
        let window = self.cfg.http_match_ns;
        let q = self
            .recent_upstream
            .entry(v.failure.client_node.clone())
            .or_default();
        while q
            .front()
            .is_some_and(|(o, _)| o.at_ns() < v.at_ns() - window || q.len() >= 512)
        {
            if let Some((old, claimed)) = q.pop_front() {
                count_hidden(&self.peeked_proxies, &mut self.stats.http, &old, claimed);
            }
        }
        q.push_back((v.clone(), false));
    }

    /// A proxy's 5xx (peeked in the kernel) takes the cause of the failed
    /// upstream connection behind it; without one it stays unexplained.
    fn http_verdict(&mut self, f: FailedConnection, horizon: i64) -> Verdict {
        let t = f.at_ns;
        let proxy_ip = f.tuple.saddr;
        // A 5xx proves the proxy's answers are seen, but not since when:
        // its recent failures count (as before any peek fact).
        self.peeked_proxies.insert(proxy_ip, i64::MIN);
        let q = &mut self.recent_answers;
        while q
            .front()
            .is_some_and(|a| a.at_ns < t - 2 * SECOND || q.len() >= 4096)
        {
            q.pop_front();
        }
        q.push_back(Answer {
            client: f.tuple.daddr,
            status: f.http_status.unwrap_or(0),
            at_ns: t,
            logged: false,
        });
        // The failure behind a 5xx is the latest one of the same proxy
        // (its address made the upstream connection) that no other 5xx
        // claimed; failing that, the latest of the proxy's node.
        let node = f.client_node.clone();
        let v = self.answer_verdict(f, &node, t - self.cfg.http_match_ns, t + 1_000_000, &|u| {
            u.failure.tuple.saddr == proxy_ip
        });
        if v.cause != Cause::Unexplained {
            return v;
        }
        self.closed_by_death(&v, horizon).unwrap_or(v)
    }

    /// A 502/504 with no failed upstream connection behind it: the
    /// upstream may have closed the connection with a FIN, not a RST,
    /// because its process was killed after reading the whole request (an
    /// OOM kill, a SIGKILL at grace expiry). The kernel then sees no failed
    /// connection, but the proxy's access log names the upstream. When it
    /// does, and that upstream's pod was OOM-killed or SIGKILLed right then,
    /// the 5xx takes that cause at medium confidence; otherwise it stays
    /// unexplained (an app's own 5xx is never blamed on a later kill).
    fn closed_by_death(&mut self, v: &Verdict, horizon: i64) -> Option<Verdict> {
        let t = v.failure.at_ns;
        let status = v.failure.http_status?;
        if !matches!(status, 502 | 504) {
            return None;
        }
        let window = self.cfg.http_match_ns;
        while self
            .logged_twins
            .front()
            .is_some_and(|l| l.to_ns < t - 10 * SECOND)
        {
            self.logged_twins.pop_front();
        }
        let peeked = Answer {
            client: v.failure.tuple.daddr,
            status,
            at_ns: t,
            logged: false,
        };
        let twin = self.logged_twins.iter().find(|l| {
            same_answer(&peeked, l.client, l.status, l.from_ns - window, l.to_ns)
                && l.upstream_status.is_none_or(|s| s == 502 || s == 504)
        })?;
        let mut upstream = v.failure.clone();
        upstream.kind = FailureKind::Reset;
        // The connection ended at the process's death, as a reset at a
        // kill would: the same rules (OOM, lifecycle SIGKILL) apply.
        upstream.rst = true;
        upstream.http_status = None;
        upstream.tuple = crate::FourTuple {
            saddr: v.failure.tuple.saddr,
            sport: 0,
            daddr: twin.upstream.ip(),
            dport: twin.upstream.port(),
        };
        upstream.evidence = vec![twin.evidence.clone()];
        let c = classify(&upstream, &self.tl, &self.cfg, horizon);
        if !matches!(
            c.cause,
            Cause::OomKill | Cause::SigkillAtGraceExpiry | Cause::SigtermIgnored
        ) {
            return None;
        }
        let up = twin.upstream;
        let u = self.verdict_from(upstream, c, horizon);
        let mut evidence = u.evidence;
        evidence.extend_from_slice(&v.failure.evidence);
        sort_evidence(&mut evidence);
        evidence.dedup();
        Some(Verdict {
            cause: u.cause,
            confidence: u.confidence.min(Confidence::Medium),
            evidence,
            namespace: u.namespace,
            workload: u.workload,
            workload_key: u.workload_key,
            pod: u.pod,
            pod_uid: u.pod_uid,
            proxy: v.proxy.clone(),
            episode: u.episode,
            fix: u.fix,
            note: Some(format!(
                "no failed connection seen: the access log names upstream {up}, whose process died then; it closed the connection without a reset, mid-request"
            )),
            failure: v.failure.clone(),
        })
    }

    /// A 5xx from a proxy's access log. One the kernel also saw (same
    /// client, status and second) is already explained and only counted;
    /// otherwise (TLS, HTTP/2, no peek) it takes the cause of the failed
    /// connection to the upstream the log names.
    fn logged_verdict(&mut self, f: FailedConnection) -> Option<Verdict> {
        let status = f.http_status.unwrap_or(0);
        // The logged time (first_ns) up to its slack (at_ns), plus a margin
        // for a log stamp taken after the write.
        let (lo, hi) = (f.first_ns - self.cfg.http_match_ns, f.at_ns);
        if let Some(a) = self
            .recent_answers
            .iter_mut()
            .find(|a| !a.logged && same_answer(a, f.tuple.daddr, status, lo, hi))
        {
            a.logged = true;
            self.stats.http.confirmed_by_log += 1;
            return None;
        }
        let upstream = f.upstream;
        let node = f.client_node.clone();
        let from = f.first_ns - self.cfg.http_match_ns;
        let to = f.at_ns;
        Some(self.answer_verdict(f, &node, from, to, &|u| {
            upstream.is_some_and(|x| {
                x.daddr == u.failure.tuple.daddr && x.dport == u.failure.tuple.dport
            })
        }))
    }

    /// Joins a proxy's answer to the upstream failure behind it: among the
    /// recent upstream verdicts on `node` ("": any node) within
    /// `from..=to`, the latest unclaimed one that is `mine`, else the
    /// latest that is `mine`, else (lower confidence) the latest on the node.
    fn answer_verdict(
        &mut self,
        mut f: FailedConnection,
        node: &str,
        from: i64,
        to: i64,
        mine: &dyn Fn(&Verdict) -> bool,
    ) -> Verdict {
        let t = f.at_ns;
        let window = self.cfg.http_match_ns;
        // (node, index in its queue, whether it is the proxy's own).
        let mut found: Option<(String, usize, bool)> = None;
        for (n, q) in self.recent_upstream.iter() {
            if !node.is_empty() && n != node {
                continue;
            }
            for pass in 0..4 {
                let (own, unclaimed) = (pass < 2, pass % 2 == 0);
                let pos = q.iter().rposition(|(u, claimed)| {
                    u.at_ns() >= from
                        && u.at_ns() <= to
                        && (!own || mine(u))
                        && (!unclaimed || !*claimed)
                });
                if let Some(i) = pos {
                    let better = found.as_ref().is_none_or(|(bn, bi, b_own)| {
                        let b_at = self.recent_upstream[bn][*bi].0.at_ns();
                        (own && !*b_own) || (own == *b_own && q[i].0.at_ns() > b_at)
                    });
                    if better {
                        found = Some((n.clone(), i, own));
                    }
                    break;
                }
            }
        }
        let proxy = Some(ProxyRef {
            node: f.client_node.clone(),
            address: f.tuple.saddr,
        });
        let Some((qn, qi, own)) = found else {
            let evidence = f.evidence.clone();
            return Verdict {
                cause: Cause::Unexplained,
                confidence: Confidence::High,
                evidence,
                namespace: None,
                workload: None,
                workload_key: None,
                pod: None,
                pod_uid: None,
                proxy,
                episode: None,
                fix: None,
                note: Some(format!(
                    "no failed upstream connection on {} within {} ms before this {} (the upstream's own answer, or an untraced node)",
                    if node.is_empty() { "any node" } else { node },
                    window / 1_000_000,
                    f.http_status.unwrap_or(0)
                )),
                failure: f,
            };
        };
        let q = self.recent_upstream.get_mut(&qn).expect("found above");
        q[qi].1 = true;
        if own {
            claim_retry_chain(q, qi);
        }
        let u = &q[qi].0;
        let gap = t - u.at_ns();
        f.upstream = Some(u.failure.tuple);
        let mut evidence = Vec::with_capacity(u.evidence.len() + f.evidence.len());
        evidence.extend_from_slice(&u.evidence);
        evidence.extend_from_slice(&f.evidence);
        sort_evidence(&mut evidence);
        let confidence = if gap <= 100_000_000 && own {
            u.confidence
        } else {
            u.confidence.min(Confidence::Medium)
        };
        Verdict {
            cause: u.cause,
            confidence,
            evidence,
            namespace: u.namespace.clone(),
            workload: u.workload.clone(),
            workload_key: u.workload_key.clone(),
            pod: u.pod.clone(),
            pod_uid: u.pod_uid.clone(),
            proxy,
            episode: u.episode.clone(),
            fix: u.fix.clone(),
            note: Some(format!(
                "upstream connection {} failed {:.1} ms before",
                u.failure.tuple,
                gap as f64 / 1e6
            )),
            failure: f,
        }
    }

    fn verdict(&mut self, f: FailedConnection, horizon: i64) -> Verdict {
        let c = classify(&f, &self.tl, &self.cfg, horizon);
        self.verdict_from(f, c, horizon)
    }

    /// The verdict for `f` once classified: workload, episode, the
    /// measurements the failure gives, and the fix.
    fn verdict_from(&mut self, f: FailedConnection, c: Classification, horizon: i64) -> Verdict {
        let pod = c.pod_uid.as_deref().and_then(|u| self.tl.pod(u));
        let (namespace, workload, pod_name) = match (pod, &c.service) {
            (Some(p), _) => (
                Some(p.namespace.clone()).filter(|n| !n.is_empty()),
                p.workload.clone(),
                Some(p.display.to_string()),
            ),
            (None, Some((ns, _))) => (Some(ns.clone()), None, None),
            _ => (None, None, None),
        };
        let key: String = match (pod, &c.service) {
            (Some(p), _) => p.key.to_string(),
            (None, Some((ns, name))) => format!("{ns}/service/{name}"),
            _ => "-".to_string(),
        };
        let service_since = c.evidence.first().map_or(f.at_ns, |e| e.at_ns);
        let episode = self.episodes.episode_for(
            c.cause,
            pod,
            &key,
            c.service.as_ref(),
            service_since,
            &self.tl,
            self.cfg.skew_ns,
            self.cfg.rollout_gap_ns,
        );
        // Measurements the failure itself gives.
        let attempt = f.first_ns.min(f.at_ns);
        let mut local = WorkloadStats::default();
        if let Some(p) = pod {
            local.add_pod(&PodMeasure::of(&self.tl, p, horizon), None);
            match c.cause {
                Cause::EndpointLagNetnsAlive | Cause::EndpointLagNetnsGone => {
                    if let Some(term) = p.termination_ns() {
                        let last = p
                            .ips
                            .iter()
                            .filter_map(|(_, ip)| {
                                let t = (*self.last_connect_failure.get(ip)?).min(horizon);
                                let owner = self.tl.owner_at(*ip, t, 0)?;
                                (owner.uid == p.uid).then_some(t)
                            })
                            .max()
                            .unwrap_or(attempt);
                        let lag = (attempt.max(last) - term).max(0);
                        let lag = match self.proxy_lag.get_mut(p.uid.as_str()) {
                            Some(e) => {
                                *e = (*e).max(lag);
                                *e
                            }
                            None => {
                                self.proxy_lag.insert(p.uid.clone(), lag);
                                lag
                            }
                        };
                        // The API's endpoint-removal lag is a lower bound:
                        // proxies apply it later still (kube-proxy, ingress
                        // reloads). The fix takes the larger of the two.
                        local.proxy_lags_ns.push(lag);
                    }
                }
                Cause::NotReadyAtStart => {
                    let start = [p.started_ns, p.created_ns, p.first_ready_ns()]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(attempt);
                    local.startup_refusal_ns = (attempt - start).max(0);
                }
                _ => {}
            }
        }
        if c.cause == Cause::NoEndpoints {
            local.no_endpoints_ns = (f.at_ns - service_since).max(0);
        }
        if local.startup_refusal_ns > 0 || local.no_endpoints_ns > 0 {
            let w = self.workloads.entry(key.clone()).or_default();
            w.startup_refusal_ns = w.startup_refusal_ns.max(local.startup_refusal_ns);
            w.no_endpoints_ns = w.no_endpoints_ns.max(local.no_endpoints_ns);
        }
        let fix = self.fix(c.cause, c.pod_uid.as_deref().unwrap_or(&key), &local);
        let mut evidence = Vec::with_capacity(f.evidence.len() + c.evidence.len());
        evidence.extend_from_slice(&f.evidence);
        evidence.extend(c.evidence);
        sort_evidence(&mut evidence);
        evidence.dedup();
        let proxy = (!f.client_node.is_empty()).then(|| ProxyRef {
            node: f.client_node.clone(),
            address: f.tuple.saddr,
        });
        Verdict {
            cause: c.cause,
            confidence: c.confidence,
            evidence,
            namespace,
            workload,
            workload_key: (key != "-").then_some(key),
            pod: pod_name,
            pod_uid: c.pod_uid,
            proxy,
            episode,
            fix,
            note: c.note,
            failure: f,
        }
    }

    /// The fix for one verdict, shared with the previous verdicts of the
    /// same pod while the numbers behind it are unchanged.
    fn fix(&mut self, cause: Cause, subject: &str, local: &WorkloadStats) -> Option<Arc<Fix>> {
        let key = FixKey {
            cause,
            endpoint_lag: local.endpoint_lags_ns.first().copied(),
            proxy_lag: local.proxy_lags_ns.first().copied(),
            exit_after_term: local.exit_after_term_ns.first().copied(),
            killed: local.killed,
            grace: local.grace_s,
            ignored_by: local.sigterm_ignored_by.is_some(),
            oom: local.oom_kills,
            startup: local.startup_refusal_ns,
            no_endpoints: local.no_endpoints_ns,
        };
        if let Some((k, fix)) = self.fix_cache.get(subject) {
            if *k == key {
                return fix.clone();
            }
        }
        let fix = measure::fix_for(cause, local).map(Arc::new);
        if self.fix_cache.len() > 100_000 {
            self.fix_cache.clear();
        }
        self.fix_cache
            .insert(subject.to_string(), (key, fix.clone()));
        fix
    }

    /// Records the measurements of pods about to be forgotten, then forgets them.
    fn prune(&mut self, wm: i64) {
        let now = wm.saturating_sub(self.cfg.lookahead_ns);
        let old = self.tl.retire_candidates(now, self.cfg.prune_horizon_ns);
        for uid in &old {
            self.retire(uid, i64::MAX);
        }
        self.stats.pods_forgotten += old.len() as u64;
        let forget_before = now.saturating_sub(self.cfg.prune_horizon_ns);
        self.last_connect_failure.retain(|_, t| *t >= forget_before);
        self.tl.remove_pods(&old);
    }

    fn retire(&mut self, uid: &str, horizon: i64) {
        let Some(p) = self.tl.pod(uid) else { return };
        let m = PodMeasure::of(&self.tl, p, horizon);
        let key = p.key.to_string();
        let lag = self.proxy_lag.remove(uid);
        self.workloads.entry(key).or_default().add_pod(&m, lag);
        self.episodes.forget(uid);
        self.fix_cache.remove(uid);
    }

    /// Classifies everything still pending (end of the stream) and returns
    /// the measurements of the whole run.
    pub fn finish(mut self, out: &mut impl FnMut(Verdict)) -> Measurements {
        self.joiner.drain(&mut self.done);
        self.stats.late_events = self.joiner.stragglers;
        self.enqueue_done();
        self.emit_ripe(i64::MAX, out);
        for q in std::mem::take(&mut self.recent_upstream).into_values() {
            for (v, claimed) in q {
                count_hidden(&self.peeked_proxies, &mut self.stats.http, &v, claimed);
            }
        }
        let uids: Vec<String> = self.tl.pods().map(|p| p.uid.clone()).collect();
        let mut uids = uids;
        uids.sort();
        for uid in &uids {
            self.retire(uid, i64::MAX);
        }
        Measurements {
            workloads: self.workloads,
            stats: self.stats,
        }
    }
}

/// Puts evidence in time order (then by source), keeping the order of
/// equals; most chains arrive in order already.
fn sort_evidence(evidence: &mut [Evidence]) {
    let key =
        |a: &Evidence, b: &Evidence| a.at_ns.cmp(&b.at_ns).then_with(|| a.source.cmp(&b.source));
    if !evidence.is_sorted_by(|a, b| key(a, b).is_le()) {
        evidence.sort_by(key);
    }
}

/// Before answering 5xx, a proxy that retries (`proxy_next_upstream`)
/// tried other upstreams, each failing at once: the 5xx claims those too,
/// or they would be counted as hidden by retry. A try belongs to the chain
/// when the same proxy (and worker, when the kernel named it) failed it to
/// another upstream within `CHAIN_GAP_NS` before the next try began. Only
/// immediate failures chain: a timed-out try's start is not known.
fn claim_retry_chain(q: &mut std::collections::VecDeque<(Verdict, bool)>, last: usize) {
    const CHAIN_GAP_NS: i64 = 20_000_000;
    let immediate = |f: &FailedConnection| {
        matches!(
            f.kind,
            FailureKind::Refused | FailureKind::Reset | FailureKind::Unreachable
        )
    };
    if !immediate(&q[last].0.failure) {
        return;
    }
    let proxy = q[last].0.failure.tuple.saddr;
    let pid = q[last].0.failure.proxy_pid;
    let mut next_start = q[last].0.failure.first_ns;
    let mut tried = vec![q[last].0.failure.tuple.daddr];
    for j in (0..last).rev() {
        let (u, claimed) = &q[j];
        let f = &u.failure;
        let gap = next_start - f.at_ns;
        if gap > CHAIN_GAP_NS {
            break;
        }
        let same_worker = match (pid, f.proxy_pid) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if *claimed
            || gap < -1_000_000
            || f.tuple.saddr != proxy
            || !same_worker
            || !immediate(f)
            || tried.contains(&f.tuple.daddr)
        {
            continue;
        }
        tried.push(f.tuple.daddr);
        next_start = f.first_ns;
        q[j].1 = true;
    }
}

/// Whether a logged answer (to `client`, with `status`, logged between
/// `from` and `to`) is the peeked answer `a`: the one rule that joins the
/// two views of a 5xx, both to count it once and to learn its upstream.
fn same_answer(a: &Answer, client: std::net::IpAddr, status: u16, from: i64, to: i64) -> bool {
    a.client == client && a.status == status && a.at_ns >= from && a.at_ns <= to
}

/// An upstream failure of a peeked proxy that no 5xx claimed was retried.
fn count_hidden(
    peeked: &HashMap<std::net::IpAddr, i64>,
    http: &mut HttpTotals,
    v: &Verdict,
    claimed: bool,
) {
    let seen = peeked
        .get(&v.failure.tuple.saddr)
        .is_some_and(|since| v.failure.at_ns >= *since);
    if !claimed && seen {
        *http.hidden_by_retry.entry(v.cause).or_default() += 1;
    }
}

/// How much later than its logged time a proxy's answer may really have
/// happened. nginx stamps `$msec` from the time it cached at the start of
/// its event-loop turn, a few ms before the kernel sees the same turn's
/// failed connect and 5xx write; `$time_local` is whole seconds.
fn log_slack(precise: bool) -> i64 {
    if precise {
        50_000_000
    } else {
        SECOND - 1
    }
}

/// The upstream a logged answer tried last among those that failed (status
/// `-` or 5xx), with that status.
fn last_failed_upstream(
    l: &crate::model::ProxyLogFact,
) -> Option<(std::net::SocketAddr, Option<u16>)> {
    l.upstream_addrs
        .iter()
        .zip(l.upstream_statuses.iter().chain(std::iter::repeat(&None)))
        .filter(|(_, s)| s.is_none_or(|s| s >= 500))
        .map(|(a, s)| (*a, *s))
        .last()
}

/// A proxy's logged 5xx, as a failure to join to its upstream (`upstream`:
/// the address of [`last_failed_upstream`]). It is placed at the end of its
/// slack (`first_ns` keeps the logged time), so that it sorts after the
/// kernel's view of the same answer and of its upstream.
fn logged_failure(
    l: &crate::model::ProxyLogFact,
    upstream: Option<std::net::SocketAddr>,
) -> FailedConnection {
    let unspecified = std::net::IpAddr::from([0u8, 0, 0, 0]);
    let upstream = upstream.map(|a| crate::FourTuple {
        saddr: unspecified,
        sport: 0,
        daddr: a.ip(),
        dport: a.port(),
    });
    let at = l.at_ns.saturating_add(log_slack(l.precise_time));
    let tried: Vec<String> = l
        .upstream_addrs
        .iter()
        .zip(l.upstream_statuses.iter().chain(std::iter::repeat(&None)))
        .map(|(a, s)| format!("{a} ({})", s.map_or("-".to_string(), |s| s.to_string())))
        .collect();
    FailedConnection {
        at_ns: at,
        first_ns: l.at_ns,
        kind: FailureKind::Http5xxLogged,
        tuple: crate::FourTuple {
            saddr: unspecified,
            sport: 0,
            daddr: l.client,
            dport: 0,
        },
        client_node: l.node.clone().unwrap_or_default(),
        proxy_pid: None,
        rst: false,
        errno: None,
        syn_retransmits: 0,
        server_reset_reason: None,
        http_status: Some(l.status),
        upstream,
        evidence: vec![Evidence {
            at_ns: l.at_ns,
            source: crate::model::FactSource::Api,
            fact: Observation::text(format!(
                "access log of {}/{}: {} to {}, upstream {}",
                l.namespace,
                l.pod,
                l.status,
                l.client,
                if tried.is_empty() {
                    "-".to_string()
                } else {
                    tried.join(", ")
                }
            )),
        }],
    }
}

/// A proxy's 5xx, as a failure to classify once its upstream is known.
fn http_failure(e: &crate::KernelEvent, status: u16, tuple: crate::FourTuple) -> FailedConnection {
    let who = e
        .task
        .as_ref()
        .map_or(String::new(), |t| format!(" by {} (pid {})", t.comm, t.pid));
    FailedConnection {
        at_ns: e.wall_ns,
        first_ns: e.wall_ns,
        kind: FailureKind::Http5xx,
        tuple,
        client_node: e.node.clone(),
        proxy_pid: e.task.as_ref().map(|t| t.pid),
        rst: false,
        errno: None,
        syn_retransmits: 0,
        server_reset_reason: None,
        http_status: Some(status),
        upstream: None,
        evidence: vec![Evidence {
            at_ns: e.wall_ns,
            source: crate::model::FactSource::Node(Arc::from(e.node.as_str())),
            fact: Observation::text(format!("HTTP {status} written{who} on {tuple}")),
        }],
    }
}

/// Streams a capture through the engine: verdicts go to `out` as they
/// become final; returns the measurements. Damage in the capture is
/// skipped as the reader does (see `reader.problems()` afterwards). This is
/// what `kubectl fivexx explain` and the lab's scoring run.
pub fn explain_capture<R: std::io::Read>(
    reader: &mut crate::capture::CaptureReader<R>,
    cfg: ExplainConfig,
    out: &mut impl FnMut(Verdict),
) -> Result<Measurements, crate::capture::CaptureError> {
    let mut e = Explainer::new(cfg);
    while let Some(record) = reader.next_ref()? {
        if let crate::capture::RecordRef::Fact(f) = record {
            e.push(f, out);
        }
    }
    Ok(e.finish(out))
}

/// Runs the engine over all `facts` and returns every verdict (in
/// failure-time order) with the measurements. For tests and small inputs;
/// large captures should stream into a report instead.
pub fn explain_all<'a>(
    facts: impl IntoIterator<Item = &'a Fact>,
    cfg: ExplainConfig,
) -> (Vec<Verdict>, Measurements) {
    let mut e = Explainer::new(cfg);
    let mut out = Vec::new();
    for f in facts {
        e.push(f, &mut |v| out.push(v));
    }
    let m = e.finish(&mut |v| out.push(v));
    (out, m)
}
