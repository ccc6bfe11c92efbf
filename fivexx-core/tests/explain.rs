//! The explain engine on synthetic timelines: one test per cause, and a
//! near-miss for each that must stay `unexplained`.
//!
//! This file is longer than 600 lines because each cause's test is read next
//! to its near-misses and the joins that build on them.

use fivexx_core::event::Errno;
use fivexx_core::explain::verdict::UpstreamConn;
use fivexx_core::explain::{
    Cause, Confidence, EpisodeKind, ExplainConfig, FailedConnection, Failure, FailureKind,
    HttpAnswer, Verdict,
};
use fivexx_core::model::Fact;
use fivexx_core::testkit::explain_all;
use fivexx_core::testkit::synth::{ip4, Synth, SynthPod, MS, SECOND, T0};
use fivexx_core::{ExitStatus, FourTuple, SignalResult};
use proptest::prelude::*;
use std::net::IpAddr;

fn proxy() -> IpAddr {
    ip4(10, 1, 0, 10)
}

/// A synthetic cluster whose ingress proxy is a pod at [`proxy`]: its
/// failed connections are the proxy's, not a load balancer's outside.
fn synth() -> Synth {
    let mut s = Synth::new();
    s.proxy_pod(proxy(), "node-1");
    s
}

/// The connection's 4-tuple, or the proxy's socket to its client.
fn tuple_of(v: &Verdict) -> Option<FourTuple> {
    match &v.failure {
        Failure::Connection(c) => Some(c.tuple),
        Failure::Answer(a) => a.tuple,
    }
}

/// The failed connection a verdict is about.
fn conn(v: &Verdict) -> &FailedConnection {
    v.failure.connection().expect("a connection's verdict")
}

/// The proxy's answer a verdict is about.
fn ans(v: &Verdict) -> &HttpAnswer {
    v.failure.answer().expect("an answer's verdict")
}

fn run(s: Synth) -> Vec<Verdict> {
    explain_all(&s.sorted(), ExplainConfig::default()).0
}

fn verdict_for<'a>(vs: &'a [Verdict], t: &FourTuple) -> &'a Verdict {
    vs.iter()
        .find(|v| tuple_of(v) == Some(*t))
        .unwrap_or_else(|| panic!("no verdict for {t}: {vs:#?}"))
}

/// A pod of deployment/api on node-2, started long before T0.
fn old_pod(s: &mut Synth, n: u32) -> SynthPod {
    let p = Synth::pod_spec("api", n, "node-2");
    s.start_pod(&p, T0 - 600 * SECOND, 2 * SECOND);
    p
}

/// Graceful termination at T0 with a 3 s endpoint lag.
/// Deleted at T0, SIGTERM, exits at once, gone from the API 200 ms later:
/// its netns is gone while proxies may still route to it.
fn exits_and_goes(s: &mut Synth, p: &SynthPod) {
    s.delete(p, T0, 30);
    s.sigterm(p, T0, false);
    s.exit(
        p,
        T0 + 100 * MS,
        ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        },
    );
    s.gone(p, T0 + 200 * MS);
}

fn graceful_termination(s: &mut Synth, p: &SynthPod) {
    s.delete(p, T0, 30);
    s.sigterm(p, T0 + 10 * MS, false);
    s.exit(
        p,
        T0 + 1500 * MS,
        ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        },
    );
    s.endpoint_not_ready(p, T0 + 3 * SECOND);
}

#[test]
fn endpoint_lag_netns_alive() {
    let mut s = synth();
    let p = old_pod(&mut s, 1);
    graceful_termination(&mut s, &p);
    let ts: Vec<FourTuple> = (0..10)
        .map(|k| {
            s.refused(
                "node-1",
                proxy(),
                p.ip,
                T0 + 200 * MS + k * 250 * MS,
                Some("node-2"),
            )
        })
        .collect();
    let vs = run(s);
    assert_eq!(vs.len(), 10, "{vs:#?}");
    for t in &ts {
        let v = verdict_for(&vs, t);
        assert_eq!(v.cause, Cause::EndpointLagNetnsAlive, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
        assert_eq!(v.failure.kind(), FailureKind::Refused);
        assert_eq!(v.involved.pod.as_deref(), Some("shop/api-1"));
        assert_eq!(v.involved.proxy.as_ref().unwrap().node, "node-1");
        assert_eq!(v.episode.as_ref().unwrap().kind, EpisodeKind::Rollout);
        assert!(
            v.evidence.iter().any(|e| e.fact.contains("SIGTERM")),
            "{:#?}",
            v.evidence
        );
        assert!(v
            .evidence
            .iter()
            .any(|e| e.fact.contains("left the ready endpoints")));
        let fix = v.fix.as_ref().unwrap();
        assert_eq!(fix.params["prestop_sleep_s"], 4.0, "{fix:?}");
    }
}

/// The API marks the endpoint not ready at once (as the EndpointSlice
/// controller does); the proxy applies it 1.1 s later. Every verdict's fix,
/// the first one included, quotes the proxy's lag, not the API's 0 s.
#[test]
fn endpoint_lag_quotes_the_proxy_lag_when_the_api_was_prompt() {
    let mut s = synth();
    let p = old_pod(&mut s, 1);
    s.delete(&p, T0, 30);
    s.sigterm(&p, T0 + 10 * MS, false);
    s.endpoint_not_ready(&p, T0 + 20 * MS);
    s.exit(
        &p,
        T0 + 50 * MS,
        ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        },
    );
    for k in 0..12 {
        s.refused(
            "node-1",
            proxy(),
            p.ip,
            T0 + 100 * MS + k * 100 * MS,
            Some("node-2"),
        );
    }
    let vs = run(s);
    assert_eq!(vs.len(), 12, "{vs:#?}");
    for v in &vs {
        assert_eq!(v.cause, Cause::EndpointLagNetnsAlive, "{v:#?}");
        let fix = v.fix.as_ref().unwrap();
        assert_eq!(fix.params["lag_p99_s"], 1.2, "{fix:?}");
        assert_eq!(fix.params["prestop_sleep_s"], 2.0, "{fix:?}");
        assert!(fix.because.contains("proxies kept routing"), "{fix:?}");
    }
}

#[test]
fn near_miss_refusal_30s_before_any_sigterm() {
    let mut s = synth();
    let p = old_pod(&mut s, 1);
    let t = s.refused("node-1", proxy(), p.ip, T0 - 30 * SECOND, Some("node-2"));
    graceful_termination(&mut s, &p);
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
    assert!(
        v.note.as_ref().unwrap().contains("not terminating"),
        "{v:#?}"
    );
    assert!(v.fix.is_none());
}

#[test]
fn endpoint_lag_netns_gone() {
    let mut s = synth();
    let p = old_pod(&mut s, 2);
    s.delete(&p, T0, 30);
    s.sigterm(&p, T0, false);
    s.exit(
        &p,
        T0 + 500 * MS,
        ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        },
    );
    s.gone(&p, T0 + SECOND);
    let t1 = s.timed_out("node-1", proxy(), p.ip, T0 + 2 * SECOND, 5 * SECOND, true);
    let t2 = s.timed_out("node-1", proxy(), p.ip, T0 + 2500 * MS, 4 * SECOND, false);
    s.endpoint_not_ready(&p, T0 + 8 * SECOND);
    let vs = run(s);
    for t in [t1, t2] {
        let v = verdict_for(&vs, &t);
        assert_eq!(v.cause, Cause::EndpointLagNetnsGone, "{v:#?}");
        assert_eq!(v.failure.kind(), FailureKind::TimedOut);
        assert!(conn(v).syn_retransmits >= 1);
        assert!(v
            .fix
            .as_ref()
            .unwrap()
            .action
            .contains("terminationGracePeriodSeconds"));
    }
}

/// nginx gives up on a connect after its own proxy_connect_timeout (here
/// 900 ms), before the kernel's first SYN retransmit: a silent close in
/// SYN_SENT. To a pod whose netns is gone that is the same endpoint lag; to
/// a pod that is up and not terminating it explains nothing.
#[test]
fn proxy_connect_timeout_before_any_retransmit() {
    let mut s = synth();
    let p = old_pod(&mut s, 3);
    let live = old_pod(&mut s, 4);
    exits_and_goes(&mut s, &p);
    let t = s.timed_out("node-1", proxy(), p.ip, T0 + SECOND, 900 * MS, false);
    let near = s.timed_out("node-1", proxy(), live.ip, T0 + SECOND, 900 * MS, false);
    s.endpoint_not_ready(&p, T0 + 3 * SECOND);
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.failure.kind(), FailureKind::ConnectFailed, "{v:#?}");
    assert_eq!(v.cause, Cause::EndpointLagNetnsGone, "{v:#?}");
    assert_eq!(v.confidence, Confidence::Medium);
    let n = verdict_for(&vs, &near);
    assert_eq!(n.cause, Cause::Unexplained, "{n:#?}");
}

