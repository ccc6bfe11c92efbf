//! The engine on Envoy's and HAProxy's words: response flags and
//! termination states join, sharpen or rule out a kernel failure, `UH` and
//! `<NOSRV>` are "no endpoints" evidence, and retries are counted. Each
//! rule has a near-miss that must stay unexplained.
//!
//! This file is longer than 600 lines because each proxy's rule is read
//! next to its near-miss, and the pairing of peeked answers with their log
//! lines next to both.

use fivexx_core::capture::{CaptureHeader, CaptureReader, CaptureWriter, Record, WriteOptions};
use fivexx_core::explain::{Cause, Confidence, ExplainConfig, FailureKind, Verdict};
use fivexx_core::model::{Fact, ProxyLogFact};
use fivexx_core::proxylog::parse_line;
use fivexx_core::testkit::explain_all;
use fivexx_core::testkit::synth::{ip4, Synth, SynthPod, MS, SECOND, T0};
use fivexx_core::{ExitStatus, FourTuple};
use std::net::IpAddr;

fn proxy() -> IpAddr {
    ip4(10, 1, 0, 10)
}

/// A synthetic cluster whose ingress proxy is a pod at [`proxy`].
fn synth() -> Synth {
    let mut s = Synth::new();
    s.proxy_pod(proxy(), "node-1");
    s
}

fn client() -> IpAddr {
    ip4(192, 168, 0, 7)
}

/// A pod of deployment/api on node-2, started long before T0.
fn old_pod(s: &mut Synth, n: u32) -> SynthPod {
    let p = Synth::pod_spec("api", n, "node-2");
    s.start_pod(&p, T0 - 600 * SECOND, 2 * SECOND);
    p
}

/// Deleted at T0, SIGTERM, exits after 1.5 s, not ready after 3 s.
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

fn answer_verdict<'a>(vs: &'a [Verdict], t: &FourTuple) -> &'a Verdict {
    vs.iter()
        .find(|v| v.failure.answer().and_then(|a| a.tuple) == Some(*t))
        .unwrap_or_else(|| panic!("no verdict for {t}: {vs:#?}"))
}

fn says(v: &Verdict, text: &str) -> bool {
    v.evidence.iter().any(|e| e.fact.to_string().contains(text))
}

/// Envoy's 503 UF joins the refused connect behind it, peeked or only
/// logged, and the evidence carries the flag and the upstream host.
#[test]
fn envoy_503_uf_joins_its_refused_connect() {
    let mut s = synth();
    let p = old_pod(&mut s, 1);
    graceful_termination(&mut s, &p);
    s.refused("node-1", proxy(), p.ip, T0 + 500 * MS, Some("node-2"));
    let peeked = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 501 * MS, 503);
    s.envoy_log("node-1", client(), T0 + 501 * MS, 503, "UF", Some(p.ip));
    // Logged only (TLS to the client).
    s.refused("node-1", proxy(), p.ip, T0 + 900 * MS, Some("node-2"));
    s.envoy_log("node-1", client(), T0 + 901 * MS, 503, "UF", Some(p.ip));
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    assert_eq!(vs.len(), 2, "{vs:#?}");
    let words = format!("Envoy: 503 UF upstream {}:8080", p.ip);
    let v = answer_verdict(&vs, &peeked);
    assert_eq!(v.cause, Cause::EndpointLagNetnsAlive, "{v:#?}");
    assert_eq!(v.confidence, Confidence::High);
    assert!(says(v, &words), "{v:#?}");
    let logged = vs
        .iter()
        .find(|v| v.failure.kind() == FailureKind::Http5xxLogged)
        .unwrap();
    assert_eq!(logged.cause, Cause::EndpointLagNetnsAlive, "{logged:#?}");
    assert!(says(logged, &words), "{logged:#?}");
    assert!(says(logged, "access log of envoy-gateway-system/envoy-1"));
    assert_eq!(m.stats.http.confirmed_by_log, 1);
    assert_eq!(m.stats.http.hidden_by_retry.values().sum::<u64>(), 0);
}

