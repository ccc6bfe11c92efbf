//! The ring-buffer case: overflow a one-page ring and check that every
//! record is either received or counted as dropped.

use std::time::Duration;

use fivexx_core::KernelEventKind as K;

use super::children::{spawn, ChildMode};
use super::harness::{ensure, kill, page_size, CaseError, Outcome, SelftestTracer};
use super::Status;
use crate::counts::KindCounts;
use crate::decode::kind_for_index;
use crate::tracer::TracerOptions;

/// Ring-buffer overflow with a one-page ring: received + dropped = generated.
pub(super) fn ring_overflow(s: &mut SelftestTracer) -> Outcome {
    const SIGNALS: usize = 2000;
    let opts = TracerOptions {
        ring_bytes: page_size(),
        kinds: Some([K::Signal].into_iter().collect()),
        ..Default::default()
    };
    let mut small = SelftestTracer::with_options(&s.child_exe, &opts)?;
    let mut child = spawn(&s.child_exe, ChildMode::IgnoreTerm)?;
    let pid = child.id();
    for _ in 0..SIGNALS {
        kill(pid, libc::SIGHUP)?; // ignored by the child: an event each, no death
    }
    small.tracer.detach_all();
    std::thread::sleep(Duration::from_millis(50));
    let mut received = KindCounts::default();
    while let Some(item) = small.ring.next() {
        let kind = tracer_ebpf::RawEvent::from_bytes(&item)
            .and_then(|raw| kind_for_index(usize::from(raw.kind)));
        if let Some(kind) = kind {
            received.add(kind, 1);
        }
    }
    let c = small.tracer.ring_counts(received)?;
    let _ = child.kill();
    let _ = child.wait();
    if let Some(l) = c.unbalanced().next() {
        return Err(CaseError::Check(format!(
            "{}: received {} + dropped {} != generated {}",
            l.kind.name(),
            l.received,
            l.dropped,
            l.generated
        )));
    }
    let lines: Vec<String> = c
        .ledger()
        .filter(|l| l.generated > 0)
        .map(|l| {
            format!(
                "received {} + dropped {} = generated {}",
                l.received, l.dropped, l.generated
            )
        })
        .collect();
    ensure(c.generated.get(K::Signal) >= SIGNALS as u64, || {
        format!(
            "generated {} < {SIGNALS} signals sent",
            c.generated.get(K::Signal)
        )
    })?;
    ensure(c.dropped.get(K::Signal) > 0, || {
        format!("no drops with a {}-byte ring", page_size())
    })?;
    Ok((
        Status::Pass,
        format!("signal: {} ({}-byte ring)", lines.join("; "), page_size()),
    ))
}