/// The lag a fix quotes runs to the proxy's last SYN to the pod, not to
/// the end of its connect timeout: the proxy chose the address when the
/// SYN left. Here the last SYN leaves 3 s after SIGTERM and the proxy gives
/// up 0.9 s later; an agent without the SYN's time falls back to one
/// initial RTO before the first retransmit.
#[test]
fn the_lag_of_a_timed_out_connect_ends_at_its_syn() {
    for syn_known in [true, false] {
        let mut s = synth();
        let p = old_pod(&mut s, 5);
        exits_and_goes(&mut s, &p);
        let mut last = None;
        for k in 1..=3 {
            // Without the SYN's time, a retransmit tells it (5 s connects).
            let after = if syn_known { 900 * MS } else { 5 * SECOND };
            last = Some(s.timed_out("node-1", proxy(), p.ip, T0 + k * SECOND, after, !syn_known));
        }
        s.endpoint_not_ready(&p, T0 + 2 * SECOND);
        let mut facts = s.sorted();
        if !syn_known {
            for f in &mut facts {
                if let Fact::Kernel(e) = f {
                    e.syn_sent_ns = None;
                }
            }
        }
        let (vs, _) = explain_all(&facts, ExplainConfig::default());
        let v = verdict_for(&vs, &last.unwrap());
        assert_eq!(v.cause, Cause::EndpointLagNetnsGone, "{v:#?}");
        assert_eq!(conn(v).attempt_ns(), T0 + 3 * SECOND, "{v:#?}");
        let lag = v.fix.as_ref().unwrap().params["lag_p99_s"];
        assert!((lag - 3.0).abs() < 0.01, "syn known {syn_known}: lag {lag}");
        if syn_known {
            assert!(
                v.evidence.iter().any(|e| e
                    .fact
                    .contains("no answer for 0.90 s, then the proxy gave up")),
                "{v:#?}"
            );
        }
    }
}

#[test]
fn near_miss_timeout_to_an_unknown_or_live_pod() {
    let mut s = synth();
    let p = old_pod(&mut s, 2);
    // Terminating, but its process is still running: not "netns gone".
    s.delete(&p, T0, 30);
    s.sigterm(&p, T0, false);
    let live = s.timed_out("node-1", proxy(), p.ip, T0 + SECOND, 5 * SECOND, true);
    let unknown = s.timed_out(
        "node-1",
        proxy(),
        ip4(10, 9, 9, 9),
        T0 + SECOND,
        5 * SECOND,
        true,
    );
    let vs = run(s);
    assert_eq!(verdict_for(&vs, &live).cause, Cause::Unexplained);
    let v = verdict_for(&vs, &unknown);
    assert_eq!(v.cause, Cause::Unexplained);
    assert!(v.note.as_ref().unwrap().contains("no pod"));
}

#[test]
fn keep_alive_race() {
    let mut s = synth();
    let p = old_pod(&mut s, 3);
    graceful_termination(&mut s, &p);
    let t = s.reset("node-1", proxy(), p.ip, T0 + 300 * MS, Some("node-2"));
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::KeepAliveRace, "{v:#?}");
    assert_eq!(v.failure.kind(), FailureKind::Reset);
    assert!(v.fix.as_ref().unwrap().action.contains("keep-alive"));
}

#[test]
fn near_miss_reset_from_a_pod_that_is_not_terminating() {
    let mut s = synth();
    let p = old_pod(&mut s, 3);
    let t = s.reset("node-1", proxy(), p.ip, T0, Some("node-2"));
    let vs = run(s);
    assert_eq!(verdict_for(&vs, &t).cause, Cause::Unexplained);
}

#[test]
fn sigkill_at_grace_expiry() {
    let mut s = synth();
    let p = old_pod(&mut s, 4);
    s.delete(&p, T0, 30);
    s.sigterm(&p, T0 + 5 * MS, false);
    s.endpoint_not_ready(&p, T0 + SECOND);
    s.sigkill(&p, T0 + 30 * SECOND, (900, "containerd-shim"));
    // The RSTs of its sockets arrive on the proxy's node slightly before
    // the SIGKILL by the nodes' clocks (skew).
    let ts: Vec<_> = (0..3)
        .map(|k| {
            s.reset(
                "node-1",
                proxy(),
                p.ip,
                T0 + 30 * SECOND - 300 * MS + k * MS,
                Some("node-2"),
            )
        })
        .collect();
    s.exit(
        &p,
        T0 + 30 * SECOND + MS,
        ExitStatus {
            code: None,
            signal: Some(9),
            core_dumped: false,
        },
    );
    let vs = run(s);
    for t in &ts {
        let v = verdict_for(&vs, t);
        assert_eq!(v.cause, Cause::SigkillAtGraceExpiry, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
        assert!(v.evidence.iter().any(|e| e.fact.starts_with("SIGKILL")));
        assert!(v
            .fix
            .as_ref()
            .unwrap()
            .action
            .contains("terminationGracePeriodSeconds"));
    }
}

#[test]
fn near_miss_sigkill_from_an_unrelated_process() {
    let mut s = synth();
    let p = old_pod(&mut s, 4);
    s.sigkill(&p, T0, (31337, "bash"));
    let t = s.reset("node-1", proxy(), p.ip, T0 + MS, Some("node-2"));
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
}

#[test]
fn sigterm_ignored() {
    let mut s = synth();
    let mut p = Synth::pod_spec("api", 5, "node-2");
    p.comm = "sh".into();
    s.start_pod(&p, T0 - 600 * SECOND, 2 * SECOND);
    s.delete(&p, T0, 30);
    s.sigterm(&p, T0, true);
    s.endpoint_not_ready(&p, T0 + SECOND);
    s.sigkill(&p, T0 + 30 * SECOND, (900, "containerd-shim"));
    let t = s.reset("node-1", proxy(), p.ip, T0 + 30 * SECOND + 2 * MS, None);
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::SigtermIgnored, "{v:#?}");
    let fix = v.fix.as_ref().unwrap();
    assert!(fix.because.contains("sh -c wrapper?"), "{fix:?}");
    assert!(v.evidence.iter().any(|e| e.fact.contains("ignored")));
}

#[test]
fn near_miss_reset_while_sigterm_ignored_long_before_the_kill() {
    let mut s = synth();
    let p = old_pod(&mut s, 5);
    s.delete(&p, T0, 30);
    s.sigterm(&p, T0, true);
    s.sigkill(&p, T0 + 30 * SECOND, (900, "containerd-shim"));
    // 10 s into the grace period the process ignores SIGTERM and is not
    // shutting down: a reset then is not explained by the termination.
    let t = s.reset("node-1", proxy(), p.ip, T0 + 10 * SECOND, None);
    let vs = run(s);
    assert_eq!(verdict_for(&vs, &t).cause, Cause::Unexplained);
}

#[test]
fn oom_kill() {
    let mut s = synth();
    let p = old_pod(&mut s, 6);
    s.oom(&p, T0);
    s.k8s_event(&p, T0 + SECOND, "OOMKilling");
    let t1 = s.reset("node-1", proxy(), p.ip, T0 + 2 * MS, None);
    let t2 = s.refused("node-1", proxy(), p.ip, T0 + 500 * MS, None);
    let vs = run(s);
    for t in [t1, t2] {
        let v = verdict_for(&vs, &t);
        assert_eq!(v.cause, Cause::OomKill, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
        assert_eq!(v.episode.as_ref().unwrap().kind, EpisodeKind::Oom);
    }
}

#[test]
fn near_miss_reset_long_after_an_oom_kill() {
    let mut s = synth();
    let p = old_pod(&mut s, 6);
    s.oom(&p, T0);
    let t = s.reset("node-1", proxy(), p.ip, T0 + 120 * SECOND, None);
    let vs = run(s);
    assert_eq!(verdict_for(&vs, &t).cause, Cause::Unexplained);
}

#[test]
fn not_ready_at_start() {
    let mut s = synth();
    let p = Synth::pod_spec("api", 7, "node-2");
    // Reported ready after 100 ms (no real readiness probe), listening after 4 s.
    s.start_pod(&p, T0, 100 * MS);
    let ts: Vec<_> = (1..4)
        .map(|k| s.refused("node-1", proxy(), p.ip, T0 + k * SECOND, Some("node-2")))
        .collect();
    let vs = run(s);
    for t in &ts {
        let v = verdict_for(&vs, t);
        assert_eq!(v.cause, Cause::NotReadyAtStart, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
    }
    let fix = verdict_for(&vs, &ts[2]).fix.clone().unwrap();
    assert!(fix.action.contains("readiness"));
    assert_eq!(fix.params["refused_after_start_s"], 3.0);
}

#[test]
fn near_miss_refusal_long_after_start() {
    let mut s = synth();
    let p = old_pod(&mut s, 7);
    let t = s.refused("node-1", proxy(), p.ip, T0, Some("node-2"));
    let vs = run(s);
    assert_eq!(verdict_for(&vs, &t).cause, Cause::Unexplained);
}

#[test]
fn node_drain_groups_failures() {
    let mut s = synth();
    s.cordon("node-2", T0 - 2 * SECOND);
    let a = old_pod(&mut s, 10);
    let b = Synth::pod_spec("web", 11, "node-2");
    s.start_pod(&b, T0 - 600 * SECOND, SECOND);
    graceful_termination(&mut s, &a);
    graceful_termination(&mut s, &b);
    let mut ts = Vec::new();
    for k in 0..5 {
        ts.push(s.refused("node-1", proxy(), a.ip, T0 + 100 * MS + k * 300 * MS, None));
        ts.push(s.refused("node-1", proxy(), b.ip, T0 + 150 * MS + k * 300 * MS, None));
    }
    // A pod on another node terminating at the same time is not part of the drain.
    let c = Synth::pod_spec("api", 12, "node-3");
    s.start_pod(&c, T0 - 600 * SECOND, SECOND);
    graceful_termination(&mut s, &c);
    let other = s.refused("node-1", proxy(), c.ip, T0 + 200 * MS, None);
    let vs = run(s);
    for t in &ts {
        let v = verdict_for(&vs, t);
        assert_eq!(v.cause, Cause::EndpointLagNetnsAlive);
        let e = v.episode.as_ref().unwrap();
        assert_eq!(e.kind, EpisodeKind::Drain, "{v:#?}");
        assert_eq!(e.subject, "node-2");
        assert_eq!(e.start_ns, T0 - 2 * SECOND);
    }
    let v = verdict_for(&vs, &other);
    assert_eq!(v.episode.as_ref().unwrap().kind, EpisodeKind::Rollout);
}

#[test]
fn no_endpoints() {
    let mut s = synth();
    let vip = ip4(10, 96, 0, 20);
    s.service("shop", "api", vip, T0 - 900 * SECOND);
    let p = old_pod(&mut s, 13);
    graceful_termination(&mut s, &p);
    // The last endpoint left at T0+3 s; kube-proxy now REJECTs (no RST).
    let t = s.rejected("node-1", proxy(), vip, T0 + 5 * SECOND);
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::NoEndpoints, "{v:#?}");
    assert!(!conn(v).rst);
    assert_eq!(v.fix.as_ref().unwrap().params["no_endpoints_s"], 2.0);
}

#[test]
fn near_miss_rejected_while_service_had_endpoints() {
    let mut s = synth();
    let vip = ip4(10, 96, 0, 20);
    s.service("shop", "api", vip, T0 - 900 * SECOND);
    old_pod(&mut s, 13);
    let t = s.rejected("node-1", proxy(), vip, T0 + 5 * SECOND);
    let vs = run(s);
    assert_eq!(verdict_for(&vs, &t).cause, Cause::Unexplained);
}

#[test]
fn reused_ip_is_attributed_to_its_new_owner() {
    let mut s = synth();
    let old = old_pod(&mut s, 20);
    graceful_termination(&mut s, &old);
    s.gone(&old, T0 + 5 * SECOND);
    let mut new = Synth::pod_spec("web", 21, "node-2");
    new.ip = old.ip;
    s.start_pod(&new, T0 + 10 * SECOND, SECOND);
    // 5 minutes later the new pod (not terminating, long started) refuses:
    // the old pod's termination must not be blamed.
    let t = s.refused("node-1", proxy(), new.ip, T0 + 300 * SECOND, None);
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::Unexplained);
    assert_eq!(v.involved.pod.as_deref(), Some("shop/web-21"));
}

