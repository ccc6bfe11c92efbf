//! Measurements per workload, and the fixes derived from them.
//!
//! Fixes quote what was measured on this cluster ("endpoint-removal lag p99
//! 3.1 s over 12 terminations"), never a generic best practice alone.

use super::hook::{FailedHook, FAILED_PRESTOP_HOOK};
use super::verdict::{Cause, Fix};
use crate::model::timeline::{ClusterTimeline, PodTimeline};
use serde::Serialize;
use std::collections::BTreeMap;

/// Samples kept per list: percentiles over 10k terminations are plenty.
const MAX_SAMPLES: usize = 10_000;

/// What one pod's life measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodMeasure {
    pub terminated: bool,
    /// Endpoint removal after termination began.
    pub endpoint_lag_ns: Option<i64>,
    /// Exit of its processes after SIGTERM, when before any SIGKILL.
    pub exit_after_term_ns: Option<i64>,
    /// SIGKILL after termination began, and the grace period.
    pub killed: Option<(i64, Option<u32>)>,
    pub sigterm_ignored_by: Option<String>,
    pub oom_killed: bool,
    /// Its preStop hook failed (the kubelet's `FailedPreStopHook`).
    pub prestop_failed: Option<FailedHook>,
    /// Its node went quiet (agent stream ended) while it ran, and that
    /// node; with how long after that its address stayed routable.
    pub lost_on: Option<String>,
    pub kept_after_loss_ns: Option<i64>,
}

impl PodMeasure {
    pub(crate) fn of(tl: &ClusterTimeline, pod: &PodTimeline, horizon: i64) -> PodMeasure {
        let mut m = PodMeasure {
            oom_killed: pod.oom.as_ref().is_some_and(|o| o.0 <= horizon),
            ..PodMeasure::default()
        };
        let quiet = pod
            .node
            .as_deref()
            .and_then(|n| tl.node_quiet_since(n))
            .filter(|q| *q <= horizon);
        if let Some(q) = quiet.filter(|q| pod.termination_ns().is_none_or(|t| t > *q)) {
            m.lost_on.clone_from(&pod.node);
            m.kept_after_loss_ns = pod
                .ips
                .iter()
                .filter_map(|(_, ip)| tl.unroutable_since(*ip, q))
                .filter(|r| *r <= horizon)
                .min()
                .map(|r| r - q);
            return m;
        }
        let Some(term) = pod.termination_ns().filter(|t| *t <= horizon) else {
            return m;
        };
        m.terminated = true;
        m.prestop_failed = pod
            .deleting
            .and_then(|(d, _)| pod.event_between(FAILED_PRESTOP_HOOK, d - 2_000_000_000, horizon))
            .map(|(_, msg)| FailedHook::parse(msg));
        m.endpoint_lag_ns = pod
            .ips
            .iter()
            .filter_map(|(_, ip)| tl.unroutable_since(*ip, term.saturating_sub(1_000_000_000)))
            .filter(|r| *r <= horizon)
            .min()
            .map(|r| (r - term).max(0));
        let kill = pod
            .sigkills
            .iter()
            .filter(|k| k.at_ns >= term && k.at_ns <= horizon && k.from_lifecycle())
            .map(|k| k.at_ns)
            .min();
        m.killed = kill.map(|k| (k - term, pod.grace_period_s()));
        if let Some(s) = &pod.sigterm {
            if s.result == Some(crate::SignalResult::Ignored) {
                m.sigterm_ignored_by =
                    Some(s.target.as_ref().map_or("?".into(), |t| t.comm.clone()));
            }
        }
        m.exit_after_term_ns = pod
            .exits
            .iter()
            .filter(|x| x.at_ns >= term && x.at_ns <= horizon && kill.is_none_or(|k| x.at_ns < k))
            .map(|x| x.at_ns - term)
            .max();
        m
    }
}

