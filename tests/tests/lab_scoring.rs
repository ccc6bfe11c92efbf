//! Scores the explain engine against the lab's ground truth (issues #4, #6
//! and #15): each lab scenario runs under the real agent through each of
//! the three ingress proxies (nginx, Envoy, HAProxy: one test and one
//! table per proxy), the real `kubectl-fivexx capture -n shop` records it
//! through the lab's fake API server (with the HTTP peek on the ingress
//! proxy), `kubectl-fivexx explain -o json` explains the capture, and the
//! verdicts are scored against what the load generator saw:
//!
//! - every 5xx of the statuses the scenario's kernel facts make this proxy
//!   answer (nginx 502/504, Envoy 503, HAProxy 503/502; see
//!   [`scoring::status_of`]) must be matched, by its client port, to a 5xx
//!   the kernel saw the proxy write (recall >= 0.99);
//! - per cause, precision (verdicts whose cause is the scenario's) >= 0.95
//!   and recall (those 5xx whose verdict has the scenario's cause) >= 0.90;
//! - where no proxy of the cluster answers, the failed requests are matched
//!   to the kernel's failed connections instead: a load balancer outside
//!   the cluster (`lb-deregistration-lag`) by the upstream its 5xx names
//!   and the time, the clients' own failed connections to a terminating
//!   proxy replica (`proxy-terminated`) by the client's port;
//! - `prestop-fixed` gets zero verdicts;
//! - the fixes quote the scenario's parameters (preStop lag within 30% +
//!   0.5 s of the configured endpoint lag; the configured grace period).
//!
//! The tables are written straight to stderr (see [`show`]), so they are in
//! every `make test` log, not only under `--nocapture`.
//!
//! This file is longer than 600 lines because the scoring, the checks of
//! counts, names and fixes, and the per-proxy tests share one Score type
//! and read best next to each other.

mod scoring;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use fivexx_core::explain::{Cause, FailureKind, Verdict};
use fivexx_lab::harness::{plugin_and_agent, skip_unless_root, AgentServe};
use fivexx_lab::node::load::RequestRecord;
use fivexx_lab::node::proxy::ProxyKind;
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams};
use fivexx_lab::sim::timeline::LabEventKind;
use scoring::{
    envoy_attempt_retries, fix_param, http_total, lab_turn, lag_cause, record_and_explain,
    retried_tries, scenario_statuses, show, truth,
};

/// Scores of one scenario.
#[derive(Debug, Default)]
struct Score {
    /// Verdicts per cause, and those whose cause is the scenario's.
    by_cause: BTreeMap<Cause, (u64, u64)>,
    /// 5xx of the scenario's statuses the load generator got; matched to a
    /// kernel-seen 5xx of the same status; of those, with a verdict of the
    /// scenario's cause.
    truth_5xx: u64,
    matched_5xx: u64,
    right_cause_5xx: u64,
}

impl Score {
    fn precision(&self) -> f64 {
        let (n, ok) = self
            .by_cause
            .iter()
            .filter(|(c, _)| **c != Cause::Unexplained)
            .fold((0, 0), |(n, ok), (_, (a, b))| (n + a, ok + b));
        if n == 0 {
            1.0
        } else {
            ok as f64 / n as f64
        }
    }

    fn recall(&self) -> f64 {
        ratio(self.right_cause_5xx, self.truth_5xx)
    }

