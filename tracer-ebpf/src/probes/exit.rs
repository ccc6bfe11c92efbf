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

    let mut fl = 0u32;
    let group_dead = if let Some(v) = read_uint(&ctx, l.group_dead) {
        v != 0
    } else if let Some(live) = read_kernel::<u64>(task, k.task_signal)
        .and_then(|signal| read_kernel::<i32>(signal, k.signal_live))
    {
        // do_exit() decrements signal->live before this tracepoint.
        live == 0
    } else {
        fl |= flags::GROUP_DEAD_GUESSED;
        tid == tgid
    };
    if !group_dead {
        return 0;
    }
    fl |= flags::GROUP_DEAD;
    let exit_code = read_kernel::<i32>(task, k.task_exit_code);
    emit(EventKind::Exit, |ev| {
        ev.target_pid = tgid as i32;
        if let Some(code) = exit_code {
            ev.code = code;
            fl |= flags::EXIT_CODE_KNOWN;
        }
        ev.flags = fl;
        read_comm(&ctx, l.comm, &mut ev.target_comm);
    });
    0
}
