//! What the lab scoring tests share: recording a scenario with the real
//! plugin and agent, explaining the capture, and reading the ground truth
//! and the report's numbers.

#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use fivexx_core::explain::{Cause, Verdict};
use fivexx_lab::harness::{ended_cleanly, run_plugin_during, AgentServe, PluginRun};
use fivexx_lab::node::load::RequestRecord;
use fivexx_lab::node::proxy::ProxyKind;
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams, ScenarioReport};

/// One lab at a time in this test binary: the tests (one per proxy) run
/// on parallel threads, and a lab run waits at most 10 minutes for the
/// machine's lab lock, less than three proxies' scoring takes.
pub fn lab_turn() -> std::sync::MutexGuard<'static, ()> {
    static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LAB.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the kernel sees go wrong with an upstream, by construction of a
/// scenario; each proxy answers each in its own status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFact {
    /// RST to the SYN (or ICMP unreachable).
    RefusedConnect,
    /// No answer to the SYN: the netns (or node) is gone.
    ConnectTimeout,
    /// A pooled keep-alive connection the backend closed.
    PooledConnectionClosed,
    /// The backend killed while answering.
    KilledMidResponse,
    /// The Service has no ready endpoint: the proxy answers itself.
    NoEndpoints,
    /// A request on a pooled connection into a node that vanished: no
    /// answer, no reset, until the proxy's read timeout.
    UpstreamSilent,
}

/// The statuses `proxy` answers `fact` with (issue 15's table): nginx's
/// 502/504; Envoy's 503 for every upstream failure (UF, UC, UH), 504 for a
/// connect timeout only when its route times out first; HAProxy's 503
/// for a failed connect (SC, sC) or no server, 502 for a server that
/// aborted (SH, SD), 504 for a timeout.
pub fn status_of(proxy: ProxyKind, fact: KernelFact) -> &'static [u16] {
    use KernelFact::*;
    match (proxy, fact) {
        (ProxyKind::Nginx, RefusedConnect) => &[502],
        (ProxyKind::Nginx, ConnectTimeout) => &[504],
        (ProxyKind::Nginx, PooledConnectionClosed | KilledMidResponse) => &[502],
        (_, NoEndpoints) => &[503],
        (_, UpstreamSilent) => &[504],
        (ProxyKind::Envoy, ConnectTimeout) => &[503, 504],
        (ProxyKind::Envoy, _) => &[503],
        (ProxyKind::Haproxy, RefusedConnect) => &[503, 502],
        (ProxyKind::Haproxy, ConnectTimeout) => &[503, 504],
        (ProxyKind::Haproxy, PooledConnectionClosed | KilledMidResponse) => &[502],
    }
}

/// The kernel facts a scenario produces, by construction.
pub fn scenario_facts(kind: ScenarioKind) -> &'static [KernelFact] {
    use KernelFact::*;
    match kind {
        // The old pod's process exits while the ingress still routes to
        // it: new connects are refused, pooled ones find it closed.
        ScenarioKind::RolloutNoPrestop | ScenarioKind::Drain | ScenarioKind::PrestopFailed => {
            &[RefusedConnect, PooledConnectionClosed]
        }
        ScenarioKind::IgnoreSigterm => &[KilledMidResponse, RefusedConnect, PooledConnectionClosed],
        ScenarioKind::KeepaliveRace => &[PooledConnectionClosed, RefusedConnect],
        ScenarioKind::PrestopFixed => &[],
        ScenarioKind::IpGone => &[ConnectTimeout, RefusedConnect],
        ScenarioKind::Oom => &[KilledMidResponse, RefusedConnect],
        ScenarioKind::Recreate => &[RefusedConnect, PooledConnectionClosed, NoEndpoints],
        ScenarioKind::KeepaliveIdle => &[PooledConnectionClosed],
        ScenarioKind::NodeLost => &[ConnectTimeout, UpstreamSilent],
        // The load balancer's connects to a pod it has not deregistered:
        // refused while the pod's netns lives, silent after.
        ScenarioKind::LbDeregistrationLag => &[RefusedConnect, ConnectTimeout],
        // The clients' own connections fail at the proxy: no 5xx at all
        // (see [`client_failures`]).
        ScenarioKind::ProxyTerminated => &[],
    }
}

/// The statuses a scenario's causes make `proxy` answer.
pub fn scenario_statuses(proxy: ProxyKind, kind: ScenarioKind) -> Vec<u16> {
    let mut v: Vec<u16> = scenario_facts(kind)
        .iter()
        .flat_map(|f| status_of(proxy, *f).iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

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
        ScenarioKind::KeepaliveIdle => &[Cause::KeepAliveIdleTimeout],
        ScenarioKind::NodeLost => &[Cause::NodeLost],
        ScenarioKind::LbDeregistrationLag => &[Cause::LbDeregistrationLag],
        ScenarioKind::ProxyTerminated => &[Cause::ProxyTerminated],
    }
}

/// Whether a scenario's failed requests are the clients' own failed
/// connections (refused, reset) rather than 5xx: the proxy tier itself
/// went away under them.
pub fn client_failures(kind: ScenarioKind) -> bool {
    kind == ScenarioKind::ProxyTerminated
}

