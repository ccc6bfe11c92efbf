//! Joins the kernel events of one connection into one [`FailedConnection`].
//!
//! A refused connect shows as several events: `receive_reset` in SYN_SENT,
//! `state_change` SYN_SENT->CLOSE and `sock_error` 111 on the client, and on
//! 6.10+ a `send_reset` (NO_SOCKET) on the server's node. A timeout shows as
//! `syn_retransmit`s, then `sock_error` 110 and/or SYN_SENT->CLOSE. They are
//! joined by the connection's endpoints (both directions), and a connection
//! is final once nothing joined it for `join_ns` of event time.

use super::verdict::{FailedConnection, FailureKind, IdleClose, ServerReset};
use crate::event::{Errno, FourTuple, KernelEvent, KernelEventKind, ResetReason, TcpState};
use crate::model::fact::NodeNames;
use crate::model::FactSource;
use crate::model::{Evidence, Observation};
use foldhash::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

/// Kernel facts joined into one failure, at most.
const MAX_JOINED_EVIDENCE: usize = 6;

/// Both endpoints of a connection, in a fixed order so that the client's
/// and the server's view of it meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ConnKey((IpAddr, u16), (IpAddr, u16));

impl ConnKey {
    fn of(t: &FourTuple) -> ConnKey {
        let a = (t.saddr, t.sport);
        let b = (t.daddr, t.dport);
        if a <= b {
            ConnKey(a, b)
        } else {
            ConnKey(b, a)
        }
    }
}

/// What a kernel event says about its connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The client saw it: `tuple` is (client, server).
    Client,
    /// The server's kernel sent a RST: `tuple` is (server, client).
    Server,
}

#[derive(Debug, Default)]
struct OpenConnection {
    first_ns: i64,
    last_ns: i64,
    terminal_ns: Option<i64>,
    client_tuple: Option<FourTuple>,
    server_tuple: Option<FourTuple>,
    client_node: String,
    /// The process that owned the client socket, when an event carried it
    /// (the proxy worker; not from softirq-only events).
    proxy_pid: Option<i32>,
    rst_in_syn_sent: bool,
    rst_established: bool,
    /// The server's kernel sent a RST on this connection.
    server_reset: Option<ServerReset>,
    errno: Option<Errno>,
    syn_close: bool,
    syn_retransmits: u32,
    /// When the SYN left (the agent's `syn_sent_ns` on SYN_SENT -> CLOSE).
    syn_sent_ns: Option<i64>,
    /// Kinds of terminal events seen, to tell a reused port from a straggler.
    seen: u16,
    evidence: Vec<Evidence>,
}

impl OpenConnection {
    /// Takes in one event of this connection.
    fn absorb(
        &mut self,
        e: &KernelEvent,
        tuple: FourTuple,
        role: Role,
        terminal: u16,
        source: FactSource,
    ) {
        let s = self;
        let t = e.wall_ns;
        s.first_ns = s.first_ns.min(t);
        s.last_ns = s.last_ns.max(t);
        s.seen |= terminal;
        if terminal != 0 {
            s.terminal_ns = Some(s.terminal_ns.map_or(t, |x: i64| x.min(t)));
        }
        match role {
            Role::Client => {
                if s.client_tuple.is_none() {
                    s.client_tuple = Some(tuple);
                }
                if let Some(t) = &e.task {
                    s.proxy_pid.get_or_insert(t.pid);
                }
                if s.client_node.is_empty() || e.node < s.client_node {
                    s.client_node.clone_from(&e.node);
                }
            }
            Role::Server => {
                if s.server_tuple.is_none() {
                    s.server_tuple = Some(tuple);
                }
                // The latest reason the kernel gave wins; a RST seen
                // without one (before 6.10) is still a RST.
                let rst = s.server_reset.get_or_insert(ServerReset { reason: None });
                if let Some(r) = &e.reset_reason {
                    rst.reason = Some(r.clone());
                }
            }
        }
        let said = match e.kind {
            KernelEventKind::ReceiveReset => {
                if e.tcp_state == Some(TcpState::SynSent) {
                    s.rst_in_syn_sent = true;
                } else {
                    s.rst_established = true;
                }
                Observation::Conn {
                    kind: e.kind,
                    state: e.tcp_state,
                    errno: None,
                    tuple,
                }
            }
            KernelEventKind::SockError => {
                // Keep the most telling errno: refused/timeout over others.
                if !s.errno.is_some_and(Errno::is_decisive) {
                    s.errno = e.errno;
                }
                Observation::Conn {
                    kind: e.kind,
                    state: None,
                    errno: e.errno,
                    tuple,
                }
            }
            KernelEventKind::StateChange => {
                s.syn_close = true;
                if let Some(syn) = e.syn_sent_ns {
                    s.syn_sent_ns = Some(s.syn_sent_ns.map_or(syn, |x| x.min(syn)));
                }
                Observation::Conn {
                    kind: e.kind,
                    state: None,
                    errno: None,
                    tuple,
                }
            }
            KernelEventKind::SynRetransmit => {
                s.syn_retransmits += 1;
                Observation::Conn {
                    kind: e.kind,
                    state: None,
                    errno: None,
                    tuple,
                }
            }
            KernelEventKind::SendReset => Observation::RstSent {
                reason: e.reset_reason.clone(),
                tuple,
            },
            _ => return,
        };
        if s.evidence.len() < MAX_JOINED_EVIDENCE {
            s.evidence.push(Evidence {
                at_ns: t,
                source,
                fact: said,
            });
        }
    }

