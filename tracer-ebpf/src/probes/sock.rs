//! `sock:inet_sk_error_report` and `sock:inet_sock_set_state`.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, map, tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_ebpf::{is_abnormal_transition, tcp_state, EventKind, RawEvent};

use crate::emit::{
    bump, config, emit, read_addrs, read_i32, read_kernel, read_sock_addrs, read_uint, STATE_COUNTS,
};

const IPPROTO_TCP: u64 = 6;

/// When each connecting socket sent its SYN (CLOSE -> SYN_SENT), by socket
/// address, so that a connect that fails in SYN_SENT says when it began:
/// the time the proxy chose the address, not the end of its connect
/// timeout. One update per connect and no delete (a new connect on a
/// reused socket overwrites; LRU evicts the rest), so the normal path pays
/// one map write.
#[map(name = "SYN_SENT_AT")]
static SYN_SENT_AT: LruHashMap<u64, u64> = LruHashMap::with_max_entries(65_536, 0);

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
/// all in a per-CPU array and emit only the abnormal ones. The classic
/// form: the kernel first builds the trace record (4-tuple included), and
/// every field costs a probe read.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let l = &config().set_state;
    if read_uint(&ctx, l.protocol) != Some(IPPROTO_TCP) {
        return 0;
    }
    let old = read_uint(&ctx, l.oldstate).unwrap_or(0) as u8;
    let new = read_uint(&ctx, l.newstate).unwrap_or(0) as u8;
    on_set_state(
        old,
        new,
        || read_uint(&ctx, l.skaddr).unwrap_or(0),
        |ev| read_addrs(&ctx, &l.addr, ev),
    );
    0
}

/// The BTF form (tp_btf): the kernel hands over its own arguments
/// `(const struct sock *sk, int oldstate, int newstate)` without building
/// a record; the agent attaches it only where the kernel's
/// `btf_trace_inet_sock_set_state` prototype is exactly that. One probe
/// read (the protocol) on the common path; the 4-tuple is read from the
/// socket only for the rare abnormal transition.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state_btf(ctx: BtfTracePointContext) -> u32 {
    let sk: u64 = ctx.arg(0);
    let s = &config().skb;
    if read_kernel::<u16>(sk, s.sock_protocol) != Some(IPPROTO_TCP as u16) {
        return 0;
    }
    let old: u64 = ctx.arg(1);
    let new: u64 = ctx.arg(2);
    on_set_state(old as u8, new as u8, || sk, |ev| read_sock_addrs(sk, ev));
    0
}

#[inline(always)]
fn on_set_state(old: u8, new: u8, sk: impl Fn() -> u64, addrs: impl FnOnce(&mut RawEvent)) {
    bump(
        &STATE_COUNTS,
        ((old as u32 & 0xf) << 4) | (new as u32 & 0xf),
    );
    if new == tcp_state::SYN_SENT {
        let sk = sk();
        if sk != 0 {
            // SAFETY: bpf_ktime_get_ns has no preconditions.
            let now = unsafe { bpf_ktime_get_ns() };
            // A failed insert (map full of pinned entries) only loses this
            // connect's SYN time; the engine then estimates it.
            let _ = SYN_SENT_AT.insert(&sk, &now, 0);
        }
        return;
    }
    if !is_abnormal_transition(old, new) {
        return;
    }
    let sk = sk();
    let syn_ns = if old == tcp_state::SYN_SENT {
        // SAFETY: the pointer from a successful lookup is valid for this
        // program run; the value is a plain u64 another CPU may overwrite
        // (a torn read is impossible for an aligned u64).
        unsafe { SYN_SENT_AT.get(&sk) }.copied().unwrap_or(0)
    } else {
        0
    };
    emit(EventKind::StateChange, |ev| {
        ev.sock = sk;
        ev.state = old;
        ev.new_state = new;
        ev.syn_ns = syn_ns;
        addrs(ev);
    });
}
