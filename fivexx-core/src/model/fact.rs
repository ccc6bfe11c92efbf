//! Facts: everything the explain engine reasons over.
//!
//! A fact is either a kernel event from a node's agent or a Kubernetes delta
//! seen by the plugin's watches. They are plain serde structs (no
//! k8s-openapi here): the plugin converts API objects into these deltas, so
//! the engine and the capture format do not depend on a Kubernetes client.
//!
//! All times are wall-clock Unix epoch nanoseconds (`at_ns`). Kernel events
//! carry their own `wall_ns`; clocks of nodes and of the API server may be
//! skewed, which the engine tolerates within `ExplainConfig::skew_ns`.

use crate::event::KernelEvent;
use crate::proxylog::{LogFormat, ProxyKind, ProxyLogEntry, UpstreamOutcome};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One fact, from a node (kernel) or from the API server (Kubernetes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    Kernel(KernelEvent),
    Pod(PodFact),
    Endpoint(EndpointFact),
    Service(ServiceFact),
    Node(NodeFact),
    Event(ClusterEvent),
    /// A proxy pod's access-log line, read through the API (`pods/log`).
    ProxyLog(ProxyLogFact),
    /// The plugin began peeking at a proxy pod's HTTP answers mid-session.
    HttpPeek(HttpPeekFact),
    /// A node's agent stream ended mid-session: its kernel facts stop here.
    AgentGone(AgentGoneFact),
}

impl Fact {
    /// The fact's timestamp (wall clock, ns) on the clock of its source.
    pub fn at_ns(&self) -> i64 {
        match self {
            Fact::Kernel(e) => e.wall_ns,
            Fact::Pod(p) => p.at_ns,
            Fact::Endpoint(e) => e.at_ns,
            Fact::Service(s) => s.at_ns,
            Fact::Node(n) => n.at_ns,
            Fact::Event(e) => e.at_ns,
            Fact::ProxyLog(l) => l.at_ns,
            Fact::HttpPeek(p) => p.at_ns,
            Fact::AgentGone(g) => g.at_ns,
        }
    }

    /// Where the fact came from, as cited in evidence.
    pub fn source(&self) -> FactSource {
        match self {
            Fact::Kernel(e) => FactSource::Node(Arc::from(e.node.as_str())),
            _ => FactSource::Api,
        }
    }
}

/// Who reported a fact: a node's agent or the Kubernetes API server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactSource {
    /// Shared: thousands of evidence items cite the same few nodes.
    Node(Arc<str>),
    Api,
}

impl fmt::Display for FactSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactSource::Node(n) if n.is_empty() => f.write_str("agent"),
            FactSource::Node(n) => write!(f, "agent@{n}"),
            FactSource::Api => f.write_str("api"),
        }
    }
}

/// The workload that owns a pod (Deployment, StatefulSet, DaemonSet, Job...),
/// resolved by the plugin through ReplicaSets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.to_ascii_lowercase(), self.name)
    }
}

/// A change to one pod, as the API server reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodFact {
    pub at_ns: i64,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The node it is scheduled on, when known.
    pub node: Option<String>,
    pub owner: Option<WorkloadRef>,
    pub change: PodChange,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodChange {
    Created,
    /// The pod got this IP (pod IPs are reused after the pod is gone).
    Ip {
        ip: IpAddr,
    },
    ContainerStarted {
        container_id: String,
        name: String,
    },
    Ready,
    NotReady,
    /// deletionTimestamp was set: the kubelet starts termination now.
    Deleting {
        grace_period_s: u32,
    },
    /// The object is gone from the API.
    Gone,
}

/// The membership of one address in one EndpointSlice at a time. `present:
/// false` means the address left the slice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointFact {
    pub at_ns: i64,
    pub namespace: String,
    pub service: String,
    pub slice: String,
    pub address: IpAddr,
    /// `targetRef.uid` when the endpoint points at a pod.
    pub pod_uid: Option<String>,
    pub present: bool,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl EndpointFact {
    /// Whether a proxy that routes to ready endpoints routes to this address.
    pub fn routable(&self) -> bool {
        self.present && self.ready
    }
}