    fn kind(&self) -> Option<FailureKind> {
        let errno = self.errno;
        if self.rst_in_syn_sent || errno.is_some_and(Errno::is_refused) {
            return Some(FailureKind::Refused);
        }
        if errno.is_some_and(Errno::is_timeout) {
            return Some(FailureKind::TimedOut);
        }
        if errno.is_some_and(Errno::is_unreachable) {
            return Some(FailureKind::Unreachable);
        }
        if self.rst_established || errno.is_some_and(Errno::is_reset) {
            return Some(FailureKind::Reset);
        }
        if let Some(rst) = &self.server_reset {
            return Some(if rst.is_refusal() {
                FailureKind::Refused
            } else {
                FailureKind::Reset
            });
        }
        if self.syn_close {
            return Some(if self.syn_retransmits > 0 {
                FailureKind::TimedOut
            } else {
                FailureKind::ConnectFailed
            });
        }
        None
    }

    fn into_failure(self) -> Option<FailedConnection> {
        let kind = self.kind()?;
        let tuple = match (self.client_tuple, self.server_tuple) {
            (Some(c), _) => c,
            (None, Some(s)) => FourTuple {
                saddr: s.daddr,
                sport: s.dport,
                daddr: s.saddr,
                dport: s.sport,
            },
            (None, None) => return None,
        };
        let at_ns = self.terminal_ns.unwrap_or(self.last_ns);
        let mut evidence = self.evidence;
        if let Some(syn) = self.syn_sent_ns.filter(|s| *s <= at_ns) {
            evidence.push(Evidence {
                at_ns: syn,
                source: evidence
                    .first()
                    .map_or(FactSource::Api, |e| e.source.clone()),
                fact: Observation::text(syn_wait(syn, at_ns, kind, self.errno, &tuple)),
            });
        }
        Some(FailedConnection {
            at_ns,
            first_ns: self.first_ns,
            kind,
            tuple,
            client_node: self.client_node,
            proxy_pid: self.proxy_pid,
            rst: self.rst_in_syn_sent || self.rst_established || self.server_reset.is_some(),
            errno: self.errno,
            syn_retransmits: self.syn_retransmits,
            server_reset: self.server_reset,
            syn_sent_ns: self.syn_sent_ns,
            idle_close: None,
            evidence,
        })
    }
}

/// Which part of a failed connect's duration was waiting: the SYN left at
/// `syn`, the connect ended at `end`. Without ETIMEDOUT the client closed
/// the socket itself, at its own connect timeout (nginx's
/// `proxy_connect_timeout`, Envoy's `connect_timeout`).
fn syn_wait(
    syn: i64,
    end: i64,
    kind: FailureKind,
    errno: Option<Errno>,
    tuple: &FourTuple,
) -> String {
    let waited = (end - syn) as f64 / 1e9;
    match kind {
        FailureKind::Refused => {
            return format!("SYN sent on {tuple}; refused {:.1} ms later", waited * 1e3)
        }
        FailureKind::Unreachable => {
            return format!(
                "SYN sent on {tuple}; unreachable {:.1} ms later",
                waited * 1e3
            )
        }
        _ => {}
    }
    let who = if errno.is_some_and(Errno::is_timeout) {
        "the kernel's SYN retries ran out (ETIMEDOUT)"
    } else {
        "the proxy gave up: its connect timeout"
    };
    format!("SYN sent on {tuple}; no answer for {waited:.2} s, then {who}")
}

/// A reset of a pooled connection joined to the server side's idle close
/// just before it: the backend timed the connection out as the proxy
/// reused it.
fn with_close(
    closes: &HashMap<ConnKey, ((IpAddr, u16), IdleClose)>,
    k: ConnKey,
    mut f: FailedConnection,
) -> FailedConnection {
    if f.kind != FailureKind::Reset {
        return f;
    }
    if let Some((closer, c)) = closes.get(&k) {
        let server = (f.tuple.daddr, f.tuple.dport);
        let gap = f.at_ns - c.at_ns;
        let by_server = *closer == server && (!c.unread || f.server_reset.is_some());
        if by_server && (-CLOSE_JOIN_NS..=CLOSE_JOIN_NS).contains(&gap) {
            f.idle_close = Some(*c);
        }
    }
    f
}

