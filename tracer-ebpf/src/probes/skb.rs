//! `skb:kfree_skb`: the pod side of a refused connect before 6.10.
//!
//! Before 6.10 `tcp_send_reset` is silent for the RST a closed port
//! answers a SYN with; from 5.17 the kernel still says why it dropped that
//! SYN: `kfree_skb` with reason `NO_SOCKET`. Every drop of the node passes
//! here, so the filter is the drop reason (one compare) before anything
//! else; only a TCP SYN without ACK becomes a record, with the 4-tuple read
//! from the packet at BTF offsets, as the RST it is answered with would
//! carry it (the closed port first). Where `tcp_send_reset` reports
//! NO_SOCKET itself the agent leaves `no_socket` at -1 and the hook
//! unattached, so one refused SYN is one fact.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_ebpf::{flags, EventKind, RawEvent, SkbOffsets};

use crate::emit::{config, emit, read_kernel, read_uint};

const IPPROTO_TCP: u8 = 6;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// `skb->transport_header` when unset (`(typeof(skb->transport_header))~0U`).
const HEADER_UNSET: u16 = 0xffff;

/// The classic form: `skbaddr` and `reason` from the trace record.
#[tracepoint]
pub fn kfree_skb(ctx: TracePointContext) -> u32 {
    let l = &config().kfree_skb;
    if l.no_socket < 0 {
        return 0;
    }
    if read_uint(&ctx, l.reason) != Some(l.no_socket as u64) {
        return 0;
    }
    let skb = read_uint(&ctx, l.skbaddr).unwrap_or(0);
    on_no_socket(skb, l.no_socket as u32);
    0
}

/// The BTF form: `(struct sk_buff *skb, void *location, enum
/// skb_drop_reason reason, ...)`, attached only where the kernel's
/// prototype starts so.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_btf(ctx: BtfTracePointContext) -> u32 {
    let l = &config().kfree_skb;
    let reason: u64 = ctx.arg(2);
    if l.no_socket < 0 || reason as u32 != l.no_socket as u32 {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    on_no_socket(skb, l.no_socket as u32);
    0
}

/// A SYN this host dropped for want of a socket: the kernel answers it
/// with a RST from the closed port.
#[inline(always)]
fn on_no_socket(skb: u64, reason: u32) {
    let s: &SkbOffsets = &config().skb;
    let mut t = RawEvent::zeroed();
    if !read_syn(skb, s, &mut t) {
        return;
    }
    emit(EventKind::SendReset, |ev| {
        ev.reason = reason;
        ev.flags = flags::FROM_SKB_DROP;
        ev.family = t.family;
        // The RST goes from the SYN's destination back to its source.
        ev.saddr = t.daddr;
        ev.sport = t.dport;
        ev.daddr = t.saddr;
        ev.dport = t.sport;
    });
}

/// Reads the packet's family, addresses and ports into `t` (as the SYN
/// carries them); false unless it is a TCP SYN without ACK. The protocol
/// is checked before the flags: a flood of UDP to closed ports (also
/// NO_SOCKET) stops there.
#[inline(always)]
fn read_syn(skb: u64, s: &SkbOffsets, t: &mut RawEvent) -> bool {
    let Some(head) = read_kernel::<u64>(skb, s.skb_head) else {
        return false;
    };
    let nh = read_kernel::<u16>(skb, s.skb_network_header).unwrap_or(HEADER_UNSET);
    let th = read_kernel::<u16>(skb, s.skb_transport_header).unwrap_or(HEADER_UNSET);
    if nh == HEADER_UNSET || th == HEADER_UNSET {
        return false;
    }
    let (ip, tcp) = (head + nh as u64, head + th as u64);
    match u16::from_be(read_kernel::<u16>(skb, s.skb_protocol).unwrap_or(0)) {
        ETH_P_IP => {
            if read_kernel::<u8>(ip, s.ip_protocol) != Some(IPPROTO_TCP) {
                return false;
            }
            t.family = 2;
            if let Some(a) = read_kernel::<[u8; 4]>(ip, s.ip_saddr) {
                t.saddr[..4].copy_from_slice(&a);
            }
            if let Some(a) = read_kernel::<[u8; 4]>(ip, s.ip_daddr) {
                t.daddr[..4].copy_from_slice(&a);
            }
        }
        ETH_P_IPV6 => {
            // A SYN behind extension headers is rare enough to skip: the
            // transport header would still be right, but nexthdr is not TCP.
            if read_kernel::<u8>(ip, s.ip6_nexthdr) != Some(IPPROTO_TCP) {
                return false;
            }
            t.family = 10;
            if let Some(a) = read_kernel::<[u8; 16]>(ip, s.ip6_saddr) {
                t.saddr = a;
            }
            if let Some(a) = read_kernel::<[u8; 16]>(ip, s.ip6_daddr) {
                t.daddr = a;
            }
        }
        _ => return false,
    }
    let flags = read_kernel::<u8>(tcp, s.tcp_flags).unwrap_or(0) as i32;
    if flags & s.tcp_syn_mask == 0 || flags & s.tcp_ack_mask != 0 {
        return false;
    }
    t.sport = u16::from_be(read_kernel::<u16>(tcp, s.tcp_source).unwrap_or(0));
    t.dport = u16::from_be(read_kernel::<u16>(tcp, s.tcp_dest).unwrap_or(0));
    true
}
