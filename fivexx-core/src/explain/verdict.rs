//! What the engine says about one failure: a failed connection or a
//! proxy's 5xx.

use crate::event::{Errno, FourTuple, ResetReason};
use crate::model::{Evidence, WorkloadRef};
use crate::proxylog::ProxyAccount;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The causes of DESIGN.md §6. Node drains and rollouts are not causes but
/// episodes: a verdict says "endpoint lag, during the drain of node-2".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Refused after the pod's SIGTERM, while proxies still routed to it.
    EndpointLagNetnsAlive,
    /// SYNs into the IP of a pod that is gone: timeouts, unreachable.
    EndpointLagNetnsGone,
    /// A pooled connection reset by a pod that is shutting down.
    KeepAliveRace,
    /// Resets at the SIGKILL that came when the grace period expired.
    SigkillAtGraceExpiry,
    /// PID 1 ignored SIGTERM, so the pod served until SIGKILL.
    SigtermIgnored,
    OomKill,
    /// Refused by a pod that had just started and was not listening yet.
    NotReadyAtStart,
    /// Refused without RST by a Service IP that had no ready endpoint.
    NoEndpoints,
    /// Endpoint lag (or a keep-alive race) in a pod whose preStop hook
    /// failed, so SIGTERM came at once instead of after the hook's sleep.
    PrestopFailed,
    /// A healthy backend closed a pooled connection it found idle, and the
    /// proxy, whose own idle timeout is longer, wrote on it as it closed.
    KeepAliveIdleTimeout,
    /// The pod's node stopped answering without a drain (a VM gone, a
    /// spot reclaim, a crash): its agent's stream ended, no pod was
    /// deleted, and the endpoints kept its pods until the Node went
    /// NotReady.
    NodeLost,
    /// An external load balancer (its address no pod's, no proxy's) that
    /// targets pod IPs went on sending new connections to a terminating
    /// pod: its target deregistration lags the endpoint removal. It
    /// answered the client itself, outside the cluster.
    LbDeregistrationLag,
    /// A proxy pod itself (an ingress or gateway replica) was terminating
    /// while clients still sent to it: it stopped accepting or closed
    /// their connections before they had moved to the other replicas.
    ProxyTerminated,
    Unexplained,
}

impl Cause {
    pub const ALL: [Cause; 14] = [
        Cause::EndpointLagNetnsAlive,
        Cause::EndpointLagNetnsGone,
        Cause::KeepAliveRace,
        Cause::SigkillAtGraceExpiry,
        Cause::SigtermIgnored,
        Cause::OomKill,
        Cause::NotReadyAtStart,
        Cause::NoEndpoints,
        Cause::PrestopFailed,
        Cause::KeepAliveIdleTimeout,
        Cause::NodeLost,
        Cause::LbDeregistrationLag,
        Cause::ProxyTerminated,
        Cause::Unexplained,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::EndpointLagNetnsAlive => "endpoint_lag_netns_alive",
            Cause::EndpointLagNetnsGone => "endpoint_lag_netns_gone",
            Cause::KeepAliveRace => "keep_alive_race",
            Cause::SigkillAtGraceExpiry => "sigkill_at_grace_expiry",
            Cause::SigtermIgnored => "sigterm_ignored",
            Cause::OomKill => "oom_kill",
            Cause::NotReadyAtStart => "not_ready_at_start",
            Cause::NoEndpoints => "no_endpoints",
            Cause::PrestopFailed => "prestop_failed",
            Cause::KeepAliveIdleTimeout => "keep_alive_idle_timeout",
            Cause::NodeLost => "node_lost",
            Cause::LbDeregistrationLag => "lb_deregistration_lag",
            Cause::ProxyTerminated => "proxy_terminated",
            Cause::Unexplained => "unexplained",
        }
    }

    /// Words for a human.
    pub fn label(self) -> &'static str {
        match self {
            Cause::EndpointLagNetnsAlive => "endpoint lag (pod still up)",
            Cause::EndpointLagNetnsGone => "endpoint lag (pod gone)",
            Cause::KeepAliveRace => "keep-alive race",
            Cause::SigkillAtGraceExpiry => "SIGKILL at grace expiry",
            Cause::SigtermIgnored => "SIGTERM ignored",
            Cause::OomKill => "OOM kill",
            Cause::NotReadyAtStart => "not ready at start",
            Cause::NoEndpoints => "no endpoints",
            Cause::PrestopFailed => "preStop hook failed",
            Cause::KeepAliveIdleTimeout => "idle keep-alive timeout (backend first)",
            Cause::NodeLost => "node lost (no drain)",
            Cause::LbDeregistrationLag => "external load balancer deregistration lag",
            Cause::ProxyTerminated => "proxy pod terminated under traffic",
            Cause::Unexplained => "unexplained",
        }
    }

    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// How the connection failed, as the kernel saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// RST in SYN_SENT, or ECONNREFUSED (also ICMP/REJECT).
    Refused,
    /// An established connection was reset (ECONNRESET, EPIPE).
    Reset,
    /// The SYN was never answered (ETIMEDOUT, or retransmits then close).
    TimedOut,
    /// EHOSTUNREACH / ENETUNREACH.
    Unreachable,
    /// SYN_SENT -> CLOSE with nothing else known.
    ConnectFailed,
    /// A 5xx status line the proxy wrote to its client (HTTP peek).
    Http5xx,
    /// A 5xx in the proxy's access log (`--proxy-logs`), for answers the
    /// peek cannot see (TLS, HTTP/2) or proxies it was not on for.
    Http5xxLogged,
}