/// Everything measured about one workload over the capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkloadStats {
    pub terminations: u32,
    pub endpoint_lags_ns: Vec<i64>,
    /// Per terminated pod: how long after termination began proxies still
    /// sent new connections to it (from the failures themselves).
    pub proxy_lags_ns: Vec<i64>,
    pub exit_after_term_ns: Vec<i64>,
    pub killed: u32,
    pub grace_s: Option<u32>,
    pub sigterm_ignored_by: Option<String>,
    pub oom_kills: u32,
    /// Longest time after start that a pod refused connections.
    pub startup_refusal_ns: i64,
    /// Longest time a Service had no ready endpoint while refusing.
    pub no_endpoints_ns: i64,
    /// Pods behind such a Service when it lost its last endpoint: those
    /// terminating and those not yet ready (most seen), the reason.
    pub no_endpoints_terminating: u32,
    pub no_endpoints_starting: u32,
    /// The stretch with no ready endpoint ended within the capture (the
    /// pods did become ready, only late), rather than lasting to its end.
    pub no_endpoints_ended: bool,
    /// Terminations whose preStop hook failed, and the last such hook.
    pub prestop_failures: u32,
    pub prestop_failed: Option<FailedHook>,
    /// Idle pooled connections the workload's pods closed themselves, and
    /// how long each had been idle (the kernel's measure): all of them,
    /// not only those a proxy raced, so the timeout's percentiles are the
    /// server's setting rather than the race's luck.
    pub idle_closes: u64,
    pub idle_close_ns: Vec<i64>,
    /// The same for the proxy's own closes of its idle upstream
    /// connections to the workload, when it closed any first.
    pub proxy_idle_closes: u64,
    pub proxy_idle_close_ns: Vec<i64>,
    /// Pods on a node that stopped answering, the (last) node, and how
    /// long the endpoints kept each after it went quiet.
    pub lost_pods: u32,
    pub lost_node: Option<String>,
    pub kept_after_loss_ns: Vec<i64>,
    /// Per terminated pod: how long after termination began a load
    /// balancer outside the cluster still sent it new connections, and
    /// the addresses those came from.
    pub lb_lags_ns: Vec<i64>,
    pub lb_addrs: std::collections::BTreeSet<std::net::IpAddr>,
}

fn push_sample(v: &mut Vec<i64>, x: i64) {
    if v.len() < MAX_SAMPLES {
        v.push(x);
    }
}

impl WorkloadStats {
    /// One idle close by the workload's side (`by_proxy`: by the proxy's).
    pub(crate) fn idle_close(&mut self, idle_ns: i64, by_proxy: bool) {
        if by_proxy {
            self.proxy_idle_closes += 1;
            push_sample(&mut self.proxy_idle_close_ns, idle_ns);
        } else {
            self.idle_closes += 1;
            push_sample(&mut self.idle_close_ns, idle_ns);
        }
    }

    pub(crate) fn add_pod(&mut self, m: &PodMeasure, proxy_lag_ns: Option<i64>) {
        if m.terminated {
            self.terminations += 1;
        }
        if let Some(l) = m.endpoint_lag_ns {
            push_sample(&mut self.endpoint_lags_ns, l);
        }
        if let Some(l) = proxy_lag_ns {
            push_sample(&mut self.proxy_lags_ns, l);
        }
        if let Some(x) = m.exit_after_term_ns {
            push_sample(&mut self.exit_after_term_ns, x);
        }
        if let Some((_, grace)) = m.killed {
            self.killed += 1;
            if grace.is_some() {
                self.grace_s = grace;
            }
        }
        if m.sigterm_ignored_by.is_some() {
            self.sigterm_ignored_by.clone_from(&m.sigterm_ignored_by);
        }
        if m.oom_killed {
            self.oom_kills += 1;
        }
        if m.prestop_failed.is_some() {
            self.prestop_failures += 1;
            self.prestop_failed.clone_from(&m.prestop_failed);
        }
        if m.lost_on.is_some() {
            self.lost_pods += 1;
            self.lost_node.clone_from(&m.lost_on);
        }
        if let Some(k) = m.kept_after_loss_ns {
            push_sample(&mut self.kept_after_loss_ns, k);
        }
    }

