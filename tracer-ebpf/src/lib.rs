//! The ABI shared by the kernel programs and `fivexx-agent`.
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it, the
//! agent reads it back from raw bytes. Keep it free of pointers and enums
//! with invalid bit patterns, so that any byte string of the right length is
//! a valid record and decoding can never be undefined behaviour.
//!
//! This file is longer than 600 lines because it is the whole ABI in one
//! place: each record kind with its per-kind field table, and the config
//! the agent fills from tracefs and BTF. Split, the two sides could drift.
#![no_std]

/// What a record describes. The value indexes the per-kind counters, so it is
/// part of the ABI: append, never renumber.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `tcp:tcp_send_reset`: this host sent a RST.
    SendReset = 0,
    /// `tcp:tcp_receive_reset`: a peer reset one of our sockets.
    ReceiveReset = 1,
    /// `sock:inet_sk_error_report`: a TCP socket got an error (refused, reset, timed out, ...).
    SockError = 2,
    /// `sock:inet_sock_set_state`: an abnormal transition (failed connect, close by reset).
    StateChange = 3,
    /// `tcp:tcp_retransmit_skb` in SYN_SENT: a SYN sent into the void.
    SynRetransmit = 4,
    /// `signal:signal_generate` for SIGHUP, SIGINT, SIGQUIT, SIGKILL and SIGTERM.
    Signal = 5,
    /// `sched:sched_process_exit` of a whole thread group.
    Exit = 6,
    /// `oom:mark_victim`: the OOM killer chose a process.
    OomVictim = 7,
    /// `syscalls:sys_enter_{write,writev,sendto,sendmsg}` of a process in the
    /// HTTP cgroup set, whose first bytes are a 5xx status line. `code` holds
    /// the status, `result` the fd, the kind detail how many bytes were
    /// peeked ([`RawEvent::peeked_len`]).
    HttpResponse = 8,
}

/// Number of kinds; sizes the counter maps.
pub const KIND_COUNT: usize = 9;

/// The most user bytes the HTTP peek ever reads: `HTTP/1.1 502 Bad`. Never
/// headers, never bodies.
pub const HTTP_PEEK_BYTES: usize = 16;
/// Per-CPU u64 counters of status lines seen, index = status / 100 (1..=5).
pub const HTTP_COUNTS_MAP: &str = "HTTP_COUNTS";
/// cgroup ids (u64 -> u8) whose writes are peeked; empty by default.
pub const HTTP_CGROUPS_MAP: &str = "HTTP_CGROUPS";

impl EventKind {
    pub const ALL: [EventKind; KIND_COUNT] = [
        EventKind::SendReset,
        EventKind::ReceiveReset,
        EventKind::SockError,
        EventKind::StateChange,
        EventKind::SynRetransmit,
        EventKind::Signal,
        EventKind::Exit,
        EventKind::OomVictim,
        EventKind::HttpResponse,
    ];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }
}

/// `state`/`new_state` value meaning "the kernel did not tell us".
pub const STATE_UNKNOWN: u8 = 0xff;
/// `reason` value meaning "this kernel has no reset reason".
pub const REASON_UNKNOWN: u32 = u32::MAX;

/// `RawEvent::flags` bits.
pub mod flags {
    /// Exit: the exit code was read from `task_struct::exit_code`.
    pub const EXIT_CODE_KNOWN: u32 = 1 << 0;
    /// Exit: the thread group is dead (this was its last thread).
    pub const GROUP_DEAD: u32 = 1 << 1;
    /// Exit: group death was inferred from `pid == tgid`, not read from the kernel.
    pub const GROUP_DEAD_GUESSED: u32 = 1 << 2;
    /// Network record: `state` was read from the socket, not from the tracepoint.
    pub const STATE_FROM_SOCK: u32 = 1 << 3;
    /// Signal: sent to the whole thread group (`group` field).
    pub const SIGNAL_GROUP: u32 = 1 << 4;
    /// SendReset: seen as `skb:kfree_skb` dropping a SYN with reason
    /// NO_SOCKET (kernels 5.17 to 6.9, where `tcp_send_reset` is silent for
    /// it); the 4-tuple was read from the packet, and `reason` holds the
    /// drop reason, not an `sk_rst_reason`.
    pub const FROM_SKB_DROP: u32 = 1 << 5;
    /// StateChange: the kind detail holds how long the connection had
    /// been idle, in jiffies (see [`IdleLayout`](super::IdleLayout)); set
    /// and read only through
    /// [`RawEvent::set_idle_jiffies`](super::RawEvent::set_idle_jiffies)
    /// and [`RawEvent::idle_jiffies`](super::RawEvent::idle_jiffies).
    pub const IDLE_KNOWN: u32 = 1 << 6;
}

