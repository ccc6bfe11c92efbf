//! `sched:sched_process_exit` of a whole thread group (probes/exit.rs).

use fivexx_core::{ExitStatus, KernelEvent};
use tracer_ebpf::{flags, RawEvent};

use super::target;

/// The exiting process; `code` is its wait status when `EXIT_CODE_KNOWN`.
/// It runs in the exiting task, so the cgroup is the process's own.
pub(super) fn exit(raw: &RawEvent, ev: &mut KernelEvent) {
    ev.target = Some(target(raw));
    if raw.flags & flags::EXIT_CODE_KNOWN != 0 {
        ev.exit = Some(ExitStatus::from_wait_status(raw.code));
    }
    ev.cgroup_id = Some(raw.cgroup_id);
}