/// Bit per terminal event kind.
const T_RECV_RST: u16 = 1;
const T_ERR: u16 = 2;
const T_SYN_CLOSE: u16 = 4;
const T_SEND_RST: u16 = 8;

/// Open connections, keyed by endpoints.
#[derive(Debug, Default)]
pub struct FailureJoiner {
    open: HashMap<ConnKey, OpenConnection>,
    nodes: NodeNames,
    /// Recently closed connections (first, last event time, kinds seen),
    /// so that a late half of one (a node's stream delivered late) is not
    /// taken for a new failure. `closed_order` ages them out.
    closed: HashMap<ConnKey, (i64, i64, u16)>,
    closed_order: std::collections::VecDeque<(i64, ConnKey)>,
    /// Late events dropped as halves of connections already closed out.
    pub stragglers: u64,
    /// Scratch list of `expire`, kept to spare an allocation per call.
    ripe: Vec<ConnKey>,
    /// Idle closes seen lately, with the side that closed: a reset that
    /// follows on the same connection from that side is joined to it.
    closes: HashMap<ConnKey, ((IpAddr, u16), IdleClose)>,
    close_order: std::collections::VecDeque<(i64, ConnKey)>,
    /// Resets and errors left out as a side aborting its own connection
    /// (HAProxy closes server connections with a RST).
    pub own_aborts: u64,
}

/// A reset this long after the other side's idle close belongs to it: a
/// proxy writes on a pooled connection within microseconds to a few
/// milliseconds of the backend's FIN (the race); a second leaves room for
/// a node's stream delivered late.
const CLOSE_JOIN_NS: i64 = 1_000_000_000;

/// An abort counts as an idle close only after this long without sending:
/// the agent's threshold for the FIN_WAIT1 records too.
const MIN_IDLE_ABORT_US: u64 = 100_000;

/// The idle close an event reports: the local side left ESTABLISHED for
/// FIN_WAIT1 (it closed first) after `idle_us` without data.
pub(crate) fn idle_close_of(e: &KernelEvent) -> Option<IdleClose> {
    if e.kind != KernelEventKind::StateChange
        || e.tcp_state != Some(TcpState::Established)
        || e.new_state != Some(TcpState::FinWait1)
    {
        return None;
    }
    Some(IdleClose {
        at_ns: e.wall_ns,
        idle_us: e.idle_us?,
        unread: false,
    })
}

/// An abort after a long time without sending: ESTABLISHED -> CLOSE with
/// the idle time since this side's last data. Either this side closed
/// with a request unread (an idle timer racing it: the kernel sends a
/// RST) or it was reset; only a failure whose server side sent the RST
/// takes it, and it is never counted as one of the server's idle closes.
fn idle_abort_of(e: &KernelEvent) -> Option<IdleClose> {
    if e.kind != KernelEventKind::StateChange
        || e.tcp_state != Some(TcpState::Established)
        || e.new_state != Some(TcpState::Close)
    {
        return None;
    }
    let idle_us = e.idle_us.filter(|i| *i >= MIN_IDLE_ABORT_US)?;
    Some(IdleClose {
        at_ns: e.wall_ns,
        idle_us,
        unread: true,
    })
}

/// A late event within this of a closed connection's events belongs to it.
const STRAGGLER_NS: i64 = 2_000_000_000;
/// Closed connections are remembered this long (event time).
const CLOSED_MEMORY_NS: i64 = 120_000_000_000;