impl FailureKind {
    /// A connect that never got through: the proxy routed a new
    /// connection to this address (as opposed to a pooled one reset).
    pub fn is_new_connection(self) -> bool {
        matches!(
            self,
            FailureKind::Refused
                | FailureKind::TimedOut
                | FailureKind::Unreachable
                | FailureKind::ConnectFailed
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Refused => "refused",
            FailureKind::Reset => "reset",
            FailureKind::TimedOut => "timed_out",
            FailureKind::Unreachable => "unreachable",
            FailureKind::ConnectFailed => "connect_failed",
            FailureKind::Http5xx => "http_5xx",
            FailureKind::Http5xxLogged => "http_5xx_logged",
        }
    }
}

/// One failed connection, joined from all kernel events about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedConnection {
    /// When the failure became final (the terminal event).
    pub at_ns: i64,
    /// The first event of the connection (the first SYN retransmit for a timeout).
    pub first_ns: i64,
    pub kind: FailureKind,
    /// Client side first: `saddr:sport` is the proxy, `daddr:dport` the server.
    pub tuple: FourTuple,
    /// Node whose agent saw the client side ("" when only the server side was seen).
    pub client_node: String,
    /// The client process (the proxy worker), when the kernel said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_pid: Option<i32>,
    /// A RST was seen, received by the client or sent by the server.
    pub rst: bool,
    pub errno: Option<Errno>,
    pub syn_retransmits: u32,
    /// The server side's `send_reset`, when its node is traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_reset: Option<ServerReset>,
    /// When the SYN left, for a connect that failed in SYN_SENT (agents
    /// that report it): the time the proxy chose this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_sent_ns: Option<i64>,
    /// The server side's own close of this connection just before the
    /// reset, with how long the connection had been idle then (agents that
    /// measure it): the backend timed out an idle pooled connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_close: Option<IdleClose>,
    /// The kernel facts joined into this failure (first few). Not in JSON:
    /// the verdict's own evidence chain includes them.
    #[serde(skip_serializing, default)]
    pub evidence: Vec<Evidence>,
}

/// The upstream connection behind an answer: the kernel's socket when the
/// answer was joined to it, or the upstream a log line names (with the
/// proxy's own end only where the proxy logs it, as Envoy's Istio and
/// Gateway formats do). Its JSON is a 4-tuple whose local half may be
/// missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamConn {
    pub local: Option<SocketAddr>,
    pub remote: SocketAddr,
}

impl UpstreamConn {
    /// The kernel's socket (client side first).
    pub fn of(t: FourTuple) -> UpstreamConn {
        UpstreamConn {
            local: Some(SocketAddr::new(t.saddr, t.sport)),
            remote: SocketAddr::new(t.daddr, t.dport),
        }
    }

    /// Whether the kernel's connection `t` is this one: the same upstream,
    /// and the same local end where that is known.
    pub fn is(&self, t: &FourTuple) -> bool {
        self.remote == SocketAddr::new(t.daddr, t.dport)
            && self
                .local
                .is_none_or(|l| l == SocketAddr::new(t.saddr, t.sport))
    }
}

#[derive(Serialize, Deserialize)]
struct UpstreamConnJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saddr: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sport: Option<u16>,
    daddr: IpAddr,
    dport: u16,
}

