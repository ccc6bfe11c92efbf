//! `tcp:tcp_retransmit_skb`: only SYN retransmits are records (a connect
//! into an address nobody answers: a dead pod IP, stale endpoint).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_ebpf::{tcp_state, EventKind};

use crate::emit::{config, emit, read_addrs, read_uint};

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    let l = &config().retransmit;
    if read_uint(&ctx, l.state) != Some(tcp_state::SYN_SENT as u64) {
        return 0;
    }
    emit(EventKind::SynRetransmit, |ev| {
        ev.sock = read_uint(&ctx, l.skaddr).unwrap_or(0);
        ev.state = tcp_state::SYN_SENT;
        read_addrs(&ctx, &l.addr, ev);
    });
    0
}
