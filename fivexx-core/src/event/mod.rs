//! Kernel facts as the agent reports them, after decoding and enrichment.
//!
//! This is the schema of `fivexx-agent trace -o json`, of the agent's stream
//! and of the kernel records in a capture: change it only by adding optional
//! fields.

mod net;
mod process;

pub use net::{Errno, FourTuple, ResetReason, TcpState};
pub use process::{signal_name, ExitStatus, SignalResult, TaskRef};

use serde::{Deserialize, Serialize};
use std::fmt;

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
    pub reset_reason: Option<ResetReason>,
    /// The error the socket saw (refused, reset, timed out, ...).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "Errno::deserialize_kernel"
    )]
    pub errno: Option<Errno>,
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
    fn kinds_round_trip_names() {
        for k in KernelEventKind::ALL {
            assert_eq!(KernelEventKind::parse(k.name()), Some(k));
        }
    }
}