/// A Service's cluster IP, so that failures to a virtual IP can be told apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFact {
    pub at_ns: i64,
    pub namespace: String,
    pub name: String,
    pub cluster_ip: Option<IpAddr>,
    pub present: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFact {
    pub at_ns: i64,
    pub node: String,
    pub change: NodeChange,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeChange {
    Cordoned,
    Uncordoned,
    TaintAdded {
        key: String,
        effect: String,
    },
    TaintRemoved {
        key: String,
        effect: String,
    },
    /// The Node's `Ready` condition turned `False` or `Unknown` (the node
    /// lifecycle controller's verdict after its node-monitor grace
    /// period), and back to `True`.
    NotReady,
    Ready,
}

/// A Kubernetes Event about a pod (Killing, Evicted, OOMKilling,
/// FailedPreStopHook, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEvent {
    pub at_ns: i64,
    pub namespace: String,
    pub reason: String,
    pub message: String,
    /// The involved object's kind, name and uid.
    pub object_kind: String,
    pub object_name: String,
    pub object_uid: Option<String>,
    /// The reporting node, when the kubelet reported it.
    pub node: Option<String>,
}

/// One answer a proxy logged, as the plugin read it from the proxy pod's
/// log through the API. It carries the status the client got and the
/// upstream(s) tried even where the kernel cannot peek (TLS, HTTP/2).
///
/// Only what a join needs is kept (see [`crate::proxylog`]): never the
/// request path, query, referer or user agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyLogFact {
    /// The container runtime's stamp (ns) when the log was read with
    /// timestamps, else the proxy's `$time_local` (whole seconds); on the
    /// proxy node's clock either way.
    pub at_ns: i64,
    /// The proxy pod.
    pub namespace: String,
    pub pod: String,
    /// The proxy pod's node, when known.
    pub node: Option<String>,
    /// `at_ns` is good to a few ms, not to the second (`$time_local`).
    pub precise_time: bool,
    /// The proxy's client, when its format logs it.
    pub client: Option<IpAddr>,
    /// The client's port, where the format logs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// The status the proxy sent to the client.
    pub status: u16,
    pub request_time_ms: Option<u64>,
    /// ingress-nginx's `$proxy_upstream_name` (`namespace-service-port`),
    /// Envoy's upstream cluster or HAProxy's backend.
    pub upstream_name: Option<String>,
    /// The upstream addresses, in the order tried.
    pub upstream_addrs: Vec<SocketAddr>,
    /// The upstream's status per address (`None`: the try failed).
    pub upstream_statuses: Vec<Option<u16>>,
    /// The upstream's response time per address, in ms (`None` for `-`).
    pub upstream_response_times_ms: Vec<Option<u64>>,
    pub format: LogFormat,
    /// Envoy's response flags or HAProxy's termination state.
    pub flags: Option<String>,
    /// HAProxy's server (`SRV_1`, `<NOSRV>`).
    pub server: Option<String>,
    /// Retries the proxy logged (HAProxy's `%rc`).
    pub retries: Option<u32>,
    /// HAProxy redispatched the request to another server.
    pub redispatched: bool,
    /// The proxy's end of the upstream connection (Envoy, where logged).
    pub upstream_local: Option<SocketAddr>,
}

impl ProxyLogFact {
    /// The fact for one parsed line of proxy pod `namespace/pod`.
    pub fn new(namespace: &str, pod: &str, node: Option<&str>, entry: ProxyLogEntry) -> Self {
        ProxyLogFact {
            at_ns: entry.at_ns,
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            node: node.map(str::to_string),
            precise_time: entry.precise_time,
            client: entry.client,
            client_port: entry.client_port,
            status: entry.status,
            request_time_ms: entry.request_time_ms,
            upstream_name: entry.upstream_name,
            upstream_addrs: entry.upstream_addrs,
            upstream_statuses: entry.upstream_statuses,
            upstream_response_times_ms: entry.upstream_response_times_ms,
            format: entry.format,
            flags: entry.flags,
            server: entry.server,
            retries: entry.retries,
            redispatched: entry.redispatched,
            upstream_local: entry.upstream_local,
        }
    }