/// One record in the ring buffer. Fixed size, no padding holes (asserted in tests).
///
/// One layout serves every kind, so several fields change meaning with
/// `kind`. Every record has `ts_ns`, `kind`, `task_pid`/`task_tgid` and
/// `task_comm` (the current task; for the softirq kinds marked † it is
/// whoever was interrupted, and the agent drops it) and `cgroup_id` (the
/// current task's). The rest, by kind (blank: left as `zeroed()` sets it):
///
/// | kind | `sock` | `family`, ports, addrs | `state` / `new_state` | `reason` | `errno` | `target_*` | `sig` | `result` | `code` | `flags` | `kind_detail` | `syn_ns` |
/// |---|---|---|---|---|---|---|---|---|---|---|---|---|
/// | `SendReset` | socket, 0 if socket-less (then †) | 4-tuple, sender first | state (6.10+) | `sk_rst_reason` (6.10+) | | | | | | | |
/// | `SendReset` from `kfree_skb` † (`FROM_SKB_DROP`) | 0 | 4-tuple of the RST it answers with: the closed port first | | `skb_drop_reason` (NO_SOCKET) | | | | | | `FROM_SKB_DROP` | |
/// | `ReceiveReset` † | socket | 4-tuple, ours first | state read from the socket | | | | | | | `STATE_FROM_SOCK` | |
/// | `SockError` | | 4-tuple | | | positive errno | | | | | | |
/// | `StateChange` | socket | 4-tuple | old / new state | | | | | | | `IDLE_KNOWN` | idle jiffies if `IDLE_KNOWN` (ESTABLISHED -> FIN_WAIT1 records only when idle at least `IdleLayout::min_idle_jiffies`) | SYN_SENT -> CLOSE: `ts_ns` of its CLOSE -> SYN_SENT (the SYN; from `tcp_sock::retrans_stamp`, to the ms, in the tp_btf form), 0 if unseen |
/// | `SynRetransmit` † | socket | 4-tuple | `SYN_SENT` | | | | | | | | |
/// | `Signal` (task = sender) | | | | | | target pid and comm | signal | 0 delivered .. 4 lose info | `si_code` | `SIGNAL_GROUP` | |
/// | `Exit` (task = the exiting thread) | | | | | | exiting tgid and comm | | | wait status if `EXIT_CODE_KNOWN` | `EXIT_CODE_KNOWN`, `GROUP_DEAD`, `GROUP_DEAD_GUESSED` | |
/// | `OomVictim` (task = the allocator) | | | | | | victim pid and comm | | | | | |
/// | `HttpResponse` (task = the proxy) | socket behind the fd, if BTF allows | its 4-tuple, ours first | | | | | | fd | HTTP status | | bytes peeked (12 or 16) |
///
/// The decoder (`tracer-user/src/decode/`, one file per probe file) reads
/// exactly these fields; keep the two and this table in step. The one
/// column that is nothing but a per-kind detail, `kind_detail`, is private:
/// the probes write it and the decoders read it through the typed methods
/// below ([`RawEvent::set_idle_jiffies`], [`RawEvent::set_peeked_len`] and
/// their readers), which check the kind, so the compiler keeps that column
/// and its readers in step.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// cgroup v2 id of the current task. Only meaningful for process-context
    /// kinds (signal sender, exit); receive paths run in softirq.
    pub cgroup_id: u64,
    /// Kernel socket address. The agent hashes it before it leaves the node.
    pub sock: u64,
    pub kind: u8,
    /// AF_INET (2), AF_INET6 (10) or 0.
    pub family: u8,
    /// TCP state (old state for StateChange).
    pub state: u8,
    pub new_state: u8,
    /// Reset reason (`enum sk_rst_reason`, 6.10+) or `REASON_UNKNOWN`.
    pub reason: u32,
    /// Current task: thread id and process id (tgid).
    pub task_pid: u32,
    pub task_tgid: u32,
    /// Signal target, exiting pid or OOM victim.
    pub target_pid: i32,
    pub sig: i32,
    /// Socket error (positive errno) for SockError.
    pub errno: i32,
    /// Signal `result` (0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 lose info).
    pub result: i32,
    /// Signal si_code, or the raw `exit_code` (wait status) for Exit.
    pub code: i32,
    pub flags: u32,
    /// Ports in host byte order.
    pub sport: u16,
    pub dport: u16,
    /// One u32 whose meaning depends on `kind` (the `kind_detail` column
    /// above). It also fills what would otherwise be 4 bytes of implicit
    /// padding before `saddr`, which is why the detail sits here and not
    /// in a field per kind: the record's size and offsets are the ABI.
    kind_detail: u32,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// `comm` of the current task (signal sender).
    pub task_comm: [u8; 16],
    /// `comm` of the target (signal target, exiting task, OOM victim).
    pub target_comm: [u8; 16],
    /// `bpf_ktime_get_ns()` when the socket entered SYN_SENT, on a
    /// SYN_SENT -> CLOSE record: when the proxy chose the address. 0 when
    /// the program did not see the SYN (attached later, map evicted).
    pub syn_ns: u64,
}

