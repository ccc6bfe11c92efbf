//! `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_ebpf::{flags, EventKind};

use crate::emit::{config, emit, read_addrs, read_kernel, read_uint};

/// A RST we sent. Before 6.10 it fires only for RSTs sent from a socket
/// (abort, linger 0); from 6.10 also for socket-less replies (reason NO_SOCKET).
#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    let l = &config().send_reset;
    emit(EventKind::SendReset, |ev| {
        ev.sock = read_uint(&ctx, l.skaddr).unwrap_or(0);
        if let Some(s) = read_uint(&ctx, l.state) {
            ev.state = s as u8;
        }
        if let Some(r) = read_uint(&ctx, l.reason) {
            ev.reason = r as u32;
        }
        read_addrs(&ctx, &l.addr, ev);
    });
    0
}

/// A RST we received. The tracepoint has no state field, so the state is
/// read from the socket (BTF offset): it decides the errno the app sees.
#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    let l = &config().receive_reset;
    let k = &config().kernel;
    emit(EventKind::ReceiveReset, |ev| {
        let sk = read_uint(&ctx, l.skaddr).unwrap_or(0);
        ev.sock = sk;
        if let Some(state) = read_kernel::<u8>(sk, k.sock_state) {
            ev.state = state;
            ev.flags |= flags::STATE_FROM_SOCK;
        }
        read_addrs(&ctx, &l.addr, ev);
    });
    0
}
