//! The session's agents: exactly one stream per node, opened when the
//! node first runs a pod of interest (with the full filter then) and
//! widened in place afterwards; the streams' drop counters; agents lost.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::mpsc;

use fivexx_core::capture::DropCounters;
use fivexx_core::protocol::{AgentStats, StreamFilter};

use crate::agent::subscription::{Control, Sinks, Subscription};
use crate::agent::{skew_error, AgentPod, Hello};
use crate::error::CliError;
use crate::kube::KubeClient;

/// How long the first agents may take to answer.
const HELLO_WAIT: Duration = Duration::from_secs(20);

pub struct Agents {
    by_node: HashMap<String, AgentPod>,
    streams: HashMap<String, Subscription>,
    /// Nodes whose stream ended, with why: never reopened (a restarted
    /// agent's gap would go unnoticed). Their streams stay in `streams`
    /// for their drop counters.
    pub lost: Vec<(String, String)>,
    /// Nodes with a pod of interest but no agent pod (yet: a node that
    /// joined mid-session gets its DaemonSet pod a little later).
    missing: HashSet<String>,
    /// When the agent pods were last listed for the missing nodes.
    pub listed_at: Option<tokio::time::Instant>,
    sinks: Sinks,
    /// The agents that answered before the session started.
    pub hellos: Vec<(String, Hello)>,
    /// Each agent's last counters.
    pub stats: HashMap<String, AgentStats>,
}

/// What [`Agents::ensure`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    Opened,
    /// The node has (or had) its stream already.
    Known,
    /// No agent pod runs there (reported once).
    NoAgent,
}

impl Agents {
    pub fn new(agents: &[AgentPod], sinks: Sinks) -> Agents {
        Agents {
            by_node: agents.iter().map(|a| (a.node.clone(), a.clone())).collect(),
            streams: HashMap::new(),
            lost: Vec::new(),
            missing: HashSet::new(),
            listed_at: None,
            sinks,
            hellos: Vec::new(),
            stats: HashMap::new(),
        }
    }

    /// Opens `node`'s one stream, with `filter()`, unless it has one.
    pub fn ensure(
        &mut self,
        client: &KubeClient,
        node: &str,
        filter: impl FnOnce() -> StreamFilter,
    ) -> Ensured {
        if self.streams.contains_key(node)
            || self.lost.iter().any(|(n, _)| n == node)
            || self.missing.contains(node)
        {
            return Ensured::Known;
        }
        let Some(agent) = self.by_node.get(node) else {
            self.missing.insert(node.to_string());
            return Ensured::NoAgent;
        };
        let sub = Subscription::open(client, agent.clone(), filter(), self.sinks.clone());
        self.streams.insert(node.to_string(), sub);
        Ensured::Opened
    }

    /// Some node runs a pod of interest and had no agent pod.
    pub fn any_missing(&self) -> bool {
        !self.missing.is_empty()
    }

    /// Learns agent pods listed since: returns the missing nodes that now
    /// have one (their stream can open).
    pub fn learn(&mut self, pods: Vec<AgentPod>) -> Vec<String> {
        let mut found = Vec::new();
        for p in pods {
            if self.missing.remove(&p.node) {
                found.push(p.node.clone());
            }
            self.by_node.entry(p.node.clone()).or_insert(p);
        }
        found.sort();
        found
    }

    /// Widens every open stream by `delta` (nothing when it is empty).
    pub fn widen(&self, delta: &StreamFilter) {
        for s in self.streams.values() {
            s.widen(delta.clone());
        }
    }

    /// Marks `node` lost; `false` when it already was.
    pub fn lose(&mut self, node: &str, reason: String) -> bool {
        if self.lost.iter().any(|(n, _)| n == node) {
            return false;
        }
        self.lost.push((node.to_string(), reason));
        true
    }

    /// Streams still open.
    pub fn open_count(&self) -> usize {
        self.streams.len() - self.lost.len()
    }

    /// Waits for the first streams' Hellos: version skew and unreachable
    /// agents stop the session before it starts, as does no agent at all
    /// when `wanted` (a pod of interest runs somewhere).
    pub async fn wait_hellos(
        &mut self,
        control: &mut mpsc::UnboundedReceiver<Control>,
        wanted: bool,
    ) -> Result<(), CliError> {
        let mut pending = self.streams.len();
        let deadline = tokio::time::Instant::now() + HELLO_WAIT;
        while pending > 0 {
            let msg = tokio::select! {
                m = control.recv() => m,
                () = tokio::time::sleep_until(deadline) => None,
                _ = tokio::signal::ctrl_c() => return Err(CliError::interrupted(
                    "interrupted while connecting to the agents",
                    "nothing was recorded",
                )),
            };
            let Some(msg) = msg else { break };
            pending -= 1;
            match msg {
                Control::Connected { node, hello } => self.hellos.push((node, *hello)),
                Control::Skew { node, version } => return Err(skew_error(&node, &version)),
                Control::Lost { node, reason, .. } => {
                    eprintln!("warning: agent on node {node}: {reason}");
                    self.lose(&node, reason);
                }
            }
        }
        if wanted && self.hellos.is_empty() {
            let (node, reason) = self
                .lost
                .first()
                .cloned()
                .unwrap_or_else(|| ("?".into(), "no answer within 20s".into()));
            return Err(CliError::new(
                format!("no fivexx agent answered (node {node}: {reason})"),
                "check `kubectl fivexx status` and `kubectl -n fivexx-system get pods`",
            ));
        }
        Ok(())
    }

    /// Events the plugin itself dropped from `node`'s stream.
    fn local_dropped(&self, node: &str) -> u64 {
        self.streams.get(node).map_or(0, Subscription::dropped)
    }

    /// An agent's counters as a capture record: kernel drops by kind, and
    /// what this client missed of the stream (at the agent or here).
    pub fn drop_counters(&self, node: &str, stats: &AgentStats, at_ns: i64) -> DropCounters {
        DropCounters {
            at_ns,
            node: node.to_string(),
            drops: stats.drops(self.local_dropped(node)),
        }
    }

    /// Every drop so far, everywhere.
    pub fn total_drops(&self) -> u64 {
        let local: u64 = self.streams.values().map(Subscription::dropped).sum();
        let agents: u64 = self.stats.values().map(|s| s.drops(0).total()).sum();
        local + agents
    }
}