    /// Adds another run's measurements (e.g. several captures).
    pub fn merge(&mut self, o: &WorkloadStats) {
        self.terminations += o.terminations;
        for x in &o.endpoint_lags_ns {
            push_sample(&mut self.endpoint_lags_ns, *x);
        }
        for x in &o.proxy_lags_ns {
            push_sample(&mut self.proxy_lags_ns, *x);
        }
        for x in &o.exit_after_term_ns {
            push_sample(&mut self.exit_after_term_ns, *x);
        }
        self.killed += o.killed;
        self.grace_s = self.grace_s.or(o.grace_s);
        if self.sigterm_ignored_by.is_none() {
            self.sigterm_ignored_by.clone_from(&o.sigterm_ignored_by);
        }
        self.oom_kills += o.oom_kills;
        self.startup_refusal_ns = self.startup_refusal_ns.max(o.startup_refusal_ns);
        self.no_endpoints_ns = self.no_endpoints_ns.max(o.no_endpoints_ns);
        self.no_endpoints_terminating = self
            .no_endpoints_terminating
            .max(o.no_endpoints_terminating);
        self.no_endpoints_starting = self.no_endpoints_starting.max(o.no_endpoints_starting);
        self.no_endpoints_ended |= o.no_endpoints_ended;
        self.prestop_failures += o.prestop_failures;
        if self.prestop_failed.is_none() {
            self.prestop_failed.clone_from(&o.prestop_failed);
        }
        self.idle_closes += o.idle_closes;
        self.proxy_idle_closes += o.proxy_idle_closes;
        for x in &o.idle_close_ns {
            push_sample(&mut self.idle_close_ns, *x);
        }
        for x in &o.proxy_idle_close_ns {
            push_sample(&mut self.proxy_idle_close_ns, *x);
        }
        self.lost_pods += o.lost_pods;
        if self.lost_node.is_none() {
            self.lost_node.clone_from(&o.lost_node);
        }
        for x in &o.kept_after_loss_ns {
            push_sample(&mut self.kept_after_loss_ns, *x);
        }
        for x in &o.lb_lags_ns {
            push_sample(&mut self.lb_lags_ns, *x);
        }
        self.lb_addrs.extend(o.lb_addrs.iter().copied());
    }

    /// One terminated pod's load-balancer lag.
    pub(crate) fn add_lb_lag(&mut self, lag_ns: i64, from: std::net::IpAddr) {
        push_sample(&mut self.lb_lags_ns, lag_ns);
        if self.lb_addrs.len() < 64 {
            self.lb_addrs.insert(from);
        }
    }
}

/// Nearest-rank percentile (p in 0..=100) of samples.
pub fn percentile(samples: &[i64], p: f64) -> Option<i64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

pub(super) fn s(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// "1 termination", "3 terminations".
pub(super) fn terminations(n: usize) -> String {
    if n == 1 {
        "1 termination".into()
    } else {
        format!("{n} terminations")
    }
}

/// Rounds up to the next half second.
fn half_up(x: f64) -> f64 {
    (x * 2.0).ceil() / 2.0
}

pub(super) fn params(kv: &[(&str, f64)]) -> BTreeMap<String, f64> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), (v * 1000.0).round() / 1000.0))
        .collect()
}

/// The recommended preStop sleep for a measured lag: the lag plus a margin
/// of 20% (at least 0.5 s), rounded up to the half second.
pub fn prestop_for_lag(lag_s: f64) -> f64 {
    half_up(lag_s + (lag_s * 0.2).max(0.5))
}

/// The endpoint lag a preStop sleep must cover: the larger p99 of the
/// API's endpoint removal and of the proxies' own routing, what it is, and
/// over how many samples.
fn lag_of(st: &WorkloadStats) -> Option<(i64, &'static str, usize)> {
    let ep = percentile(&st.endpoint_lags_ns, 99.0);
    let px = percentile(&st.proxy_lags_ns, 99.0);
    const ROUTING: &str = "proxies kept routing to terminating pods for";
    match (ep, px) {
        (Some(e), Some(p)) if p > e => Some((p, ROUTING, st.proxy_lags_ns.len())),
        (Some(e), _) => Some((
            e,
            "measured endpoint-removal lag",
            st.endpoint_lags_ns.len(),
        )),
        (None, Some(p)) => Some((p, ROUTING, st.proxy_lags_ns.len())),
        (None, None) => None,
    }
}

