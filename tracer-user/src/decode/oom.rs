//! `oom:mark_victim` (probes/oom.rs): the task is the allocating one, not
//! the victim.

use fivexx_core::KernelEvent;
use tracer_ebpf::RawEvent;

use super::target;

pub(super) fn oom_victim(raw: &RawEvent, ev: &mut KernelEvent) {
    ev.target = Some(target(raw));
}
