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

#[cfg(test)]
mod tests {
    use fivexx_core::SignalResult;
    use tracer_ebpf::{EventKind, RawEvent};

    use crate::decode::tests::decoder;

    #[test]
    fn the_task_is_the_sender_and_the_target_comes_from_the_target_fields() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::Signal as u8;
        raw.task_tgid = 900;
        raw.task_comm[..7].copy_from_slice(b"kubelet");
        raw.cgroup_id = 42;
        raw.sig = 15;
        raw.result = 1;
        raw.target_pid = 1234;
        raw.target_comm[..5].copy_from_slice(b"nginx");
        let ev = decoder().decode(&raw).unwrap();
        assert_eq!(ev.signal, Some(15));
        assert_eq!(ev.signal_result, Some(SignalResult::Ignored));
        let sender = ev.task.unwrap();
        assert_eq!((sender.pid, sender.comm.as_str()), (900, "kubelet"));
        let target = ev.target.unwrap();
        assert_eq!((target.pid, target.comm.as_str()), (1234, "nginx"));
        assert_eq!(
            ev.cgroup_id, None,
            "the sender's cgroup is not the target's"
        );
    }
}
