//! `signal:signal_generate`: runs in the sender's context, so the current
//! task is the sender; the target is the `pid` field.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_ebpf::{flags, is_traced_signal, EventKind};

use crate::emit::{config, emit, read_comm, read_i32};

#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    let l = &config().signal;
    let Some(sig) = read_i32(&ctx, l.sig) else {
        return 0;
    };
    if !is_traced_signal(sig) {
        return 0;
    }
    emit(EventKind::Signal, |ev| {
        ev.sig = sig;
        ev.target_pid = read_i32(&ctx, l.pid).unwrap_or(0);
        ev.code = read_i32(&ctx, l.code).unwrap_or(0);
        ev.result = read_i32(&ctx, l.result).unwrap_or(-1);
        if read_i32(&ctx, l.group).unwrap_or(0) != 0 {
            ev.flags |= flags::SIGNAL_GROUP;
        }
        read_comm(&ctx, l.comm, &mut ev.target_comm);
    });
    0
}
