//! Kernel struct member offsets from BTF, for the facts no tracepoint
//! carries (exit codes, group death, a reset socket's state, fd -> socket).

use tracer_ebpf::{IdleLayout, KernelOffsets, SkbOffsets};

use crate::btf::KernelBtf;

pub(super) fn non_negative(v: i32) -> Option<u32> {
    u32::try_from(v).ok()
}

pub(super) fn kernel_offsets(btf: Option<&KernelBtf>) -> KernelOffsets {
    let mut k = KernelOffsets::UNKNOWN;
    let Some(btf) = btf else {
        return k;
    };
    let off = |t: &str, m: &str| {
        btf.member_offset(t, m)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(-1)
    };
    k.task_exit_code = off("task_struct", "exit_code");
    k.task_signal = off("task_struct", "signal");
    k.signal_live = off("signal_struct", "live");
    // struct sock starts with its sock_common (__sk_common).
    let common = off("sock", "__sk_common");
    let in_sock = |m: &str| {
        let o = off("sock_common", m);
        if common >= 0 && o >= 0 {
            common + o
        } else {
            -1
        }
    };
    k.sock_state = in_sock("skc_state");
    k.sock_family = in_sock("skc_family");
    k.sock_daddr = in_sock("skc_daddr");
    k.sock_rcv_saddr = in_sock("skc_rcv_saddr");
    k.sock_dport = in_sock("skc_dport");
    k.sock_num = in_sock("skc_num");
    k.sock_v6_daddr = in_sock("skc_v6_daddr");
    k.sock_v6_rcv_saddr = in_sock("skc_v6_rcv_saddr");
    k.inet_sport = off("inet_sock", "inet_sport");
    k.tcp_retrans_stamp = off("tcp_sock", "retrans_stamp");
    k.task_files = off("task_struct", "files");
    k.files_fdt = off("files_struct", "fdt");
    k.fdt_fd = off("fdtable", "fd");
    k.file_private_data = off("file", "private_data");
    k.socket_sk = off("socket", "sk");
    k.msghdr_iov = off("user_msghdr", "msg_iov");
    k.iovec_base = off("iovec", "iov_base");
    k.iovec_len = off("iovec", "iov_len");
    k
}

/// Where a dropped packet's headers and 4-tuple are, and a socket's
/// protocol: `sk_buff`, `iphdr`, `ipv6hdr`, `tcphdr` and `sock` members.
/// The TCP flags are bitfields: their byte and bit come from BTF's bit
/// offsets (little-endian bitfields, so bit `n` of the struct is bit
/// `n % 8` of byte `n / 8`).
pub(super) fn skb_offsets(btf: Option<&KernelBtf>) -> SkbOffsets {
    let mut s = SkbOffsets::UNKNOWN;
    let Some(btf) = btf else {
        return s;
    };
    let off = |t: &str, m: &str| {
        btf.whole_member_offset(t, m)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(-1)
    };
    s.skb_head = off("sk_buff", "head");
    s.skb_network_header = off("sk_buff", "network_header");
    s.skb_transport_header = off("sk_buff", "transport_header");
    s.skb_protocol = off("sk_buff", "protocol");
    s.ip_protocol = off("iphdr", "protocol");
    s.ip_saddr = off("iphdr", "saddr");
    s.ip_daddr = off("iphdr", "daddr");
    s.ip6_nexthdr = off("ipv6hdr", "nexthdr");
    s.ip6_saddr = off("ipv6hdr", "saddr");
    s.ip6_daddr = off("ipv6hdr", "daddr");
    s.tcp_source = off("tcphdr", "source");
    s.tcp_dest = off("tcphdr", "dest");
    let flag = |m: &str| match btf.member_bits("tcphdr", m) {
        Some((bit, 1)) => Some((bit / 8, 1i32 << (bit % 8))),
        _ => None,
    };
    if let (Some((syn_byte, syn)), Some((ack_byte, ack))) = (flag("syn"), flag("ack")) {
        if syn_byte == ack_byte {
            s.tcp_flags = i32::try_from(syn_byte).unwrap_or(-1);
            s.tcp_syn_mask = syn;
            s.tcp_ack_mask = ack;
        }
    }
    // A whole u16 since 5.6; before that a bitfield, which stays unknown.
    s.sock_protocol = off("sock", "sk_protocol");
    s
}

/// The idle-time stamps of `struct tcp_sock` (why these two: see
/// [`IdleLayout`]): `lsndtime` (last data sent) and
/// `inet_conn.icsk_ack.lrcvtime` (last data received). The clock fields
/// stay unknown here; the agent measures them at start-up
/// ([`crate::jiffies`]).
pub(super) fn idle_offsets(btf: Option<&KernelBtf>) -> IdleLayout {
    let mut l = IdleLayout::UNKNOWN;
    let Some(btf) = btf else {
        return l;
    };
    let off = |path: &[&str]| {
        btf.path_offset("tcp_sock", path)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(-1)
    };
    l.tcp_lsndtime = off(&["lsndtime"]);
    l.icsk_lrcvtime = off(&["inet_conn", "icsk_ack", "lrcvtime"]);
    l
}