    /// Which proxy wrote the line.
    pub fn proxy(&self) -> ProxyKind {
        self.format.proxy()
    }

    /// What the proxy's own words (flags, termination state) say happened
    /// upstream; `None` for nginx, whose log has no such word.
    pub fn outcome(&self) -> Option<UpstreamOutcome> {
        let flags = self.flags.as_deref()?;
        match self.proxy() {
            ProxyKind::Nginx => None,
            ProxyKind::Envoy => Some(crate::proxylog::envoy_outcome(flags)),
            ProxyKind::Haproxy => Some(crate::proxylog::haproxy_outcome(
                flags,
                self.server.as_deref(),
            )),
        }
    }

    /// The proxy's own account of the answer, as evidence shows it:
    /// `Envoy: 503 UF upstream 10.244.0.12:8080`, `HAProxy: 503 SC--
    /// server shop-web-8080/SRV_1 after 2 retries`; `None` for nginx.
    pub fn proxy_words(&self) -> Option<String> {
        let flags = self.flags.as_deref()?;
        match self.proxy() {
            ProxyKind::Nginx => None,
            ProxyKind::Envoy => Some(format!(
                "Envoy: {} {flags} {}",
                self.status,
                match self.last_upstream() {
                    Some(u) => format!("upstream {u}"),
                    None => "no upstream host".to_string(),
                }
            )),
            ProxyKind::Haproxy => {
                let retries = match (self.retries.unwrap_or(0), self.redispatched) {
                    (0, _) => String::new(),
                    (1, false) => " after 1 retry".to_string(),
                    (n, false) => format!(" after {n} retries"),
                    (1, true) => " after 1 retry, redispatched".to_string(),
                    (n, true) => format!(" after {n} retries, redispatched"),
                };
                Some(format!(
                    "HAProxy: {} {flags} server {}/{}{retries}",
                    self.status,
                    self.upstream_name.as_deref().unwrap_or("-"),
                    self.server.as_deref().unwrap_or("-"),
                ))
            }
        }
    }

    /// The upstream tried last (the one whose answer or failure the
    /// client got), if any.
    pub fn last_upstream(&self) -> Option<SocketAddr> {
        self.upstream_addrs.last().copied()
    }
}

/// Shares the few node names among many evidence items.
#[derive(Debug, Default)]
pub(crate) struct NodeNames(Vec<Arc<str>>);

impl NodeNames {
    pub(crate) fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.iter().find(|n| &***n == name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        if self.0.len() < 4096 {
            self.0.push(n.clone());
        }
        n
    }
}

/// From `at_ns` on, every HTTP/1.x answer of this proxy pod is read in the
/// kernel (the HTTP peek). A proxy pod that starts during a session (an
/// The plugin's stream from one node's agent ended before the session
/// did (the agent died or was deleted, or its node vanished). Nothing the
/// kernel did on that node after `at_ns` is in the capture: the report
/// says where that node's facts stop, and a failure seen from elsewhere
/// after it cannot be checked against that node's kernel. A lost node is
/// told by this fact together with what the API says of the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentGoneFact {
    /// When the plugin saw the stream end (plugin's clock).
    pub at_ns: i64,
    pub node: String,
    /// Why, as the plugin saw it ("connection reset by peer", "no message
    /// for 5 s").
    pub reason: String,
    /// When its last message came (plugin's clock): the agent sends its
    /// counters every second, so this is when the node went quiet.
    pub last_heard_ns: Option<i64>,
}

/// ingress rollout or scale-up) is peeked only from then: the engine needs
/// the time to count an upstream failure no 5xx followed as hidden by a
/// retry, which it may only do while the proxy's 5xx would have been seen.
/// Proxies peeked from the start are in the capture header instead
/// (`CaptureHeader::http_peek_proxies`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpPeekFact {
    /// When the plugin asked the node's agent for the peek (plugin's clock).
    pub at_ns: i64,
    pub namespace: String,
    pub pod: String,
    pub node: String,
    /// The proxy pod's address: the source of its upstream connections.
    pub proxy_ip: IpAddr,
}