/// A Service with no ready endpoint: Envoy's 503 UH is "no endpoints",
/// never the endpoint lag of the refusal just before it (that refusal was
/// another request's: UH made no upstream connection). Near-miss: a UH
/// while the Service had ready endpoints stays unexplained, and says why.
#[test]
fn envoy_503_uh_is_no_endpoints_never_endpoint_lag() {
    let mut s = synth();
    let p = old_pod(&mut s, 2);
    graceful_termination(&mut s, &p);
    // A refusal right before each 503 (endpoint lag, another request's).
    s.refused("node-1", proxy(), p.ip, T0 + 3400 * MS, Some("node-2"));
    let during = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 3500 * MS, 503);
    s.envoy_log("node-1", client(), T0 + 3500 * MS, 503, "UH", None);
    let mut q = synth();
    let a = old_pod(&mut q, 3);
    let _healthy = old_pod(&mut q, 4);
    graceful_termination(&mut q, &a);
    q.refused("node-1", proxy(), a.ip, T0 + 400 * MS, Some("node-2"));
    let ready = q.http_5xx("node-1", proxy(), client(), 51001, T0 + 500 * MS, 503);
    q.envoy_log("node-1", client(), T0 + 500 * MS, 503, "UH", None);

    let vs = explain_all(&s.sorted(), ExplainConfig::default()).0;
    let v = answer_verdict(&vs, &during);
    assert_eq!(v.cause, Cause::NoEndpoints, "{v:#?}");
    assert!(says(v, "Envoy: 503 UH no upstream host"), "{v:#?}");
    assert!(says(v, "shop/api had 0 ready endpoints"), "{v:#?}");
    assert_eq!(v.failure.answer().unwrap().upstream_failures, 0);

    let (vs, m) = explain_all(&q.sorted(), ExplainConfig::default());
    let v = answer_verdict(&vs, &ready);
    assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
    assert!(
        v.note
            .as_deref()
            .unwrap()
            .contains("Envoy chose no upstream (UH)"),
        "{v:#?}"
    );
    // The refusal is not this 503's: no answer claimed it, so the peeked
    // proxy retried it.
    assert_eq!(
        m.stats
            .http
            .hidden_by_retry
            .get(&Cause::EndpointLagNetnsAlive),
        Some(&1)
    );
}

/// The app's own 503 through a healthy upstream connection (flags `-`)
/// stays unexplained even with an unclaimed refusal of the same proxy
/// just before it; the same 503 without the log would take it.
#[test]
fn an_apps_own_503_with_no_flag_stays_unexplained() {
    let build = |with_log: bool| {
        let mut s = synth();
        let p = old_pod(&mut s, 5);
        let healthy = old_pod(&mut s, 6);
        graceful_termination(&mut s, &p);
        s.refused("node-1", proxy(), p.ip, T0 + 500 * MS, Some("node-2"));
        let t = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 520 * MS, 503);
        if with_log {
            s.envoy_log(
                "node-1",
                client(),
                T0 + 520 * MS,
                503,
                "-",
                Some(healthy.ip),
            );
        }
        (explain_all(&s.sorted(), ExplainConfig::default()).0, t)
    };
    let (vs, t) = build(true);
    let v = answer_verdict(&vs, &t);
    assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
    assert!(v.note.as_deref().unwrap().contains("answered 503 itself"));
    assert!(says(v, "Envoy: 503 - upstream"), "{v:#?}");
    let (vs, t) = build(false);
    assert_eq!(answer_verdict(&vs, &t).cause, Cause::EndpointLagNetnsAlive);
}

/// A closed connection (`SH`, `UC`) joins the reset pooled connection,
/// not the refused connect that came later; a timeout (`UT`) joins
/// neither.
#[test]
fn flags_pick_the_failure_they_describe() {
    let mut s = synth();
    let p = old_pod(&mut s, 7);
    graceful_termination(&mut s, &p);
    s.reset("node-1", proxy(), p.ip, T0 + 300 * MS, Some("node-2"));
    s.refused("node-1", proxy(), p.ip, T0 + 305 * MS, Some("node-2"));
    let sh = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 310 * MS, 502);
    s.haproxy_log(
        "node-1",
        client(),
        T0 + 310 * MS,
        502,
        "SH--",
        "SRV_1",
        0,
        false,
        10,
    );
    // UT: a slow upstream; the refusal nearby is not its failure.
    s.refused("node-1", proxy(), p.ip, T0 + 990 * MS, Some("node-2"));
    let ut = s.http_5xx("node-1", proxy(), client(), 51001, T0 + SECOND, 504);
    s.envoy_log("node-1", client(), T0 + SECOND, 504, "UT", Some(p.ip));
    let (vs, _) = explain_all(&s.sorted(), ExplainConfig::default());
    let v = answer_verdict(&vs, &sh);
    assert_eq!(v.cause, Cause::KeepAliveRace, "{v:#?}");
    assert_eq!(
        v.failure.answer().unwrap().upstream_kind,
        Some(FailureKind::Reset)
    );
    assert!(
        says(v, "HAProxy: 502 SH-- server shop-api-8080/SRV_1"),
        "{v:#?}"
    );
    let v = answer_verdict(&vs, &ut);
    assert_eq!(v.cause, Cause::Unexplained, "{v:#?}");
    assert!(
        v.note.as_deref().unwrap().contains("timed out waiting"),
        "{v:#?}"
    );
    // Both refusals stand alone (not hidden: the proxy answered 5xx to
    // other requests, but these were no answer's).
    let refused = vs
        .iter()
        .filter(|v| v.failure.kind() == FailureKind::Refused)
        .count();
    assert_eq!(refused, 0, "a peeked proxy's unclaimed failures are hidden");
}