impl RawEvent {
    pub const SIZE: usize = core::mem::size_of::<RawEvent>();

    /// Reads a record from untrusted bytes. Never panics; `None` when short.
    pub fn from_bytes(buf: &[u8]) -> Option<RawEvent> {
        if buf.len() < Self::SIZE {
            return None;
        }
        // SAFETY: every field is an integer or integer array, so any bit
        // pattern is valid; the length was checked; read_unaligned tolerates
        // any alignment.
        Some(unsafe { core::ptr::read_unaligned(buf.as_ptr() as *const RawEvent) })
    }

    pub fn zeroed() -> RawEvent {
        RawEvent {
            ts_ns: 0,
            cgroup_id: 0,
            sock: 0,
            kind: 0,
            family: 0,
            state: STATE_UNKNOWN,
            new_state: STATE_UNKNOWN,
            reason: REASON_UNKNOWN,
            task_pid: 0,
            task_tgid: 0,
            target_pid: 0,
            sig: 0,
            errno: 0,
            result: 0,
            code: 0,
            flags: 0,
            sport: 0,
            dport: 0,
            kind_detail: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            task_comm: [0; 16],
            target_comm: [0; 16],
            syn_ns: 0,
        }
    }

    /// StateChange: how long the connection had been idle when it
    /// closed, in jiffies (at the kernel's HZ); marks it known with
    /// `IDLE_KNOWN`. `None` leaves the record as it was: idle time unknown.
    #[inline(always)]
    pub fn set_idle_jiffies(&mut self, jiffies: Option<u32>) {
        if let Some(jiffies) = jiffies {
            self.flags |= flags::IDLE_KNOWN;
            self.kind_detail = jiffies;
        }
    }

    /// The idle time [`set_idle_jiffies`](Self::set_idle_jiffies) wrote:
    /// `None` on other kinds, or where the kernel did not tell it.
    pub fn idle_jiffies(&self) -> Option<u32> {
        (self.kind == EventKind::StateChange as u8 && self.flags & flags::IDLE_KNOWN != 0)
            .then_some(self.kind_detail)
    }

    /// HttpResponse: how many user bytes the peek read (12 for a short
    /// write, else `HTTP_PEEK_BYTES`): says how much of the status line
    /// the kernel saw.
    #[inline(always)]
    pub fn set_peeked_len(&mut self, bytes: u32) {
        self.kind_detail = bytes;
    }