/// The failed requests the load generator saw for `kind`: its 5xx, and
/// its failed connections where those are the scenario's failures.
pub fn failed_requests(kind: ScenarioKind, records: &[RequestRecord]) -> u64 {
    records
        .iter()
        .filter(|r| r.is_5xx() || (client_failures(kind) && r.status.is_none()))
        .count() as u64
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
    // FIVEXX_KEEP keeps the run's capture and lab files, for a person.
    if std::env::var_os("FIVEXX_KEEP").is_some() {
        show(&format!("{name}: kept {}", out_dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&out_dir);
    }
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
    let out_dir = std::env::temp_dir().join(format!(
        "fxlab-{tag}-{name}-{}-{}",
        params.proxy.name(),
        std::process::id()
    ));
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
    // A lost node takes its agent along: the capture goes on with the
    // other nodes and ends saying so, with a non-zero exit.
    let err = String::from_utf8_lossy(&cap.stderr);
    let lost_agent = params.kind == ScenarioKind::NodeLost
        && err.contains("the agent on node lab-node-2 died mid-trace");
    assert!(
        ended_cleanly(&cap) || lost_agent,
        "{name}: capture failed: {err}"
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
/// or 5xx) that `X-Upstream-Status` lists, but the last one of a request
/// that still failed (its 5xx is that try's), as Envoy's and HAProxy's
/// retry counters count every retry whatever the request's end.
pub fn retried_tries(records: &[RequestRecord]) -> u64 {
    let failed_try = |s: &str| s.trim().parse::<u16>().map_or(true, |c| c >= 500);
    records
        .iter()
        .filter_map(|r| Some((r.is_5xx(), r.upstream_status.as_deref()?)))
        .map(|(failed, s)| {
            let n = s.split([',', ':']).filter(|x| failed_try(x)).count() as u64;
            // A request that still failed: its 5xx is its last try's.
            if failed {
                n.saturating_sub(1)
            } else {
                n
            }
        })
        .sum()
}

/// Envoy's own per-request account: the retries `x-envoy-attempt-count`
/// reports (attempts past the first) over every request.
pub fn envoy_attempt_retries(records: &[RequestRecord]) -> u64 {
    records
        .iter()
        .filter_map(|r| r.attempts)
        .map(|a| u64::from(a.saturating_sub(1)))
        .sum()
}

/// A per-cause count of the report's `engine.http`, summed.
pub fn http_total(explained: &serde_json::Value, field: &str) -> u64 {
    explained["engine"]["http"][field]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0)
}

/// The scenarios in the order they run: the declared one, or reversed
/// with `FIVEXX_SCORE_ORDER=reverse` (each scenario brings its own lab up
/// and down, so the scores must not depend on the order).
pub fn scenario_order() -> Vec<ScenarioKind> {
    let mut kinds = ScenarioKind::ALL.to_vec();
    if std::env::var("FIVEXX_SCORE_ORDER").is_ok_and(|o| o == "reverse") {
        kinds.reverse();
    }
    kinds
}

/// A scenario's parameters in a line: the load, then every parameter that
/// differs from a rollout's defaults through the same proxy.
pub fn params_summary(p: &ScenarioParams) -> String {
    let base = flat(
        &serde_json::to_value(ScenarioParams::with_proxy(
            ScenarioKind::RolloutNoPrestop,
            p.proxy,
        ))
        .unwrap_or_default(),
    );
    let mine = flat(&serde_json::to_value(p).unwrap_or_default());
    let mut out = vec![format!(
        "rate={} load_ms={} warmup_ms={} replicas={}",
        p.rate, p.load_ms, p.warmup_ms, p.replicas
    )];
    for (k, v) in &mine {
        let shown = ["kind", "rate", "load_ms", "warmup_ms", "replicas", "proxy"];
        if !shown.contains(&k.as_str()) && base.get(k) != Some(v) {
            out.push(format!("{k}={v}"));
        }
    }
    out.join(" ")
}

/// `{"a": {"b": 1}}` as `a.b = 1`.
fn flat(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    walk("", v, &mut out);
    out
}

/// The scored rows of b85a75d (`baseline-b85a75d.tsv`): each row must run
/// with the same parameters and send at least as many requests (issue
/// 24: a faster lab, not a smaller one).
pub struct Baseline(std::collections::BTreeMap<(String, String), (u64, serde_json::Value)>);

impl Baseline {
    pub fn load() -> Baseline {
        let text = include_str!("baseline-b85a75d.tsv");
        let mut rows = std::collections::BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.splitn(5, '\t').collect();
            let [proxy, scenario, requests, _failed, params] = f[..] else {
                panic!("baseline-b85a75d.tsv: a row of 5 fields: {line}");
            };
            rows.insert(
                (proxy.to_string(), scenario.to_string()),
                (
                    requests.parse().expect("baseline requests"),
                    serde_json::from_str(params).expect("baseline params"),
                ),
            );
        }
        Baseline(rows)
    }

    /// Problems with a row that runs `params` and sent `requests`.
    pub fn check(&self, params: &ScenarioParams, requests: u64, problems: &mut Vec<String>) {
        let name = params.kind.name();
        let key = (params.proxy.name().to_string(), name.to_string());
        let Some((want, base)) = self.0.get(&key) else {
            problems.push(format!("{name}: no baseline row for it through {}", key.0));
            return;
        };
        let mine = serde_json::to_value(params).unwrap_or_default();
        if mine != *base {
            problems.push(format!(
                "{name}: parameters differ from b85a75d's: {} (were {})",
                params_summary(params),
                base
            ));
        }
        if requests < *want {
            problems.push(format!(
                "{name}: {requests} requests, fewer than the {want} of b85a75d"
            ));
        }
    }
}
