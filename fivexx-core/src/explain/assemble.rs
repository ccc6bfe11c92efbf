//! Verdict assembly: a classification placed in its workload, pod and
//! episode, with the measurements the failure gives and the fix they
//! support. The fix of one pod is shared by its verdicts while the numbers
//! behind it are unchanged (the fix cache).

use super::classify::{classify, from_outside, Classification};
use super::config::ExplainConfig;
use super::episode::EpisodeTracker;
use super::measure::{PodMeasure, WorkloadStats};
use super::outside::OutsideAttempts;
use super::track::PodTrack;
use super::verdict::{
    Cause, EpisodeRef, FailedConnection, Failure, Fix, IdleClose, Involved, ProxyRef, Verdict,
};
use crate::event::KernelEvent;
use crate::model::timeline::ClusterTimeline;
use crate::model::{Evidence, WorkloadKey};
use foldhash::HashMap;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

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
    no_endpoints_why: (u32, u32),
    prestop_failures: u32,
    idle_closes: u64,
    /// Lost pods and the summed time the endpoints kept them.
    lost: (u32, i64),
    /// Load-balancer lags measured, and their sum.
    lb: (usize, i64),
}

impl FixKey {
    fn of(cause: Cause, local: &WorkloadStats) -> FixKey {
        FixKey {
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
            no_endpoints_why: (local.no_endpoints_terminating, local.no_endpoints_starting),
            prestop_failures: local.prestop_failures,
            lost: (local.lost_pods, local.kept_after_loss_ns.iter().sum()),
            idle_closes: local.idle_closes + local.proxy_idle_closes,
            lb: (local.lb_lags_ns.len(), local.lb_lags_ns.iter().sum()),
        }
    }
}

/// Where a classified failure belongs: who it is about (without the
/// proxy, which the failure itself names), its episode and its fix.
pub(crate) struct Placed {
    pub involved: Involved,
    pub episode: Option<EpisodeRef>,
    pub fix: Option<Arc<Fix>>,
}

/// The state verdict assembly keeps across failures.
#[derive(Default)]
pub(crate) struct Assembler {
    episodes: EpisodeTracker,
    /// Measurements of pods already forgotten, by workload key.
    pub workloads: BTreeMap<WorkloadKey, WorkloadStats>,
    /// Per pod: latest endpoint-lag failure after termination began.
    proxy_lag: HashMap<String, i64>,
    /// Per address: the latest failed new connection to it seen so far. A
    /// verdict is final only `lookahead` after its failure, so this already
    /// knows how long proxies went on routing to a terminating pod when the
    /// first of its failures is explained, not just that first failure.
    last_connect_failure: HashMap<IpAddr, i64>,
    /// Failed new connections from outside the cluster, to tell a load
    /// balancer's traffic from its health checks.
    outside: OutsideAttempts,
    /// Per terminated pod: its workload key, how long after termination
    /// began a load balancer outside the cluster still sent to it, and
    /// from where.
    lb_lag: HashMap<String, (WorkloadKey, i64, IpAddr)>,
    /// Per pod (or service): the last fix and the numbers it came from.
    fix_cache: HashMap<Option<String>, (FixKey, Option<Arc<Fix>>)>,
}