    /// The byte count [`set_peeked_len`](Self::set_peeked_len) wrote;
    /// `None` on other kinds.
    pub fn peeked_len(&self) -> Option<u32> {
        (self.kind == EventKind::HttpResponse as u8).then_some(self.kind_detail)
    }
}

// The record's layout is the ABI between the programs and every agent that
// reads them: asserted at build time, on both sides, field by field.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<RawEvent>() == 144);
    assert!(align_of::<RawEvent>() == 8);
    assert!(offset_of!(RawEvent, ts_ns) == 0);
    assert!(offset_of!(RawEvent, cgroup_id) == 8);
    assert!(offset_of!(RawEvent, sock) == 16);
    assert!(offset_of!(RawEvent, kind) == 24);
    assert!(offset_of!(RawEvent, family) == 25);
    assert!(offset_of!(RawEvent, state) == 26);
    assert!(offset_of!(RawEvent, new_state) == 27);
    assert!(offset_of!(RawEvent, reason) == 28);
    assert!(offset_of!(RawEvent, task_pid) == 32);
    assert!(offset_of!(RawEvent, task_tgid) == 36);
    assert!(offset_of!(RawEvent, target_pid) == 40);
    assert!(offset_of!(RawEvent, sig) == 44);
    assert!(offset_of!(RawEvent, errno) == 48);
    assert!(offset_of!(RawEvent, result) == 52);
    assert!(offset_of!(RawEvent, code) == 56);
    assert!(offset_of!(RawEvent, flags) == 60);
    assert!(offset_of!(RawEvent, sport) == 64);
    assert!(offset_of!(RawEvent, dport) == 66);
    assert!(offset_of!(RawEvent, kind_detail) == 68);
    assert!(offset_of!(RawEvent, saddr) == 72);
    assert!(offset_of!(RawEvent, daddr) == 88);
    assert!(offset_of!(RawEvent, task_comm) == 104);
    assert!(offset_of!(RawEvent, target_comm) == 120);
    assert!(offset_of!(RawEvent, syn_ns) == 136);
};

/// Where a tracepoint field lives in the record, as read from tracefs.
/// `size == 0` means the field does not exist on this kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldLoc {
    pub offset: u16,
    pub size: u16,
}

impl FieldLoc {
    pub const ABSENT: FieldLoc = FieldLoc { offset: 0, size: 0 };

    pub const fn new(offset: u16, size: u16) -> FieldLoc {
        FieldLoc { offset, size }
    }

    pub const fn present(&self) -> bool {
        self.size != 0
    }
}

/// How a tracepoint carries its 4-tuple. Before 6.10 `tcp_send_reset` (and
/// still today most tracepoints) have separate port/family/address fields;
/// from 6.10 `tcp_send_reset` carries two `sockaddr_in6`-sized blobs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrLayout {
    pub sport: FieldLoc,
    pub dport: FieldLoc,
    pub family: FieldLoc,
    pub saddr: FieldLoc,
    pub daddr: FieldLoc,
    pub saddr_v6: FieldLoc,
    pub daddr_v6: FieldLoc,
    /// `sockaddr` blobs (family, big-endian port, address).
    pub sockaddr_src: FieldLoc,
    pub sockaddr_dst: FieldLoc,
}