    fn http_recall(&self) -> f64 {
        ratio(self.matched_5xx, self.truth_5xx)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

fn score(
    proxy: ProxyKind,
    kind: ScenarioKind,
    records: &[RequestRecord],
    verdicts: &[Verdict],
) -> Score {
    let want = truth(kind);
    let statuses = scenario_statuses(proxy, kind);
    let mut s = Score::default();
    for v in verdicts {
        let e = s.by_cause.entry(v.cause).or_default();
        e.0 += 1;
        if want.contains(&v.cause) {
            e.1 += 1;
        }
    }
    // Kernel-seen 5xx by the client port the proxy answered on.
    let mut answers: HashMap<(u16, u16), Vec<&Verdict>> = HashMap::new();
    for v in verdicts {
        if let Some(a) = v.failure.answer() {
            if let (FailureKind::Http5xx, Some(t)) = (a.kind, a.tuple) {
                answers.entry((t.dport, a.http_status)).or_default().push(v);
            }
        }
    }
    // A load balancer outside the cluster answers where no peek sees:
    // its failed requests are matched to the failed connections to the
    // upstream it names, in time order, one each.
    let mut outside = OutsideMatch::of(verdicts);
    // A client's own failed connection (the proxy tier gone under it) is
    // the kernel's record of that connection: the proxy's address and the
    // client's port.
    let by_client_port: HashMap<(String, u16), &Verdict> = verdicts
        .iter()
        .filter_map(|v| {
            let c = v.failure.connection()?;
            Some(((c.tuple.daddr.to_string(), c.tuple.sport), v))
        })
        .collect();
    for r in records.iter().filter(|_| scoring::client_failures(kind)) {
        let (None, Some(target), Some(port)) = (r.status, r.target, r.local_port) else {
            continue;
        };
        s.truth_5xx += 1;
        if let Some(v) = by_client_port.get(&(target.ip().to_string(), port)) {
            s.matched_5xx += 1;
            if want.contains(&v.cause) {
                s.right_cause_5xx += 1;
            }
        }
    }
    for r in records {
        let Some(status) = r.status.filter(|s| statuses.contains(s)) else {
            continue;
        };
        s.truth_5xx += 1;
        if kind == ScenarioKind::LbDeregistrationLag {
            if let Some(v) = outside.take(r) {
                s.matched_5xx += 1;
                if want.contains(&v.cause) {
                    s.right_cause_5xx += 1;
                }
            }
            continue;
        }
        let Some(port) = r.local_port else { continue };
        let Some(vs) = answers.get(&(port, status)) else {
            continue;
        };
        // Ports are not reused within a run; the nearest in time if so.
        let Some(v) = vs.iter().min_by_key(|v| (v.at_ns() - r.done.wall_ns).abs()) else {
            continue;
        };
        s.matched_5xx += 1;
        if want.contains(&v.cause) {
            s.right_cause_5xx += 1;
        }
    }
    s
}

/// The verdicts on failed connections, by the address they went to, for
/// matching a load balancer's failed requests (which name the upstream)
/// to the connections behind them.
struct OutsideMatch<'a> {
    by_upstream: HashMap<String, Vec<(&'a Verdict, bool)>>,
}

impl<'a> OutsideMatch<'a> {
    fn of(verdicts: &'a [Verdict]) -> OutsideMatch<'a> {
        let mut by_upstream: HashMap<String, Vec<(&Verdict, bool)>> = HashMap::new();
        for v in verdicts {
            if let Some(c) = v.failure.connection() {
                by_upstream
                    .entry(c.tuple.daddr.to_string())
                    .or_default()
                    .push((v, false));
            }
        }
        for vs in by_upstream.values_mut() {
            vs.sort_by_key(|(v, _)| v.failure.connection().map(|c| c.attempt_ns()));
        }
        OutsideMatch { by_upstream }
    }

    /// The earliest unused failed connection to `r`'s upstream begun while
    /// `r` was in flight (50 ms either side: two clocks of one machine).
    fn take(&mut self, r: &RequestRecord) -> Option<&'a Verdict> {
        const SLACK: i64 = 50_000_000;
        let vs = self.by_upstream.get_mut(&r.upstream_ip()?)?;
        let (from, to) = (r.sent.wall_ns - SLACK, r.done.wall_ns + SLACK);
        let hit = vs.iter_mut().find(|(v, used)| {
            !*used
                && v.failure
                    .connection()
                    .is_some_and(|c| (from..=to).contains(&c.attempt_ns()))
        })?;
        hit.1 = true;
        Some(hit.0)
    }
}

/// One failed request, one count: the report's failures, per cause,
/// are the failed requests the load generator saw (its 5xx; the proxy's
/// retried tries are counted apart, as hidden by retry). A scenario with
/// two acceptable causes is checked over both together, and a verdict of
/// another cause is a miscount.
fn check_counts(kind: ScenarioKind, run: &scoring::Run, problems: &mut Vec<String>) {
    let name = kind.name();
    let proxy = run.report.params.proxy;
    let statuses = scenario_statuses(proxy, kind);
    let load = scoring::failed_requests(kind, &run.report.records);
    let totals = &run.explained["totals"];
    let failures = totals["failures"].as_u64().unwrap_or(0);
    let count = |c: &Cause| {
        let key = serde_json::to_value(c).unwrap();
        totals["by_cause"][key.as_str().unwrap()]
            .as_u64()
            .unwrap_or(0)
    };
    let of_scenario: u64 = truth(kind).iter().map(count).sum();
    // The statuses the scenario's causes produce, by construction; a 5xx
    // of another status (the OOM scenario's occasional 503, issue #16) is
    // counted in the total but its cause is not the scenario's to judge.
    let of_statuses: u64 = run
        .report
        .records
        .iter()
        .filter(|r| {
            r.status.is_some_and(|s| statuses.contains(&s))
                || (scoring::client_failures(kind) && r.status.is_none())
        })
        .count() as u64;
    show(&format!(
        "  {name}: load generator {load} failed requests; report {failures} failed requests, {of_scenario} of the scenario's cause(s) {:?}; by status {}",
        truth(kind),
        totals["by_status"]
    ));
    // The external load balancer's health checks that failed among its
    // traffic look like traffic (one per pod every 5 s, a few in a lag):
    // counted, up to 1 % + 3 (issue 17's note says so).
    let checks_in_traffic = if kind == ScenarioKind::LbDeregistrationLag {
        load / 100 + 3
    } else {
        0
    };
    if failures < load || failures > load + checks_in_traffic {
        problems.push(format!(
            "{name}: the report counts {failures} failed requests, the load generator saw {load}"
        ));
    }
    // Recreate: the proxy's own 503s, with no upstream picked, are the
    // stretch with no endpoint; its answers for a refused upstream (nginx
    // 502, Envoy and HAProxy 503 naming the server) are the refusals
    // before it; neither may take the other's cause.
    let own_503 = run
        .report
        .records
        .iter()
        .filter(|r| r.status == Some(503) && r.upstream.is_none())
        .count() as u64;
    if kind == ScenarioKind::Recreate
        && count(&Cause::NoEndpoints).abs_diff(own_503) > misattributed_slack(own_503)
    {
        problems.push(format!(
            "{name}: {} no-endpoints failures, the load generator got {own_503} 503s with no upstream",
            count(&Cause::NoEndpoints),
        ));
    }
    // The totals match exactly; a verdict of another cause (1 of 636 in
    // one ip-gone run) is a misattribution, allowed up to the precision
    // bound's share of 0.5 % (at least one). An unexplained one is no
    // misattribution: those are bounded by recall (0.90), as the issue's
    // bar says (9 of 209 HAProxy 502 SH at SIGKILL, whose log names a
    // server slot and several pods died then).
    let unexplained = count(&Cause::Unexplained);
    let misattributed = of_statuses
        .saturating_sub(of_scenario)
        .saturating_sub(unexplained);
    if of_scenario > of_statuses + misattributed_slack(of_statuses)
        || misattributed > misattributed_slack(of_statuses)
        || of_scenario * 10 < of_statuses * 9
    {
        problems.push(format!(
            "{name}: {of_scenario} failures of the scenario's cause(s), the load generator saw {of_statuses} failed requests with its statuses {statuses:?}",
        ));
    }
}

/// How many of `n` failed requests may carry another cause than the
/// scenario's: 0.5 %, at least one.
fn misattributed_slack(n: u64) -> u64 {
    n / 200 + 1
}

/// Workloads first: the rollout and drain reports name the Deployment,
/// give one fix per workload and cause, and a next command with the
/// lab's real names (namespace shop, Service web).
fn check_names(kind: ScenarioKind, explained: &serde_json::Value, problems: &mut Vec<String>) {
    if !matches!(kind, ScenarioKind::RolloutNoPrestop | ScenarioKind::Drain) {
        return;
    }
    let name = kind.name();
    let episode = explained["episodes"][0]["label"].as_str().unwrap_or("");
    let want = match kind {
        ScenarioKind::Drain => "drain of node lab-node",
        _ => "rollout of deployment shop/web",
    };
    let w = &explained["workloads"][0];
    let label = w["label"].as_str().unwrap_or("");
    let fixes: Vec<&serde_json::Value> = w["fixes"].as_array().into_iter().flatten().collect();
    let causes: std::collections::BTreeSet<String> =
        fixes.iter().map(|f| f["cause"].to_string()).collect();
    let next: Vec<&str> = w["next"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["command"].as_str())
        .collect();
    show(&format!(
        "  {name}: episode \"{episode}\"; workload \"{label}\"; {} fix(es); next: {next:?}",
        fixes.len()
    ));
    if !episode.starts_with(want) {
        problems.push(format!(
            "{name}: first episode \"{episode}\", want \"{want}...\""
        ));
    }
    if label != "deployment shop/web" {
        problems.push(format!(
            "{name}: first workload \"{label}\", want deployment shop/web"
        ));
    }
    if fixes.is_empty() || causes.len() != fixes.len() {
        problems.push(format!("{name}: fixes {fixes:?}, want one per cause"));
    }
    let lag_next = "kubectl get endpointslices -n shop -l kubernetes.io/service-name=web -w";
    if !next.contains(&lag_next) {
        problems.push(format!(
            "{name}: next commands {next:?}, want \"{lag_next}\""
        ));
    }
}

/// A fix parameter that must quote a scenario setting within the bar
/// (30 % + 0.5 s): the endpoint lag, the backend's idle timeout, the
/// node-monitor grace period.
struct Quoted {
    cause: Cause,
    param: &'static str,
    /// The FIX column's words: "lag 1.18 s (configured 1 s)".
    what: &'static str,
    setting: &'static str,
}

impl Quoted {
    /// The FIX column's entry; a mismatch or a missing parameter goes to
    /// `problems`.
    fn check(
        &self,
        explained: &serde_json::Value,
        name: &str,
        configured: f64,
        problems: &mut Vec<String>,
    ) -> String {
        let (what, setting) = (self.what, self.setting);
        let Some(q) = fix_param(explained, self.cause, self.param) else {
            problems.push(format!(
                "{name}: no {} in the {:?} fix",
                self.param, self.cause
            ));
            return "-".into();
        };
        if (q - configured).abs() > configured * 0.3 + 0.5 {
            problems.push(format!(
                "{name}: the {:?} fix quotes {what} {q} s ({}), {setting} {configured} s",
                self.cause, self.param
            ));
        }
        format!("{what} {q:.2} s ({setting} {configured} s)")
    }
}

/// The fix parameter a scenario's fix must quote, and the setting it must
/// match: the endpoint lag, the backend's idle timeout, the node-monitor
/// grace period, the load balancer's lag, the clients' lag.
fn quoted_setting(kind: ScenarioKind, params: &ScenarioParams) -> Option<(Quoted, f64)> {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let (cause, param, what, setting, configured) = match (kind, lag_cause(kind)) {
        (_, Some(c)) => (
            c,
            "lag_p99_s",
            "lag",
            "configured",
            secs(params.endpoint_lag_ms),
        ),
        // The backend's idle timeout, as the kernel measured it at close.
        (ScenarioKind::KeepaliveIdle, None) => (
            Cause::KeepAliveIdleTimeout,
            "backend_idle_p50_s",
            "idle",
            "configured",
            secs(params.idle_timeout_ms),
        ),
        // From the node's last word to the endpoints dropping its pods:
        // the node-monitor grace period (the agent's last message is up
        // to its 1 s heartbeat before the node vanished).
        (ScenarioKind::NodeLost, None) => (
            Cause::NodeLost,
            "endpoints_kept_p50_s",
            "kept",
            "grace",
            secs(params.node_monitor_grace_ms),
        ),
        // From SIGTERM to the load balancer's last connection: the
        // endpoint update reaching its controller, then its deregistration.
        (ScenarioKind::LbDeregistrationLag, None) => (
            Cause::LbDeregistrationLag,
            "lb_lag_p50_s",
            "lb lag",
            "lag+deregistration",
            secs(params.endpoint_lag_ms + params.lb_deregistration_ms),
        ),
        // From the proxy pod's deletion to the clients' balancer dropping
        // it; the proxy stops accepting at once on SIGTERM.
        (ScenarioKind::ProxyTerminated, None) => (
            Cause::ProxyTerminated,
            "client_window_p50_s",
            "window",
            "client lag",
            secs(params.client_lag_ms),
        ),
        _ => return None,
    };
    let quoted = Quoted {
        cause,
        param,
        what,
        setting,
    };
    Some((quoted, configured))
}

/// The fixes quote the scenario's own numbers (the endpoint lag, the grace
/// period): what the FIX column shows, with any mismatch in `problems`.
fn check_fixes(
    kind: ScenarioKind,
    params: &ScenarioParams,
    run: &scoring::Run,
    problems: &mut Vec<String>,
) -> String {
    let explained = &run.explained;
    let name = kind.name();
    let mut fix = String::from("-");
    if let Some((quoted, configured)) = quoted_setting(kind, params) {
        fix = quoted.check(explained, name, configured, problems);
    }
    if kind == ScenarioKind::Recreate {
        // The lab's own account: from the last old pod leaving the
        // endpoints to the first new pod ready.
        let tl = &run.report.timeline;
        let at = |k: LabEventKind| tl.iter().filter(move |e| e.kind == k).map(|e| e.at.wall_ns);
        let removed = at(LabEventKind::EndpointRemoved).max();
        let ready = removed.and_then(|r| at(LabEventKind::PodReady).filter(|t| *t > r).min());
        match (
            removed.zip(ready),
            fix_param(explained, Cause::NoEndpoints, "no_endpoints_s"),
        ) {
            (Some((r, t)), Some(q)) => {
                let truth = (t - r) as f64 / 1e9;
                fix = format!("no endpoints {q:.2} s (lab {truth:.2} s)");
                if (q - truth).abs() > truth * 0.3 + 0.5 {
                    problems.push(format!(
                        "{name}: fix quotes {q} s without endpoints, the lab had {truth:.2} s"
                    ));
                }
            }
            (truth, quoted) => problems.push(format!(
                "{name}: no-endpoints stretch: lab {truth:?}, quoted {quoted:?}"
            )),
        }
    }
    if kind == ScenarioKind::IgnoreSigterm {
        let configured = params.grace_ms as f64 / 1000.0;
        let grace = fix_param(explained, Cause::SigkillAtGraceExpiry, "grace_s")
            .or_else(|| fix_param(explained, Cause::SigtermIgnored, "grace_s"));
        match grace {
            Some(g) => {
                fix = format!("grace {g} s (configured {configured} s)");
                if (g - configured).abs() > 0.01 {
                    problems.push(format!(
                        "{name}: fix quotes grace {g} s, configured {configured} s"
                    ));
                }
            }
            None => problems.push(format!("{name}: no grace in the SIGKILL fix")),
        }
    }
    fix
}

/// The table of scores per scenario and, pooled, per cause; a pooled
/// cause's precision below 0.95 is a problem.
/// One scored scenario: its scores, the fix it quoted, and what it ran
/// (the load generator's requests and failed requests, its parameters).
struct Row {
    name: &'static str,
    score: Score,
    fix: String,
    requests: u64,
    failed: u64,
    params: String,
}

fn score_table(rows: &[Row], problems: &mut Vec<String>) -> String {
    let mut table = String::new();
    writeln!(
        table,
        "\n{:<20} {:>8} {:>6} {:>8} {:>9} {:>9} {:>9} {:>8} {:>10}  {:<}",
        "SCENARIO",
        "REQUESTS",
        "FAILED",
        "VERDICTS",
        "PRECISION",
        "5XX",
        "MATCHED",
        "RECALL",
        "HTTP-REC",
        "FIX"
    )
    .unwrap();
    for Row {
        name,
        score: s,
        fix,
        requests,
        failed,
        params,
    } in rows
    {
        let n: u64 = s.by_cause.values().map(|x| x.0).sum();
        writeln!(
            table,
            "{:<20} {:>8} {:>6} {:>8} {:>9.3} {:>9} {:>9} {:>8.3} {:>10.3}  {}",
            name,
            requests,
            failed,
            n,
            s.precision(),
            s.truth_5xx,
            s.matched_5xx,
            s.recall(),
            s.http_recall(),
            fix
        )
        .unwrap();
        writeln!(table, "    params: {params}").unwrap();
        for (c, (all, ok)) in &s.by_cause {
            writeln!(
                table,
                "    {:<28} {:>6} verdicts, {:>6} of the scenario's cause",
                c.label(),
                all,
                ok
            )
            .unwrap();
        }
    }
    // Per cause over all scenarios: precision of the verdicts naming it,
    // recall over the 502/504 of the scenarios it causes.
    let mut pooled: BTreeMap<Cause, (u64, u64, u64, u64)> = BTreeMap::new();
    for Row { name, score: s, .. } in rows {
        let kind = ScenarioKind::ALL
            .into_iter()
            .find(|k| k.name() == *name)
            .unwrap();
        for (c, (all, ok)) in &s.by_cause {
            let e = pooled.entry(*c).or_default();
            e.0 += all;
            e.1 += ok;
        }
        // A scenario with two acceptable causes (ignore-sigterm: SIGTERM
        // ignored, or the SIGKILL at grace expiry) credits its 502/504 to
        // the one its verdicts name most, so the row shows the real recall.
        let credited = truth(kind)
            .iter()
            .max_by_key(|c| (s.by_cause.get(c).map_or(0, |x| x.0), std::cmp::Reverse(**c)));
        if let Some(c) = credited {
            let e = pooled.entry(*c).or_default();
            e.2 += s.truth_5xx;
            e.3 += s.right_cause_5xx;
        }
    }
    writeln!(
        table,
        "\n{:<28} {:>8} {:>9} {:>9} {:>8}",
        "CAUSE", "VERDICTS", "PRECISION", "5XX", "RECALL"
    )
    .unwrap();
    for (c, (all, ok, truth_n, right)) in &pooled {
        if *c == Cause::Unexplained {
            writeln!(
                table,
                "{:<28} {:>8} {:>9} {:>9} {:>8}",
                c.label(),
                all,
                "-",
                "-",
                "-"
            )
            .unwrap();
            continue;
        }
        if *all == 0 && *truth_n == 0 {
            continue;
        }
        writeln!(
            table,
            "{:<28} {:>8} {:>9.3} {:>9} {:>8.3}",
            c.label(),
            all,
            ratio(*ok, *all),
            truth_n,
            ratio(*right, *truth_n)
        )
        .unwrap();
        if *c != Cause::Unexplained && *all > 0 && ratio(*ok, *all) < 0.95 {
            problems.push(format!(
                "{}: precision {:.3} < 0.95",
                c.label(),
                ratio(*ok, *all)
            ));
        }
    }
    table
}

#[test]
fn nginx_scores_against_the_lab_ground_truth() {
    score_proxy(
        ProxyKind::Nginx,
        "nginx_scores_against_the_lab_ground_truth",
    );
}

#[test]
fn envoy_scores_against_the_lab_ground_truth() {
    score_proxy(
        ProxyKind::Envoy,
        "envoy_scores_against_the_lab_ground_truth",
    );
}

#[test]
fn haproxy_scores_against_the_lab_ground_truth() {
    score_proxy(
        ProxyKind::Haproxy,
        "haproxy_scores_against_the_lab_ground_truth",
    );
}

/// The near-miss of keepalive-idle: bursts three idle timeouts apart, so
/// the backend closes every pooled connection long before the proxy
/// reuses it. Many idle closes, no race: no 5xx and no verdict.
fn idle_closes_alone_are_no_failure(
    plugin: &std::path::Path,
    agent: &AgentServe,
    problems: &mut Vec<String>,
) {
    let mut params = ScenarioParams::defaults(ScenarioKind::KeepaliveIdle);
    params.burst_period_ms = params.idle_timeout_ms * 3;
    let run = record_and_explain(plugin, agent, params);
    let load_5xx = run.report.summary.total_5xx();
    show(&format!(
        "keepalive-idle near-miss (bursts 3 idle timeouts apart): {} requests, {load_5xx} 5xx, {} verdicts",
        run.report.records.len(),
        run.verdicts.len()
    ));
    if load_5xx > 0 || !run.verdicts.is_empty() {
        problems.push(format!(
            "keepalive-idle near-miss: {load_5xx} 5xx and {} verdicts, want none",
            run.verdicts.len()
        ));
    }
}

/// With `--proxy-logs`, every verdict on an Envoy or HAProxy answer
/// carries the proxy's own words: Envoy's response flags, HAProxy's
/// termination state ("Envoy: 503 UF upstream ...", "HAProxy: 503 SC--").
fn check_words(proxy: ProxyKind, kind: ScenarioKind, vs: &[Verdict], problems: &mut Vec<String>) {
    let prefix = match proxy {
        ProxyKind::Envoy => "Envoy: ",
        ProxyKind::Haproxy => "HAProxy: ",
        ProxyKind::Nginx => return,
    };
    let answers: Vec<&Verdict> = vs.iter().filter(|v| v.failure.answer().is_some()).collect();
    let without: Vec<&&Verdict> = answers
        .iter()
        .filter(|v| {
            !v.evidence
                .iter()
                .any(|e| e.fact.to_string().starts_with(prefix))
        })
        .collect();
    // Each peeked answer is paired with its own log line: exactly by
    // client port where the format logs it (HAProxy, Envoy's JSON), else
    // in time order. Envoy's default text format names no client, and in
    // some runs a few answers of a burst still end up without a line
    // (issue 15, open): reported always; a problem beyond 1 % + 1.
    if !without.is_empty() {
        show(&format!(
            "  {}: {} of {} answers without the proxy's words",
            kind.name(),
            without.len(),
            answers.len()
        ));
    }
    if let Some(v) = without
        .first()
        .filter(|_| without.len() > answers.len() / 100 + 1)
    {
        problems.push(format!(
            "{}: {} of {} answers lack the proxy's words ({prefix}...), e.g. {}",
            kind.name(),
            without.len(),
            answers.len(),
            v.failure.endpoints()
        ));
    }
}

/// Whether `kind` is scored through `proxy` in this run: named by
/// `FIVEXX_SCORE_ONLY` (when set), and one the proxy can play (else a line
/// says why not).
fn scored_here(kind: ScenarioKind, proxy: ProxyKind, only: Option<&str>) -> bool {
    if only.is_some_and(|o| !o.split(',').any(|n| n == kind.name())) {
        return false;
    }
    if let Some(why) = kind.unsupported_through(proxy) {
        show(&format!(
            "  {}: not through {}: {why}",
            kind.name(),
            proxy.name()
        ));
        return false;
    }
    true
}

/// Every scenario through `proxy`, scored; one table for the proxy.
/// `FIVEXX_SCORE_ONLY=<scenario>[,<scenario>...]` runs only those.
fn score_proxy(proxy: ProxyKind, test: &str) {
    if skip_unless_root(test) {
        return;
    }
    let _turn = lab_turn();
    let started = std::time::Instant::now();
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let only = std::env::var("FIVEXX_SCORE_ONLY")
        .ok()
        .filter(|s| !s.is_empty());
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let baseline = scoring::Baseline::load();
    for kind in scoring::scenario_order() {
        if !scored_here(kind, proxy, only.as_deref()) {
            continue;
        }
        let params = ScenarioParams::with_proxy(kind, proxy);
        let run = record_and_explain(&plugin, &agent, params.clone());
        let s = score(proxy, kind, &run.report.records, &run.verdicts);
        let name = kind.name();
        let requests = run.report.records.len() as u64;
        let failed = scoring::failed_requests(kind, &run.report.records);
        baseline.check(&params, requests, &mut problems);
        let row = |score: Score, fix: String| Row {
            name,
            score,
            fix,
            requests,
            failed,
            params: scoring::params_summary(&params),
        };
        let load_5xx = run.report.summary.total_5xx();
        eprintln!("{name} through {}: load generator", proxy.name());
        eprintln!(
            "  {name}: load generator {} requests, {load_5xx} 5xx; {} verdicts {:?}; engine.http {}",
            run.report.records.len(),
            run.verdicts.len(),
            s.by_cause,
            run.explained["engine"]["http"]
        );
        for v in run
            .verdicts
            .iter()
            .filter(|v| !truth(kind).contains(&v.cause))
            .step_by(97)
            .take(6)
        {
            eprintln!(
                "  {name}: {} {} {:?}: {}",
                v.failure.kind().name(),
                v.failure.endpoints(),
                v.cause,
                v.note.as_deref().unwrap_or("-")
            );
        }
        if kind == ScenarioKind::PrestopFixed {
            if !run.verdicts.is_empty() || load_5xx > 0 {
                problems.push(format!(
                    "{name}: {} verdicts and {load_5xx} 5xx, want none",
                    run.verdicts.len()
                ));
            }
            rows.push(row(s, String::from("zero verdicts")));
            continue;
        }
        if s.truth_5xx == 0 {
            problems.push(format!(
                "{name}: the scenario produced no 5xx of its statuses {:?}",
                scenario_statuses(proxy, kind)
            ));
        }
        if s.precision() < 0.95 {
            problems.push(format!("{name}: precision {:.3} < 0.95", s.precision()));
        }
        if s.recall() < 0.90 {
            problems.push(format!("{name}: recall {:.3} < 0.90", s.recall()));
        }
        check_access_log(kind, &run, &s, &mut problems);
        if s.http_recall() < 0.99 {
            problems.push(format!(
                "{name}: only {} of {} 5xx matched to a kernel-seen 5xx ({:.3} < 0.99)",
                s.matched_5xx,
                s.truth_5xx,
                s.http_recall()
            ));
        }
        check_counts(kind, &run, &mut problems);
        check_words(proxy, kind, &run.verdicts, &mut problems);
        check_names(kind, &run.explained, &mut problems);
        let fix = check_fixes(kind, &params, &run, &mut problems);
        rows.push(row(s, fix));
    }
    if proxy == ProxyKind::Nginx && only.as_deref().is_none_or(|o| o == "keepalive-idle") {
        idle_closes_alone_are_no_failure(&plugin, &agent, &mut problems);
    }
    drop(agent);
    let table = score_table(&rows, &mut problems);
    show(&format!(
        "\n=== lab scoring through {} ({} scenarios, {:.0} s) ==={table}",
        proxy.name(),
        rows.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(
        problems.is_empty(),
        "{}: {}",
        proxy.name(),
        problems.join("\n")
    );
}

/// With `--proxy-logs`, each 5xx the peek saw is the same answer its log
/// line gives (confirmed, counted once), and hardly any is seen only in
/// the log.
fn check_access_log(kind: ScenarioKind, run: &scoring::Run, s: &Score, problems: &mut Vec<String>) {
    let name = kind.name();
    let logged_only = run
        .verdicts
        .iter()
        .filter(|v| v.failure.kind() == FailureKind::Http5xxLogged)
        .count() as u64;
    let confirmed = run.explained["engine"]["http"]["confirmed_by_log"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "  {name}: access log: {confirmed} 5xx also peeked, {logged_only} seen only in the log"
    );
    // Where no proxy of the cluster answered (a load balancer outside,
    // or the clients' own failed connections), no log line is either.
    let in_cluster_answers = !matches!(
        kind,
        ScenarioKind::LbDeregistrationLag | ScenarioKind::ProxyTerminated
    );
    let confirmed_short = in_cluster_answers && confirmed + 2 < s.matched_5xx * 99 / 100;
    if confirmed_short || logged_only > s.truth_5xx / 100 + 2 {
        problems.push(format!(
            "{name}: access log: {confirmed} of {} peeked 5xx confirmed, {logged_only} only in the log",
            s.matched_5xx
        ));
    }
}

/// With retries on, most refused upstream connects never reach a client;
/// the engine must count them as hidden by retry, within 10 % (+3) of the
/// proxy's own account:
/// - nginx (ingress-nginx's default `proxy_next_upstream error timeout`,
///   3 tries): the failed tries `X-Upstream-Status` lists in requests
///   answered below 500 (e.g. `502, 200`);
/// - Envoy with Istio's default policy: its admin counter
///   `upstream_rq_retry` (checked against `x-envoy-attempt-count`);
/// - HAProxy with `retries 3` and `option redispatch`: `show stat`'s
///   `wretr` + `wredis`.
#[test]
fn nginx_hidden_by_retry_matches_the_proxy_ground_truth() {
    hidden_by_retry(
        ProxyKind::Nginx,
        "nginx_hidden_by_retry_matches_the_proxy_ground_truth",
    );
}

#[test]
fn envoy_hidden_by_retry_matches_the_proxy_ground_truth() {
    hidden_by_retry(
        ProxyKind::Envoy,
        "envoy_hidden_by_retry_matches_the_proxy_ground_truth",
    );
}

#[test]
fn haproxy_hidden_by_retry_matches_the_proxy_ground_truth() {
    hidden_by_retry(
        ProxyKind::Haproxy,
        "haproxy_hidden_by_retry_matches_the_proxy_ground_truth",
    );
}

fn hidden_by_retry(proxy: ProxyKind, test: &str) {
    if skip_unless_root(test) {
        return;
    }
    let _turn = lab_turn();
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let mut params = ScenarioParams::with_proxy(ScenarioKind::RolloutNoPrestop, proxy);
    params.ingress.next_upstream_tries = 3;
    params.envoy.istio_retries = true;
    params.haproxy.retries = 3;
    params.haproxy.redispatch = true;
    let run = record_and_explain(&plugin, &agent, params);
    drop(agent);
    let name = proxy.name();
    let truth = match proxy {
        ProxyKind::Nginx => retried_tries(&run.report.records),
        _ => {
            let r = run
                .report
                .proxy_retries
                .unwrap_or_else(|| panic!("{name}: no retry counters from the proxy"));
            r.retried + r.redispatched
        }
    };
    let hidden = http_total(&run.explained, "hidden_by_retry");
    let sent = http_total(&run.explained, "sent_5xx");
    let load_5xx = run.report.summary.total_5xx();
    let (ok, failed): (Vec<RequestRecord>, Vec<RequestRecord>) = run
        .report
        .records
        .iter()
        .cloned()
        .partition(|r| r.status.is_some_and(|s| s < 500));
    show(&format!(
        "retries on, {name}: load generator {} requests, {load_5xx} 5xx; retried attempts the proxy counted (ground truth) {truth} {:?}; Envoy attempt headers {} ({} in requests answered below 500, {} in the rest); engine: hidden by retry {hidden}, 5xx sent {sent}",
        run.report.records.len(),
        run.report.proxy_retries,
        envoy_attempt_retries(&run.report.records),
        envoy_attempt_retries(&ok),
        envoy_attempt_retries(&failed),
    ));
    assert!(
        truth > 20,
        "{name}: the scenario retried only {truth} tries"
    );
    if proxy == ProxyKind::Envoy {
        // The admin counter and the per-request headers are one account.
        let headers = envoy_attempt_retries(&run.report.records);
        assert!(
            headers.abs_diff(truth) <= truth / 20 + 2,
            "envoy: upstream_rq_retry {truth}, x-envoy-attempt-count retries {headers}"
        );
    }
    assert_eq!(sent, load_5xx, "{name}: 5xx sent vs the load generator's");
    assert_eq!(
        run.explained["totals"]["failures"].as_u64().unwrap_or(0),
        load_5xx,
        "{name}: failed requests in the report vs the load generator's (retried tries apart)"
    );
    let tolerance = truth / 10 + 3;
    assert!(
        hidden.abs_diff(truth) <= tolerance,
        "{name}: hidden by retry {hidden}, ground truth {truth} (tolerance {tolerance})"
    );
}