/// A flag that disagrees with the kernel does not override it: HAProxy
/// says SC (refused) but the kernel saw only a reset from the proxy: the
/// kernel's failure is kept, at medium confidence, with a note.
#[test]
fn a_disagreeing_flag_keeps_the_kernels_account() {
    let mut s = synth();
    let p = old_pod(&mut s, 8);
    graceful_termination(&mut s, &p);
    s.reset("node-1", proxy(), p.ip, T0 + 300 * MS, Some("node-2"));
    let t = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 301 * MS, 503);
    s.haproxy_log(
        "node-1",
        client(),
        T0 + 301 * MS,
        503,
        "SC--",
        "SRV_1",
        0,
        false,
        1,
    );
    let vs = explain_all(&s.sorted(), ExplainConfig::default()).0;
    let v = answer_verdict(&vs, &t);
    assert_eq!(v.cause, Cause::KeepAliveRace, "{v:#?}");
    assert_eq!(v.confidence, Confidence::Medium);
    assert!(
        v.note.as_deref().unwrap().contains("HAProxy logged SC--"),
        "{v:#?}"
    );
}

/// HAProxy's `%rc`: a 503 after 2 retries stands for 3 failed connects
/// (none hidden); a 200 after a redispatch stands for 1 hidden one, also
/// for a proxy that is not peeked (the log's count is the only account).
#[test]
fn haproxy_retries_are_claimed_or_hidden() {
    let mut s = synth();
    let p = old_pod(&mut s, 9);
    graceful_termination(&mut s, &p);
    for k in 0..3 {
        s.refused(
            "node-1",
            proxy(),
            p.ip,
            T0 + 300 * MS + k * SECOND,
            Some("node-2"),
        );
    }
    let t = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 2301 * MS, 503);
    s.haproxy_log(
        "node-1",
        client(),
        T0 + 2301 * MS,
        503,
        "SC--",
        "SRV_1",
        2,
        false,
        2002,
    );
    // Another HAProxy, not peeked: redispatched into a 200.
    let other = ip4(10, 1, 0, 11);
    s.proxy_pod(other, "node-1");
    s.refused("node-1", other, p.ip, T0 + 2500 * MS, Some("node-2"));
    s.haproxy_log(
        "node-1",
        client(),
        T0 + 2502 * MS,
        200,
        "----",
        "SRV_2",
        1,
        true,
        2,
    );
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    let v = answer_verdict(&vs, &t);
    assert_eq!(v.cause, Cause::EndpointLagNetnsAlive, "{v:#?}");
    assert_eq!(v.failure.answer().unwrap().upstream_failures, 3, "{v:#?}");
    assert!(
        says(
            v,
            "HAProxy: 503 SC-- server shop-api-8080/SRV_1 after 2 retries"
        ),
        "{v:#?}"
    );
    let http = &m.stats.http;
    assert_eq!(http.retried_in_log, 1, "{http:?}");
    assert_eq!(
        http.hidden_by_retry.get(&Cause::EndpointLagNetnsAlive),
        Some(&3),
        "{http:?}"
    );
    assert_eq!(vs.len(), 1, "{vs:#?}");
}