impl AddrLayout {
    pub const EMPTY: AddrLayout = AddrLayout {
        sport: FieldLoc::ABSENT,
        dport: FieldLoc::ABSENT,
        family: FieldLoc::ABSENT,
        saddr: FieldLoc::ABSENT,
        daddr: FieldLoc::ABSENT,
        saddr_v6: FieldLoc::ABSENT,
        daddr_v6: FieldLoc::ABSENT,
        sockaddr_src: FieldLoc::ABSENT,
        sockaddr_dst: FieldLoc::ABSENT,
    };
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendResetLayout {
    pub skaddr: FieldLoc,
    pub state: FieldLoc,
    pub reason: FieldLoc,
    pub addr: AddrLayout,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiveResetLayout {
    pub skaddr: FieldLoc,
    pub addr: AddrLayout,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorReportLayout {
    pub error: FieldLoc,
    pub protocol: FieldLoc,
    pub addr: AddrLayout,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetStateLayout {
    pub skaddr: FieldLoc,
    pub oldstate: FieldLoc,
    pub newstate: FieldLoc,
    pub protocol: FieldLoc,
    pub addr: AddrLayout,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetransmitLayout {
    pub skaddr: FieldLoc,
    pub state: FieldLoc,
    pub addr: AddrLayout,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalLayout {
    pub sig: FieldLoc,
    pub code: FieldLoc,
    pub comm: FieldLoc,
    pub pid: FieldLoc,
    pub group: FieldLoc,
    pub result: FieldLoc,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitLayout {
    pub comm: FieldLoc,
    pub pid: FieldLoc,
    /// 6.18+ only; older kernels fall back to `signal_struct::live`.
    pub group_dead: FieldLoc,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomLayout {
    pub pid: FieldLoc,
    /// A `__data_loc char[]`: u32 with offset (low 16) and length (high 16).
    pub comm_loc: FieldLoc,
}

/// A syscall entry that writes bytes: `fd`, a pointer (`buf`, `vec` or
/// `msg`) and, where the syscall has one, a length (`count`, `vlen`, `len`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteLayout {
    pub fd: FieldLoc,
    pub ptr: FieldLoc,
    pub len: FieldLoc,
}

impl WriteLayout {
    pub const EMPTY: WriteLayout = WriteLayout {
        fd: FieldLoc::ABSENT,
        ptr: FieldLoc::ABSENT,
        len: FieldLoc::ABSENT,
    };
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpLayout {
    pub write: WriteLayout,
    pub writev: WriteLayout,
    pub sendto: WriteLayout,
    pub sendmsg: WriteLayout,
}

/// `skb:kfree_skb`. The classic record gives the skb and the drop reason
/// at tracefs offsets. The BTF form takes them as arguments 0 and 2, and
/// is attached only where the kernel's `btf_trace_kfree_skb` prototype
/// says so (a BPF program cannot index its context by a variable).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KfreeSkbLayout {
    pub skbaddr: FieldLoc,
    pub reason: FieldLoc,
    /// The value of `SKB_DROP_REASON_NO_SOCKET` on this kernel; -1: do not
    /// report socket-less drops (unknown, or `tcp_send_reset` reports them).
    pub no_socket: i32,
}

/// Packet and socket offsets for reading a 4-tuple out of an `sk_buff`
/// (BTF, never compiled in); -1 unknown. Header offsets are within their
/// header; `tcp_*_mask` are the flag bits within the byte `tcp_flags`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkbOffsets {
    pub skb_head: i32,
    pub skb_network_header: i32,
    pub skb_transport_header: i32,
    pub skb_protocol: i32,
    pub ip_protocol: i32,
    pub ip_saddr: i32,
    pub ip_daddr: i32,
    pub ip6_nexthdr: i32,
    pub ip6_saddr: i32,
    pub ip6_daddr: i32,
    pub tcp_source: i32,
    pub tcp_dest: i32,
    pub tcp_flags: i32,
    pub tcp_syn_mask: i32,
    pub tcp_ack_mask: i32,
    /// `sock::sk_protocol` (a whole u16 since 5.6; -1 where a bitfield).
    pub sock_protocol: i32,
}

impl SkbOffsets {
    pub const UNKNOWN: SkbOffsets = SkbOffsets {
        skb_head: -1,
        skb_network_header: -1,
        skb_transport_header: -1,
        skb_protocol: -1,
        ip_protocol: -1,
        ip_saddr: -1,
        ip_daddr: -1,
        ip6_nexthdr: -1,
        ip6_saddr: -1,
        ip6_daddr: -1,
        tcp_source: -1,
        tcp_dest: -1,
        tcp_flags: -1,
        tcp_syn_mask: -1,
        tcp_ack_mask: -1,
        sock_protocol: -1,
    };

    /// Everything needed to read a SYN's 4-tuple from an skb.
    pub const fn packet_known(&self) -> bool {
        self.skb_head >= 0
            && self.skb_network_header >= 0
            && self.skb_transport_header >= 0
            && self.skb_protocol >= 0
            && self.ip_protocol >= 0
            && self.ip_saddr >= 0
            && self.ip_daddr >= 0
            && self.ip6_nexthdr >= 0
            && self.ip6_saddr >= 0
            && self.ip6_daddr >= 0
            && self.tcp_source >= 0
            && self.tcp_dest >= 0
            && self.tcp_flags >= 0
            && self.tcp_syn_mask > 0
            && self.tcp_ack_mask > 0
    }
}

impl Default for SkbOffsets {
    fn default() -> Self {
        Self::UNKNOWN
    }
}

/// Offsets of kernel struct members, discovered from BTF at start-up.
/// `-1` means unknown on this kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_exit_code: i32,
    pub task_signal: i32,
    pub signal_live: i32,
    /// `sock::__sk_common.skc_state`, counted from the start of `struct sock`.
    pub sock_state: i32,
    /// fd -> socket: task_struct.files, files_struct.fdt, fdtable.fd,
    /// file.private_data, socket.sk.
    pub task_files: i32,
    pub files_fdt: i32,
    pub fdt_fd: i32,
    pub file_private_data: i32,
    pub socket_sk: i32,
    /// In `struct sock` (through `__sk_common`).
    pub sock_family: i32,
    pub sock_daddr: i32,
    pub sock_rcv_saddr: i32,
    pub sock_dport: i32,
    pub sock_num: i32,
    pub sock_v6_daddr: i32,
    pub sock_v6_rcv_saddr: i32,
    /// `inet_sock::inet_sport` (big-endian): unlike `skc_num` it survives
    /// the port's release when a socket closes.
    pub inet_sport: i32,
    /// `tcp_sock::retrans_stamp`: when a connecting socket sent its first
    /// SYN, in ms of the TCP clock (CLOCK_MONOTONIC).
    pub tcp_retrans_stamp: i32,
    /// User ABI structs, from BTF where present: user_msghdr.msg_iov,
    /// iovec.iov_base, iovec.iov_len.
    pub msghdr_iov: i32,
    pub iovec_base: i32,
    pub iovec_len: i32,
}

impl KernelOffsets {
    pub const UNKNOWN: KernelOffsets = KernelOffsets {
        task_exit_code: -1,
        task_signal: -1,
        signal_live: -1,
        sock_state: -1,
        task_files: -1,
        files_fdt: -1,
        fdt_fd: -1,
        file_private_data: -1,
        socket_sk: -1,
        sock_family: -1,
        sock_daddr: -1,
        sock_rcv_saddr: -1,
        sock_dport: -1,
        sock_num: -1,
        sock_v6_daddr: -1,
        sock_v6_rcv_saddr: -1,
        inet_sport: -1,
        tcp_retrans_stamp: -1,
        msghdr_iov: -1,
        iovec_base: -1,
        iovec_len: -1,
    };
}

impl Default for KernelOffsets {
    fn default() -> Self {
        Self::UNKNOWN
    }
}

/// How long a connection had been idle when the local side closed it
/// (ESTABLISHED -> FIN_WAIT1), read from the socket's own last-activity
/// stamps: the idle keep-alive close a backend does just before a proxy
/// reuses the connection and draws a RST.
///
/// Why these two fields: `tcp_sock::lsndtime` is stamped (tcp_jiffies32)
/// whenever a segment carrying data leaves (tcp_event_data_sent), and
/// `inet_connection_sock::icsk_ack.lrcvtime` whenever a segment carrying
/// data arrives (tcp_event_data_recv, and at the handshake). Pure ACKs,
/// window updates and keepalive probes touch neither, so the most recent
/// of the two is "the last data in either direction" and nothing else.
/// (`rcv_tstamp` moves on every ACK, a keepalive's included, and
/// `tcp_mstamp` on every packet and several timers.) Both are u32 jiffies.
///
/// The programs have no reliable jiffies clock on every kernel (the
/// `bpf_jiffies64` helper is not offered to tracing programs everywhere,
/// and `jiffies` is not in kallsyms without KALLSYMS_ALL), so the agent
/// measures at start-up one (monotonic ns, jiffies) pair and HZ, and the
/// program computes now's jiffies from `bpf_ktime_get_ns()`: jiffies
/// advance from the same monotonic clock, one per tick.
///
/// All fields 0 (`hz == 0`): unknown, nothing is read and no
/// ESTABLISHED -> FIN_WAIT1 record is emitted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdleLayout {
    /// Jiffies per second (CONFIG_HZ), 0 unknown.
    pub hz: u32,
    /// ESTABLISHED -> FIN_WAIT1 is emitted only when idle at least this
    /// long: a close right after a response (idle ~0) is the common case
    /// and stays a counter.
    pub min_idle_jiffies: u32,
    /// The low 32 bits of jiffies (tcp_jiffies32) at `base_ns`.
    pub base_jiffies: u32,
    /// CLOCK_MONOTONIC ns of that tick, split in two u32 so the struct
    /// has no padding.
    pub base_ns_lo: u32,
    pub base_ns_hi: u32,
    /// Offsets in `struct tcp_sock` (from the start of `struct sock`).
    pub tcp_lsndtime: i32,
    pub icsk_lrcvtime: i32,
    pub reserved: u32,
}

impl IdleLayout {
    pub const UNKNOWN: IdleLayout = IdleLayout {
        hz: 0,
        min_idle_jiffies: 0,
        base_jiffies: 0,
        base_ns_lo: 0,
        base_ns_hi: 0,
        tcp_lsndtime: -1,
        icsk_lrcvtime: -1,
        reserved: 0,
    };

    /// Everything the program needs to read an idle time.
    pub const fn known(&self) -> bool {
        self.hz > 0 && self.tcp_lsndtime >= 0 && self.icsk_lrcvtime >= 0
    }

    pub const fn base_ns(&self) -> u64 {
        (self.base_ns_hi as u64) << 32 | self.base_ns_lo as u64
    }

    /// tcp_jiffies32 at monotonic time `now_ns` (wrapping, as the kernel's).
    pub const fn jiffies_at(&self, now_ns: u64) -> u32 {
        let base = self.base_ns();
        let (delta_us, ahead) = if now_ns >= base {
            ((now_ns - base) / 1000, true)
        } else {
            ((base - now_ns) / 1000, false)
        };
        let ticks = (delta_us * self.hz as u64 / 1_000_000) as u32;
        if ahead {
            self.base_jiffies.wrapping_add(ticks)
        } else {
            self.base_jiffies.wrapping_sub(ticks)
        }
    }

    /// Jiffies since the most recent of two last-activity stamps; a stamp
    /// "in the future" (the base measured a tick late) counts as 0.
    pub const fn idle_jiffies(&self, now: u32, last_sent: u32, last_received: u32) -> u32 {
        let a = now.wrapping_sub(last_sent);
        let b = now.wrapping_sub(last_received);
        let idle = if a < b { a } else { b };
        if idle > 1 << 30 {
            0
        } else {
            idle
        }
    }
}

/// Everything the programs need to know about the running kernel. The agent
/// fills it from tracefs and BTF and writes it into the object's read-only
/// data before load, so the verifier sees constants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracerConfig {
    pub send_reset: SendResetLayout,
    pub receive_reset: ReceiveResetLayout,
    pub error_report: ErrorReportLayout,
    pub set_state: SetStateLayout,
    pub retransmit: RetransmitLayout,
    pub signal: SignalLayout,
    pub exit: ExitLayout,
    pub oom: OomLayout,
    pub http: HttpLayout,
    pub kernel: KernelOffsets,
    pub kfree_skb: KfreeSkbLayout,
    pub skb: SkbOffsets,
    pub idle: IdleLayout,
}

impl TracerConfig {
    /// Every field absent: what the object carries until the agent fills it in.
    pub const EMPTY: TracerConfig = TracerConfig {
        send_reset: SendResetLayout {
            skaddr: FieldLoc::ABSENT,
            state: FieldLoc::ABSENT,
            reason: FieldLoc::ABSENT,
            addr: AddrLayout::EMPTY,
        },
        receive_reset: ReceiveResetLayout {
            skaddr: FieldLoc::ABSENT,
            addr: AddrLayout::EMPTY,
        },
        error_report: ErrorReportLayout {
            error: FieldLoc::ABSENT,
            protocol: FieldLoc::ABSENT,
            addr: AddrLayout::EMPTY,
        },
        set_state: SetStateLayout {
            skaddr: FieldLoc::ABSENT,
            oldstate: FieldLoc::ABSENT,
            newstate: FieldLoc::ABSENT,
            protocol: FieldLoc::ABSENT,
            addr: AddrLayout::EMPTY,
        },
        retransmit: RetransmitLayout {
            skaddr: FieldLoc::ABSENT,
            state: FieldLoc::ABSENT,
            addr: AddrLayout::EMPTY,
        },
        signal: SignalLayout {
            sig: FieldLoc::ABSENT,
            code: FieldLoc::ABSENT,
            comm: FieldLoc::ABSENT,
            pid: FieldLoc::ABSENT,
            group: FieldLoc::ABSENT,
            result: FieldLoc::ABSENT,
        },
        exit: ExitLayout {
            comm: FieldLoc::ABSENT,
            pid: FieldLoc::ABSENT,
            group_dead: FieldLoc::ABSENT,
        },
        oom: OomLayout {
            pid: FieldLoc::ABSENT,
            comm_loc: FieldLoc::ABSENT,
        },
        http: HttpLayout {
            write: WriteLayout::EMPTY,
            writev: WriteLayout::EMPTY,
            sendto: WriteLayout::EMPTY,
            sendmsg: WriteLayout::EMPTY,
        },
        kernel: KernelOffsets::UNKNOWN,
        kfree_skb: KfreeSkbLayout {
            skbaddr: FieldLoc::ABSENT,
            reason: FieldLoc::ABSENT,
            no_socket: -1,
        },
        skb: SkbOffsets::UNKNOWN,
        idle: IdleLayout::UNKNOWN,
    };
}

/// Name of the global that holds the `TracerConfig` in the object.
pub const CONFIG_SYMBOL: &str = "FIVEXX_CONFIG";
/// Ring buffer map carrying `RawEvent`s.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU u64 counters, `KIND_COUNT` each: records the programs tried to emit,
/// and reservations that failed.
pub const GENERATED_MAP: &str = "GENERATED";
pub const DROPPED_MAP: &str = "DROPPED";
/// Per-CPU u64 counters of TCP state transitions, index `old * 16 + new`.
/// Normal transitions are only counted here, never emitted.
pub const STATE_COUNTS_MAP: &str = "STATE_COUNTS";
pub const STATE_COUNTS_LEN: u32 = 256;

/// Linux TCP states (include/net/tcp_states.h).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
    pub const NEW_SYN_RECV: u8 = 12;
}

/// A transition worth a record: a connect that never got established, or a
/// connection torn down without the FIN handshake (reset or abort).
pub const fn is_abnormal_transition(old: u8, new: u8) -> bool {
    use tcp_state::*;
    new == CLOSE && matches!(old, SYN_SENT | SYN_RECV | ESTABLISHED | CLOSE_WAIT)
}

/// Signals we trace: the ones that end pods.
pub const fn is_traced_signal(sig: i32) -> bool {
    matches!(sig, 1 | 2 | 3 | 9 | 15)
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: Pod needs a type that is Copy, has no padding and for which
    // every bit pattern is valid. TracerConfig is repr(C) of repr(C) structs
    // whose fields are all u16 pairs (FieldLoc, 4 bytes) or i32, so every
    // field sits at a multiple of 4 with nothing between, and any bytes are
    // valid integers.
    unsafe impl aya::Pod for super::TracerConfig {}
}
