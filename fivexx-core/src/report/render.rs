//! Renderers: pure functions from a [`Report`] to text.

use super::time::{format_duration, format_time};
use super::Report;
use crate::explain::{Cause, Verdict};
use std::fmt::Write;

/// The stable JSON document of `docs/explain-json.md`.
pub fn render_json(r: &Report) -> String {
    // Serialising plain data with string keys cannot fail.
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The human summary: header, episodes, failures by workload and cause,
/// fixes, and one example per cause with its evidence.
pub fn render_table(r: &Report) -> String {
    let mut o = String::new();
    header(&mut o, r);
    episodes(&mut o, r);
    workloads(&mut o, r);
    http_answers(&mut o, r);
    fixes(&mut o, r);
    next_steps(&mut o, r);
    examples(&mut o, r);
    o
}

/// The table plus one line per verdict.
pub fn render_wide(r: &Report) -> String {
    let mut o = render_table(r);
    let _ = writeln!(o, "\nFAILURES");
    let _ = writeln!(
        o,
        "  {:<24} {:<45} {:<11} {:<6} {:<28} {:<6} {:<24} {:<10} {:<6} NEXT",
        "TIME", "CONNECTION", "KIND", "STATUS", "CAUSE", "CONF", "POD", "PROXY", "BURST"
    );
    for v in &r.verdicts {
        let _ = writeln!(
            o,
            "  {:<24} {:<45} {:<11} {:<6} {:<28} {:<6} {:<24} {:<10} {:<6} {}",
            format_time(v.at_ns()),
            v.failure.endpoints(),
            v.failure.kind().name(),
            v.failure
                .http_status()
                .map_or("-".to_string(), |s| s.to_string()),
            v.cause.label(),
            format!("{:?}", v.confidence).to_lowercase(),
            v.involved.pod.as_deref().unwrap_or("-"),
            v.involved.proxy.as_ref().map_or("-", |p| p.node.as_str()),
            v.burst.map_or("-".to_string(), |b| b.to_string()),
            v.next.as_ref().map_or("-", |n| n.command.as_str()),
        );
    }
    if r.verdicts_omitted > 0 {
        let _ = writeln!(
            o,
            "  ... {} more (raise --max-verdicts)",
            r.verdicts_omitted
        );
    }
    o
}

/// "START .. END (DURATION)" of a capture, for its header.
pub(super) fn capture_span(c: &super::CaptureInfo) -> String {
    match (c.start_ns, c.end_ns) {
        (Some(s), Some(e)) => format!(
            "{} .. {} ({})",
            format_time(s),
            format_time(e),
            format_duration(e - s)
        ),
        (Some(s), None) => format!("from {}", format_time(s)),
        _ => "-".into(),
    }
}

fn header(o: &mut String, r: &Report) {
    if let Some(c) = &r.capture {
        let span = capture_span(c);
        let _ = writeln!(
            o,
            "CAPTURE   {}  {} node(s)  {}  format {}{}",
            c.context.as_deref().unwrap_or("(no context)"),
            c.nodes.len(),
            span,
            c.format_version,
            if c.complete { "" } else { "  INCOMPLETE" }
        );
        if let Some(st) = &r.settings {
            let _ = writeln!(o, "SETTINGS  {}", st.describe());
        }
        for p in &c.problems {
            let _ = writeln!(o, "WARNING   {p}");
        }
        if c.problem_count > c.problems.len() as u64 {
            let _ = writeln!(o, "WARNING   ... {} problems in all", c.problem_count);
        }
        for line in c.agent_gone_lines() {
            let _ = writeln!(o, "WARNING   {line}");
        }
        for (node, drops) in &c.drops {
            let total = drops.total();
            if total > 0 {
                let _ = writeln!(
                    o,
                    "WARNING   agent on {node} dropped {total} events ({}): some failures may be missing",
                    drops.describe()
                );
            }
        }
    }
    let t = &r.totals;
    let statuses: Vec<String> = t
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} × {s}"))
        .collect();
    let unseen = t.failures - t.by_status.values().sum::<u64>();
    let mut what = Vec::new();
    if !statuses.is_empty() {
        what.push(statuses.join(", "));
    }
    if unseen > 0 {
        what.push(format!(
            "{unseen} failed connection(s) whose answer was not seen"
        ));
    }
    let _ = writeln!(
        o,
        "FAILURES  {} failed request(s){}: {} explained, {} unexplained",
        t.failures,
        if what.is_empty() {
            String::new()
        } else {
            format!(" ({})", what.join("; "))
        },
        t.explained,
        t.unexplained
    );
    if !t.by_status.is_empty() {
        let hidden: u64 = r.engine.http.hidden_by_retry.values().sum();
        let _ = writeln!(
            o,
            "          behind them {} failed upstream connection(s); the proxies retried {hidden} failed tries, unseen by clients",
            t.upstream_failures
        );
    }
    if t.failures == 0 {
        let _ = writeln!(o, "          no failed request was seen in this window");
    }
}