/// Envoy's `URX,UF` with Istio's 2 retries to one upstream (backoff
/// 25–250 ms): the 503 claims its 3 connects; without the log, the
/// same-host tries are not a chain, and 2 count as hidden. A peeked
/// Envoy's retried success logs nothing: its failure counts as hidden.
#[test]
fn envoy_retries_are_claimed_by_urx_and_hidden_on_success() {
    let build = |with_log: bool| {
        let mut s = synth();
        let p = old_pod(&mut s, 10);
        graceful_termination(&mut s, &p);
        for k in [0, 40, 130] {
            s.refused("node-1", proxy(), p.ip, T0 + (300 + k) * MS, Some("node-2"));
        }
        let t = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 431 * MS, 503);
        if with_log {
            s.envoy_log("node-1", client(), T0 + 431 * MS, 503, "URX,UF", Some(p.ip));
        }
        // Retried into a 200 later on (Envoy's line has no flag).
        s.refused("node-1", proxy(), p.ip, T0 + 2 * SECOND, Some("node-2"));
        s.envoy_log("node-1", client(), T0 + 2030 * MS, 200, "-", Some(p.ip));
        let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
        let v = answer_verdict(&vs, &t).clone();
        (
            v,
            m.stats.http.hidden_by_retry.values().sum::<u64>(),
            m.stats.http.retried_in_log,
        )
    };
    let (v, hidden, in_log) = build(true);
    assert_eq!(v.failure.answer().unwrap().upstream_failures, 3, "{v:#?}");
    assert!(says(&v, "Envoy: 503 URX,UF upstream"), "{v:#?}");
    // The 503's two earlier tries were retried too, and the 200's one.
    assert_eq!((hidden, in_log), (3, 0));
    let (v, hidden, _) = build(false);
    assert_eq!(v.failure.answer().unwrap().upstream_failures, 1);
    assert_eq!(hidden, 3);
}

/// Envoy's 503 UC for an upstream OOM-killed mid-request: no failed
/// connection (a FIN), but the log names the upstream: OOM kill.
/// Near-miss: the same 503 with flag UF is not a closed connection.
#[test]
fn envoy_503_uc_from_a_killed_upstream_is_its_death() {
    let build = |flags: &str| {
        let mut s = synth();
        let p = old_pod(&mut s, 11);
        s.oom(&p, T0 + SECOND);
        let t = s.http_5xx(
            "node-1",
            proxy(),
            client(),
            51000,
            T0 + SECOND + 5 * MS,
            503,
        );
        s.envoy_log(
            "node-1",
            client(),
            T0 + SECOND + 5 * MS,
            503,
            flags,
            Some(p.ip),
        );
        answer_verdict(&explain_all(&s.sorted(), ExplainConfig::default()).0, &t).clone()
    };
    let v = build("UC");
    assert_eq!(v.cause, Cause::OomKill, "{v:#?}");
    assert_eq!(v.confidence, Confidence::Medium);
    assert!(says(&v, "Envoy: 503 UC upstream"), "{v:#?}");
    assert_eq!(build("UF").cause, Cause::Unexplained);
}

/// Envoy and HAProxy facts survive a capture (format 1.4's fields), and
/// a line with no client reads back as no client.
#[test]
fn envoy_and_haproxy_facts_round_trip_through_a_capture() {
    let facts: Vec<Fact> = [
        r#"[2026-12-02T05:51:13.634Z] "GET /x HTTP/1.1" 503 URX,UF 0 121 67 - "-" "ua" "id" "host" "10.244.0.12:8080""#,
        r#"{"start_time":"2026-12-02T05:51:13.634Z","response_code":503,"response_flags":"UC","duration":0,"upstream_host":"10.244.0.12:8080","upstream_cluster":"c","upstream_local_address":"10.1.0.10:41234","downstream_remote_address":"10.1.0.7:5000"}"#,
        r#"10.1.0.7:40772 [02/Dec/2026:05:51:38.388] http shop-web-8080/SRV_1 0/0/-1/-1/2002 503 217 - - SC-- 1/1/0/0/+2 0/0 "GET /x HTTP/1.1""#,
    ]
    .iter()
    .map(|l| Fact::ProxyLog(ProxyLogFact::new("gw", "p-1", Some("node-1"), parse_line(l).unwrap())))
    .collect();
    if let Fact::ProxyLog(l) = &facts[0] {
        assert_eq!(l.account.client, None);
    }
    let h = CaptureHeader {
        tool_version: "test 0".into(),
        ..Default::default()
    };
    let mut w = CaptureWriter::new(Vec::new(), &h, WriteOptions::default()).unwrap();
    for f in &facts {
        w.write_fact(f).unwrap();
    }
    let bytes = w.finish(1).unwrap();
    let mut r = CaptureReader::new(&bytes[..]).unwrap();
    let mut back = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        if let Record::Fact(f) = rec {
            back.push(f);
        }
    }
    assert_eq!(back, facts);
}