#[test]
fn one_verdict_per_connection_across_both_sides() {
    let mut s = synth();
    let p = old_pod(&mut s, 30);
    graceful_termination(&mut s, &p);
    let t = s.refused("node-1", proxy(), p.ip, T0 + SECOND, Some("node-2"));
    let vs = run(s);
    assert_eq!(vs.len(), 1);
    let v = verdict_for(&vs, &t);
    assert!(conn(v)
        .server_reset
        .as_ref()
        .is_some_and(|r| r.is_refusal()));
    assert_eq!(conn(v).errno, Some(Errno::ECONNREFUSED));
}

#[test]
fn http_5xx_takes_the_cause_of_its_upstream_failure() {
    let mut s = synth();
    let p = old_pod(&mut s, 60);
    graceful_termination(&mut s, &p);
    let client = ip4(192, 168, 0, 7);
    let up = s.refused("node-1", proxy(), p.ip, T0 + 500 * MS, Some("node-2"));
    let resp = s.http_5xx("node-1", proxy(), client, 51000, T0 + 501 * MS, 502);
    let vs = run(s);
    // One failed request: the 502 and the refused connect behind it are
    // one verdict with both pieces of evidence.
    assert_eq!(vs.len(), 1, "{vs:#?}");
    let v = verdict_for(&vs, &resp);
    assert_eq!(v.failure.kind(), FailureKind::Http5xx);
    assert_eq!(v.failure.http_status(), Some(502));
    assert_eq!(ans(v).upstream, Some(UpstreamConn::of(up)));
    assert_eq!(ans(v).upstream_kind, Some(FailureKind::Refused));
    assert_eq!(ans(v).upstream_failures, 1);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.fact.to_string().contains("RST received in SYN_SENT")),
        "{v:#?}"
    );
    assert_eq!(ans(v).client, Some(client));
    assert_eq!(v.cause, Cause::EndpointLagNetnsAlive);
    assert_eq!(v.confidence, Confidence::High);
    assert_eq!(v.involved.pod.as_deref(), Some("shop/api-60"));
    assert!(v
        .evidence
        .iter()
        .any(|e| e.fact.contains("HTTP 502 written by nginx")));
    assert!(v.fix.is_some());
}

/// A peeked proxy's upstream failures that no 5xx followed were retried
/// on another upstream: counted as hidden, per cause, beside the 5xx sent.
#[test]
fn failures_no_5xx_followed_are_hidden_by_retry() {
    let mut s = synth();
    let p = old_pod(&mut s, 61);
    graceful_termination(&mut s, &p);
    let client = ip4(192, 168, 0, 7);
    let tries: Vec<_> = (0..4)
        .map(|k| {
            s.refused(
                "node-1",
                proxy(),
                p.ip,
                T0 + 300 * MS + k * 200 * MS,
                Some("node-2"),
            )
        })
        .collect();
    // Only the third refusal reached a client, as a 502.
    let resp = s.http_5xx("node-1", proxy(), client, 51000, T0 + 701 * MS, 502);
    // An unrelated proxy on the same node, never peeked: its failure is a
    // failed request whose answer was not seen, not a retried one.
    let other = ip4(10, 1, 0, 99);
    s.proxy_pod(other, "node-1");
    let lone = s.refused("node-1", other, p.ip, T0 + 900 * MS, Some("node-2"));
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    assert_eq!(vs.len(), 2, "{vs:#?}");
    let v = verdict_for(&vs, &resp);
    assert_eq!(v.cause, Cause::EndpointLagNetnsAlive, "{v:#?}");
    assert_eq!(ans(v).upstream, Some(UpstreamConn::of(tries[2])));
    assert_eq!(verdict_for(&vs, &lone).cause, Cause::EndpointLagNetnsAlive);
    let http = &m.stats.http;
    assert_eq!(
        http.sent_5xx.get(&Cause::EndpointLagNetnsAlive),
        Some(&1),
        "{http:?}"
    );
    assert_eq!(
        http.hidden_by_retry.get(&Cause::EndpointLagNetnsAlive),
        Some(&3),
        "{http:?}"
    );
    assert_eq!(http.hidden_by_retry.values().sum::<u64>(), 3, "{http:?}");
}

/// `--proxy-logs`: a 5xx the peek also saw is counted once; a 5xx only
/// the log shows (a TLS client) takes the cause of the failed connection to
/// the upstream the log names; retried tries in answered requests count.
#[test]
fn access_log_5xx_join_their_upstream_failure() {
    let mut s = synth();
    let p = old_pod(&mut s, 62);
    let q = old_pod(&mut s, 63);
    graceful_termination(&mut s, &p);
    let client = ip4(192, 168, 0, 7);
    // Peeked and logged: one answer.
    s.refused("node-1", proxy(), p.ip, T0 + 500 * MS, Some("node-2"));
    s.http_5xx("node-1", proxy(), client, 51000, T0 + 501 * MS, 502);
    s.proxy_log("node-1", client, T0 + 502 * MS, 502, &[(p.ip, Some(502))]);
    // Logged only (TLS to the client): joined by the upstream address.
    let up = s.refused("node-1", proxy(), p.ip, T0 + 900 * MS, Some("node-2"));
    s.proxy_log("node-1", client, T0 + 903 * MS, 502, &[(p.ip, Some(502))]);
    // Retried on q: answered 200, one failed try.
    s.refused("node-1", proxy(), p.ip, T0 + 1200 * MS, Some("node-2"));
    s.proxy_log(
        "node-1",
        client,
        T0 + 1204 * MS,
        200,
        &[(p.ip, Some(502)), (q.ip, Some(200))],
    );
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    let logged: Vec<&Verdict> = vs
        .iter()
        .filter(|v| v.failure.kind() == FailureKind::Http5xxLogged)
        .collect();
    assert_eq!(logged.len(), 1, "{vs:#?}");
    let v = logged[0];
    assert_eq!(v.cause, Cause::EndpointLagNetnsAlive, "{v:#?}");
    assert_eq!(ans(v).upstream, Some(UpstreamConn::of(up)));
    assert_eq!(v.involved.pod.as_deref(), Some("shop/api-62"));
    assert!(v
        .evidence
        .iter()
        .any(|e| e.fact.contains("access log of ingress/nginx-1: 502")));
    let http = &m.stats.http;
    assert_eq!(http.confirmed_by_log, 1, "{http:?}");
    assert_eq!(http.retried_in_log, 1, "{http:?}");
    assert_eq!(
        http.sent_5xx.get(&Cause::EndpointLagNetnsAlive),
        Some(&2),
        "{http:?}"
    );
}

