//! `tcp:tcp_retransmit_skb`: only SYN retransmits are records (a connect
//! into an address nobody answers: a dead pod IP, stale endpoint).

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_ebpf::{tcp_state, EventKind};

use crate::emit::{config, emit, read_addrs, read_sock_addrs, read_uint};

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

/// The BTF form: `(const struct sock *sk, const struct sk_buff *skb, ...)`.
/// Every retransmit of the node passes here (a lossy path retransmits a
/// lot); the classic form builds a record with the 4-tuple first, this one
/// reads the state with one direct load and the 4-tuple only for a SYN.
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb_btf(ctx: BtfTracePointContext) -> u32 {
    let sk: u64 = ctx.arg(0);
    let off = config().kernel.sock_state;
    if off < 0 {
        return 0;
    }
    // SAFETY: as in inet_sock_set_state_btf: `sk` is the kernel's BTF
    // pointer and `off` a verifier-visible constant, so the verifier checks
    // this load against struct sock's BTF and the JIT guards it; any byte
    // is a valid u8.
    let state = unsafe { core::ptr::read((sk as *const u8).add(off as usize)) };
    if state != tcp_state::SYN_SENT {
        return 0;
    }
    emit(EventKind::SynRetransmit, |ev| {
        ev.sock = sk;
        ev.state = tcp_state::SYN_SENT;
        read_sock_addrs(sk, ev);
    });
    0
}