/// A failed preStop hook: the native sleep needs no binary in the image,
/// and its length comes from the measured lag (not the hook's own number,
/// which may have been a guess).
fn prestop_failed_fix(st: &WorkloadStats) -> Fix {
    let hook = st.prestop_failed.as_ref();
    let (hook_s, error) = hook.map_or(("the preStop hook".to_string(), "?".to_string()), |h| {
        (h.hook.clone(), h.error.clone())
    });
    let mut p = vec![
        ("failed_hooks", f64::from(st.prestop_failures)),
        ("terminations", f64::from(st.terminations)),
    ];
    if let Some(d) = hook.and_then(|h| h.sleep_s) {
        p.push(("declared_sleep_s", d));
    }
    let (action, lag_text) = match lag_of(st) {
        Some((lag, what, count)) => {
            let rec = prestop_for_lag(s(lag));
            p.extend([("prestop_sleep_s", rec), ("lag_p99_s", s(lag)), ("samples", count as f64)]);
            (
                format!("lifecycle.preStop.sleep.seconds: {rec} (native, needs no binary in the image) in place of {hook_s}"),
                format!("; {what} p99 {:.1} s over {}", s(lag), terminations(count)),
            )
        }
        None => (
            format!("lifecycle.preStop.sleep (native, needs no binary in the image) in place of {hook_s}"),
            String::new(),
        ),
    };
    Fix {
        action,
        because: format!(
            "the preStop hook {hook_s} failed in {} of {} terminations ({error}), so SIGTERM came at once{lag_text}",
            st.prestop_failures.max(1),
            st.terminations.max(1)
        ),
        params: params(&p),
    }
}

/// No ready endpoint: the fix follows what the pods behind the Service
/// were doing when the last one left.
fn no_endpoints_fix(st: &WorkloadStats) -> Fix {
    let d = s(st.no_endpoints_ns);
    let (t, n) = (st.no_endpoints_terminating, st.no_endpoints_starting);
    let action = match (t > 0, n > 0) {
        (true, true) => "strategy RollingUpdate with maxUnavailable: 0 and maxSurge >= 1: every old pod went before a new one was ready (Recreate, or maxUnavailable 100%)",
        (true, false) => "more replicas, or a PodDisruptionBudget with minAvailable >= 1: every pod was terminating and none was starting",
        (false, true) if st.no_endpoints_ended => "keep at least one ready replica behind a live route (the Service had none until its first pods were ready: a new Service, or one scaled up from zero), and send traffic only once the proxy has the endpoints",
        (false, true) => "the pods never became ready: fix the readiness probe or what it checks",
        (false, false) => "the Service selected no running pod: replicas 0, or a selector that matches nothing",
    };
    Fix {
        action: action.into(),
        because: format!(
            "the Service had no ready endpoint for {d:.1} s ({t} pods terminating, {n} not yet ready)"
        ),
        params: params(&[
            ("no_endpoints_s", d),
            ("terminating", f64::from(t)),
            ("not_ready", f64::from(n)),
        ]),
    }
}

/// The backend's idle timeout is shorter than the proxy's: quote it from
/// the closes measured in the kernel, and the proxy's where it closed some.
fn idle_timeout_fix(st: &WorkloadStats) -> Fix {
    let v = &st.idle_close_ns;
    let (Some(p50), Some(p99), Some(min)) = (
        percentile(v, 50.0),
        percentile(v, 99.0),
        v.iter().copied().min(),
    ) else {
        return Fix {
            action:
                "set the backend's idle keep-alive timeout above the proxy's upstream idle timeout"
                    .into(),
            because: "the backend closed a pooled connection as the proxy reused it".into(),
            params: BTreeMap::new(),
        };
    };
    let mut p = vec![
        ("backend_idle_p50_s", s(p50)),
        ("backend_idle_p99_s", s(p99)),
        ("backend_idle_min_s", s(min)),
        ("closes", st.idle_closes as f64),
    ];
    let proxy = percentile(&st.proxy_idle_close_ns, 50.0).map_or(String::new(), |pp| {
        p.push(("proxy_idle_p50_s", s(pp)));
        format!(
            "; the proxy closed {} of its own after {:.1} s idle (p50)",
            st.proxy_idle_closes,
            s(pp)
        )
    });
    Fix {
        action: format!(
            "set the backend's idle keep-alive timeout above the proxy's (Node.js server.keepAliveTimeout, Gunicorn --keep-alive, Puma persistent_timeout), or the proxy's upstream idle timeout below {:.1} s",
            s(min)
        ),
        because: format!(
            "the backend closes idle connections after {:.1} s (p50; p99 {:.1} s over {} closes) but the proxy keeps them longer{proxy}",
            s(p50),
            s(p99),
            st.idle_closes
        ),
        params: params(&p),
    }
}

