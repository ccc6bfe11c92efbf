//! The ring-buffer case: overflow a one-page ring and check that every
//! record is either received or counted as dropped.

use std::time::Duration;

use fivexx_core::KernelEventKind as K;

use super::children::{spawn, ChildMode};
use super::harness::{ensure, kill, page_size, Outcome, SelftestTracer};
use super::Status;
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
    let mut received = [0u64; tracer_ebpf::KIND_COUNT];
    while let Some(item) = small.ring.next() {
        if let Some(raw) = tracer_ebpf::RawEvent::from_bytes(&item) {
            if let Some(slot) = received.get_mut(raw.kind as usize) {
                *slot += 1;
            }
        }
    }
    let c = small.tracer.counters()?;
    let _ = child.kill();
    let _ = child.wait();
    let mut lines = Vec::new();
    for (i, (&got, (&generated, &dropped))) in received
        .iter()
        .zip(c.generated.iter().zip(c.dropped.iter()))
        .enumerate()
    {
        ensure(got + dropped == generated, || {
            format!("kind {i}: received {got} + dropped {dropped} != generated {generated}")
        })?;
        if generated > 0 {
            lines.push(format!(
                "received {got} + dropped {dropped} = generated {generated}"
            ));
        }
    }
    let sig = tracer_ebpf::EventKind::Signal as usize;
    ensure(c.generated[sig] >= SIGNALS as u64, || {
        format!("generated {} < {SIGNALS} signals sent", c.generated[sig])
    })?;
    ensure(c.dropped[sig] > 0, || {
        format!("no drops with a {}-byte ring", page_size())
    })?;
    Ok((
        Status::Pass,
        format!("signal: {} ({}-byte ring)", lines.join("; "), page_size()),
    ))
}