/// A proxy with retries answers 502 only after every try failed: the 502
/// claims the whole chain (tries to different upstreams, back to back);
/// its last try is the 502's, the earlier one was retried and counts as
/// hidden, as does an earlier lone failure. A proxy named as peeked
/// counts hidden failures before its first 5xx too.
#[test]
fn a_5xx_claims_its_whole_retry_chain() {
    let mut s = synth();
    let a = old_pod(&mut s, 70);
    let b = old_pod(&mut s, 71);
    graceful_termination(&mut s, &a);
    graceful_termination(&mut s, &b);
    let client = ip4(192, 168, 0, 7);
    // Retried, then answered 200 (hidden): before any 5xx.
    s.refused("node-1", proxy(), a.ip, T0 + 200 * MS, Some("node-2"));
    // Tried a, then b, both refused within a millisecond, then 502.
    s.refused("node-1", proxy(), a.ip, T0 + 1600 * MS, Some("node-2"));
    s.refused(
        "node-1",
        proxy(),
        b.ip,
        T0 + 1600 * MS + 400_000,
        Some("node-2"),
    );
    s.http_5xx("node-1", proxy(), client, 51000, T0 + 1601 * MS, 502);
    let facts = s.sorted();
    let cfg = ExplainConfig {
        peeked_proxies: vec![proxy()],
        ..ExplainConfig::default()
    };
    let (_, m) = explain_all(&facts, cfg);
    let http = &m.stats.http;
    assert_eq!(http.sent_5xx.values().sum::<u64>(), 1, "{http:?}");
    assert_eq!(http.hidden_by_retry.values().sum::<u64>(), 2, "{http:?}");
    // Without being told the proxy is peeked, its first 5xx proves it is:
    // a failure it may still claim (within the claim window) is hidden...
    let (vs, m) = explain_all(&facts, ExplainConfig::default());
    assert_eq!(m.stats.http.hidden_by_retry.values().sum::<u64>(), 2);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    // ...but one long before it is a failed request of its own: the engine
    // could not know its answer was seen.
    let mut s = synth();
    graceful_termination(&mut s, &a);
    let early = s.refused("node-1", proxy(), a.ip, T0 + 200 * MS, Some("node-2"));
    s.refused("node-1", proxy(), a.ip, T0 + 20 * SECOND, Some("node-2"));
    s.http_5xx("node-1", proxy(), client, 51000, T0 + 20 * SECOND + MS, 502);
    let short = ExplainConfig {
        lookahead_ns: 2 * SECOND,
        ..ExplainConfig::default()
    };
    let (vs, m) = explain_all(&s.sorted(), short);
    assert_eq!(m.stats.http.hidden_by_retry.values().sum::<u64>(), 0);
    assert_eq!(vs.len(), 2, "{vs:#?}");
    assert!(vs
        .iter()
        .any(|v| v.failure.connection().is_some_and(|c| c.tuple == early)));
}

#[test]
fn near_miss_5xx_without_an_upstream_failure_on_its_node() {
    let mut s = synth();
    let p = old_pod(&mut s, 61);
    graceful_termination(&mut s, &p);
    s.refused("node-1", proxy(), p.ip, T0 + 500 * MS, Some("node-2"));
    // Another proxy node; the same node 2 s later; and an app's own 500.
    let other = s.http_5xx(
        "node-3",
        proxy(),
        ip4(192, 168, 0, 7),
        51001,
        T0 + 501 * MS,
        502,
    );
    let late = s.http_5xx(
        "node-1",
        proxy(),
        ip4(192, 168, 0, 7),
        51002,
        T0 + 2600 * MS,
        502,
    );
    let app = s.http_5xx(
        "node-1",
        proxy(),
        ip4(192, 168, 0, 7),
        51003,
        T0 - 60 * SECOND,
        500,
    );
    let vs = run(s);
    for t in [other, late, app] {
        let v = verdict_for(&vs, &t);
        assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
        assert!(v
            .note
            .as_ref()
            .unwrap()
            .contains("no failed upstream connection"));
    }
}

#[test]
fn a_late_half_of_a_connection_is_not_a_second_failure() {
    let mut s = synth();
    let p = old_pod(&mut s, 62);
    graceful_termination(&mut s, &p);
    let t = s.refused("node-1", proxy(), p.ip, T0 + SECOND, Some("node-2"));
    s.refused("node-1", proxy(), p.ip, T0 + 12 * SECOND, None);
    let mut facts = s.sorted();
    // node-2's stream is 11 s late: its send_reset arrives after node-1's
    // facts of T0+12 s, long after the connection was closed out.
    let late = facts
        .iter()
        .position(
            |f| matches!(f, Fact::Kernel(e) if e.kind == fivexx_core::KernelEventKind::SendReset),
        )
        .unwrap();
    let f = facts.remove(late);
    facts.push(f);
    let vs = explain_all(&facts, ExplainConfig::default()).0;
    assert_eq!(
        vs.iter()
            .filter(|v| v.failure.connection().is_some_and(|c| c.tuple == t))
            .count(),
        1,
        "{vs:#?}"
    );
    assert_eq!(vs.len(), 2);
}

/// A scenario with facts from three nodes and the API.
fn mixed_scenario(seed: u64) -> Vec<Fact> {
    let mut s = synth();
    s.cordon("node-3", T0 - SECOND);
    let a = old_pod(&mut s, 40);
    graceful_termination(&mut s, &a);
    let b = Synth::pod_spec("web", 41, "node-3");
    s.start_pod(&b, T0 - 900 * SECOND, SECOND);
    s.delete(&b, T0 + SECOND, 30);
    s.sigterm(&b, T0 + SECOND, seed.is_multiple_of(2));
    s.sigkill(&b, T0 + 31 * SECOND, (900, "containerd-shim"));
    let c = Synth::pod_spec("cart", 42, "node-1");
    s.start_pod(&c, T0 + 2 * SECOND, 100 * MS);
    let d = old_pod(&mut s, 43);
    s.oom(&d, T0 + 4 * SECOND);
    for k in 0..(5 + seed % 5) as i64 {
        s.refused(
            "node-1",
            proxy(),
            a.ip,
            T0 + 100 * MS + k * 400 * MS,
            Some("node-2"),
        );
        s.http_5xx(
            "node-1",
            proxy(),
            ip4(192, 168, 0, 9),
            50000 + k as u16,
            T0 + 101 * MS + k * 400 * MS,
            502,
        );
        // Another proxy (not peeked): each reset is a failed request.
        s.reset(
            "node-1",
            ip4(10, 1, 0, 12),
            b.ip,
            T0 + 31 * SECOND + k * MS,
            Some("node-3"),
        );
        s.refused(
            "node-2",
            ip4(10, 1, 0, 11),
            c.ip,
            T0 + 2 * SECOND + k * 200 * MS,
            None,
        );
        s.reset(
            "node-2",
            ip4(10, 1, 0, 11),
            d.ip,
            T0 + 4 * SECOND + k * MS,
            None,
        );
        s.refused("node-1", proxy(), a.ip, T0 - 40 * SECOND + k * SECOND, None);
    }
    s.sorted()
}