/// The fix for `cause`, one of the pods' own causes, in a workload with
/// these measurements (see [`super::fix::fix_for`] for every cause).
pub(super) fn pod_fix(cause: Cause, st: &WorkloadStats) -> Option<Fix> {
    let n = st.terminations;
    match cause {
        Cause::PrestopFailed => Some(prestop_failed_fix(st)),
        Cause::KeepAliveIdleTimeout => Some(idle_timeout_fix(st)),
        Cause::NodeLost | Cause::LbDeregistrationLag | Cause::ProxyTerminated => None,
        Cause::EndpointLagNetnsAlive | Cause::EndpointLagNetnsGone => {
            let Some((lag, what, count)) = lag_of(st) else {
                return Some(Fix {
                    action: "add a preStop sleep longer than the endpoint-removal lag".into(),
                    because: "the address was still routed after SIGTERM (removal not observed)".into(),
                    params: BTreeMap::new(),
                });
            };
            let rec = prestop_for_lag(s(lag));
            let mut action = format!("preStop sleep >= {rec} s; keep listening while draining");
            let mut p = vec![
                ("prestop_sleep_s", rec),
                ("lag_p99_s", s(lag)),
                ("samples", count as f64),
                ("terminations", f64::from(n)),
            ];
            if cause == Cause::EndpointLagNetnsGone {
                let shutdown = percentile(&st.exit_after_term_ns, 100.0).map_or(0.0, s);
                let grace = (rec + shutdown + 5.0).ceil();
                action = format!(
                    "preStop sleep >= {rec} s and terminationGracePeriodSeconds >= {grace} s"
                );
                p.push(("grace_s", grace));
            }
            Some(Fix {
                action,
                because: format!("{what} p99 {:.1} s over {}", s(lag), terminations(count)),
                params: params(&p),
            })
        }
        Cause::KeepAliveRace => Some(Fix {
            action: "upstream keep-alive timeout > the proxy's idle timeout; close idle connections gracefully on SIGTERM".into(),
            because: format!("pooled connections were reset by pods shutting down ({n} terminations)"),
            params: params(&[("terminations", f64::from(n))]),
        }),
        Cause::SigkillAtGraceExpiry => {
            let grace = st.grace_s.map(f64::from);
            let needed = percentile(&st.exit_after_term_ns, 100.0).map(s);
            let (action, because, rec) = match (needed, grace) {
                (Some(need), Some(g)) if need > 0.0 => {
                    let rec = (need * 1.2 + 1.0).ceil().max(g + 1.0);
                    (
                        format!("terminationGracePeriodSeconds >= {rec} s"),
                        format!("the process needed {need:.1} s to exit after SIGTERM; grace is {g} s"),
                        rec,
                    )
                }
                (_, Some(g)) => (
                    format!("terminationGracePeriodSeconds > {g} s, or drain faster"),
                    format!("{} pods were still running when the {g} s grace period expired", st.killed),
                    g,
                ),
                _ => (
                    "a longer grace period or a faster drain".into(),
                    format!("{} pods were SIGKILLed after SIGTERM", st.killed),
                    0.0,
                ),
            };
            Some(Fix {
                action,
                because,
                params: params(&[
                    ("grace_s", grace.unwrap_or(0.0)),
                    ("recommended_grace_s", rec),
                    ("killed", f64::from(st.killed)),
                ]),
            })
        }
        Cause::SigtermIgnored => {
            let who = st.sigterm_ignored_by.clone().unwrap_or_else(|| "?".into());
            let hint = if matches!(who.as_str(), "sh" | "bash" | "dash" | "ash") {
                " (sh -c wrapper?)"
            } else {
                ""
            };
            Some(Fix {
                action: "exec-form entrypoint, tini, or a SIGTERM handler".into(),
                because: format!("SIGTERM ignored by PID 1 `{who}`{hint}; it served until SIGKILL"),
                params: params(&[
                    ("killed", f64::from(st.killed)),
                    ("grace_s", st.grace_s.map_or(0.0, f64::from)),
                ]),
            })
        }
        Cause::OomKill => Some(Fix {
            action: "raise the memory limit or reduce memory use".into(),
            because: format!("{} OOM kills", st.oom_kills.max(1)),
            params: params(&[("oom_kills", f64::from(st.oom_kills.max(1)))]),
        }),
        Cause::NotReadyAtStart => {
            let r = s(st.startup_refusal_ns);
            Some(Fix {
                action: "add a readiness (or startup) probe that checks the serving port".into(),
                because: format!("connections were refused up to {r:.1} s after the container started"),
                params: params(&[("refused_after_start_s", r)]),
            })
        }
        Cause::NoEndpoints => Some(no_endpoints_fix(st)),
        Cause::Unexplained => None,
    }
}
