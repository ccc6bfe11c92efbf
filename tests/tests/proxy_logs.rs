//! `kubectl-fivexx capture --proxy-logs` during the lab's
//! `rollout-no-prestop`: the plugin follows the lab ingress pod's log
//! through the fake API server (`pods/log`, served from the real nginx's
//! `upstreaminfo` access log), and the capture must hold one proxy-log
//! fact per 502 the load generator got, with the upstream nginx named in
//! its `X-Upstream-Addr` header.

use std::collections::BTreeMap;
use std::path::Path;

use fivexx_core::capture::{CaptureReader, Record};
use fivexx_core::model::{Fact, ProxyLogFact};
use fivexx_core::proxylog::nginx;
use fivexx_lab::harness::{
    ended_cleanly, plugin_and_agent, run_plugin_during, skip_unless_root, AgentServe, PluginRun,
};
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams};

#[test]
fn capture_with_proxy_logs_records_every_502() {
    if skip_unless_root("capture_with_proxy_logs_records_every_502") {
        return;
    }
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let out_dir = std::env::temp_dir().join(format!("fxlab-proxy-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let capture = out_dir.join("capture.fxc");
    let params = ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop);
    // Outlasts warm-up and load, plus the lab's own set-up.
    let secs = (params.warmup_ms + params.load_ms) / 1000 + 15;
    let PluginRun {
        report,
        output: cap,
        ..
    } = run_plugin_during(
        &plugin,
        &agent,
        &params,
        &out_dir,
        Path::new(env!("CARGO_BIN_EXE_fivexx-lab")),
        &[
            "capture",
            "deploy/web",
            "-n",
            "shop",
            "-f",
            &capture.display().to_string(),
            "--duration",
            &format!("{secs}s"),
            "--proxy-logs",
        ],
    );
    let stderr = String::from_utf8_lossy(&cap.stderr);
    eprintln!("--- capture stderr\n{stderr}");
    assert!(ended_cleanly(&cap), "capture failed");
    assert!(
        !stderr.contains("not parsed"),
        "every line of the lab's upstreaminfo log parses"
    );

    let file = std::fs::File::open(&capture).unwrap();
    let mut reader = CaptureReader::new(std::io::BufReader::new(file)).unwrap();
    let mut logs: Vec<ProxyLogFact> = Vec::new();
    let mut start_ns = 0;
    while let Some(rec) = reader.next_record().unwrap() {
        match rec {
            Record::Header(h) => start_ns = h.start_ns,
            Record::Fact(Fact::ProxyLog(f)) => logs.push(f),
            _ => {}
        }
    }
    assert!(reader.stats().is_complete(), "{:?}", reader.problems());

    let load_502: Vec<_> = report
        .records
        .iter()
        .filter(|r| r.status == Some(502))
        .collect();
    let log_502: Vec<&ProxyLogFact> = logs.iter().filter(|f| f.account.status == 502).collect();
    eprintln!(
        "load: {} requests, {} 502; proxy logs: {} facts, {} 502",
        report.records.len(),
        load_502.len(),
        logs.len(),
        log_502.len()
    );
    assert!(!load_502.is_empty(), "the scenario produced no 502");
    assert!(
        load_502.iter().all(|r| r.sent.wall_ns >= start_ns),
        "a 502 before the capture started: the comparison would not hold"
    );
    assert_eq!(log_502.len(), load_502.len(), "one proxy-log fact per 502");
    // Upstream per 502, as a multiset: the load generator's X-Upstream-Addr
    // against the log's $upstream_addr (retries are off: one each).
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for r in &load_502 {
        *want
            .entry(r.upstream.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for f in &log_502 {
        let addrs: Vec<String> = f.account.tries.iter().map(|t| t.addr.to_string()).collect();
        *got.entry(addrs.join(", ")).or_default() += 1;
    }
    assert_eq!(got, want, "502s per upstream: proxy logs vs load generator");
    for f in &logs {
        assert_eq!(f.account.format, nginx::UPSTREAMINFO);
        assert!(f.account.precise_time, "the runtime's stamp is the time");
        assert_eq!(f.namespace, "ingress-nginx");
        assert!(
            f.at_ns() >= start_ns,
            "sinceTime: nothing before the session"
        );
        assert_eq!(f.account.upstream_name.as_deref(), Some("shop-web-8080"));
    }
    for f in &log_502 {
        let statuses: Vec<Option<u16>> = f.account.tries.iter().map(|t| t.status).collect();
        assert_eq!(statuses, vec![Some(502)], "{f:?}");
    }
    // Non-5xx answers come too: most of the load was served.
    let ok = logs.iter().filter(|f| f.account.status == 200).count();
    let load_ok = report
        .records
        .iter()
        .filter(|r| r.status == Some(200) && r.sent.wall_ns >= start_ns)
        .count();
    assert!(ok >= load_ok, "200s: {ok} logged, {load_ok} in the load");
}
