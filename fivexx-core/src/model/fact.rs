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
use crate::proxylog::{ProxyAccount, ProxyKind};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
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
            Fact::ProxyLog(l) => l.at_ns(),
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
/// log through the API: the proxy's own account of it, held as its
/// format's module read it. It carries the status the client got and the
/// upstream(s) tried even where the kernel cannot peek (TLS, HTTP/2).
///
/// Only what a join needs is kept (see [`crate::proxylog`]): never the
/// request path, query, referer or user agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyLogFact {
    /// The proxy pod.
    pub namespace: String,
    pub pod: String,
    /// The proxy pod's node, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The line, read: its time is the container runtime's stamp (ns)
    /// when the log was read with timestamps, else the proxy's own; on
    /// the proxy node's clock either way.
    pub account: ProxyAccount,
}

impl ProxyLogFact {
    /// The fact for one parsed line of proxy pod `namespace/pod`.
    pub fn new(namespace: &str, pod: &str, node: Option<&str>, account: ProxyAccount) -> Self {
        ProxyLogFact {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            node: node.map(str::to_string),
            account,
        }
    }

    pub fn at_ns(&self) -> i64 {
        self.account.at_ns
    }

    /// Which proxy wrote the line.
    pub fn proxy(&self) -> ProxyKind {
        self.account.proxy()
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
