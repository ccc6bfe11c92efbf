//! Summary report and its renderers.

use fivexx_core::explain::{Cause, ExplainConfig};
use fivexx_core::model::Fact;
use fivexx_core::report::{render_json, render_table, render_wide, ReportFilter, SCHEMA_VERSION};
use fivexx_core::testkit::build_report;
use fivexx_core::testkit::synth::{ip4, Synth, MS, SECOND, T0};
use fivexx_core::ExitStatus;

/// A drain of node-2 terminating 4 pods of deployment/api with endpoint
/// lags of 2.0..3.5 s; 3 more failures nothing explains.
fn drain() -> Vec<Fact> {
    let mut s = Synth::new();
    let proxy = ip4(10, 1, 0, 10);
    s.proxy_pod(proxy, "node-1");
    s.cordon("node-2", T0 - SECOND);
    for n in 0..4u32 {
        let p = Synth::pod_spec("api", n, "node-2");
        s.start_pod(&p, T0 - 900 * SECOND, SECOND);
        let term = T0 + i64::from(n) * 5 * SECOND;
        let lag = 2 * SECOND + i64::from(n) * 500 * MS;
        s.delete(&p, term, 30);
        s.sigterm(&p, term + 5 * MS, false);
        s.exit(
            &p,
            term + SECOND,
            ExitStatus {
                code: Some(0),
                signal: None,
                core_dumped: false,
            },
        );
        s.endpoint_not_ready(&p, term + lag);
        let mut k = 0;
        while k * 200 * MS < lag - 100 * MS {
            s.refused(
                "node-1",
                proxy,
                p.ip,
                term + 100 * MS + k * 200 * MS,
                Some("node-2"),
            );
            k += 1;
        }
        s.gone(&p, term + 40 * SECOND);
    }
    let q = Synth::pod_spec("web", 9, "node-3");
    s.start_pod(&q, T0 - 900 * SECOND, SECOND);
    for k in 0..3 {
        s.reset("node-1", proxy, q.ip, T0 + k * SECOND, None);
    }
    s.sorted()
}

#[test]
fn drain_episode_counts_its_share_of_failures() {
    let facts = drain();
    let r = build_report(
        &facts,
        ExplainConfig::default(),
        ReportFilter::default(),
        1000,
    );
    let lag_failures: u64 = r.totals.by_cause[&Cause::EndpointLagNetnsAlive];
    assert_eq!(r.totals.unexplained, 3);
    assert_eq!(r.totals.failures, lag_failures + 3);
    assert_eq!(r.episodes.len(), 1);
    let e = &r.episodes[0];
    assert_eq!(e.label, "drain of node node-2");
    assert_eq!(e.pod_names.len(), 4, "{e:?}");
    assert_eq!(
        (e.failures, e.of_total, e.pods),
        (lag_failures, lag_failures + 3, 4)
    );
    let table = render_table(&r);
    let line = format!(
        "drain of node node-2 (deployment shop/api) at 2023-11-14T22:13:19.000Z caused {lag_failures} of {} failed requests",
        lag_failures + 3
    );
    assert!(table.contains(&line), "{table}");
    // The fix quotes the measured lag: p99 of 2.0/2.5/3.0/3.5 s is 3.5 s.
    let w = r
        .workloads
        .iter()
        .find(|w| w.workload.as_deref() == Some("shop/deployment/api"))
        .unwrap();
    let fix = w
        .fixes
        .iter()
        .find(|f| f.cause == Cause::EndpointLagNetnsAlive)
        .unwrap();
    assert_eq!(fix.params["lag_p99_s"], 3.5, "{fix:?}");
    assert_eq!(fix.params["prestop_sleep_s"], 4.5);
    assert_eq!(fix.params["terminations"], 4.0);
    assert!(
        fix.because.contains("p99 3.5 s over 4 terminations"),
        "{fix:?}"
    );
    assert!(table.contains("preStop sleep >= 4.5 s"), "{table}");
    // Workloads first, with the next command filled in with real names.
    assert_eq!(w.label, "deployment shop/api");
    let next = w
        .next
        .iter()
        .find(|n| n.cause == Cause::EndpointLagNetnsAlive)
        .unwrap();
    assert!(
        next.command
            .starts_with("kubectl get endpointslices -n shop "),
        "{next:?}"
    );
    assert!(table.contains(&next.command), "{table}");
    assert!(
        r.workloads
            .iter()
            .flat_map(|w| &w.next)
            .all(|n| !n.command.contains('<')),
        "placeholders in {:?}",
        r.workloads
    );
}

