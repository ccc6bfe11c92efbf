//! `sock:inet_sk_error_report` and `sock:inet_sock_set_state`.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_ebpf::{is_abnormal_transition, EventKind};

use crate::emit::{bump, config, emit, read_addrs, read_i32, read_uint, STATE_COUNTS};

const IPPROTO_TCP: u64 = 6;

/// Every error a TCP socket reports is a failure worth a record.
#[tracepoint]
pub fn inet_sk_error_report(ctx: TracePointContext) -> u32 {
    let l = &config().error_report;
    if read_uint(&ctx, l.protocol) != Some(IPPROTO_TCP) {
        return 0;
    }
    // sk_error_report() also runs with no error pending (e.g. on close):
    // nothing failed then.
    let errno = read_i32(&ctx, l.error).unwrap_or(0);
    if errno == 0 {
        return 0;
    }
    emit(EventKind::SockError, |ev| {
        ev.errno = errno;
        read_addrs(&ctx, &l.addr, ev);
    });
    0
}

/// Hundreds of thousands of transitions a second on a busy node: count them
/// all in a per-CPU array and emit only the abnormal ones.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let l = &config().set_state;
    if read_uint(&ctx, l.protocol) != Some(IPPROTO_TCP) {
        return 0;
    }
    let old = read_uint(&ctx, l.oldstate).unwrap_or(0) as u8;
    let new = read_uint(&ctx, l.newstate).unwrap_or(0) as u8;
    bump(
        &STATE_COUNTS,
        ((old as u32 & 0xf) << 4) | (new as u32 & 0xf),
    );
    if !is_abnormal_transition(old, new) {
        return 0;
    }
    emit(EventKind::StateChange, |ev| {
        ev.sock = read_uint(&ctx, l.skaddr).unwrap_or(0);
        ev.state = old;
        ev.new_state = new;
        read_addrs(&ctx, &l.addr, ev);
    });
    0
}
