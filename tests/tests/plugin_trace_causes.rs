//! The real `kubectl-fivexx trace -n shop` live, during lab scenarios of
//! the causes issues 15 and 16 added, each through a different proxy: the
//! incident view must print a closed burst naming the scenario's cause,
//! with its `fix:` quoting a number the scenario was configured with, and
//! the bursts must count the load generator's failed requests once each.
//!
//! Cases (scenario, proxy, what the burst says):
//! - rollout-no-prestop through Envoy: its 503s are endpoint lag;
//! - recreate through nginx: no endpoints, with how long;
//! - prestop-failed through HAProxy: the preStop hook failed;
//! - keepalive-idle through Envoy: the backend's idle timeout.

use std::path::Path;

use fivexx_lab::harness::{
    burst_lines, plugin_and_agent, run_plugin_during, skip_unless_root, AgentServe, BurstLine,
};
use fivexx_lab::node::proxy::ProxyKind;
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams};

/// The first number before ` s` after `marker` in `text`.
fn seconds_after(text: &str, marker: &str) -> Option<f64> {
    let rest = text.split(marker).nth(1)?;
    rest.trim_start().split(" s").next()?.trim().parse().ok()
}

/// Runs `kind` through `proxy` under `trace` and checks the incident view:
/// a burst naming `label`, its fix quoting `configured_s` (after
/// `marker`) within 30% + 0.5 s, and the bursts adding up to the load
/// generator's 5xx.
fn trace_shows(
    plugin: &Path,
    agent: &AgentServe,
    params: ScenarioParams,
    label: &str,
    marker: &str,
    configured_s: f64,
) {
    let name = format!("{}-{:?}", params.kind.name(), params.proxy).to_lowercase();
    let out_dir = std::env::temp_dir().join(format!("fxlab-trace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let secs = (params.warmup_ms + params.load_ms) / 1000 + 12;
    let duration = format!("{secs}s");
    // Kept when an assertion fails, for `kubectl fivexx explain` by hand.
    let capture = out_dir.join("trace.fxc").display().to_string();
    let run = run_plugin_during(
        plugin,
        agent,
        &params,
        &out_dir,
        Path::new(env!("CARGO_BIN_EXE_fivexx-lab")),
        &[
            "trace",
            "-n",
            "shop",
            "--duration",
            &duration,
            "--capture",
            &capture,
        ],
    );
    let stdout = String::from_utf8_lossy(&run.output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    eprintln!("--- {name}: trace stdout\n{stdout}--- stderr\n{stderr}--- capture {capture}");
    assert!(run.output.status.success(), "{name}: trace failed");
    let load_5xx = run.report.summary.total_5xx();
    assert!(load_5xx > 0, "{name}: the scenario produced no 5xx");
    let all = burst_lines(&stdout);
    let ours: Vec<&BurstLine> = all.iter().filter(|b| b.line.contains(label)).collect();
    assert!(!ours.is_empty(), "{name}: no burst says {label:?}");
    for b in &ours {
        let fix = b
            .fix
            .unwrap_or_else(|| panic!("{name}: no fix under {}", b.line));
        let quoted = seconds_after(fix, marker)
            .unwrap_or_else(|| panic!("{name}: no {marker:?} number in the fix {fix}"));
        assert!(
            (quoted - configured_s).abs() <= configured_s * 0.3 + 0.5,
            "{name}: the fix quotes {quoted} s, the scenario has {configured_s} s: {fix}"
        );
    }
    let counted: u64 = all.iter().map(|b| b.count).sum();
    assert_eq!(
        counted, load_5xx,
        "{name}: the bursts count {counted} failed requests, the load generator got {load_5xx} 5xx"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn trace_shows_each_new_cause_live_with_its_fix() {
    if skip_unless_root("trace_shows_each_new_cause_live_with_its_fix") {
        return;
    }
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let only = std::env::var("FIVEXX_TRACE_ONLY")
        .ok()
        .filter(|s| !s.is_empty());
    let ran = std::cell::Cell::new(0);
    let wanted = |k: ScenarioKind| {
        let yes = only.as_deref().is_none_or(|o| o == k.name());
        ran.set(ran.get() + u32::from(yes));
        yes
    };

    if wanted(ScenarioKind::RolloutNoPrestop) {
        let p = ScenarioParams::with_proxy(ScenarioKind::RolloutNoPrestop, ProxyKind::Envoy);
        let lag = p.endpoint_lag_ms as f64 / 1000.0;
        trace_shows(&plugin, &agent, p, "endpoint lag", " p99 ", lag);
    }
    if wanted(ScenarioKind::Recreate) {
        let p = ScenarioParams::with_proxy(ScenarioKind::Recreate, ProxyKind::Nginx);
        // Every old pod goes at once; the new ones are ready after their
        // readiness delay: the time with no ready endpoint.
        let zero = p.readiness_delay_ms as f64 / 1000.0;
        trace_shows(
            &plugin,
            &agent,
            p,
            "no endpoints",
            "no ready endpoint for ",
            zero,
        );
    }
    if wanted(ScenarioKind::PrestopFailed) {
        let p = ScenarioParams::with_proxy(ScenarioKind::PrestopFailed, ProxyKind::Haproxy);
        let lag = p.endpoint_lag_ms as f64 / 1000.0;
        trace_shows(&plugin, &agent, p, "preStop hook failed", " p99 ", lag);
    }
    if wanted(ScenarioKind::KeepaliveIdle) {
        let p = ScenarioParams::with_proxy(ScenarioKind::KeepaliveIdle, ProxyKind::Envoy);
        let idle = p.idle_timeout_ms as f64 / 1000.0;
        trace_shows(
            &plugin,
            &agent,
            p,
            "idle keep-alive timeout",
            "idle connections after ",
            idle,
        );
    }
    assert!(ran.get() > 0, "FIVEXX_TRACE_ONLY={only:?} names no case");
}
