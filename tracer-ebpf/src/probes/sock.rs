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
        false,
        |ev| read_addrs(&ctx, &l.addr, ev),
    );
    0
}

/// The BTF form (tp_btf): the kernel hands over its own arguments
/// `(const struct sock *sk, int oldstate, int newstate)` without building
/// a record; the agent attaches it only where the kernel's
/// `btf_trace_inet_sock_set_state` prototype is exactly that. No helper
/// call on the common path but the counter; the 4-tuple is read from the
/// socket only for the rare abnormal transition.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state_btf(ctx: BtfTracePointContext) -> u32 {
    let sk: u64 = ctx.arg(0);
    let off = config().skb.sock_protocol;
    if off < 0 {
        return 0;
    }
    // A direct load, not a probe read (a helper call, on every state
    // change of the node): `sk` is the kernel's own BTF-typed pointer, and
    // `off` comes from read-only data the verifier sees as a constant, so
    // it checks this load against `struct sock`'s BTF (a 2-byte member at
    // that offset) and the JIT guards it against faults. A kernel whose
    // verifier refuses it refuses the program, and the agent falls back to
    // the classic tracepoint.
    // SAFETY: see above; the verifier proves the access, and any bit
    // pattern is a valid u16.
    let protocol = unsafe { core::ptr::read((sk as *const u8).add(off as usize) as *const u16) };
    if protocol != IPPROTO_TCP as u16 {
        return 0;
    }
    let old: u64 = ctx.arg(1);
    let new: u64 = ctx.arg(2);
    let from_sock = config().kernel.tcp_retrans_stamp >= 0;
    on_set_state(
        old as u8,
        new as u8,
        || sk,
        from_sock,
        |ev| read_sock_addrs(sk, ev),
    );
    0
}

/// `syn_from_sock`: the SYN's time is read from the socket when the
/// connect fails (tcp_sock::retrans_stamp, tp_btf form), so a connect
/// costs no map update; otherwise (the classic form, kept as it was) it is
/// kept in SYN_SENT_AT.
#[inline(always)]
fn on_set_state(
    old: u8,
    new: u8,
    sk: impl Fn() -> u64,
    syn_from_sock: bool,
    addrs: impl FnOnce(&mut RawEvent),
) {
    bump(
        &STATE_COUNTS,
        ((old as u32 & 0xf) << 4) | (new as u32 & 0xf),
    );
    if new == tcp_state::SYN_SENT {
        if syn_from_sock {
            return;
        }
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
    let idle_close = old == tcp_state::ESTABLISHED && new == tcp_state::FIN_WAIT1;
    if !idle_close && !is_abnormal_transition(old, new) {
        return;
    }
    let sk = sk();
    // ESTABLISHED -> FIN_WAIT1 (the local side closes) is a record only
    // after a long idle: an idle keep-alive close. A reset or abort of an
    // established connection also says how long it had been idle (a
    // keep-alive close racing a request).
    // An abort of an established connection by this side (close() with a
    // request unread: the RST a backend's idle timer sends when the
    // proxy's request raced it) counts from the last data sent: the
    // request that arrived unread moved the receive stamp, and the last
    // answer is what the server's idle timer measured from.
    let send_only = old == tcp_state::ESTABLISHED && new == tcp_state::CLOSE;
    let idle = if old == tcp_state::SYN_SENT {
        0
    } else {
        idle_jiffies(sk, send_only).map_or(0, |j| j | IDLE_SEEN)
    };
    if idle_close
        && (idle & IDLE_SEEN == 0 || idle & !IDLE_SEEN < u64::from(config().idle.min_idle_jiffies))
    {
        return;
    }
    let syn_ns = if old == tcp_state::SYN_SENT && syn_from_sock {
        syn_time_from_sock(sk)
    } else if old == tcp_state::SYN_SENT {
        // SAFETY: the pointer from a successful lookup is valid for this
        // program run; the value is a plain u64 another CPU may overwrite
        // (a torn read is impossible for an aligned u64).
        unsafe { SYN_SENT_AT.get(&sk) }.copied().unwrap_or(0)
    } else {
        0
    };
    // One emit site with plain values: the closure stays small enough to
    // be inlined (a BPF sub-program must not return a stack pointer; the
    // 6.18 verifier refused the tp_btf form with two sites).
    let idle_jiffies = (idle & IDLE_SEEN != 0).then_some((idle & !IDLE_SEEN) as u32);
    emit(EventKind::StateChange, |ev| {
        ev.sock = sk;
        ev.state = old;
        ev.new_state = new;
        ev.syn_ns = syn_ns;
        ev.set_idle_jiffies(idle_jiffies);
        addrs(ev);
    });
}

/// Marks an idle time as read (a u64 with the jiffies in the low half), so
/// that no Option crosses the emit path.
const IDLE_SEEN: u64 = 1 << 32;

/// Jiffies since the last data in either direction on `sk` (see
/// `IdleLayout` for why `lsndtime` and `icsk_ack.lrcvtime`), or since the
/// last data sent with `send_only`; None where
/// this kernel's layout or clock is unknown or a read fails. Two probe
/// reads and a division, only on the transitions that may be emitted.
#[inline(always)]
fn idle_jiffies(sk: u64, send_only: bool) -> Option<u64> {
    let l = &config().idle;
    if !l.known() || sk == 0 {
        return None;
    }
    let sent = read_kernel::<u32>(sk, l.tcp_lsndtime)?;
    let received = if send_only {
        sent
    } else {
        read_kernel::<u32>(sk, l.icsk_lrcvtime)?
    };
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    Some(u64::from(l.idle_jiffies(l.jiffies_at(now), sent, received)))
}

/// When a failing connect sent its first SYN: `tcp_connect()` stamps
/// `retrans_stamp` with the TCP clock in ms (CLOCK_MONOTONIC, as
/// bpf_ktime_get_ns), and SYN retransmits keep it. 0 (unknown) when unset
/// or implausible (more than 10 minutes ago, or a kernel stamping in us).
#[inline(always)]
fn syn_time_from_sock(sk: u64) -> u64 {
    let stamp = read_kernel::<u32>(sk, config().kernel.tcp_retrans_stamp).unwrap_or(0);
    if stamp == 0 {
        return 0;
    }
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let elapsed_ms = ((now / 1_000_000) as u32).wrapping_sub(stamp) as u64;
    if elapsed_ms > 600_000 || elapsed_ms * 1_000_000 > now {
        return 0;
    }
    now - elapsed_ms * 1_000_000
}
