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

#[cfg(test)]
mod tests {
    use tracer_ebpf::{flags, EventKind, RawEvent};

    use crate::decode::tests::decoder;

    #[test]
    fn the_wait_status_is_read_only_when_the_kernel_gave_it() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::Exit as u8;
        raw.target_pid = 77;
        raw.cgroup_id = 9;
        raw.code = 7 << 8; // exit(7)
        let ev = decoder().decode(&raw).unwrap();
        assert_eq!(ev.exit, None, "EXIT_CODE_KNOWN unset: the code is unknown");
        assert_eq!(ev.cgroup_id, Some(9));
        raw.flags = flags::EXIT_CODE_KNOWN | flags::GROUP_DEAD;
        let ev = decoder().decode(&raw).unwrap();
        assert_eq!(ev.exit.and_then(|x| x.code), Some(7));
        assert_eq!(ev.target.map(|t| t.pid), Some(77));
    }
}
