//! Human renderings of events, counters and the capability report.

use std::fmt::Write;

use fivexx_core::capability::{CapabilityReport, HookForm, HookState};
use fivexx_core::report::{event_line, LineLayout};
use fivexx_core::KernelEvent;

use crate::counts::RingCounts;

pub use fivexx_core::report::{clock, NODE_TABLE_HEADER as TABLE_HEADER};

/// One table line: the renderer the plugin uses too.
pub fn table_line(ev: &KernelEvent) -> String {
    event_line(ev, LineLayout::Node)
}

pub fn counters_table(c: &RingCounts) -> String {
    let mut out = String::from("KIND            GENERATED   RECEIVED    DROPPED\n");
    for l in c.ledger() {
        let _ = writeln!(
            out,
            "{:<15} {:>9} {:>10} {:>10}",
            l.kind.name(),
            l.generated,
            l.received,
            l.dropped
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
    let _ = writeln!(
        out,
        "HOOK                        STATE       FORM        NOTES"
    );
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
        let form = match h.form {
            Some(HookForm::TpBtf) => "tp_btf",
            Some(HookForm::Tracepoint) => "tracepoint",
            None => "-",
        };
        let _ = writeln!(
            out,
            "{:<27} {:<11} {:<11} {}",
            h.tracepoint,
            state,
            form,
            notes.join("; ")
        );
    }
    out
}
