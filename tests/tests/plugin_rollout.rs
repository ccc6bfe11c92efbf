//! The real `kubectl-fivexx trace deploy/web` during the lab's
//! `rollout-no-prestop`: the lab serves the running scenario through its
//! fake API server, the agent DaemonSet pod's port-forward reaches a real
//! `fivexx-agent serve` (eBPF, root), and the plugin must print the kernel
//! facts and the endpoint-lag verdicts for the pods that served 502s.

use std::path::Path;

use fivexx_lab::harness::{
    plugin_and_agent, run_plugin_during, skip_unless_root, AgentServe, PluginRun,
};
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams};

#[test]
fn plugin_trace_explains_rollout_no_prestop() {
    if skip_unless_root("plugin_trace_explains_rollout_no_prestop") {
        return;
    }
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let out_dir = std::env::temp_dir().join(format!("fxlab-plugin-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let params = ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop);
    let PluginRun {
        report,
        output: trace,
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
            "3s",
        ],
    );
    let stdout = String::from_utf8_lossy(&trace.stdout);
    let stderr = String::from_utf8_lossy(&trace.stderr);
    eprintln!("--- trace stdout\n{stdout}\n--- trace stderr\n{stderr}");
    assert!(trace.status.success(), "trace failed");
    assert!(
        report.summary.total_5xx() > 0,
        "the scenario produced no 5xx"
    );
    let affected = report.affected_ips();
    assert!(!affected.is_empty());
    // Kernel facts about the affected pods, one per line.
    let kernel_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            affected.iter().any(|ip| l.contains(&format!("{ip}:")))
                && !l.trim_start().starts_with("=>")
        })
        .collect();
    assert!(
        !kernel_lines.is_empty(),
        "no kernel fact about {affected:?}"
    );
    // Endpoint-lag verdicts for an affected pod, inline.
    let verdicts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("=>") && l.contains("endpoint lag"))
        .filter(|l| affected.iter().any(|ip| l.contains(&format!("to {ip} "))))
        .collect();
    assert!(
        !verdicts.is_empty(),
        "no endpoint-lag verdict for {affected:?}"
    );
    // Their fix quotes the lag this lab was configured with (1 s), within
    // 30% + 0.5 s: "... routing to terminating pods for p99 1.1 s over ...".
    let configured =
        ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop).endpoint_lag_ms as f64 / 1000.0;
    for l in &verdicts {
        let lag: f64 = l
            .split(" p99 ")
            .nth(1)
            .and_then(|r| r.split(" s").next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no measured lag in {l}"));
        assert!(
            (lag - configured).abs() <= configured * 0.3 + 0.5,
            "quoted lag {lag} s, configured {configured} s: {l}"
        );
    }
}
