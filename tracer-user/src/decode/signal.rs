//! `signal:signal_generate` (probes/signal.rs): the task is the sender.

use fivexx_core::{KernelEvent, SignalResult};
use tracer_ebpf::RawEvent;

use super::target;

/// `sig`, the kernel's `result`, and the target (`target_pid`/`target_comm`).
pub(super) fn signal(raw: &RawEvent, ev: &mut KernelEvent) {
    ev.signal = Some(raw.sig);
    ev.signal_result = Some(SignalResult::from_kernel(raw.result));
    ev.target = Some(target(raw));
    ev.cgroup_id = None; // the sender's; the agent resolves the target's
}
