//! Human renderings of events, counters and the capability report.

use std::fmt::Write;

use fivexx_core::capability::{CapabilityReport, HookState};
use fivexx_core::event::{errno_name, signal_name};
use fivexx_core::{KernelEvent, KernelEventKind as K};

use crate::tracer::KindCounters;

pub const TABLE_HEADER: &str = "TIME            KIND            DETAIL";

/// Local wall-clock `HH:MM:SS.mmm` (UTC) of an event.
pub fn clock(wall_ns: i64) -> String {
    let secs = wall_ns.div_euclid(1_000_000_000);
    let ms = wall_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let day = secs.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        day / 3600,
        day / 60 % 60,
        day % 60
    )
}

/// One table line: time, kind, and what matters for that kind.
pub fn table_line(ev: &KernelEvent) -> String {
    let mut d = String::new();
    if let Some(t) = &ev.tuple {
        let _ = write!(d, "{t}");
    }
    match ev.kind {
        K::SendReset | K::ReceiveReset | K::SynRetransmit => {
            if let Some(s) = ev.tcp_state {
                let _ = write!(d, " state={s}");
            }
            if let Some(r) = &ev.reset_reason {
                let _ = write!(d, " reason={r}");
            }
            if let Some(e) = ev.errno {
                let _ = write!(d, " => {} ({e})", errno_name(e));
            }
        }
        K::SockError => {
            if let Some(e) = ev.errno {
                let _ = write!(d, " error={} ({e})", errno_name(e));
            }
        }
        K::StateChange => {
            let name = |s: Option<fivexx_core::TcpState>| s.map(|s| s.name()).unwrap_or("?");
            let _ = write!(d, " {}->{}", name(ev.tcp_state), name(ev.new_state));
        }
        K::Signal => {
            let sig = ev.signal.unwrap_or(0);
            let _ = write!(d, "{} ", signal_name(sig));
            if let Some(t) = &ev.task {
                let _ = write!(d, "{}[{}] ", t.comm, t.pid);
            }
            if let Some(t) = &ev.target {
                let _ = write!(d, "-> {}[{}]", t.comm, t.pid);
            }
            if let Some(r) = ev.signal_result {
                let _ = write!(
                    d,
                    " result={}",
                    serde_json::to_value(r)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                );
            }
        }
        K::Exit => {
            if let Some(t) = &ev.target {
                let _ = write!(d, "{}[{}]", t.comm, t.pid);
            }
            match ev.exit {
                Some(x) if x.signal.is_some() => {
                    let _ = write!(d, " killed by {}", x.signal.map(signal_name).unwrap_or("?"));
                }
                Some(x) => {
                    let _ = write!(d, " exit code {}", x.code.unwrap_or(-1));
                }
                None => d.push_str(" exit code unknown"),
            }
        }
        K::OomVictim => {
            if let Some(t) = &ev.target {
                let _ = write!(d, "OOM victim {}[{}]", t.comm, t.pid);
            }
        }
        K::HttpResponse => {
            let _ = write!(d, " HTTP {}", ev.http_status.unwrap_or(0));
            if let Some(t) = &ev.task {
                let _ = write!(d, " by {}[{}] fd {}", t.comm, t.pid, ev.fd.unwrap_or(-1));
            }
        }
    }
    if let Some(uid) = &ev.pod_uid {
        let _ = write!(d, " pod={uid}");
        if let Some(c) = &ev.container_id {
            let _ = write!(d, " ctr={}", &c[..c.len().min(12)]);
        }
    }
    format!(
        "{:<15} {:<15} {}",
        clock(ev.wall_ns),
        ev.kind.name(),
        d.trim()
    )
}

pub fn counters_table(c: &KindCounters, received: &[u64]) -> String {
    let mut out = String::from("KIND            GENERATED   RECEIVED    DROPPED\n");
    for (i, (kind, generated, dropped)) in c.by_kind().into_iter().enumerate() {
        let got = received.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<15} {generated:>9} {got:>10} {dropped:>10}",
            kind.name()
        );
    }
    out
}

pub fn report_text(r: &CapabilityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fivexx-agent {} on kernel {}",
        r.agent_version, r.kernel_release
    );
    let _ = writeln!(
        out,
        "tracefs:     {}",
        r.tracefs.as_deref().unwrap_or("not found")
    );
    let _ = writeln!(
        out,
        "BTF:         {}",
        if r.btf {
            "present".to_string()
        } else {
            format!("missing ({})", r.btf_error.as_deref().unwrap_or("?"))
        }
    );
    let _ = writeln!(
        out,
        "ring buffer: {} KiB{}",
        r.ring_buffer_bytes / 1024,
        if r.loaded { "" } else { " (not loaded)" }
    );
    let _ = writeln!(out, "HOOK                        STATE       NOTES");
    for h in &r.hooks {
        let state = match h.state {
            HookState::Attached => "attached",
            HookState::Degraded => "degraded",
            HookState::Missing => "missing",
            HookState::Failed => "FAILED",
            HookState::NotLoaded => "available",
        };
        let mut notes: Vec<&str> = h.reason.iter().map(String::as_str).collect();
        notes.extend(h.notes.iter().map(String::as_str));
        let _ = writeln!(
            out,
            "{:<27} {:<11} {}",
            h.tracepoint,
            state,
            notes.join("; ")
        );
    }
    out
}