#[test]
fn json_is_versioned_and_complete() {
    let facts = drain();
    let r = build_report(&facts, ExplainConfig::default(), ReportFilter::default(), 5);
    let v: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["verdicts"].as_array().unwrap().len(), 5);
    assert_eq!(v["verdicts_omitted"], r.totals.failures - 5);
    let first = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["cause"] == "endpoint_lag_netns_alive")
        .unwrap();
    for key in [
        "failure",
        "cause",
        "confidence",
        "evidence",
        "pod",
        "proxy",
        "episode",
        "fix",
    ] {
        assert!(first.get(key).is_some(), "missing {key}: {first}");
    }
    assert_eq!(first["failure"]["tuple"]["daddr"], "10.244.0.2");
    assert_eq!(first["cause"], "endpoint_lag_netns_alive");
    let ev = first["evidence"].as_array().unwrap();
    assert!(ev.iter().any(|e| e["source"]["node"] == "node-2"), "{ev:?}");
    assert!(ev.iter().any(|e| e["source"] == "api"), "{ev:?}");
    assert!(ev
        .iter()
        .all(|e| e["at_ns"].is_i64() && e["fact"].is_string()));
    assert!(v["totals"]["by_cause"]["unexplained"].as_u64() == Some(3));
}

#[test]
fn filters_select_verdicts_but_keep_context() {
    let facts = drain();
    let by = |f: ReportFilter| build_report(&facts, ExplainConfig::default(), f, 1000).totals;
    let all = by(ReportFilter::default());
    let web = by(ReportFilter {
        workload: Some("deploy/web".into()),
        ..Default::default()
    });
    assert_eq!(web.failures, 3);
    let api = by(ReportFilter {
        workload: Some("api".into()),
        ..Default::default()
    });
    assert_eq!(api.failures + 3, all.failures);
    let pod = by(ReportFilter {
        pod: Some("api-0".into()),
        ..Default::default()
    });
    assert!(pod.failures > 0 && pod.failures < api.failures);
    let late = by(ReportFilter {
        since_ns: Some(T0 + 15 * SECOND),
        ..Default::default()
    });
    assert!(late.failures < all.failures && late.failures > 0);
    // Filtering by time does not drop the lifecycle context: still explained.
    assert_eq!(late.unexplained, 0);
    let none = by(ReportFilter {
        until_ns: Some(T0 - 10 * SECOND),
        ..Default::default()
    });
    assert_eq!(none.failures, 0);
}

#[test]
fn wide_lists_every_verdict() {
    let facts = drain();
    let r = build_report(
        &facts,
        ExplainConfig::default(),
        ReportFilter::default(),
        1000,
    );
    let wide = render_wide(&r);
    let rows = wide.lines().filter(|l| l.contains(" -> 10.244.")).count();
    assert!(rows as u64 >= r.totals.failures, "{wide}");
}

/// A burst is one workload, pod, cause and proxy: the drain's four pods
/// are four bursts, the unexplained resets to another pod a fifth; every
/// verdict carries its burst and a next command.
#[test]
fn bursts_group_failures_by_pod_and_cause() {
    let facts = drain();
    let r = build_report(
        &facts,
        ExplainConfig::default(),
        ReportFilter::default(),
        1000,
    );
    let mut bursts: std::collections::BTreeMap<u64, Vec<&fivexx_core::explain::Verdict>> =
        Default::default();
    for v in &r.verdicts {
        bursts.entry(v.burst.expect("a burst")).or_default().push(v);
        assert!(v.next.is_some(), "no next command: {v:#?}");
    }
    assert_eq!(bursts.len(), 5, "{:?}", bursts.keys());
    for vs in bursts.values() {
        assert!(vs
            .iter()
            .all(|v| v.involved.pod == vs[0].involved.pod && v.cause == vs[0].cause));
    }
    // The unexplained resets name the command that finds their address.
    let u = r
        .verdicts
        .iter()
        .find(|v| v.cause == Cause::Unexplained)
        .unwrap();
    let next = u.next.as_ref().unwrap();
    assert!(
        next.command.contains("status.podIP=") || next.command.starts_with("kubectl logs"),
        "{next:?}"
    );
}
