//! `sched:sched_process_exit`, thread-group exits only. The tracepoint has
//! no exit code (and no `group_dead` before 6.18), so both come from the
//! exiting task itself at BTF-discovered offsets.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_ebpf::{flags, EventKind};

use crate::emit::{config, emit, read_comm, read_kernel, read_uint};

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let l = &config().exit;
    let k = &config().kernel;
    // SAFETY: a helper with no arguments; the task pointer it returns is
    // never dereferenced, only passed to read_kernel's checked probe reads.
    let task = unsafe { bpf_get_current_task() };
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tid, tgid) = (pid_tgid as u32, (pid_tgid >> 32) as u32);

    // Plain integers with sentinels rather than Options held across the
    // branches: the 5.10 verifier rejects reading a stack slot that only
    // part of an Option's bytes were written to ("invalid read from stack").
    let mut fl = 0u32;
    let tracepoint_says = read_uint(&ctx, l.group_dead).map_or(-1, |v| (v != 0) as i64);
    let group_dead = if tracepoint_says >= 0 {
        tracepoint_says == 1
    } else {
        let signal = read_kernel::<u64>(task, k.task_signal).unwrap_or(0);
        // do_exit() decrements signal->live before this tracepoint.
        let live = read_kernel::<i32>(signal, k.signal_live).map_or(-1, i64::from);
        if live >= 0 {
            live == 0
        } else {
            fl |= flags::GROUP_DEAD_GUESSED;
            tid == tgid
        }
    };
    if !group_dead {
        return 0;
    }
    fl |= flags::GROUP_DEAD;
    let exit_code = read_kernel::<i32>(task, k.task_exit_code).map_or(i64::MIN, i64::from);
    if exit_code != i64::MIN {
        fl |= flags::EXIT_CODE_KNOWN;
    }
    emit(EventKind::Exit, |ev| {
        ev.target_pid = tgid as i32;
        if exit_code != i64::MIN {
            ev.code = exit_code as i32;
        }
        ev.flags = fl;
        read_comm(&ctx, l.comm, &mut ev.target_comm);
    });
    0
}