impl Assembler {
    /// Learns from an idle close (`e`, ESTABLISHED -> FIN_WAIT1 after `c`'s
    /// idle time), for the workload of the pod serving the connection.
    /// The server side is the one with the lower port: a proxy's upstream
    /// connections leave from ephemeral ports, above any serving port.
    pub fn idle_close(&mut self, e: &KernelEvent, c: IdleClose, tl: &ClusterTimeline) {
        let Some(t) = e.tuple else { return };
        let by_server = t.sport < t.dport;
        let server = if by_server { t.saddr } else { t.daddr };
        let Some(pod) = tl.owner_at(server, c.at_ns, 0) else {
            return;
        };
        let idle_ns = i64::try_from(c.idle_us.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.workloads
            .entry(pod.key.clone())
            .or_default()
            .idle_close(idle_ns, !by_server);
    }

    /// Learns from a failure as soon as it is final, before its verdict.
    pub fn note(&mut self, f: &FailedConnection, tl: &ClusterTimeline, cfg: &ExplainConfig) {
        if from_outside(f, tl, cfg) {
            self.outside
                .add(f.tuple.saddr, f.tuple.daddr, f.attempt_ns());
        }
        if f.kind.is_new_connection() {
            let t = f.attempt_ns();
            let e = self.last_connect_failure.entry(f.tuple.daddr).or_insert(t);
            *e = (*e).max(t);
        }
    }

    /// Classifies a failed connection and assembles its verdict; `None`
    /// for a health check (a failed connection from outside the cluster
    /// with no other near it), which no client saw.
    pub fn connection_verdict(
        &mut self,
        f: FailedConnection,
        tl: &ClusterTimeline,
        cfg: &ExplainConfig,
        horizon: i64,
    ) -> Option<Verdict> {
        if from_outside(&f, tl, cfg)
            && self
                .outside
                .is_alone(f.tuple.saddr, f.tuple.daddr, f.attempt_ns())
        {
            return None;
        }
        let c = classify(&f, tl, cfg, horizon);
        let placed = self.place(&c, f.at_ns, f.attempt_ns(), tl, cfg, horizon);
        let mut evidence = Vec::with_capacity(f.evidence.len() + c.evidence.len());
        evidence.extend_from_slice(&f.evidence);
        evidence.extend(c.evidence);
        sort_evidence(&mut evidence);
        evidence.dedup();
        let mut involved = placed.involved;
        involved.proxy = (!f.client_node.is_empty()).then(|| ProxyRef {
            node: f.client_node.clone(),
            address: Some(f.tuple.saddr),
            pod: None,
        });
        Some(Verdict {
            cause: c.cause,
            confidence: c.confidence,
            evidence,
            involved,
            episode: placed.episode,
            fix: placed.fix,
            note: c.note,
            next: None,
            burst: None,
            failure: Failure::Connection(f),
        })
    }

    /// Places classification `c` of a failure at `at_ns` (its attempt
    /// started at `attempt_ns`): workload, episode, measurements, fix.
    pub fn place(
        &mut self,
        c: &Classification,
        at_ns: i64,
        attempt_ns: i64,
        tl: &ClusterTimeline,
        cfg: &ExplainConfig,
        horizon: i64,
    ) -> Placed {
        let pod = c.pod_uid.as_deref().and_then(|u| tl.pod(u));
        let (namespace, workload, pod_name) = match (pod, &c.service) {
            (Some(p), _) => (
                Some(p.namespace.clone()).filter(|n| !n.is_empty()),
                p.workload.clone(),
                Some(p.display.to_string()),
            ),
            (None, Some((ns, _))) => (Some(ns.clone()), None, None),
            _ => (None, None, None),
        };
        let service_since = c.evidence.first().map_or(at_ns, |e| e.at_ns);
        let behind = c
            .service
            .as_ref()
            .map(|svc| tl.service_pods_at(svc, service_since));
        let key: WorkloadKey = match (pod, &c.service, &behind) {
            (Some(p), _, _) => p.key.clone(),
            // Workloads first: the one workload whose pods back the
            // Service, else the Service itself.
            (None, _, Some((_, _, keys))) if keys.len() == 1 => keys[0].clone(),
            (None, Some((ns, name)), _) => Some(Arc::from(format!("{ns}/service/{name}"))),
            _ => None,
        };
        let workload = workload.or_else(|| {
            let key = behind.as_ref().filter(|b| b.2.len() == 1)?.2[0].clone();
            tl.pods()
                .find(|p| p.key == key)
                .and_then(|p| p.workload.clone())
        });
        let episode = self.episodes.episode_for(
            c.cause,
            pod,
            key.as_deref(),
            at_ns,
            c.service.as_ref(),
            service_since,
            tl,
            cfg.skew_ns,
            cfg.rollout_gap_ns,
        );
        let local = self.measure(c, pod, &key, at_ns, attempt_ns, service_since, tl, horizon);
        let subject = c.pod_uid.as_deref().or(key.as_deref());
        let fix = self.fix(c.cause, subject, &local);
        let service = c
            .service
            .as_ref()
            .or_else(|| {
                pod.and_then(|p| {
                    p.ips
                        .iter()
                        .rev()
                        .find_map(|(_, ip)| tl.service_of_endpoint(*ip))
                })
            })
            .map(|(ns, name)| format!("{ns}/{name}"));
        Placed {
            involved: Involved {
                service,
                namespace,
                workload,
                workload_key: key.as_deref().map(str::to_string),
                pod: pod_name,
                pod_uid: c.pod_uid.clone(),
                proxy: None,
            },
            episode,
            fix,
        }
    }

    /// The measurements one failure gives (endpoint lag, start-up refusal,
    /// time without endpoints), recorded for its workload too.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, in place(); each argument is a distinct input"
    )]
    fn measure(
        &mut self,
        c: &Classification,
        pod: Option<&crate::model::PodTimeline>,
        key: &WorkloadKey,
        at_ns: i64,
        attempt: i64,
        service_since: i64,
        tl: &ClusterTimeline,
        horizon: i64,
    ) -> WorkloadStats {
        let mut local = WorkloadStats::default();
        if let Some(p) = pod {
            local.add_pod(&PodMeasure::of(tl, p, horizon), None);
            match c.cause {
                Cause::EndpointLagNetnsAlive
                | Cause::EndpointLagNetnsGone
                | Cause::PrestopFailed
                | Cause::ProxyTerminated => {
                    if let Some(term) = p.termination_ns() {
                        let last = p
                            .ips
                            .iter()
                            .filter_map(|(_, ip)| {
                                let t = (*self.last_connect_failure.get(ip)?).min(horizon);
                                let owner = tl.owner_at(*ip, t, 0)?;
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
                Cause::LbDeregistrationLag => {
                    if let Some(term) = p.termination_ns() {
                        self.lb_lag_of(p, term, attempt, tl, horizon);
                        if let Some(w) = self.workloads.get(key) {
                            local.lb_lags_ns.clone_from(&w.lb_lags_ns);
                            local.lb_addrs.clone_from(&w.lb_addrs);
                        }
                        for (_, lag, from) in self.lb_lag.values().filter(|(k, ..)| k == key) {
                            local.add_lb_lag(*lag, *from);
                        }
                    }
                }
                Cause::KeepAliveIdleTimeout => {
                    if let Some(w) = self.workloads.get(key) {
                        local.idle_closes = w.idle_closes;
                        local.idle_close_ns.clone_from(&w.idle_close_ns);
                        local.proxy_idle_closes = w.proxy_idle_closes;
                        local.proxy_idle_close_ns.clone_from(&w.proxy_idle_close_ns);
                    }
                }
                Cause::NodeLost => {
                    // Every pod of the workload the lost node ran, not
                    // only those retired: they are not deleted until long
                    // after (eviction), and the fix quotes them all.
                    local.lost_pods = 0;
                    local.kept_after_loss_ns.clear();
                    for q in tl.pods().filter(|q| q.node == p.node && q.key == p.key) {
                        let m = PodMeasure::of(tl, q, horizon);
                        if m.lost_on.is_some() {
                            local.lost_pods += 1;
                            if let Some(k) = m.kept_after_loss_ns {
                                local.kept_after_loss_ns.push(k);
                            }
                        }
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
            local.no_endpoints_ns = (at_ns - service_since).max(0);
            if let Some(z) = c.no_endpoints_why {
                local.no_endpoints_terminating = z.terminating;
                local.no_endpoints_starting = z.starting;
                local.no_endpoints_ended = z.for_ns.is_some();
                // The API's stretch when known: the failures come a
                // propagation delay late at both ends.
                if let Some(d) = z.for_ns {
                    local.no_endpoints_ns = d.max(0);
                }
            }
        }
        if local.startup_refusal_ns > 0 || local.no_endpoints_ns > 0 {
            let w = self.workloads.entry(key.clone()).or_default();
            w.startup_refusal_ns = w.startup_refusal_ns.max(local.startup_refusal_ns);
            w.no_endpoints_ns = w.no_endpoints_ns.max(local.no_endpoints_ns);
            w.no_endpoints_terminating = w
                .no_endpoints_terminating
                .max(local.no_endpoints_terminating);
            w.no_endpoints_starting = w.no_endpoints_starting.max(local.no_endpoints_starting);
            w.no_endpoints_ended |= local.no_endpoints_ended;
        }
        local
    }

    /// Records how long after `term` the load balancers outside the
    /// cluster still sent traffic to `p`: its latest failed new connection
    /// from outside that was not a lone health check.
    fn lb_lag_of(
        &mut self,
        p: &crate::model::PodTimeline,
        term: i64,
        attempt: i64,
        tl: &ClusterTimeline,
        horizon: i64,
    ) {
        let latest = p
            .ips
            .iter()
            .filter_map(|(_, ip)| {
                let (t, from) = self.outside.latest_traffic_to(*ip, horizon)?;
                (tl.owner_at(*ip, t, 0)?.uid == p.uid).then_some((t, from))
            })
            .max_by_key(|(t, _)| *t);
        let Some((last, from)) = latest else { return };
        let lag = (attempt.max(last) - term).max(0);
        let e = self
            .lb_lag
            .entry(p.uid.clone())
            .or_insert_with(|| (p.key.clone(), lag, from));
        if lag >= e.1 {
            e.1 = lag;
            e.2 = from;
        }
    }

    /// The fix for one verdict, shared with the previous verdicts of the
    /// same pod while the numbers behind it are unchanged.
    fn fix(
        &mut self,
        cause: Cause,
        subject: Option<&str>,
        local: &WorkloadStats,
    ) -> Option<Arc<Fix>> {
        let key = FixKey::of(cause, local);
        if let Some((k, fix)) = self.fix_cache.get(&subject.map(str::to_string)) {
            if *k == key {
                return fix.clone();
            }
        }
        let fix = super::fix::fix_for(cause, local).map(Arc::new);
        if self.fix_cache.len() > 100_000 {
            self.fix_cache.clear();
        }
        self.fix_cache
            .insert(subject.map(str::to_string), (key, fix.clone()));
        fix
    }

    /// Forgets addresses whose last failure is older than `before`.
    pub fn forget_before(&mut self, before: i64) {
        self.last_connect_failure.retain(|_, t| *t >= before);
        self.outside.forget_before(before);
    }

    /// Records the measurements of a pod about to be forgotten; its track
    /// for the report's timeline.
    pub fn retire(&mut self, tl: &ClusterTimeline, uid: &str, horizon: i64) -> Option<PodTrack> {
        let p = tl.pod(uid)?;
        let m = PodMeasure::of(tl, p, horizon);
        let lag = self.proxy_lag.remove(uid);
        let w = self.workloads.entry(p.key.clone()).or_default();
        w.add_pod(&m, lag);
        if let Some((_, lag, from)) = self.lb_lag.remove(uid) {
            w.add_lb_lag(lag, from);
        }
        self.episodes.forget(uid);
        self.fix_cache.remove(&Some(uid.to_string()));
        Some(PodTrack::of(tl, p, lag))
    }
}

/// Puts evidence in time order (then by source), keeping the order of
/// equals; most chains arrive in order already.
pub(crate) fn sort_evidence(evidence: &mut [Evidence]) {
    let key =
        |a: &Evidence, b: &Evidence| a.at_ns.cmp(&b.at_ns).then_with(|| a.source.cmp(&b.source));
    if !evidence.is_sorted_by(|a, b| key(a, b).is_le()) {
        evidence.sort_by(key);
    }
}