fn canonical(vs: &[Verdict]) -> Vec<String> {
    let mut v: Vec<String> = vs
        .iter()
        .map(|v| {
            format!(
                "{} {} {:?} {:?} {:?} {:?}",
                v.failure.endpoints(),
                v.failure.at_ns(),
                v.cause,
                v.confidence,
                v.episode.as_ref().map(|e| &e.id),
                v.fix.as_ref().map(|f| &f.action)
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn mixed_scenario_explains_every_failure_with_the_right_cause() {
    let vs = explain_all(&mixed_scenario(1), ExplainConfig::default()).0;
    let count = |c: Cause| vs.iter().filter(|v| v.cause == c).count();
    // 6 refused connections and the 6 502s the proxy answered for them:
    // 6 failed requests.
    assert_eq!(count(Cause::EndpointLagNetnsAlive), 6);
    assert_eq!(
        vs.iter()
            .filter(|v| v.failure.kind() == FailureKind::Http5xx)
            .count(),
        6
    );
    assert_eq!(count(Cause::SigkillAtGraceExpiry), 6);
    assert_eq!(count(Cause::NotReadyAtStart), 6);
    assert_eq!(count(Cause::OomKill), 6);
    assert_eq!(count(Cause::Unexplained), 6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Facts from different nodes (and the API) arriving in any order
    /// within the skew window give the same verdicts.
    #[test]
    fn verdicts_do_not_depend_on_arrival_order_within_skew(seed in 0u64..10, delays in proptest::collection::vec(0i64..1_900_000_000, 512)) {
        let facts = mixed_scenario(seed);
        let baseline = canonical(&explain_all(&facts, ExplainConfig::default()).0);
        // Each source gets its own delivery delay per fact, below the skew.
        let mut arrivals: Vec<(i64, usize)> = facts
            .iter()
            .enumerate()
            .map(|(i, f)| (f.at_ns() + delays[i % delays.len()], i))
            .collect();
        arrivals.sort();
        let shuffled: Vec<&Fact> = arrivals.iter().map(|(_, i)| &facts[*i]).collect();
        let got = canonical(&explain_all(shuffled, ExplainConfig::default()).0);
        prop_assert_eq!(got, baseline);
    }
}

#[test]
fn signal_result_is_kept_from_the_kernel() {
    // Guard for the synth builder itself: an ignored SIGTERM is recorded as such.
    let mut s = synth();
    let p = old_pod(&mut s, 50);
    s.sigterm(&p, T0, true);
    let facts = s.sorted();
    let ignored = facts.iter().any(|f| match f {
        Fact::Kernel(e) => e.signal_result == Some(SignalResult::Ignored),
        _ => false,
    });
    assert!(ignored);
}

mod robustness {
    use fivexx_core::explain::ExplainConfig;
    use fivexx_core::model::{
        ClusterEvent, EndpointFact, Fact, NodeChange, NodeFact, PodChange, PodFact, ServiceFact,
        WorkloadRef,
    };
    use fivexx_core::report::{render_json, render_table, render_wide, ReportFilter};
    use fivexx_core::testkit::build_report;
    use fivexx_core::testkit::explain_all;
    use fivexx_core::testkit::synth::{ip4, SECOND, T0};
    use fivexx_core::{FourTuple, KernelEvent, KernelEventKind, SignalResult, TaskRef, TcpState};
    use proptest::prelude::*;

    type Op = (u8, i64, u8, u16, bool);

    fn time(raw: i64, pick: u8) -> i64 {
        match pick % 16 {
            0 => raw,
            1 => i64::MAX,
            2 => i64::MIN,
            3 => -1,
            _ => T0 + raw.rem_euclid(120 * SECOND),
        }
    }

    fn fact((kind, raw, small, port, flag): Op) -> Fact {
        let at = time(raw, small);
        let uid = format!("u{}", small % 4);
        let ip = ip4(10, 244, 0, small % 4);
        let tuple = FourTuple {
            saddr: ip4(10, 1, 0, 10),
            sport: 40000 + port % 8,
            daddr: ip,
            dport: 8080,
        };
        let states = [
            TcpState::SynSent,
            TcpState::Established,
            TcpState::CloseWait,
            TcpState::Close,
        ];
        let mut e = KernelEvent::new(KernelEventKind::ALL[usize::from(kind % 8)], 0, at);
        e.node = format!("node-{}", small % 3);
        match kind % 16 {
            0..=4 => {
                e.tuple = Some(tuple);
                e.tcp_state = Some(states[usize::from(small % 4)]);
                e.new_state = Some(TcpState::Close);
                e.errno = fivexx_core::event::Errno::from_kernel(
                    [0, 104, 110, 111, 113, 32, i32::from(port)][usize::from(small % 7)],
                );
                e.reset_reason = flag.then_some(fivexx_core::event::ResetReason::NoSocket);
                Fact::Kernel(e)
            }
            5..=7 => {
                e.signal = Some(if flag { 9 } else { 15 });
                e.signal_result = Some(SignalResult::from_kernel(i32::from(small % 6)));
                e.task = Some(TaskRef {
                    pid: i32::from(port),
                    comm: if flag {
                        "containerd-shim".into()
                    } else {
                        "bash".into()
                    },
                });
                e.target = Some(TaskRef {
                    pid: 7,
                    comm: "sh".into(),
                });
                e.pod_uid = (small % 5 != 0).then(|| uid.clone());
                e.cgroup_id = Some(u64::from(small));
                Fact::Kernel(e)
            }
            8 | 9 => Fact::Pod(PodFact {
                at_ns: at,
                namespace: "ns".into(),
                name: format!("p{}", small % 4),
                uid,
                node: Some(format!("node-{}", small % 3)),
                owner: flag.then(|| WorkloadRef {
                    kind: "Deployment".into(),
                    name: "d".into(),
                }),
                change: match port % 7 {
                    0 => PodChange::Created,
                    1 => PodChange::Ip { ip },
                    2 => PodChange::Ready,
                    3 => PodChange::NotReady,
                    4 => PodChange::Deleting {
                        grace_period_s: u32::from(port),
                    },
                    5 => PodChange::ContainerStarted {
                        container_id: "c".into(),
                        name: "a".into(),
                    },
                    _ => PodChange::Gone,
                },
            }),
            10 | 11 => Fact::Endpoint(EndpointFact {
                at_ns: at,
                namespace: "ns".into(),
                service: "s".into(),
                slice: format!("s{}", port % 2),
                address: ip,
                pod_uid: flag.then_some(uid),
                present: port % 3 != 0,
                ready: flag,
                serving: true,
                terminating: !flag,
            }),
            12 => Fact::Service(ServiceFact {
                at_ns: at,
                namespace: "ns".into(),
                name: "s".into(),
                cluster_ip: Some(ip4(10, 244, 0, small % 4)),
                present: flag,
            }),
            13 => Fact::Node(NodeFact {
                at_ns: at,
                node: format!("node-{}", small % 3),
                change: if flag {
                    NodeChange::Cordoned
                } else {
                    NodeChange::Uncordoned
                },
            }),
            _ => Fact::Event(ClusterEvent {
                at_ns: at,
                namespace: "ns".into(),
                reason: if flag {
                    "OOMKilling".into()
                } else {
                    "Evicted".into()
                },
                message: String::new(),
                object_kind: "Pod".into(),
                object_name: format!("p{}", small % 4),
                object_uid: None,
                node: None,
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever facts come in (absurd times, contradictions, reused
        /// ports), the engine and the renderers neither panic nor invent:
        /// there is at most one verdict per connection-terminating event.
        #[test]
        fn engine_survives_arbitrary_facts(ops in proptest::collection::vec(any::<Op>(), 0..150)) {
            let facts: Vec<Fact> = ops.into_iter().map(fact).collect();
            let (verdicts, m) = explain_all(&facts, ExplainConfig::default());
            let network = facts.iter().filter(|f| matches!(f, Fact::Kernel(e) if e.tuple.is_some())).count();
            prop_assert!(verdicts.len() <= network);
            prop_assert_eq!(m.stats.facts, facts.len() as u64);
            let r = build_report(&facts, ExplainConfig::default(), ReportFilter::default(), 50);
            let _ = (render_table(&r), render_wide(&r), render_json(&r));
        }
    }
}

/// A proxy pod adopted mid-session (an ingress rollout) is peeked only from
/// its `HttpPeek` fact on: its failures before that cannot be judged (a
/// 5xx then would not have been seen), those after it that no 5xx claims
/// were retried, even long before its first 5xx, or with none at all.
#[test]
fn a_proxy_peeked_mid_session_counts_hidden_retries_from_then_on() {
    let mut s = synth();
    let a = old_pod(&mut s, 72);
    graceful_termination(&mut s, &a);
    // Before the peek: not counted.
    s.refused("node-1", proxy(), a.ip, T0 + 200 * MS, Some("node-2"));
    s.http_peek("node-1", proxy(), T0 + 500 * MS);
    // After it, two lone failures that no 5xx followed: retried.
    s.refused("node-1", proxy(), a.ip, T0 + 800 * MS, Some("node-2"));
    s.refused("node-1", proxy(), a.ip, T0 + 1300 * MS, Some("node-2"));
    let facts = s.sorted();
    let (_, m) = explain_all(&facts, ExplainConfig::default());
    let http = &m.stats.http;
    assert_eq!(http.sent_5xx.values().sum::<u64>(), 0, "{http:?}");
    assert_eq!(http.hidden_by_retry.values().sum::<u64>(), 2, "{http:?}");
    // Without the peek fact nothing shows the proxy's answers were seen.
    let no_peek: Vec<Fact> = facts
        .iter()
        .filter(|f| !matches!(f, Fact::HttpPeek(_)))
        .cloned()
        .collect();
    let (_, m) = explain_all(&no_peek, ExplainConfig::default());
    assert_eq!(m.stats.http.hidden_by_retry.values().sum::<u64>(), 0);
}

/// A proxy peeked from the start (capture header) keeps its upstream
/// failures from the first fact on: one retried more than the engine's
/// lookahead before any 5xx still counts as hidden.
#[test]
fn a_proxy_peeked_from_the_start_counts_retries_long_before_any_5xx() {
    let mut s = synth();
    let a = old_pod(&mut s, 73);
    graceful_termination(&mut s, &a);
    s.refused("node-1", proxy(), a.ip, T0 + 200 * MS, Some("node-2"));
    // Facts well past the lookahead make that failure's verdict final.
    s.cordon("node-3", T0 + 40 * SECOND);
    s.http_5xx(
        "node-1",
        proxy(),
        ip4(192, 168, 0, 7),
        51000,
        T0 + 60 * SECOND,
        502,
    );
    let cfg = ExplainConfig {
        peeked_proxies: vec![proxy()],
        ..ExplainConfig::default()
    };
    let (_, m) = explain_all(&s.sorted(), cfg);
    let http = &m.stats.http;
    assert_eq!(http.hidden_by_retry.values().sum::<u64>(), 1, "{http:?}");
}

/// A backend killed after it read the whole request closes the proxy's
/// connection with a FIN, not a RST: the kernel sees no failed connection,
/// only nginx's 502. The access log names the upstream; its pod was
/// OOM-killed right then, so the 502 takes that cause (medium confidence).
/// Near-misses stay unexplained: no log line, an upstream that was not
/// killed, and the app's own 503.
#[test]
fn a_502_from_a_connection_closed_by_an_oom_kill_is_explained_through_the_access_log() {
    let client = ip4(192, 168, 0, 7);
    let build = |log: Option<(u16, Option<u16>)>, oom: bool| {
        let mut s = synth();
        let p = old_pod(&mut s, 74);
        if oom {
            s.oom(&p, T0 + SECOND);
        }
        let status = log.map_or(502, |(st, _)| st);
        let t = s.http_5xx(
            "node-1",
            proxy(),
            client,
            51000,
            T0 + SECOND + 9 * MS,
            status,
        );
        if let Some((st, up)) = log {
            s.proxy_log("node-1", client, T0 + SECOND + 8 * MS, st, &[(p.ip, up)]);
        }
        let (vs, _) = explain_all(&s.sorted(), ExplainConfig::default());
        (verdict_for(&vs, &t).clone(), p)
    };
    let (v, p) = build(Some((502, Some(502))), true);
    assert_eq!(v.cause, Cause::OomKill, "{v:#?}");
    assert_eq!(v.confidence, Confidence::Medium);
    assert_eq!(v.involved.pod_uid.as_deref(), Some(p.uid.as_str()));
    assert!(
        v.note
            .as_deref()
            .is_some_and(|n| n.contains("without a reset")),
        "{v:#?}"
    );
    // nginx's `-` (no answer at all) counts as a failed try too.
    assert_eq!(build(Some((502, None)), true).0.cause, Cause::OomKill);
    for (what, log, oom) in [
        ("no access log", None, true),
        ("upstream not killed", Some((502, Some(502))), false),
        ("the app's own 503", Some((503, Some(503))), true),
    ] {
        let (v, _) = build(log, oom);
        assert_eq!(v.cause, Cause::Unexplained, "{what}: {v:#?}");
    }
}

/// Hidden-by-retry follows what the proxy did, whatever its tries,
/// upstreams and rate: with its access log, each 5xx claims exactly the
/// failed tries its line lists, and every other failed try was retried.
/// Requests overlap (one every 2 ms, each try 1 ms apart), so a 5xx's
/// neighbours in time are other requests' failures to other upstreams: a
/// heuristic chain would claim them too.
#[test]
fn hidden_by_retry_follows_the_logged_tries_for_any_tries_and_replicas() {
    for (tries, replicas) in [(2usize, 6u32), (3, 3), (2, 12), (4, 8)] {
        let mut s = synth();
        let pods: Vec<SynthPod> = (0..replicas).map(|i| old_pod(&mut s, 100 + i)).collect();
        for p in &pods {
            graceful_termination(&mut s, p);
        }
        let client = ip4(192, 168, 0, 9);
        // Retried tries: all of a request answered 200, all but the last
        // of one that still failed (`in_log`: the former only).
        let (mut truth, mut in_log, mut fivexx) = (0u64, 0u64, 0u64);
        for r in 0..300u32 {
            let start = T0 + 100 * MS + i64::from(r) * 2 * MS;
            // Request r fails on its first `fails` tries (1..=tries).
            let fails = 1 + (r as usize * 7 + r as usize / 3) % tries;
            let mut tried = Vec::new();
            for k in 0..fails {
                let p = &pods[(r as usize + k * 5) % pods.len()];
                s.refused(
                    "node-1",
                    proxy(),
                    p.ip,
                    start + k as i64 * MS,
                    Some("node-2"),
                );
                tried.push((p.ip, Some(502)));
            }
            let end = start + fails as i64 * MS;
            if fails == tries {
                fivexx += 1;
                truth += fails as u64 - 1;
                s.http_5xx("node-1", proxy(), client, 40000 + r as u16, end, 502);
                s.proxy_log("node-1", client, end, 502, &tried);
            } else {
                truth += fails as u64;
                in_log += fails as u64;
                tried.push((pods[(r as usize + 3) % pods.len()].ip, Some(200)));
                s.proxy_log("node-1", client, end, 200, &tried);
            }
        }
        s.cordon("node-3", T0 + 60 * SECOND);
        let cfg = ExplainConfig {
            peeked_proxies: vec![proxy()],
            ..ExplainConfig::default()
        };
        let (_, m) = explain_all(&s.sorted(), cfg);
        let http = &m.stats.http;
        let hidden = http.hidden_by_retry.values().sum::<u64>();
        let sent = http.sent_5xx.values().sum::<u64>();
        assert_eq!(sent, fivexx, "tries {tries}, replicas {replicas}: {http:?}");
        assert_eq!(
            hidden, truth,
            "tries {tries}, replicas {replicas}: hidden {hidden}, truth {truth}"
        );
        assert_eq!(http.retried_in_log, in_log);
    }
}

/// The kubelet's message when an exec preStop's binary is missing (a
/// distroless image with no `sleep`).
fn failed_hook_message(p: &fivexx_core::testkit::synth::SynthPod) -> String {
    format!(
        "Exec lifecycle hook ([sleep 5]) for Container \"api\" in Pod \"{}_{}({})\" failed - error: command 'sleep 5' exited with 126: , message: \"OCI runtime exec failed: exec failed: unable to start container process: exec: \\\"sleep\\\": executable file not found in $PATH: unknown\\r\\n\"",
        p.name, p.namespace, p.uid
    )
}

/// A preStop hook that failed: SIGTERM came at once, the proxy still
/// routed to the pod, and the cause is the hook (with the endpoint lag in
/// the evidence); the fix is the native sleep sized from the measured lag.
/// Near-misses: the same refusals with no hook event stay endpoint lag; a
/// hook that failed on another pod changes nothing here.
#[test]
fn a_failed_prestop_hook_is_the_cause_of_the_endpoint_lag() {
    let mut s = synth();
    let p = old_pod(&mut s, 80);
    let q = old_pod(&mut s, 81);
    let r = old_pod(&mut s, 82);
    s.delete(&p, T0, 30);
    s.k8s_event_says(
        &p,
        T0 + 2 * MS,
        "FailedPreStopHook",
        &failed_hook_message(&p),
    );
    s.sigterm(&p, T0 + 3 * MS, false);
    s.endpoint_not_ready(&p, T0 + 2 * SECOND);
    let failed = s.refused("node-1", proxy(), p.ip, T0 + 1500 * MS, Some("node-2"));
    // Another pod's hook failed; q itself has no hook event.
    graceful_termination(&mut s, &q);
    s.k8s_event_says(&r, T0, "FailedPreStopHook", &failed_hook_message(&r));
    let plain = s.refused("node-1", proxy(), q.ip, T0 + 1500 * MS, Some("node-2"));
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    let v = verdict_for(&vs, &failed);
    assert_eq!(v.cause, Cause::PrestopFailed, "{v:#?}");
    let note = v.note.as_deref().unwrap_or("");
    assert!(note.contains("exec [sleep 5] failed"), "{note}");
    assert!(note.contains("executable file not found"), "{note}");
    assert!(note.contains("SIGTERM came 0.0 s after deletion"), "{note}");
    assert!(
        v.evidence.iter().any(|e| e
            .fact
            .to_string()
            .starts_with("FailedPreStopHook for shop/api-80")),
        "{v:#?}"
    );
    let fix = v.fix.as_ref().expect("a fix");
    assert!(
        fix.action.starts_with("lifecycle.preStop.sleep.seconds: "),
        "{fix:?}"
    );
    assert_eq!(fix.params["declared_sleep_s"], 5.0, "{fix:?}");
    assert!(
        v.next
            .as_ref()
            .unwrap()
            .command
            .contains("reason=FailedPreStopHook"),
        "{:?}",
        v.next
    );
    assert_eq!(verdict_for(&vs, &plain).cause, Cause::EndpointLagNetnsAlive);
    let w = &m.workloads[&Some(std::sync::Arc::from("shop/deployment/api"))];
    assert_eq!(w.prestop_failures, 1, "{w:?}");
}

/// A Recreate rollout: every old pod leaves the endpoints before a new one
/// is ready, and the proxy answers 503 itself (no upstream connection
/// fails). Each 503 in the stretch with no ready endpoint is no_endpoints,
/// with the reason (2 terminating, 2 not yet ready) and the fix that
/// follows from it. Near-misses: a 503 while endpoints were ready stays
/// unexplained and says so; a 502 in the stretch is not a 503's business.
#[test]
fn a_503_while_the_service_had_no_endpoints_is_no_endpoints() {
    let mut s = synth();
    let (a, b) = (old_pod(&mut s, 90), old_pod(&mut s, 91));
    for p in [&a, &b] {
        s.delete(p, T0, 30);
        s.sigterm(p, T0 + 5 * MS, false);
        s.endpoint_not_ready(p, T0 + 500 * MS);
    }
    let (c, d) = (
        Synth::pod_spec("api", 92, "node-2"),
        Synth::pod_spec("api", 93, "node-2"),
    );
    for p in [&c, &d] {
        s.start_pod(p, T0 + 2 * SECOND, 3 * SECOND);
    }
    let client = ip4(192, 168, 0, 7);
    let own = s.http_5xx("node-1", proxy(), client, 51000, T0 - 20 * SECOND, 503);
    let during: Vec<_> = (0..5)
        .map(|k| {
            s.http_5xx(
                "node-1",
                proxy(),
                client,
                51001 + k,
                T0 + (1 + i64::from(k)) * SECOND,
                503,
            )
        })
        .collect();
    let other = s.http_5xx("node-1", proxy(), client, 51010, T0 + 2 * SECOND, 502);
    let (vs, _) = explain_all(&s.sorted(), ExplainConfig::default());
    for t in &during {
        let v = verdict_for(&vs, t);
        assert_eq!(v.cause, Cause::NoEndpoints, "{v:#?}");
        assert_eq!(
            v.involved.workload_key.as_deref(),
            Some("shop/deployment/api")
        );
        assert!(
            v.evidence.iter().any(|e| e.fact.to_string().starts_with(
                "shop/api had 0 ready endpoints for 4.5 s (2 pods terminating, 2 not yet ready)"
            )),
            "{v:#?}"
        );
        let fix = v.fix.as_ref().unwrap();
        assert!(fix.action.contains("maxUnavailable: 0"), "{fix:?}");
        // The API's stretch: the last removal at +0.5 s, ready at +5 s.
        assert_eq!(fix.params["no_endpoints_s"], 4.5, "{fix:?}");
        assert!(
            v.next
                .as_ref()
                .unwrap()
                .command
                .contains("kubernetes.io/service-name=api"),
            "{:?}",
            v.next
        );
    }
    let v = verdict_for(&vs, &own);
    assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
    assert!(
        v.note
            .as_deref()
            .unwrap()
            .contains("no Service in the capture was without ready endpoints"),
        "{v:#?}"
    );
    assert_eq!(verdict_for(&vs, &other).cause, Cause::Unexplained);
}

/// A Service created with no ready endpoint (a new Deployment, or one
/// scaled up from zero): the proxy answers 503 until it has applied the
/// first endpoints, which come `ready_after` later and need the proxy's
/// propagation on top. Each such 503 is no_endpoints since the Service was
/// first seen, with its pods counted as not yet ready. Near-misses: a 503
/// long after the endpoints were there stays unexplained; a Service that
/// never had an endpoint in the capture explains nothing.
#[test]
fn a_503_before_a_new_services_first_endpoints_is_no_endpoints() {
    for ready_after in [700 * MS, 1800 * MS] {
        let mut s = synth();
        s.service("shop", "api", ip4(10, 96, 0, 9), T0);
        s.service("shop", "unused", ip4(10, 96, 0, 10), T0 - 60 * SECOND);
        let (a, b) = (
            Synth::pod_spec("api", 70, "node-2"),
            Synth::pod_spec("api", 71, "node-2"),
        );
        for p in [&a, &b] {
            s.start_pod(p, T0 + 10 * MS, ready_after);
        }
        let client = ip4(192, 168, 0, 8);
        let ready = T0 + 10 * MS + ready_after;
        let early = s.http_5xx("node-1", proxy(), client, 52000, T0 + 300 * MS, 503);
        // After the endpoints were ready, before the proxy applied them.
        let late = s.http_5xx("node-1", proxy(), client, 52001, ready + SECOND, 503);
        let own = s.http_5xx("node-1", proxy(), client, 52002, ready + 30 * SECOND, 503);
        let before = s.http_5xx("node-1", proxy(), client, 52003, T0 - 30 * SECOND, 503);
        let (vs, _) = explain_all(&s.sorted(), ExplainConfig::default());
        let secs = (ready - T0) as f64 / 1e9;
        for t in [&early, &late] {
            let v = verdict_for(&vs, t);
            assert_eq!(v.cause, Cause::NoEndpoints, "{v:#?}");
            assert!(
                v.evidence.iter().any(|e| e.fact.to_string().starts_with(&format!(
                    "shop/api had 0 ready endpoints for {secs:.1} s (0 pods terminating, 2 not yet ready)"
                ))),
                "{v:#?}"
            );
            let fix = v.fix.as_ref().unwrap();
            assert!(
                (fix.params["no_endpoints_s"] - secs).abs() < 0.01,
                "{fix:?}"
            );
            assert!(
                fix.action.starts_with("keep at least one ready replica"),
                "{fix:?}"
            );
        }
        for t in [&own, &before] {
            assert_eq!(verdict_for(&vs, t).cause, Cause::Unexplained);
        }
    }
}

/// A healthy backend that closes idle keep-alive connections after
/// `idle` (Node.js: 5 s): the proxy sometimes writes on one as it closes
/// and the backend's kernel answers with a RST. The kernel measured the
/// idle time at the backend's close. The reset is the idle-timeout cause,
/// with the close in its evidence, and the fix quotes the backend's idle
/// time over all its closes (raced or not) and the proxy's own closes.
/// Near-misses: the closes alone are no failure; a reset with no close
/// before it stays unexplained; a reset by a terminating pod that closed
/// its idle connection stays the keep-alive race at shutdown.
#[test]
fn a_reset_after_the_backends_idle_close_is_the_idle_timeout() {
    for idle_s in [2.0_f64, 5.0] {
        let idle = (idle_s * 1e9) as i64;
        let mut s = synth();
        let p = old_pod(&mut s, 40);
        let other = old_pod(&mut s, 41);
        // 20 idle closes that raced nothing, with a little jitter.
        for k in 0..20 {
            let t = s.peek_tuple(proxy(), p.ip);
            let _ = s.reset(
                "node-1",
                ip4(10, 9, 9, 9),
                ip4(10, 9, 9, 8),
                T0 - 200 * SECOND,
                None,
            );
            s.idle_close(
                "node-2",
                t,
                T0 - 100 * SECOND + k * SECOND,
                idle + k * MS,
                true,
            );
        }
        // The proxy's own idle closes, longer.
        for k in 0..3 {
            let t = s.peek_tuple(proxy(), p.ip);
            let _ = s.reset(
                "node-1",
                ip4(10, 9, 9, 9),
                ip4(10, 9, 9, 8),
                T0 - 200 * SECOND,
                None,
            );
            s.idle_close(
                "node-1",
                t,
                T0 - 50 * SECOND + k * SECOND,
                60 * SECOND,
                false,
            );
        }
        let raced = s.peek_tuple(proxy(), p.ip);
        s.idle_close("node-2", raced, T0, idle + 3 * MS, true);
        let r = s.reset("node-1", proxy(), p.ip, T0 + 300_000, Some("node-2"));
        assert_eq!(r, raced);
        let bare = s.reset("node-1", proxy(), other.ip, T0 + SECOND, Some("node-2"));
        // A close by the client side does not make the server's reset.
        let client_closed = s.peek_tuple(proxy(), other.ip);
        s.idle_close("node-1", client_closed, T0 + 2 * SECOND, idle, false);
        let c2 = s.reset(
            "node-1",
            proxy(),
            other.ip,
            T0 + 2 * SECOND + MS,
            Some("node-2"),
        );
        assert_eq!(c2, client_closed);
        let vs = run(s);
        let v = verdict_for(&vs, &r);
        assert_eq!(v.cause, Cause::KeepAliveIdleTimeout, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
        assert!(
            v.evidence.iter().any(|e| e
                .fact
                .to_string()
                .ends_with(&format!("after it was idle {idle_s:.1} s"))),
            "{v:#?}"
        );
        assert!(
            v.note
                .as_deref()
                .unwrap()
                .contains("reused it 0.2 ms later"),
            "{v:?}"
        );
        let fix = v.fix.as_ref().unwrap();
        assert_eq!(fix.params["closes"], 21.0, "{fix:?}");
        assert!(
            (fix.params["backend_idle_p50_s"] - idle_s).abs() < 0.02,
            "{fix:?}"
        );
        assert!(
            (fix.params["backend_idle_min_s"] - idle_s).abs() < 0.001,
            "{fix:?}"
        );
        assert_eq!(fix.params["proxy_idle_p50_s"], 60.0, "{fix:?}");
        assert_eq!(
            v.episode.as_ref().map(|e| e.kind),
            Some(EpisodeKind::IdleTimeout),
            "{v:?}"
        );
        assert!(
            fix.because.starts_with(&format!(
                "the backend closes idle connections after {idle_s:.1} s (p50; p99"
            )),
            "{fix:?}"
        );
        assert!(
            v.next
                .as_ref()
                .unwrap()
                .command
                .contains("kubectl get -n shop deployment/api"),
            "{:?}",
            v.next
        );
        for t in [&bare, &c2] {
            assert_eq!(verdict_for(&vs, t).cause, Cause::Unexplained);
        }
        // Exactly one failure explained: the closes are not failures.
        assert_eq!(
            vs.iter()
                .filter(|v| v.cause == Cause::KeepAliveIdleTimeout)
                .count(),
            1
        );
    }
}

/// A pod shutting down closes its idle pooled connections: a reset then is
/// the keep-alive race at shutdown, even with the idle close measured.
#[test]
fn an_idle_close_by_a_terminating_pod_stays_the_shutdown_race() {
    let mut s = synth();
    let p = old_pod(&mut s, 42);
    s.delete(&p, T0, 30);
    s.sigterm(&p, T0 + 5 * MS, false);
    let t = s.peek_tuple(proxy(), p.ip);
    s.idle_close("node-2", t, T0 + 20 * MS, 3 * SECOND, true);
    let r = s.reset("node-1", proxy(), p.ip, T0 + 21 * MS, Some("node-2"));
    let vs = run(s);
    assert_eq!(verdict_for(&vs, &r).cause, Cause::KeepAliveRace);
}

/// HAProxy closes its server connections with a RST: the backend's kernel
/// receives a reset (and the app ECONNRESET) from the peeked proxy's
/// address, and the proxy's kernel sends one. None of that failed a
/// request: the proxy chose to close. Counted, never a verdict. Near-miss:
/// the backend resetting the proxy's connection is still a failure.
#[test]
fn a_proxys_own_reset_of_its_upstream_is_no_failure() {
    let mut s = synth();
    let p = old_pod(&mut s, 43);
    s.http_peek("node-1", proxy(), T0 - 10 * SECOND);
    // The proxy closes its upstream connections with a RST.
    for k in 0..5 {
        let _ = s.reset_by_client("node-1", proxy(), p.ip, T0 + k * SECOND, "node-2");
    }
    // With no 5xx seen for it, a peeked proxy's upstream failure is a
    // try it retried: counted as hidden, not a verdict.
    let _real = s.reset("node-1", proxy(), p.ip, T0 + 10 * SECOND, Some("node-2"));
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    assert!(vs.is_empty(), "{vs:#?}");
    assert_eq!(m.stats.http.hidden_by_retry.values().sum::<u64>(), 1);
    // Per abort: the pod's receive_reset and ECONNRESET, the proxy's RST.
    assert_eq!(m.stats.own_aborts, 15);
}

/// An abortive close (SO_LINGER 0, HAProxy's way with its server
/// connections) makes the kernel report ECONNRESET on the closing socket
/// after clearing its tuple's peer port: the closer's own choice, never a
/// failure, whether or not the proxy is peeked, and even to a terminating
/// pod. A received reset keeps its tuple and stays a failure.
#[test]
fn an_abortive_close_of_ones_own_is_no_failure() {
    let mut s = synth();
    let p = old_pod(&mut s, 44);
    for k in 0..4 {
        s.own_abort("node-1", p.ip, T0 + k * 100 * MS);
    }
    s.delete(&p, T0 + SECOND, 30);
    s.sigterm(&p, T0 + SECOND, false);
    s.own_abort("node-1", p.ip, T0 + 1100 * MS);
    let real = s.reset("node-1", proxy(), p.ip, T0 + 1200 * MS, None);
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    assert_eq!(vs.len(), 1, "{vs:#?}");
    assert_eq!(tuple_of(&vs[0]), Some(real));
    assert_eq!(m.stats.own_aborts, 5);
}

/// The other way the race ends: the proxy's request has already arrived
/// when the backend's idle timer closes the connection, unread, so the
/// backend's kernel sends a RST at once (ESTABLISHED -> CLOSE, idle
/// counted from its last send). Joined only when the backend sent the
/// RST; a proxy's reset with no RST seen from the backend stays
/// unexplained. These aborts never count as the backend's idle closes.
#[test]
fn an_idle_abort_with_the_request_unread_is_the_idle_timeout_too() {
    let mut s = synth();
    let p = old_pod(&mut s, 45);
    let t = s.peek_tuple(proxy(), p.ip);
    s.idle_abort("node-2", t, T0, 1500 * MS);
    let r = s.reset("node-1", proxy(), p.ip, T0 + 200_000, Some("node-2"));
    assert_eq!(r, t);
    let t2 = s.peek_tuple(proxy(), p.ip);
    s.idle_abort("node-2", t2, T0 + SECOND, 1500 * MS);
    let unseen = s.reset("node-1", proxy(), p.ip, T0 + SECOND + 200_000, None);
    assert_eq!(unseen, t2);
    let vs = run(s);
    let v = verdict_for(&vs, &r);
    assert_eq!(v.cause, Cause::KeepAliveIdleTimeout, "{v:#?}");
    assert!(
        v.evidence
            .iter()
            .any(|e| e.fact.to_string().contains(
                "after it was idle 1.5 s, with the proxy's request already arrived unread"
            )),
        "{v:#?}"
    );
    // No FIN_WAIT1 close was seen: the fix has no idle time to quote.
    assert!(v.fix.as_ref().unwrap().params.is_empty(), "{:?}", v.fix);
    assert_eq!(verdict_for(&vs, &unseen).cause, Cause::Unexplained);
}

/// A node vanishes at T0 (its agent last heard then, the stream's end
/// seen 5 s later): no deletion, no SIGTERM, no cordon. SYNs into its pods
/// time out until the Node goes NotReady and the endpoints drop them, 4 s
/// later: node lost, with the measured time in the fix. Near-misses: a
/// timeout to a pod on a node that still answers stays unexplained, and
/// one before the node went quiet too.
#[test]
fn node_lost_without_a_drain() {
    let mut s = synth();
    let a = old_pod(&mut s, 40);
    let b = old_pod(&mut s, 41);
    let elsewhere = Synth::pod_spec("api", 42, "node-3");
    s.start_pod(&elsewhere, T0 - 600 * SECOND, 2 * SECOND);
    s.agent_gone("node-2", T0, T0 + 5 * SECOND);
    let before = s.timed_out("node-1", proxy(), a.ip, T0 - 3 * SECOND, 900 * MS, false);
    let lost: Vec<FourTuple> = (0..6)
        .map(|k| {
            let p = if k % 2 == 0 { &a } else { &b };
            s.timed_out(
                "node-1",
                proxy(),
                p.ip,
                T0 + 300 * MS + k * 500 * MS,
                900 * MS,
                false,
            )
        })
        .collect();
    let healthy = s.timed_out(
        "node-1",
        proxy(),
        elsewhere.ip,
        T0 + SECOND,
        900 * MS,
        false,
    );
    s.node_not_ready("node-2", T0 + 4 * SECOND);
    s.endpoint_not_ready(&a, T0 + 4100 * MS);
    s.endpoint_not_ready(&b, T0 + 4100 * MS);
    let vs = run(s);
    assert_eq!(vs.len(), 8, "{vs:#?}");
    for t in &lost {
        let v = verdict_for(&vs, t);
        assert_eq!(v.cause, Cause::NodeLost, "{v:#?}");
        assert_eq!(v.confidence, Confidence::High);
        let note = v.note.as_deref().unwrap();
        assert!(note.contains("node node-2 stopped answering"), "{note}");
        assert!(
            note.contains("the endpoints kept it 4.1 s, until the Node went NotReady"),
            "{note}"
        );
        let ep = v.episode.as_ref().unwrap();
        assert_eq!(
            (ep.kind, ep.subject.as_str()),
            (EpisodeKind::NodeLost, "node-2")
        );
        let fix = v.fix.as_ref().unwrap();
        assert!(fix.action.contains("kubectl drain"), "{fix:?}");
        assert!(
            (fix.params["endpoints_kept_p50_s"] - 4.1).abs() < 0.01,
            "{fix:?}"
        );
        assert_eq!(fix.params["lost_pods"], 2.0);
        assert_eq!(
            v.next.as_ref().unwrap().command,
            "kubectl describe node node-2"
        );
    }
    for near in [before, healthy] {
        assert_eq!(verdict_for(&vs, &near).cause, Cause::Unexplained);
    }
}

/// Near-misses of a lost node: a drained node whose agent then stops
/// (its pods were deleted first: the ordinary endpoint lag, never a lost
/// node), and an agent that restarts on a healthy node with no failure
/// (no verdict at all).
#[test]
fn a_drained_node_or_a_restarted_agent_is_no_lost_node() {
    let mut s = synth();
    let p = old_pod(&mut s, 43);
    s.cordon("node-2", T0 - 2 * SECOND);
    s.delete(&p, T0 - SECOND, 30);
    s.sigterm(&p, T0 - SECOND, false);
    s.exit(
        &p,
        T0 - 500 * MS,
        ExitStatus {
            code: Some(0),
            signal: None,
            core_dumped: false,
        },
    );
    s.gone(&p, T0 - 400 * MS);
    s.agent_gone("node-2", T0, T0 + SECOND);
    let t = s.timed_out("node-1", proxy(), p.ip, T0 + 500 * MS, 900 * MS, false);
    s.endpoint_not_ready(&p, T0 + 2 * SECOND);
    let vs = run(s);
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::EndpointLagNetnsGone, "{v:#?}");

    let mut q = synth();
    let _p = old_pod(&mut q, 44);
    q.agent_gone("node-2", T0, T0 + 100 * MS);
    let (vs, m) = explain_all(&q.sorted(), ExplainConfig::default());
    assert!(vs.is_empty(), "{vs:#?}");
    assert_eq!(m.stats.failures, 0);
}

/// A request sent on a pooled connection into the node just before it
/// vanished gets nothing back; nginx answers 504 at its 5 s read timeout
/// and no failed connection is seen. Its log line names the lost pod: the
/// node was lost when the request began. Near-miss: the same stall to a
/// pod on a node that answers stays unexplained.
#[test]
fn a_stalled_request_into_a_lost_node_is_node_lost() {
    let client = ip4(192, 168, 0, 9);
    for lost in [true, false] {
        let mut s = synth();
        let p = old_pod(&mut s, 45);
        if lost {
            s.agent_gone("node-2", T0, T0 + 5 * SECOND);
        }
        let t = s.http_5xx("node-1", proxy(), client, 51000, T0 + 5200 * MS, 504);
        s.proxy_log("node-1", client, T0 + 5200 * MS, 504, &[(p.ip, Some(504))]);
        s.logged_request_time(5000);
        let vs = run(s);
        assert_eq!(vs.len(), 1, "{vs:#?}");
        let v = verdict_for(&vs, &t);
        if lost {
            assert_eq!(v.cause, Cause::NodeLost, "{v:#?}");
            assert_eq!(v.confidence, Confidence::Medium);
            let note = v.note.as_deref().unwrap();
            assert!(
                note.contains("had stopped answering when the request began"),
                "{note}"
            );
        } else {
            assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
        }
    }
}

/// A proxy's 504 joined to a connect that timed out into a lost node:
/// one failure, and its note keeps what the rule said (the node that went
/// quiet, how long the endpoints kept the pod).
#[test]
fn an_answer_joined_to_a_lost_node_keeps_the_rules_note() {
    let mut s = synth();
    let p = old_pod(&mut s, 46);
    s.agent_gone("node-2", T0, T0 + 5 * SECOND);
    s.timed_out("node-1", proxy(), p.ip, T0 + 500 * MS, 900 * MS, false);
    let t = s.http_5xx(
        "node-1",
        proxy(),
        ip4(192, 168, 0, 9),
        51000,
        T0 + 1401 * MS,
        504,
    );
    s.node_not_ready("node-2", T0 + 4 * SECOND);
    s.endpoint_not_ready(&p, T0 + 4100 * MS);
    let vs = run(s);
    assert_eq!(vs.len(), 1, "{vs:#?}");
    let v = verdict_for(&vs, &t);
    assert_eq!(v.cause, Cause::NodeLost, "{v:#?}");
    let note = v.note.as_deref().unwrap();
    assert!(note.starts_with("upstream connection"), "{note}");
    assert!(note.contains("node node-2 stopped answering"), "{note}");
    assert!(note.contains("the endpoints kept it 4.1 s"), "{note}");
}
