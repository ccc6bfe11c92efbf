//! The real `kubectl-fivexx trace deploy/web` during the lab's
//! `rollout-no-prestop`: the lab serves the running scenario through its
//! fake API server, the agent DaemonSet pod's port-forward reaches a real
//! `fivexx-agent serve` (eBPF, root), and the plugin must print the kernel
//! facts (`--events`) and a few burst lines naming endpoint lag for the
//! pods that served 502s, whose counts add up to the failed requests of
//! its report and of the load generator. The session records a capture
//! with non-default engine settings, and `explain` of that capture, with
//! no flags, must give the same verdicts.

use std::path::Path;

use fivexx_lab::harness::{
    burst_lines, plugin_and_agent, run_plugin_during, skip_unless_root, AgentServe, BurstLine,
    PluginRun,
};
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams, NODE_2};
use fivexx_lab::sim::timeline::LabEventKind;

#[test]
fn plugin_trace_explains_rollout_no_prestop() {
    if skip_unless_root("plugin_trace_explains_rollout_no_prestop") {
        return;
    }
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let out_dir = std::env::temp_dir().join(format!("fxlab-plugin-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let capture = std::env::temp_dir().join(format!("fxlab-rollout-{}.fxc", std::process::id()));
    let capture_arg = capture.display().to_string();
    let mut params = ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop);
    // The rollout's new pods start on a second node, added as the rollout
    // starts: a node with no scoped pod when the session began.
    params.rollout_node = Some(NODE_2.to_string());
    let PluginRun {
        report,
        output: trace,
        port_forwards,
    } = run_plugin_during(
        &plugin,
        &agent,
        &params,
        &out_dir,
        Path::new(env!("CARGO_BIN_EXE_fivexx-lab")),
        &[
            "trace",
            "deploy/web",
            "-n",
            "shop",
            "--duration",
            "14s",
            "--lookahead",
            "5s",
            "--skew",
            "1s",
            "--capture",
            &capture_arg,
            "--events",
            "-o",
            "json",
        ],
    );
    let stdout = String::from_utf8_lossy(&trace.stdout);
    let stderr = String::from_utf8_lossy(&trace.stderr);
    // The live lines, without the JSON summary (the table of the same
    // report comes from `explain` of the capture, below).
    let lines = stdout.find("\n{\n").map_or(&stdout[..], |i| &stdout[..i]);
    let bursts = burst_lines(lines);
    // The incident view: the bursts, without the --events lines.
    let view: Vec<&str> = lines
        .lines()
        .filter(|l| bursts.iter().any(|b| b.line == *l) || l.starts_with("    "))
        .collect();
    eprintln!(
        "--- trace stdout (bursts; --events lines left out)\n{}\n--- trace stderr\n{stderr}",
        view.join("\n")
    );
    assert!(trace.status.success(), "trace failed");
    assert!(
        report.summary.total_5xx() > 0,
        "the scenario produced no 5xx"
    );
    let affected = report.affected_ips();
    assert!(!affected.is_empty());
    // Kernel facts about the affected pods, one per line (--events).
    let kernel_lines = lines
        .lines()
        .filter(|l| affected.iter().any(|ip| l.contains(&format!("{ip}:"))))
        .count();
    assert!(kernel_lines > 0, "no kernel fact about {affected:?}");
    burst_lines_explain_the_rollout(&bursts, &affected);
    one_stream_per_node(&report.timeline, &port_forwards);
    let live = the_capture_explains_to_the_same_verdicts(&plugin, &capture, &stdout);
    bursts_are_few_and_add_up(&bursts, &live, &report);
    // Both nodes' agent pods reach the one agent of this machine: each
    // kernel event arrives on two streams, and must count once. The 5xx
    // the trace saw are the 5xx the load generator got, no more.
    assert_eq!(
        live["totals"]["by_kind"]["http_5xx"].as_u64().unwrap_or(0),
        report.summary.total_5xx(),
        "HTTP 5xx in the trace's report vs the load generator's"
    );
    let _ = std::fs::remove_file(&capture);
}

/// A closed burst names endpoint lag and an affected pod's address, and
/// its fix quotes the lag this lab was configured with (1 s), within 30%
/// + 0.5 s: "... because endpoint-removal lag p99 1.1 s over 3 ...".
fn burst_lines_explain_the_rollout(bursts: &[BurstLine], affected: &[String]) {
    let names_ip = |l: &str, ip: &str| l.split([' ', ',']).any(|w| w == ip);
    let lag_bursts: Vec<&BurstLine> = bursts
        .iter()
        .filter(|b| b.line.contains("endpoint lag"))
        .filter(|b| affected.iter().any(|ip| names_ip(b.line, ip)))
        .collect();
    assert!(
        !lag_bursts.is_empty(),
        "no endpoint-lag burst for {affected:?}"
    );
    let configured =
        ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop).endpoint_lag_ms as f64 / 1000.0;
    for b in &lag_bursts {
        let fix = b
            .fix
            .unwrap_or_else(|| panic!("no fix under the burst {}", b.line));
        let lag: f64 = fix
            .split(" p99 ")
            .nth(1)
            .and_then(|r| r.split(" s").next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no measured lag in {fix}"));
        assert!(
            (lag - configured).abs() <= configured * 0.3 + 0.5,
            "quoted lag {lag} s, configured {configured} s: {fix}"
        );
    }
}

/// A rollout is a few bursts, at most one per terminated pod and proxy
/// (and a few more), far fewer than its failed requests; and the bursts
/// count every failed request once: their sum is the report's
/// `totals.failures` and the load generator's 5xx.
fn bursts_are_few_and_add_up(
    bursts: &[BurstLine],
    live: &serde_json::Value,
    report: &fivexx_lab::sim::scenario::ScenarioReport,
) {
    let terminated = report
        .timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::SigtermSent)
        .count();
    let verdicts = live["verdicts"].as_array().cloned().unwrap_or_default();
    let proxies: std::collections::BTreeSet<String> =
        verdicts.iter().map(|v| v["proxy"].to_string()).collect();
    let counted: u64 = bursts.iter().map(|b| b.count).sum();
    let failures = live["totals"]["failures"].as_u64().unwrap_or(0);
    let generator = report.summary.total_5xx();
    println!("load generator: {generator} failed requests; kubectl fivexx: {counted} failed requests in {} burst line(s)", bursts.len());
    let most = terminated.max(1) * proxies.len().max(1) + 3;
    assert!(
        bursts.len() <= most,
        "{} burst lines, want at most {most} ({terminated} terminated pods × {} proxies + 3)",
        bursts.len(),
        proxies.len()
    );
    assert!(
        (bursts.len() as u64) < counted,
        "{} burst lines for {counted} failed requests",
        bursts.len()
    );
    assert_eq!(counted, failures, "the bursts' counts vs totals.failures");
    assert_eq!(
        counted, generator,
        "the bursts' counts vs the load generator's 5xx"
    );
}

