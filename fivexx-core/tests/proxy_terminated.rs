//! A proxy replica (an ingress or gateway pod) terminated while clients
//! still sent to it: the failures are at the proxy's own address, which
//! the peek knows as a proxy, and the fix is the proxy's shutdown.

use fivexx_core::explain::{Cause, Confidence, ExplainConfig, Verdict};

use fivexx_core::testkit::explain_all;
use fivexx_core::testkit::synth::{ip4, Synth, SynthPod, MS, SECOND, T0};
use fivexx_core::{ExitStatus, FourTuple};
use std::net::IpAddr;

/// A client outside the cluster.
fn client() -> IpAddr {
    ip4(203, 0, 113, 7)
}

fn run(s: Synth) -> Vec<Verdict> {
    explain_all(&s.sorted(), ExplainConfig::default()).0
}

fn verdict_for<'a>(vs: &'a [Verdict], t: &FourTuple) -> &'a Verdict {
    vs.iter()
        .find(|v| v.failure.connection().is_some_and(|c| c.tuple == *t))
        .unwrap_or_else(|| panic!("no verdict for {t}: {vs:#?}"))
}

/// A replica of deployment/ingress on node-1 whose status lines are
/// peeked; deleted and SIGTERMed at `at`, exits 50 ms later (nginx's fast
/// shutdown on SIGTERM).
fn proxy_replica(s: &mut Synth, n: u32, at: i64) -> SynthPod {
    let p = Synth::pod_spec("ingress", n, "node-1");
    s.start_pod(&p, T0 - 600 * SECOND, 2 * SECOND);
    s.http_peek("node-1", p.ip, T0 - 500 * SECOND);
    s.delete(&p, at, 30);
    s.sigterm(&p, at, false);
    s.exit(
        &p,
        at + 50 * MS,
        ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        },
    );
    p
}

#[test]
fn clients_still_sending_to_a_terminating_proxy() {
    let mut s = Synth::new();
    let a = proxy_replica(&mut s, 70, T0);
    let b = proxy_replica(&mut s, 71, T0 + 20 * SECOND);
    // In-flight connections reset at the exit, then refusals until the
    // clients' balancer drops the replica: 1.5 s for a, 2.5 s for b.
    let mut all = vec![s.reset("node-9", client(), a.ip, T0 + 50 * MS, Some("node-1"))];
    for k in 0..150 {
        all.push(s.refused_at_server("node-1", client(), a.ip, T0 + 60 * MS + k * 10 * MS));
    }
    for k in 0..250 {
        let at = T0 + 20 * SECOND + 60 * MS + k * 10 * MS;
        all.push(s.refused_at_server("node-1", client(), b.ip, at));
    }
    let vs = run(s);
    assert_eq!(vs.len(), all.len(), "{vs:#?}");
    for t in &all {
        let v = verdict_for(&vs, t);
        assert_eq!(v.cause, Cause::ProxyTerminated, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
        let note = v.note.as_deref().unwrap();
        assert!(note.contains("the proxy pod shop/ingress-"), "{note}");
        assert!(note.contains("after its termination began"), "{note}");
    }
    let first = verdict_for(&vs, &all[0]);
    assert!(first
        .note
        .as_deref()
        .unwrap()
        .contains("reset the client's connection"));
    let last = verdict_for(&vs, all.last().unwrap());
    let fix = last.fix.as_ref().unwrap();
    assert!(
        (fix.params["client_window_max_s"] - 2.55).abs() < 0.02,
        "{fix:?}"
    );
    assert!(
        fix.action
            .contains("preStop sleep >= 3.5 s on the proxy pods"),
        "{fix:?}"
    );
    assert!(fix.action.contains("worker-shutdown-timeout"), "{fix:?}");
    assert!(last
        .next
        .as_ref()
        .unwrap()
        .command
        .contains("terminationGracePeriodSeconds"));
}

/// Near-misses: the same refusals into a terminating pod that is no
/// proxy are a load balancer's lag (its address is outside); into a proxy
/// that is not terminating, no proxy termination.
#[test]
fn only_a_terminating_proxys_own_address_is_a_proxy_termination() {
    let mut s = Synth::new();
    let app = Synth::pod_spec("api", 40, "node-2");
    s.start_pod(&app, T0 - 600 * SECOND, 2 * SECOND);
    s.delete(&app, T0, 30);
    s.sigterm(&app, T0, false);
    let live = Synth::pod_spec("ingress", 72, "node-1");
    s.start_pod(&live, T0 - 600 * SECOND, 2 * SECOND);
    s.http_peek("node-1", live.ip, T0 - 500 * SECOND);
    let to_app: Vec<FourTuple> = (0..20)
        .map(|k| s.refused_at_server("node-2", client(), app.ip, T0 + 100 * MS + k * 10 * MS))
        .collect();
    let to_live: Vec<FourTuple> = (0..20)
        .map(|k| s.refused_at_server("node-1", client(), live.ip, T0 + 100 * MS + k * 10 * MS))
        .collect();
    let vs = run(s);
    for t in &to_app {
        assert_eq!(verdict_for(&vs, t).cause, Cause::LbDeregistrationLag);
    }
    for t in &to_live {
        assert_ne!(verdict_for(&vs, t).cause, Cause::ProxyTerminated);
    }
}
