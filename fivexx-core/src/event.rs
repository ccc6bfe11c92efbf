//! Kernel facts as the agent reports them, after decoding and enrichment.
//!
//! This is the schema of `fivexx-agent trace -o json`, of the agent's stream
//! and of the kernel records in a capture: change it only by adding optional
//! fields.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// What the kernel saw. Names match the agent's `--kinds` filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelEventKind {
    SendReset,
    ReceiveReset,
    SockError,
    StateChange,
    SynRetransmit,
    Signal,
    Exit,
    OomVictim,
    /// A 5xx status line a proxy wrote (HTTP peek, opt-in per cgroup).
    HttpResponse,
}

impl KernelEventKind {
    pub const ALL: [KernelEventKind; 9] = [
        KernelEventKind::SendReset,
        KernelEventKind::ReceiveReset,
        KernelEventKind::SockError,
        KernelEventKind::StateChange,
        KernelEventKind::SynRetransmit,
        KernelEventKind::Signal,
        KernelEventKind::Exit,
        KernelEventKind::OomVictim,
        KernelEventKind::HttpResponse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KernelEventKind::SendReset => "send_reset",
            KernelEventKind::ReceiveReset => "receive_reset",
            KernelEventKind::SockError => "sock_error",
            KernelEventKind::StateChange => "state_change",
            KernelEventKind::SynRetransmit => "syn_retransmit",
            KernelEventKind::Signal => "signal",
            KernelEventKind::Exit => "exit",
            KernelEventKind::OomVictim => "oom_victim",
            KernelEventKind::HttpResponse => "http_response",
        }
    }

    /// Parses a `--kinds` item; accepts the canonical name or a short alias.
    pub fn parse(s: &str) -> Option<KernelEventKind> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Some(match s.as_str() {
            "send_reset" | "rst_sent" => KernelEventKind::SendReset,
            "receive_reset" | "rst_received" | "recv_reset" => KernelEventKind::ReceiveReset,
            "sock_error" | "error" => KernelEventKind::SockError,
            "state_change" | "state" => KernelEventKind::StateChange,
            "syn_retransmit" | "retransmit" => KernelEventKind::SynRetransmit,
            "signal" => KernelEventKind::Signal,
            "exit" => KernelEventKind::Exit,
            "oom_victim" | "oom" => KernelEventKind::OomVictim,
            "http_response" | "http" => KernelEventKind::HttpResponse,
            _ => return None,
        })
    }
}

impl fmt::Display for KernelEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// TCP states as Linux numbers them (include/net/tcp_states.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
}

impl TcpState {
    pub fn from_kernel(v: u8) -> Option<TcpState> {
        Some(match v {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            12 => TcpState::NewSynRecv,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
        }
    }

    /// The errno a connection reset in this state reports to the application
    /// (tcp_reset() in net/ipv4/tcp_input.c).
    pub fn errno_on_reset(self) -> i32 {
        match self {
            TcpState::SynSent => 111,  // ECONNREFUSED
            TcpState::CloseWait => 32, // EPIPE
            TcpState::Close => 0,
            _ => 104, // ECONNRESET
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Source and destination as the socket sees them: for a client, source is
/// the local end; for `send_reset` of a closed port, source is us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FourTuple {
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
}

impl fmt::Display for FourTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {}",
            std::net::SocketAddr::new(self.saddr, self.sport),
            std::net::SocketAddr::new(self.daddr, self.dport)
        )
    }
}

/// A process as the kernel named it at the time of the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub pid: i32,
    pub comm: String,
}

/// `result` of `signal:signal_generate` (include/trace/events/signal.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalResult {
    Delivered,
    Ignored,
    AlreadyPending,
    OverflowFail,
    LoseInfo,
    Unknown,
}

impl SignalResult {
    pub fn from_kernel(v: i32) -> SignalResult {
        match v {
            0 => SignalResult::Delivered,
            1 => SignalResult::Ignored,
            2 => SignalResult::AlreadyPending,
            3 => SignalResult::OverflowFail,
            4 => SignalResult::LoseInfo,
            _ => SignalResult::Unknown,
        }
    }
}

/// How a thread group ended, decoded from the kernel's wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// `exit(code)`, when it exited normally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that killed it, when it died by signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub core_dumped: bool,
}

impl ExitStatus {
    /// Decodes `task_struct::exit_code` (the same encoding as wait(2)).
    pub fn from_wait_status(status: i32) -> ExitStatus {
        let sig = status & 0x7f;
        if sig == 0 {
            ExitStatus {
                code: Some((status >> 8) & 0xff),
                signal: None,
                core_dumped: false,
            }
        } else {
            ExitStatus {
                code: None,
                signal: Some(sig),
                core_dumped: status & 0x80 != 0,
            }
        }
    }
}

