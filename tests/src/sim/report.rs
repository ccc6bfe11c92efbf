//! `fivexx-lab report DIR`: what a scenario run shows a person. What
//! happened (the 5xx in the ground truth, per pod) next to what the kernel
//! saw (the agent's events for those pods' IPs). Reads only the run's files,
//! so it works on any saved run.

use crate::node::agent;
use crate::node::load::{LoadSummary, RequestRecord};
use crate::sim::timeline::{LabEvent, LabEventKind};
use crate::{io_err, Result};
use fivexx_core::event::{signal_name, KernelEvent, KernelEventKind};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// "What Kubernetes did": the lab's timeline of deletions, signals, exits,
/// cordons and evictions, and the ingress reloads after the steady state.
fn write_kubernetes_section(
    out: &mut String,
    timeline: &[LabEvent],
    steady: u64,
    rel: &dyn Fn(u64) -> f64,
) {
    let _ = writeln!(out, "\nWhat Kubernetes did (the lab's timeline)");
    for e in timeline.iter().filter(|e| {
        matches!(
            e.kind,
            LabEventKind::DeletionRequested
                | LabEventKind::SigtermSent
                | LabEventKind::SigkillSent
                | LabEventKind::ContainerExited
                | LabEventKind::OomKilled
                | LabEventKind::NodeCordoned
                | LabEventKind::Evicted
        ) || (e.kind == LabEventKind::IngressReload && e.at.mono_ns > steady)
    }) {
        let _ = writeln!(
            out,
            "  +{:.3}s {:<18} {} {}",
            rel(e.at.mono_ns),
            format!("{:?}", e.kind),
            e.pod.as_deref().unwrap_or(""),
            e.detail
        );
    }
}

/// Renders the report of the run in `dir`; `max_events` caps the event list.
pub fn render(dir: &Path, max_events: usize) -> Result<String> {
    let records: Vec<RequestRecord> = read_lines(&dir.join("ground-truth.jsonl"))?;
    let timeline: Vec<LabEvent> = read_lines(&dir.join("timeline.jsonl"))?;
    let t0 = timeline.first().map(|e| e.at.mono_ns).unwrap_or(0);
    let rel = |mono: u64| mono.saturating_sub(t0) as f64 / 1e9;
    // Pod IPs are reused: map IP -> pod names that held it.
    let mut pod_of_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &timeline {
        if let (Some(ip), Some(pod), LabEventKind::PodCreated) = (&e.ip, &e.pod, e.kind) {
            pod_of_ip.entry(ip.clone()).or_default().push(pod.clone());
        }
    }
    let steady = timeline
        .iter()
        .find(|e| e.kind == LabEventKind::Step && e.detail == "steady")
        .map(|e| e.at.mono_ns)
        .unwrap_or(0);
    let mut out = String::new();
    let s = LoadSummary::of(&records);
    let _ = writeln!(
        out,
        "What happened (ground truth: {} requests through the ingress nginx)",
        s.total
    );
    let _ = writeln!(
        out,
        "  {} ok, {} x 502, {} x 503, {} x 504, {} other 5xx, {} client errors",
        s.ok, s.s502, s.s503, s.s504, s.other_5xx, s.client_errors
    );
    let mut by_ip: BTreeMap<String, Vec<&RequestRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_5xx()) {
        by_ip
            .entry(r.upstream_ip().unwrap_or_else(|| "no upstream".into()))
            .or_default()
            .push(r);
    }
    for (ip, rs) in &by_ip {
        let pods = pod_of_ip.get(ip).map(|p| p.join("|")).unwrap_or_default();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for r in rs {
            *statuses.entry(r.status.unwrap_or(0)).or_default() += 1;
        }
        let counts: Vec<String> = statuses.iter().map(|(s, n)| format!("{n} x {s}")).collect();
        let first = rs.iter().map(|r| r.sent.mono_ns).min().unwrap_or(0);
        let last = rs.iter().map(|r| r.sent.mono_ns).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {ip:<13} {pods}: {} between +{:.3}s and +{:.3}s (during \"{}\")",
            counts.join(", "),
            rel(first),
            rel(last),
            rs[0].step
        );
    }
    write_kubernetes_section(&mut out, &timeline, steady, &rel);
    let agent_path = dir.join("agent.jsonl");
    if !agent_path.exists() {
        let _ = writeln!(
            out,
            "\n(no agent attached: run with --agent to see what the kernel saw)"
        );
        return Ok(out);
    }
    let events = agent::read_events(&agent_path);
    let ips: Vec<String> = by_ip.keys().cloned().collect();
    let about = agent::events_for_ips(&events, &ips);
    let mut kinds: BTreeMap<KernelEventKind, usize> = BTreeMap::new();
    for e in &about {
        *kinds.entry(e.kind).or_default() += 1;
    }
    let kind_list: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} x {k}")).collect();
    let _ = writeln!(
        out,
        "\nWhat the kernel saw (fivexx-agent: {} events; {} about the failing pods' IPs)",
        events.len(),
        about.len()
    );
    let _ = writeln!(out, "  {}", kind_list.join(", "));
    // Signals to the lab's pods, then the first network failures.
    // Signals and OOM kills of the backends' main processes while the
    // scenario ran (not the lab's own teardown, nor nginx reloads).
    let pod_pids: Vec<i32> = timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::ContainerStarted && !e.detail.starts_with("ingress "))
        .filter_map(|e| e.pid)
        .collect();
    let settle = timeline
        .iter()
        .find(|e| e.kind == LabEventKind::Step && e.detail == "settle")
        .map(|e| e.at.mono_ns)
        .unwrap_or(u64::MAX);
    for e in events.iter().filter(|e| {
        matches!(e.kind, KernelEventKind::Signal | KernelEventKind::OomVictim)
            && e.mono_ns < settle
            && e.target.as_ref().is_some_and(|t| pod_pids.contains(&t.pid))
    }) {
        let _ = writeln!(out, "  {}", line(e, rel(e.mono_ns)));
    }
    let shown = about.len().min(max_events);
    let _ = writeln!(
        out,
        "  first {shown} network events about the failing pods:"
    );
    for e in about.iter().take(max_events) {
        let _ = writeln!(out, "  {}", line(e, rel(e.mono_ns)));
    }
    Ok(out)
}

/// One event on one line.
fn line(e: &KernelEvent, at: f64) -> String {
    let mut s = format!("+{at:.3}s {:<14}", e.kind.name());
    if let Some(t) = &e.tuple {
        let _ = write!(s, " {t}");
    }
    if let Some(st) = e.tcp_state {
        let _ = write!(s, " {st}");
        if let Some(n) = e.new_state {
            let _ = write!(s, "->{n}");
        }
    }
    if let Some(r) = &e.reset_reason {
        let _ = write!(s, " reason={r}");
    }
    if let Some(errno) = e.errno {
        let _ = write!(s, " {}({})", errno.name(), errno.raw());
    }
    if let Some(sig) = e.signal {
        let _ = write!(s, " {}", signal_name(sig));
        if let Some(r) = e.signal_result {
            let _ = write!(s, " [{r:?}]");
        }
    }
    if let Some(t) = &e.target {
        let _ = write!(s, " to {}({})", t.comm, t.pid);
    }
    if let Some(t) = &e.task {
        if e.kind == KernelEventKind::Signal {
            let _ = write!(s, " from {}({})", t.comm, t.pid);
        }
    }
    if let Some(p) = &e.pod_uid {
        let _ = write!(s, " pod {p}");
    }
    s
}
