//! An external load balancer in IP mode (an ALB or NLB target group, a
//! GKE NEG) that deregisters a terminating pod late: its connections come
//! from an address no pod, Service or proxy of the cluster has, and only
//! the pod's node sees them (the RST its kernel sends to a refused SYN).
//! Its health checks come from the same address and are no failures.

use fivexx_core::explain::{Cause, Confidence, ExplainConfig, Verdict};

use fivexx_core::testkit::explain_all;
use fivexx_core::testkit::synth::{ip4, Synth, SynthPod, MS, SECOND, T0};
use fivexx_core::{ExitStatus, FourTuple};
use std::net::IpAddr;

fn lb() -> IpAddr {
    ip4(172, 31, 0, 10)
}

fn proxy() -> IpAddr {
    ip4(10, 1, 0, 10)
}

fn run(s: Synth) -> (Vec<Verdict>, fivexx_core::explain::Measurements) {
    explain_all(&s.sorted(), ExplainConfig::default())
}

fn verdict_for<'a>(vs: &'a [Verdict], t: &FourTuple) -> Option<&'a Verdict> {
    vs.iter()
        .find(|v| v.failure.connection().is_some_and(|c| c.tuple == *t))
}

/// A pod of deployment/api on node-2: deleted and SIGTERMed at `at`, its
/// listener closed at once, its endpoint removed 1 s later, exited 1.5 s
/// later.
fn terminating_pod(s: &mut Synth, n: u32, at: i64) -> SynthPod {
    let p = Synth::pod_spec("api", n, "node-2");
    s.start_pod(&p, T0 - 600 * SECOND, 2 * SECOND);
    s.delete(&p, at, 30);
    s.sigterm(&p, at, false);
    s.endpoint_removed(&p, at + SECOND);
    s.exit(
        &p,
        at + 1500 * MS,
        ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        },
    );
    p
}

/// The load balancer sends `p` a new connection every `every` from
/// `from` to `to` (relative to T0), each refused.
fn lb_traffic(s: &mut Synth, p: &SynthPod, from: i64, to: i64, every: i64) -> Vec<FourTuple> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        out.push(s.refused_at_server("node-2", lb(), p.ip, T0 + t));
        t += every;
    }
    out
}

#[test]
fn late_deregistration_is_the_load_balancers_lag() {
    let mut s = Synth::new();
    let a = terminating_pod(&mut s, 40, T0);
    let b = terminating_pod(&mut s, 41, T0 + 10 * SECOND);
    // Traffic for 3.2 s after SIGTERM (a), 2.4 s (b): 20 ms apart.
    let to_a = lb_traffic(&mut s, &a, 20 * MS, 3200 * MS, 20 * MS);
    let to_b = lb_traffic(&mut s, &b, 10_020 * MS, 12_400 * MS, 20 * MS);
    // Its health checks every 2 s go on refused once the pod has exited.
    let checks: Vec<FourTuple> = [5, 7, 9]
        .into_iter()
        .map(|k| s.refused_at_server("node-2", lb(), a.ip, T0 + k * SECOND))
        .collect();
    let (vs, m) = run(s);
    assert_eq!(vs.len(), to_a.len() + to_b.len(), "{vs:#?}");
    assert_eq!(m.stats.health_checks, 3);
    for c in &checks {
        assert!(
            verdict_for(&vs, c).is_none(),
            "a health check is no failure"
        );
    }
    for t in to_a.iter().chain(&to_b) {
        let v = verdict_for(&vs, t).unwrap_or_else(|| panic!("no verdict for {t}"));
        assert_eq!(v.cause, Cause::LbDeregistrationLag, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
        let note = v.note.as_deref().unwrap();
        assert!(
            note.contains(
                "the external load balancer 172.31.0.10 still sent a new connection here"
            ),
            "{note}"
        );
        assert!(note.contains("answered its client itself"), "{note}");
        assert!(v
            .evidence
            .iter()
            .any(|e| e.fact.to_string().contains("172.31.0.10 is no pod's")));
    }
    // The fix quotes the lag of the terminations seen so far: the last
    // verdict's covers both pods.
    let last = verdict_for(&vs, to_b.last().unwrap()).unwrap();
    let fix = last.fix.as_ref().unwrap();
    assert!((fix.params["lb_lag_max_s"] - 3.2).abs() < 0.01, "{fix:?}");
    assert!((fix.params["lb_lag_p50_s"] - 2.4).abs() < 0.01, "{fix:?}");
    assert_eq!(fix.params["terminations"], 2.0);
    assert_eq!(fix.params["prestop_sleep_s"], 4.0);
    assert!(fix.action.contains("preStop sleep >= 4 s"), "{fix:?}");
    assert!(fix.because.contains("172.31.0.10"), "{fix:?}");
    let next = last.next.as_ref().unwrap();
    assert!(next.command.contains("lifecycle.preStop") || next.command.contains("annotations"));
    // The report's fix for the workload says the same.
    let w = m
        .workloads
        .values()
        .find(|w| !w.lb_lags_ns.is_empty())
        .expect("a workload with the lags");
    assert_eq!(w.lb_lags_ns.len(), 2);
}

/// Near-miss: only the load balancer's health checks reach the pod (it
/// sends the pod no traffic), refused once the pod has exited: no
/// failure, no verdict.
#[test]
fn health_checks_alone_are_no_failures() {
    let mut s = Synth::new();
    let a = terminating_pod(&mut s, 40, T0);
    for k in 0..8 {
        s.refused_at_server("node-2", lb(), a.ip, T0 + 2 * SECOND + k * 2 * SECOND);
    }
    let (vs, m) = run(s);
    assert!(vs.is_empty(), "{vs:#?}");
    assert_eq!(m.stats.health_checks, 8);
    assert_eq!(m.stats.failures, 0);
}

/// Near-misses: the same refusals from a pod of the cluster, or from a
/// proxy, are endpoint lag, not a load balancer's; from outside into a
/// pod that is not terminating, no load-balancer lag either.
#[test]
fn only_outside_sources_to_terminating_pods_are_the_load_balancers() {
    let mut s = Synth::new();
    s.proxy_pod(proxy(), "node-1");
    let a = terminating_pod(&mut s, 40, T0);
    let client = Synth::pod_spec("web", 50, "node-3");
    s.start_pod(&client, T0 - 600 * SECOND, 2 * SECOND);
    let healthy = Synth::pod_spec("api", 42, "node-2");
    s.start_pod(&healthy, T0 - 600 * SECOND, 2 * SECOND);
    let from_pod: Vec<FourTuple> = (0..5)
        .map(|k| s.refused_at_server("node-2", client.ip, a.ip, T0 + 100 * MS + k * 20 * MS))
        .collect();
    let from_proxy = s.refused("node-1", proxy(), a.ip, T0 + 300 * MS, Some("node-2"));
    let to_healthy: Vec<FourTuple> = (0..5)
        .map(|k| s.refused_at_server("node-2", lb(), healthy.ip, T0 + 100 * MS + k * 20 * MS))
        .collect();
    let (vs, _) = run(s);
    for t in &from_pod {
        assert_eq!(
            verdict_for(&vs, t).unwrap().cause,
            Cause::EndpointLagNetnsAlive
        );
    }
    assert_eq!(
        verdict_for(&vs, &from_proxy).unwrap().cause,
        Cause::EndpointLagNetnsAlive
    );
    for t in &to_healthy {
        let v = verdict_for(&vs, t).unwrap();
        assert_ne!(v.cause, Cause::LbDeregistrationLag, "{v:#?}");
    }
    assert!(vs.iter().all(|v| v.cause != Cause::LbDeregistrationLag));
}