/// `explain FILE` with no flags replays the capture with the settings the
/// session recorded (lookahead 5 s, skew 1 s, not the defaults of 30 s and
/// 2 s), so its report has the session's verdicts, to the byte.
fn the_capture_explains_to_the_same_verdicts(
    plugin: &Path,
    capture: &Path,
    trace_stdout: &str,
) -> serde_json::Value {
    let json_start = trace_stdout
        .find("\n{\n")
        .map(|i| i + 1)
        .expect("the trace's JSON summary");
    let live: serde_json::Value =
        serde_json::from_str(&trace_stdout[json_start..]).expect("the trace's JSON summary parses");
    let explain = |format: &str| {
        let o = std::process::Command::new(plugin)
            .args(["explain", &capture.display().to_string(), "-o", format])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "explain failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let replay: serde_json::Value = serde_json::from_str(&explain("json")).unwrap();
    let verdicts = live["verdicts"].as_array().map_or(0, Vec::len);
    eprintln!(
        "trace --lookahead 5s --skew 1s: {verdicts} verdicts; explain of its capture: {}",
        replay["verdicts"].as_array().map_or(0, Vec::len)
    );
    assert!(verdicts > 0, "the session gave no verdict");
    for part in ["verdicts", "totals", "episodes", "workloads"] {
        assert_eq!(
            live[part], replay[part],
            "{part} differ between trace and explain"
        );
    }
    for (setting, ns) in [("lookahead", 5_000_000_000u64), ("skew", 1_000_000_000)] {
        assert_eq!(replay["settings"][format!("{setting}_ns")], ns, "{setting}");
        assert_eq!(replay["settings"][format!("{setting}_from")], "recorded");
    }
    let table = explain("table");
    eprintln!("--- kubectl fivexx explain of the session's capture (the same verdicts)\n{table}");
    assert!(
        table.contains("SETTINGS  lookahead 5.0s (recorded), skew 1.0s (recorded)"),
        "{table}"
    );
    live
}

/// One trace session opens ONE port-forward to the agent of each node it
/// watches, however many scoped pods come and go there: here the node of
/// the first pods, and the node the rollout's pods start on mid-session.
/// Prints the counts first, so a failing run shows them.
fn one_stream_per_node(
    timeline: &[fivexx_lab::sim::timeline::LabEvent],
    stats: &fivexx_lab::control::apiserver::PortForwardStats,
) {
    // "node lab-node-2, revision abc": the nodes that hosted the
    // Deployment's pods during the run.
    let nodes: std::collections::BTreeSet<&str> = timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::PodCreated)
        .filter_map(|e| e.detail.strip_prefix("node ")?.split(',').next())
        .collect();
    let agents = stats.in_namespace("fivexx-system");
    eprintln!(
        "port-forwards accepted: {} in total; per agent pod {agents:?}; nodes with scoped pods {nodes:?}",
        stats.total
    );
    assert!(
        nodes.contains(NODE_2),
        "the rollout put no pod on {NODE_2}: {nodes:?}"
    );
    for node in &nodes {
        let to_node: u64 = agents
            .iter()
            .filter(|(pod, _)| pod.ends_with(&format!("-{node}")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            to_node, 1,
            "port-forwards to the agent on {node}: {to_node}, want exactly 1 for the session ({agents:?})"
        );
    }
    assert_eq!(
        stats.total,
        nodes.len() as u64,
        "port-forwards in total: {}, want one per node ({nodes:?}): {:?}",
        stats.total,
        stats.per_pod
    );
}