/// The engine on a real line: HAProxy 2.6's 503 SC-- after 2 retries
/// (`%rc` 2, 2002 ms), logged only, joined to the three refused connects
/// behind it (1 s turn-arounds), and the evidence in HAProxy's words.
#[test]
fn a_real_haproxy_line_claims_its_three_refused_connects() {
    let line = "2026-12-02T05:51:40.390123456Z 10.1.0.7:40772 [02/Dec/2026:05:51:38.388] http shop-web-8080/SRV_1 0/0/-1/-1/2002 503 217 - - SC-- 1/1/0/0/2 0/0 \"GET /secret HTTP/1.1\"";
    let entry = parse_line(line).unwrap();
    let at = entry.at_ns;
    let mut s = synth();
    let p = Synth::pod_spec("web", 1, "node-2");
    s.start_pod(&p, at - 600 * SECOND, 2 * SECOND);
    s.delete(&p, at - 3 * SECOND, 30);
    s.sigterm(&p, at - 3 * SECOND, false);
    for k in [2002, 1001, 0] {
        s.refused("node-1", proxy(), p.ip, at - k * MS - MS, Some("node-2"));
    }
    s.facts.push(Fact::ProxyLog(ProxyLogFact::new(
        "haproxy-controller",
        "haproxy-kubernetes-ingress-7d9f",
        Some("node-1"),
        entry,
    )));
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    assert_eq!(vs.len(), 1, "{vs:#?}");
    let v = &vs[0];
    assert_eq!(v.failure.kind(), FailureKind::Http5xxLogged);
    assert_eq!(v.cause, Cause::EndpointLagNetnsAlive, "{v:#?}");
    assert_eq!(v.failure.answer().unwrap().upstream_failures, 3, "{v:#?}");
    assert!(
        says(
            v,
            "HAProxy: 503 SC-- server shop-web-8080/SRV_1 after 2 retries (access log of haproxy-controller/haproxy-kubernetes-ingress-7d9f, client 10.1.0.7)"
        ),
        "{v:#?}"
    );
    // Its two retries, hidden behind the 503 of the last try.
    assert_eq!(m.stats.http.hidden_by_retry.values().sum::<u64>(), 2);
    assert!(!format!("{v:?}").contains("secret"));
}

/// Envoy queues requests on a connection it is still opening and fails
/// them all when the connect fails: one timed-out connect into a gone
/// pod's address, five 503s within 2 ms. Each is a failed request with
/// that connect's cause; the connect counts as one upstream failure.
/// Near-miss: nginx opens one connection per try, so after the first 503
/// the others have no failure of their own and stay unexplained.
#[test]
fn envoy_fails_every_request_pending_on_a_failed_connect() {
    for (comm, explained) in [("wrk:worker_0", 5), ("nginx", 1)] {
        let mut s = synth();
        let p = old_pod(&mut s, 7);
        s.delete(&p, T0, 30);
        s.sigterm(&p, T0 + 10 * MS, false);
        s.exit(
            &p,
            T0 + 20 * MS,
            ExitStatus {
                code: Some(0),
                signal: None,
                core_dumped: false,
            },
        );
        s.gone(&p, T0 + 100 * MS);
        s.timed_out("node-1", proxy(), p.ip, T0 + 2 * SECOND, SECOND, false);
        let answers: Vec<FourTuple> = (0..5)
            .map(|k| {
                s.http_5xx_by(
                    comm,
                    "node-1",
                    proxy(),
                    client(),
                    52000 + k,
                    T0 + 3 * SECOND + 100_000 + i64::from(k) * 400_000,
                    503,
                )
            })
            .collect();
        let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
        assert_eq!(vs.len(), 5, "{comm}: {vs:#?}");
        let got = answers
            .iter()
            .filter(|t| answer_verdict(&vs, t).cause == Cause::EndpointLagNetnsGone)
            .count();
        assert_eq!(got, explained, "{comm}: {vs:#?}");
        let failures: u32 = vs
            .iter()
            .filter_map(|v| v.failure.answer())
            .map(|a| a.upstream_failures)
            .sum();
        assert_eq!(failures, 1, "{comm}: one failed connect behind them");
        assert_eq!(m.stats.http.hidden_by_retry.values().sum::<u64>(), 0);
    }
}