/// One kernel fact, decoded and enriched by the agent on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelEvent {
    /// CLOCK_MONOTONIC of the node, nanoseconds.
    pub mono_ns: u64,
    /// Wall clock (Unix epoch nanoseconds), derived once per agent start.
    pub wall_ns: i64,
    pub kind: KernelEventKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuple: Option<FourTuple>,
    /// TCP state at the event (the old state of a transition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_state: Option<TcpState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_state: Option<TcpState>,
    /// Why the kernel sent a RST, by the kernel's own name (6.10+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_reason: Option<String>,
    /// The error the socket saw (111 refused, 104 reset, 110 timed out, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_result: Option<SignalResult>,
    /// The task running when the event fired: the signal's sender. For
    /// receive-side network events it is whatever task softirq interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    /// The process the event is about: signal target, exiting process, OOM victim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// cgroup v2 id of the subject (target when there is one, else task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Opaque per-agent socket identity, to join events of one connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sock_id: Option<u64>,
    /// The status a proxy answered (`http_response`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The fd the response was written to (`http_response`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// How many bytes of the response the kernel read (at most 16: the
    /// status line only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_peek_bytes: Option<u8>,
    /// For a connect that failed in SYN_SENT (`state_change` SYN_SENT ->
    /// CLOSE): when the socket entered SYN_SENT, i.e. when its SYN left
    /// (wall clock). That is when the proxy chose the address; the rest of
    /// the wait was its connect timeout. `None` on agents without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_sent_ns: Option<i64>,
    /// On a `state_change`: how long the connection had been idle (no
    /// data either way) when it left ESTABLISHED, in microseconds, read in
    /// the kernel from the socket's last-data stamps (tcp_sock `lsndtime`
    /// and `icsk_ack.lrcvtime`, jiffies: the resolution is one tick, 1 to
    /// 10 ms by HZ). Set on ESTABLISHED -> FIN_WAIT1 (the local side
    /// closed; emitted only after at least 100 ms of idle: an idle
    /// keep-alive close) and on resets of established connections; on
    /// ESTABLISHED -> CLOSE (an abort: this side closed with data unread,
    /// or was reset) it counts from the last data this side sent, since
    /// the unread request moved the receive stamp.
    /// `None` where the kernel could not say, or on agents without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_us: Option<u64>,
}

impl KernelEvent {
    pub fn new(kind: KernelEventKind, mono_ns: u64, wall_ns: i64) -> KernelEvent {
        KernelEvent {
            mono_ns,
            wall_ns,
            kind,
            node: String::new(),
            tuple: None,
            tcp_state: None,
            new_state: None,
            reset_reason: None,
            errno: None,
            signal: None,
            signal_result: None,
            task: None,
            target: None,
            exit: None,
            cgroup_id: None,
            pod_uid: None,
            container_id: None,
            sock_id: None,
            http_status: None,
            fd: None,
            http_peek_bytes: None,
            syn_sent_ns: None,
            idle_us: None,
        }
    }
}

/// Short names of the errnos sockets report.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        32 => "EPIPE",
        104 => "ECONNRESET",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        _ => "E?",
    }
}

/// The one table of signal names (Linux x86-64 and arm64 numbering), for
/// both binaries: an agent line and a plugin line never name one signal
/// two ways.
pub fn signal_name(sig: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "SIG0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("SIG?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_signal_table() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(6), "SIGABRT");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(64), "SIG?");
        assert_eq!(signal_name(-1), "SIG?");
    }

    #[test]
    fn wait_status_decodes_exit_and_signal() {
        assert_eq!(ExitStatus::from_wait_status(3 << 8).code, Some(3));
        let killed = ExitStatus::from_wait_status(9);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
        assert!(ExitStatus::from_wait_status(0x80 | 11).core_dumped);
    }

    #[test]
    fn reset_errno_follows_tcp_reset() {
        assert_eq!(TcpState::SynSent.errno_on_reset(), 111);
        assert_eq!(TcpState::CloseWait.errno_on_reset(), 32);
        assert_eq!(TcpState::Established.errno_on_reset(), 104);
    }

    #[test]
    fn kinds_round_trip_names() {
        for k in KernelEventKind::ALL {
            assert_eq!(KernelEventKind::parse(k.name()), Some(k));
        }
    }
}