impl FailureJoiner {
    /// The connection's client reset it itself, so no request of its
    /// failed by it: it chose to close. Either a socket error whose
    /// 4-tuple the kernel had already cleared (`tcp_disconnect`, an
    /// abortive close with SO_LINGER 0, reports ECONNRESET after zeroing
    /// the peer's port; a reset received keeps it), or the client's RST
    /// on an established connection: the server's side receiving it (a
    /// reset or ECONNRESET, the receiver's port below the sender's: it is
    /// the serving port) or the client's side sending it. HAProxy closes
    /// its server connections so, and a load balancer outside the cluster
    /// does not need to be known for its closes to be its own.
    fn own_abort(&self, e: &KernelEvent, t: &FourTuple) -> bool {
        if e.kind == KernelEventKind::SockError && t.dport == 0 {
            return true;
        }
        // `t` is the reporting socket's view: its own port first.
        let (own, peer) = (t.sport, t.dport);
        match e.kind {
            KernelEventKind::ReceiveReset => e.tcp_state != Some(TcpState::SynSent) && own < peer,
            KernelEventKind::SockError => e.errno == Some(Errno::ECONNRESET) && own < peer,
            KernelEventKind::SendReset => {
                own > peer && e.reset_reason != Some(ResetReason::NoSocket)
            }
            _ => false,
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Feeds one network event; a connection it closes out (a reused port)
    /// is pushed to `done`.
    pub fn push(&mut self, e: &KernelEvent, done: &mut Vec<FailedConnection>) {
        let Some(tuple) = e.tuple else { return };
        if let Some(c) = idle_close_of(e).or_else(|| idle_abort_of(e)) {
            let key = ConnKey::of(&tuple);
            self.closes.insert(key, ((tuple.saddr, tuple.sport), c));
            self.close_order.push_back((c.at_ns, key));
            return;
        }
        if self.own_abort(e, &tuple) {
            self.own_aborts += 1;
            return;
        }
        let (role, terminal) = match e.kind {
            KernelEventKind::ReceiveReset => (Role::Client, T_RECV_RST),
            KernelEventKind::SockError => {
                if e.errno.is_none() {
                    return;
                }
                (Role::Client, T_ERR)
            }
            KernelEventKind::StateChange
                if e.tcp_state == Some(TcpState::SynSent)
                    && e.new_state == Some(TcpState::Close) =>
            {
                (Role::Client, T_SYN_CLOSE)
            }
            KernelEventKind::SynRetransmit => {
                // Only a SYN (SYN_SENT) retransmit is a connect in trouble.
                if e.tcp_state.is_some_and(|s| s != TcpState::SynSent) {
                    return;
                }
                (Role::Client, 0)
            }
            KernelEventKind::SendReset => (Role::Server, T_SEND_RST),
            _ => return,
        };
        let key = ConnKey::of(&tuple);
        let t = e.wall_ns;
        let source = FactSource::Node(self.nodes.get(&e.node));
        let fresh = || OpenConnection {
            first_ns: t,
            last_ns: t,
            evidence: Vec::with_capacity(4),
            ..OpenConnection::default()
        };
        let s = match self.open.entry(key) {
            Entry::Occupied(o) => {
                let s = o.into_mut();
                // The same terminal kind twice: the port was reused by a
                // new connection. Close the old one out.
                if terminal != 0 && s.seen & terminal != 0 {
                    if let Some(old) = std::mem::replace(s, fresh()).into_failure() {
                        done.push(with_close(&self.closes, key, old));
                    }
                }
                s
            }
            Entry::Vacant(v) => {
                if let Some((first, last, seen)) = self.closed.get(&key) {
                    let near = t >= first - STRAGGLER_NS && t <= last + STRAGGLER_NS;
                    if near && (terminal == 0 || seen & terminal == 0) {
                        self.stragglers += 1;
                        return;
                    }
                }
                v.insert(fresh())
            }
        };
        s.absorb(e, tuple, role, terminal, source);
    }

    /// Closes out every connection quiet since before `cutoff`.
    pub fn expire(&mut self, cutoff: i64, syn_cutoff: i64, done: &mut Vec<FailedConnection>) {
        let mut ripe = std::mem::take(&mut self.ripe);
        ripe.clear();
        ripe.extend(
            self.open
                .iter()
                .filter(|(_, s)| {
                    if s.terminal_ns.is_some() {
                        s.last_ns < cutoff
                    } else {
                        // Retransmits only: the connect may still succeed or
                        // time out; give up after the kernel's SYN timeout.
                        s.last_ns < syn_cutoff
                    }
                })
                .map(|(k, _)| *k),
        );
        ripe.sort_unstable();
        for &k in &ripe {
            if let Some(s) = self.open.remove(&k) {
                if s.terminal_ns.is_some() {
                    self.closed.insert(k, (s.first_ns, s.last_ns, s.seen));
                    self.closed_order.push_back((s.last_ns, k));
                }
                if let Some(f) = s.into_failure() {
                    done.push(with_close(&self.closes, k, f));
                }
            }
        }
        self.ripe = ripe;
        let stale = cutoff.saturating_sub(2 * CLOSE_JOIN_NS);
        while let Some((at, k)) = self.close_order.front().copied() {
            if at >= stale {
                break;
            }
            self.close_order.pop_front();
            if self.closes.get(&k).is_some_and(|(_, c)| c.at_ns == at) {
                self.closes.remove(&k);
            }
        }
        let forget = cutoff.saturating_sub(CLOSED_MEMORY_NS);
        while let Some((last, k)) = self.closed_order.front().copied() {
            if last >= forget {
                break;
            }
            self.closed_order.pop_front();
            if self.closed.get(&k).is_some_and(|c| c.1 == last) {
                self.closed.remove(&k);
            }
        }
    }

    /// Closes out everything (end of the stream).
    pub fn drain(&mut self, done: &mut Vec<FailedConnection>) {
        self.expire(i64::MAX, i64::MIN, done);
        // Sessions with retransmits only are not failures we can prove.
        self.open.clear();
    }
}