/// An OOM kill after the backend read the whole request closes the
/// connection with a FIN: the kernel sees no failed connection, HAProxy
/// answers 502 `SH--` and logs a server slot, not an address. When exactly
/// one pod died right then, the 502 is that pod's OOM kill (medium
/// confidence); with two pods dying at once it stays unexplained.
#[test]
fn haproxy_sh_502_with_one_pod_killed_is_its_oom_kill() {
    for (dying, want) in [(1, Cause::OomKill), (2, Cause::Unexplained)] {
        let mut s = synth();
        let pods: Vec<SynthPod> = (0..dying).map(|k| old_pod(&mut s, 20 + k)).collect();
        for p in &pods {
            s.oom(p, T0);
        }
        let t = s.http_5xx_by(
            "haproxy",
            "node-1",
            proxy(),
            client(),
            54000,
            T0 + 2 * MS,
            502,
        );
        s.haproxy_log(
            "node-1",
            client(),
            T0 + 2 * MS,
            502,
            "SH--",
            "SRV_3",
            0,
            false,
            40,
        );
        let (vs, _) = explain_all(&s.sorted(), ExplainConfig::default());
        let v = answer_verdict(&vs, &t);
        assert_eq!(v.cause, want, "{dying} dying: {v:#?}");
        if want == Cause::OomKill {
            assert_eq!(v.confidence, Confidence::Medium);
            assert!(
                v.note
                    .as_deref()
                    .unwrap()
                    .contains("the one that died then"),
                "{v:?}"
            );
        }
    }
}

/// Two 503s to one client a millisecond apart, whose log lines are
/// stamped the other way round (HAProxy's `%tr` is when the request
/// arrived): the client port each line names pairs it with its own
/// connection, so each verdict quotes its own server. Without the port
/// the nearest line in time wins and the two swap.
#[test]
fn a_logged_client_port_pairs_the_line_with_its_connection() {
    for with_port in [true, false] {
        let mut s = synth();
        let p = old_pod(&mut s, 12);
        let q = old_pod(&mut s, 13);
        graceful_termination(&mut s, &p);
        graceful_termination(&mut s, &q);
        s.refused("node-1", proxy(), p.ip, T0 + 499 * MS, Some("node-2"));
        s.refused("node-1", proxy(), q.ip, T0 + 500 * MS, Some("node-2"));
        let first = s.http_5xx("node-1", proxy(), client(), 51000, T0 + 500 * MS, 503);
        let second = s.http_5xx("node-1", proxy(), client(), 51001, T0 + 501 * MS, 503);
        for (port, at, server) in [(51001, 500, "SRV_2"), (51000, 501, "SRV_1")] {
            s.haproxy_log(
                "node-1",
                client(),
                T0 + at * MS,
                503,
                "SC--",
                server,
                0,
                false,
                1,
            );
            if with_port {
                s.logged_client_port(port);
            }
        }
        let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
        assert_eq!(vs.len(), 2, "one failure per answer: {vs:#?}");
        assert_eq!(m.stats.http.confirmed_by_log, 2);
        let quotes = |t: &FourTuple, server: &str| {
            says(
                answer_verdict(&vs, t),
                &format!("HAProxy: 503 SC-- server shop-api-8080/{server}"),
            )
        };
        assert_eq!(
            (quotes(&first, "SRV_1"), quotes(&second, "SRV_2")),
            (with_port, with_port),
            "with_port {with_port}: {vs:#?}"
        );
    }
}

/// A burst of 503s 5 ms apart, longer than a line's 50 ms slack, whose
/// Envoy lines are each stamped 4 ms before its answer (start time plus
/// duration, truncated): the nearest line to each answer is the next
/// one's, and pairing by nearness left the first line to expire and the
/// last answer without one. Paired in order, every answer keeps its own
/// line and its flag.
#[test]
fn a_burst_pairs_each_answer_with_its_own_line() {
    let mut s = synth();
    let p = old_pod(&mut s, 14);
    graceful_termination(&mut s, &p);
    let mut answers = Vec::new();
    for k in 0..30 {
        let at = T0 + 500 * MS + k * 5 * MS;
        s.refused("node-1", proxy(), p.ip, at - MS, Some("node-2"));
        answers.push(s.http_5xx("node-1", proxy(), client(), 51000 + k as u16, at, 503));
        s.envoy_log("node-1", client(), at - 4 * MS, 503, "UF", Some(p.ip));
    }
    let (vs, m) = explain_all(&s.sorted(), ExplainConfig::default());
    assert_eq!(vs.len(), 30, "{vs:#?}");
    assert_eq!(m.stats.http.confirmed_by_log, 30);
    for t in &answers {
        let v = answer_verdict(&vs, t);
        assert!(says(v, "Envoy: 503 UF"), "{v:#?}");
    }
}