/// Per cause: the 5xx the peeked proxies sent, and the upstream failures
/// they hid from clients by retrying another upstream.
fn http_answers(o: &mut String, r: &Report) {
    let h = &r.engine.http;
    if h.sent_5xx.is_empty() && h.hidden_by_retry.is_empty() && h.retried_in_log == 0 {
        return;
    }
    let _ = writeln!(o, "\nHTTP ANSWERS (peeked proxies)");
    let _ = writeln!(
        o,
        "  {:<28} {:>9} {:>16}",
        "CAUSE", "5XX SENT", "HIDDEN BY RETRY"
    );
    let causes: std::collections::BTreeSet<&Cause> =
        h.sent_5xx.keys().chain(h.hidden_by_retry.keys()).collect();
    for c in causes {
        let _ = writeln!(
            o,
            "  {:<28} {:>9} {:>16}",
            c.label(),
            h.sent_5xx.get(c).copied().unwrap_or(0),
            h.hidden_by_retry.get(c).copied().unwrap_or(0)
        );
    }
    if h.confirmed_by_log > 0 || h.retried_in_log > 0 {
        let _ = writeln!(
            o,
            "  access logs: {} 5xx also seen by the peek (counted once); {} failed upstream tries retried into a non-5xx answer",
            h.confirmed_by_log, h.retried_in_log
        );
    }
}

/// "endpoint lag (pod still up) 212, OOM kill 3": most first.
/// The statuses clients got for one cause, most first ("503×120,
/// 502×4"); `-` when no answer was seen (failed connections only).
pub(super) fn statuses_text(by: Option<&std::collections::BTreeMap<u16, u64>>) -> String {
    let Some(by) = by.filter(|b| !b.is_empty()) else {
        return "-".into();
    };
    let mut v: Vec<(&u16, &u64)> = by.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn causes_line(by: &std::collections::BTreeMap<Cause, u64>) -> String {
    let mut v: Vec<(&Cause, &u64)> = by.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(c, n)| format!("{} {n}", c.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn episodes(o: &mut String, r: &Report) {
    if r.episodes.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nEPISODES");
    for e in &r.episodes {
        let _ = writeln!(
            o,
            "  {}{} at {} caused {} of {} failed requests (over {}): {}",
            e.label,
            if e.kind == crate::explain::EpisodeKind::Drain && !e.workloads.is_empty() {
                format!(" ({})", e.workloads.join(", "))
            } else {
                String::new()
            },
            format_time(e.start_ns),
            e.failures,
            e.of_total,
            format_duration(e.last_failure_ns - e.first_failure_ns),
            causes_line(&e.by_cause)
        );
        if !e.pod_names.is_empty() {
            let more = e.pods.saturating_sub(e.pod_names.len() as u64);
            let _ = writeln!(
                o,
                "    {} pod(s): {}{}",
                e.pods,
                e.pod_names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
    }
}

fn workloads(o: &mut String, r: &Report) {
    if r.workloads.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n  {:<40} {:>8}  {:<28} {:>6}  HTTP",
        "WORKLOAD", "FAILURES", "CAUSE", "COUNT"
    );
    for w in &r.workloads {
        let mut by: Vec<(&Cause, &u64)> = w.by_cause.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (i, (c, n)) in by.iter().enumerate() {
            let (name, total) = if i == 0 {
                (w.label.as_str(), w.failures.to_string())
            } else {
                ("", String::new())
            };
            let _ = writeln!(
                o,
                "  {:<40} {:>8}  {:<28} {:>6}  {}",
                name,
                total,
                c.label(),
                n,
                statuses_text(w.by_cause_status.get(*c))
            );
        }
    }
}

fn fixes(o: &mut String, r: &Report) {
    if r.workloads.iter().all(|w| w.fixes.is_empty()) {
        return;
    }
    let _ = writeln!(o, "\nFIXES");
    for w in r.workloads.iter().filter(|w| !w.fixes.is_empty()) {
        let _ = writeln!(o, "  {}", w.label);
        for f in &w.fixes {
            let _ = writeln!(o, "    {}: {}", f.cause.label(), f.action);
            let _ = writeln!(o, "      because {}", f.because);
        }
    }
}

/// Per workload and cause, the command to run next.
fn next_steps(o: &mut String, r: &Report) {
    if r.workloads.iter().all(|w| w.next.is_empty()) {
        return;
    }
    let _ = writeln!(o, "\nNEXT");
    for w in r.workloads.iter().filter(|w| !w.next.is_empty()) {
        let _ = writeln!(o, "  {}", w.label);
        for n in &w.next {
            let _ = writeln!(o, "    {}: {}", n.cause.label(), n.command);
            let _ = writeln!(o, "      {}", n.why);
        }
    }
}

fn example(o: &mut String, v: &Verdict) {
    let _ = writeln!(
        o,
        "  {}  {}  {}: {}, pod {}{}",
        format_time(v.at_ns()),
        v.failure.endpoints(),
        v.failure.kind().name(),
        v.cause.label(),
        v.involved.pod.as_deref().unwrap_or("?"),
        v.note.as_ref().map_or(String::new(), |n| format!(" ({n})"))
    );
    if let Some(n) = &v.next {
        let _ = writeln!(o, "      next: {}", n.command);
    }
    for e in &v.evidence {
        let _ = writeln!(
            o,
            "      {}  {:<16} {}",
            format_time(e.at_ns),
            e.source.to_string(),
            e.fact
        );
    }
}

fn examples(o: &mut String, r: &Report) {
    if r.verdicts.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nEVIDENCE (first failure of each cause)");
    let mut seen = std::collections::BTreeSet::new();
    for v in &r.verdicts {
        if seen.insert(v.cause) {
            example(o, v);
        }
    }
}
