//! What the lab scoring tests share: recording a scenario with the real
//! plugin and agent, explaining the capture, and reading the ground truth
//! and the report's numbers.

#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use fivexx_core::explain::{Cause, Verdict};
use fivexx_lab::harness::{run_plugin_during, AgentServe, PluginRun};
use fivexx_lab::node::load::RequestRecord;
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams, ScenarioReport};

/// Writes to the process's stderr directly: the test harness captures only
/// the print macros, and these figures are the point of the run, so they
/// belong in the CI log even when every assertion holds.
pub fn show(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// What a scenario's failures are caused by, by construction.
pub fn truth(kind: ScenarioKind) -> &'static [Cause] {
    match kind {
        ScenarioKind::RolloutNoPrestop | ScenarioKind::Drain => &[Cause::EndpointLagNetnsAlive],
        ScenarioKind::IgnoreSigterm => &[Cause::SigkillAtGraceExpiry, Cause::SigtermIgnored],
        ScenarioKind::KeepaliveRace => &[Cause::KeepAliveRace],
        ScenarioKind::PrestopFixed => &[],
        // Between the process's exit and the netns teardown the pod's
        // kernel still answers RST: those refusals are endpoint lag with
        // the netns alive, and the kernel facts prove it.
        ScenarioKind::IpGone => &[Cause::EndpointLagNetnsGone, Cause::EndpointLagNetnsAlive],
        ScenarioKind::Oom => &[Cause::OomKill],
        ScenarioKind::PrestopFailed => &[Cause::PrestopFailed],
        // The old pods' refusals while the ingress still routes to them,
        // then the ingress's own 503 while the Service has none.
        ScenarioKind::Recreate => &[Cause::NoEndpoints, Cause::EndpointLagNetnsAlive],
    }
}

/// One scenario recorded and explained.
pub struct Run {
    pub report: ScenarioReport,
    pub explained: serde_json::Value,
    pub verdicts: Vec<Verdict>,
}

pub fn record_and_explain(plugin: &Path, agent: &AgentServe, params: ScenarioParams) -> Run {
    let name = params.kind.name();
    let (report, capture, out_dir) = record(plugin, agent, params, "score");
    let out = std::process::Command::new(plugin)
        .args(["explain", &capture.display().to_string(), "-o", "json"])
        .args(["--max-verdicts", "1000000"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let explained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verdicts: Vec<Verdict> =
        serde_json::from_value(explained["verdicts"].clone()).expect("verdicts parse");
    let _ = std::fs::remove_dir_all(&out_dir);
    Run {
        report,
        explained,
        verdicts,
    }
}

/// Records a scenario with the real `kubectl-fivexx capture -n shop
/// --proxy-logs`: (the load generator's report, the capture, the run's
/// directory, which the caller removes).
pub fn record(
    plugin: &Path,
    agent: &AgentServe,
    params: ScenarioParams,
    tag: &str,
) -> (ScenarioReport, std::path::PathBuf, std::path::PathBuf) {
    let name = params.kind.name();
    let out_dir = std::env::temp_dir().join(format!("fxlab-{tag}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let capture = out_dir.join("capture.fxc");
    // The capture outlasts the load: warm-up, load, the lookahead the
    // engine needs for the last failures, and the lab's own set-up.
    let secs = (params.warmup_ms + params.load_ms) / 1000 + 20;
    // As a user would: the workload's namespace. The plugin adds the
    // ingress pods sending to it, and the agents pass only their events
    // (the host's own traffic stays out). The ingress's access log too:
    // each 5xx it logs must be the same answer the peek saw (counted
    // once, no second verdict).
    let PluginRun {
        report,
        output: cap,
        ..
    } = run_plugin_during(
        plugin,
        agent,
        &params,
        &out_dir,
        Path::new(env!("CARGO_BIN_EXE_fivexx-lab")),
        &[
            "capture",
            "-n",
            "shop",
            "-f",
            &capture.display().to_string(),
            "--duration",
            &format!("{secs}s"),
            "--proxy-logs",
        ],
    );
    assert!(
        cap.status.success(),
        "{name}: capture failed: {}",
        String::from_utf8_lossy(&cap.stderr)
    );
    (report, capture, out_dir)
}

/// The fix parameter `param` for `cause`, from the report's workloads.
pub fn fix_param(explained: &serde_json::Value, cause: Cause, param: &str) -> Option<f64> {
    let cause = serde_json::to_value(cause).ok()?;
    explained["workloads"]
        .as_array()?
        .iter()
        .flat_map(|w| w["fixes"].as_array().into_iter().flatten())
        .find(|f| f["cause"] == cause)
        .and_then(|f| f["params"][param].as_f64())
}

/// The cause whose fix quotes a scenario's endpoint lag.
pub fn lag_cause(kind: ScenarioKind) -> Option<Cause> {
    match kind {
        ScenarioKind::RolloutNoPrestop | ScenarioKind::Drain => Some(Cause::EndpointLagNetnsAlive),
        ScenarioKind::IpGone => Some(Cause::EndpointLagNetnsGone),
        ScenarioKind::PrestopFailed => Some(Cause::PrestopFailed),
        _ => None,
    }
}

/// The proxy's own account of its retries: the failed tries (status `-`
/// or 5xx) that `X-Upstream-Status` lists in requests answered below 500.
pub fn retried_tries(records: &[RequestRecord]) -> u64 {
    let failed_try = |s: &str| s.trim().parse::<u16>().map_or(true, |c| c >= 500);
    records
        .iter()
        .filter(|r| r.status.is_some_and(|s| s < 500))
        .filter_map(|r| r.upstream_status.as_deref())
        .map(|s| s.split([',', ':']).filter(|x| failed_try(x)).count() as u64)
        .sum()
}

/// A per-cause count of the report's `engine.http`, summed.
pub fn http_total(explained: &serde_json::Value, field: &str) -> u64 {
    explained["engine"]["http"][field]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0)
}