impl Serialize for UpstreamConn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        UpstreamConnJson {
            saddr: self.local.map(|l| l.ip()),
            sport: self.local.map(|l| l.port()),
            daddr: self.remote.ip(),
            dport: self.remote.port(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for UpstreamConn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = UpstreamConnJson::deserialize(d)?;
        Ok(UpstreamConn {
            local: j
                .saddr
                .zip(j.sport)
                .map(|(ip, port)| SocketAddr::new(ip, port)),
            remote: SocketAddr::new(j.daddr, j.dport),
        })
    }
}

/// The server's kernel reset the connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerReset {
    /// The kernel's reason (6.10+); before 6.10 the tracepoint gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ResetReason>,
}

impl ServerReset {
    /// A RST for a segment no socket took: a closed port refusing a SYN.
    pub fn is_refusal(&self) -> bool {
        self.reason == Some(ResetReason::NoSocket)
    }
}

/// A connection's close by one side after it had been idle, as the
/// kernel measured it (`state_change` ESTABLISHED -> FIN_WAIT1 with
/// `idle_us`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleClose {
    /// When that side closed.
    pub at_ns: i64,
    /// How long no data had moved either way (for `unread`: since that
    /// side last sent).
    pub idle_us: u64,
    /// That side closed with the proxy's request already arrived, unread:
    /// its kernel answered the close with a RST at once (ESTABLISHED ->
    /// CLOSE) instead of a FIN.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unread: bool,
}

impl FailedConnection {
    /// When the attempt began: when the proxy chose the address. For a new
    /// connection that is its SYN, never the end of the proxy's connect
    /// timeout; for a pooled one, the write the RST answered.
    pub fn attempt_ns(&self) -> i64 {
        if let Some(syn) = self.syn_sent_ns {
            return syn.min(self.at_ns);
        }
        // Without the SYN's time: the first event of a timed-out connect
        // is its first SYN retransmit, one initial RTO (1 s) after the SYN.
        if self.kind == FailureKind::TimedOut {
            return self.first_ns.saturating_sub(1_000_000_000).min(self.at_ns);
        }
        self.first_ns.min(self.at_ns)
    }
}

/// A 5xx a proxy answered its client: seen by the kernel (`http_5xx`, the
/// HTTP peek) or in the proxy's access log (`http_5xx_logged`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpAnswer {
    /// When it was written (peek), or the end of the logged time's slack
    /// (log: it sorts after the kernel's view of the same answer).
    pub at_ns: i64,
    /// The written or logged time.
    pub first_ns: i64,
    pub kind: FailureKind,
    pub http_status: u16,
    /// The proxy's client, when the kernel saw the socket or the log line
    /// names it (Envoy's default format does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// The client's port: the peeked socket's, or the one the log line
    /// names (HAProxy, Envoy's Istio and Envoy Gateway formats). It pairs
    /// the two views of one answer exactly where both have it.
    #[serde(skip)]
    pub client_port: Option<u16>,
    /// The proxy's socket to its client (saddr = proxy, daddr = client),
    /// when the kernel saw the answer; a log line has no socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuple: Option<FourTuple>,
    /// The proxy's node ("" when unknown).
    pub node: String,
    /// The proxy worker that wrote it, when the kernel said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_pid: Option<i32>,
    /// `namespace/name` of the proxy pod whose access log had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_pod: Option<String>,
    /// The failed upstream connection it was joined to (peek), or the
    /// upstream the log line names as failed (log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamConn>,
    /// The tries the proxy logged as failed for this request, in order
    /// (from the line itself, or a peeked answer's log twin).
    #[serde(skip)]
    pub failed_tries: Vec<std::net::SocketAddr>,
    /// How the joined upstream connection failed (refused, reset, timed
    /// out): the second piece of evidence of this one failed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_kind: Option<FailureKind>,
    /// Failed upstream connections this one answer stands for: the joined
    /// one and the earlier tries of the same request (0: none was seen).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub upstream_failures: u32,
    /// The proxy's own account of it, from its access log: its words
    /// are read from here when the verdict is made.
    #[serde(skip)]
    pub account: Option<Arc<ProxyAccount>>,
    #[serde(skip_serializing, default)]
    pub evidence: Vec<Evidence>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What failed: a connection the kernel saw fail, or a proxy's 5xx.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Failure {
    Connection(FailedConnection),
    Answer(HttpAnswer),
}

impl Failure {
    pub fn at_ns(&self) -> i64 {
        match self {
            Failure::Connection(c) => c.at_ns,
            Failure::Answer(a) => a.at_ns,
        }
    }

    pub fn first_ns(&self) -> i64 {
        match self {
            Failure::Connection(c) => c.first_ns,
            Failure::Answer(a) => a.first_ns,
        }
    }

    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::Connection(c) => c.kind,
            Failure::Answer(a) => a.kind,
        }
    }

    /// The status a proxy answered, for answers.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Failure::Connection(_) => None,
            Failure::Answer(a) => Some(a.http_status),
        }
    }

    /// The node whose agent saw the client side (the proxy's node).
    pub fn node(&self) -> &str {
        match self {
            Failure::Connection(c) => &c.client_node,
            Failure::Answer(a) => &a.node,
        }
    }

    pub fn evidence(&self) -> &[Evidence] {
        match self {
            Failure::Connection(c) => &c.evidence,
            Failure::Answer(a) => &a.evidence,
        }
    }

    pub fn connection(&self) -> Option<&FailedConnection> {
        match self {
            Failure::Connection(c) => Some(c),
            Failure::Answer(_) => None,
        }
    }

    pub fn answer(&self) -> Option<&HttpAnswer> {
        match self {
            Failure::Connection(_) => None,
            Failure::Answer(a) => Some(a),
        }
    }

    /// Where it happened, for a line: the connection's 4-tuple, the
    /// proxy's socket to its client, or (a log line) the client alone.
    pub fn endpoints(&self) -> String {
        match self {
            Failure::Connection(c) => c.tuple.to_string(),
            Failure::Answer(HttpAnswer { tuple: Some(t), .. }) => t.to_string(),
            Failure::Answer(HttpAnswer {
                client: Some(c), ..
            }) => format!("client {c}"),
            Failure::Answer(_) => "client unknown".to_string(),
        }
    }
}

/// The proxy (client) side of the failure.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProxyRef {
    pub node: String,
    /// The proxy's address, when the kernel saw its socket (an access-log
    /// line names the proxy pod, not its address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// `namespace/name` of the proxy pod, when an access log named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// A group of failures with one trigger: a drain, a rollout, an OOM kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeKind {
    Drain,
    Rollout,
    Oom,
    Startup,
    Termination,
    NoEndpoints,
    /// A healthy workload's idle keep-alive closes racing the proxy: no
    /// lifecycle event, so one workload's races close together are one.
    IdleTimeout,
    /// A node that stopped answering without a drain.
    NodeLost,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EpisodeRef {
    /// Stable id, e.g. `drain:node-2@1700000000000000000`.
    pub id: String,
    pub kind: EpisodeKind,
    /// What it is about: the node, `ns/workload`, pod or service.
    pub subject: String,
    pub start_ns: i64,
}

/// A fix, with the numbers it was derived from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// What to change, e.g. `preStop sleep >= 4 s`.
    pub action: String,
    /// The measurement behind it.
    pub because: String,
    /// The same numbers, machine-readable (`prestop_sleep_s`, `lag_p99_s`, ...).
    pub params: BTreeMap<String, f64>,
}

/// Who a verdict is about: the workload and pod behind the failure, and
/// the proxy that saw it. One struct, so that a verdict built from another
/// (a 5xx from its upstream failure) copies it whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Involved {
    pub namespace: Option<String>,
    pub workload: Option<WorkloadRef>,
    /// `namespace/kind/name` of the workload (or `namespace/pod/name`,
    /// `namespace/service/name`): the report's grouping key.
    pub workload_key: Option<String>,
    /// `namespace/name` of the pod behind the server address.
    pub pod: Option<String>,
    pub pod_uid: Option<String>,
    /// `namespace/name` of the Service whose endpoints held the pod's
    /// address, when the facts said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub proxy: Option<ProxyRef>,
}

/// The command that narrows a verdict down further, filled in with the
/// names the facts gave, and why to run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextStep {
    pub command: String,
    pub why: String,
}

/// The engine's answer for one failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub failure: Failure,
    pub cause: Cause,
    pub confidence: Confidence,
    /// Why: the facts, in time order, each with its time and source.
    pub evidence: Vec<Evidence>,
    #[serde(flatten)]
    pub involved: Involved,
    pub episode: Option<EpisodeRef>,
    /// Shared between the verdicts of one pod while its numbers stay the same.
    pub fix: Option<Arc<Fix>>,
    /// For unexplained failures: what was looked for and not found.
    pub note: Option<String>,
    /// The command to run next (see `explain::next`), shared by the
    /// verdicts of one burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Arc<NextStep>>,
    /// The burst it belongs to: failures of one workload, pod, cause and
    /// proxy closer than the burst gap (see `explain::burst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

impl Verdict {
    pub fn at_ns(&self) -> i64 {
        self.failure.at_ns()
    }
}
