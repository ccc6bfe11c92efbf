//! A session's one stream per node: opened once with the filter known
//! then, widened in place with `Update` as pods, addresses and proxies
//! appear (a stream per pod would open nodes × pods port-forwards through
//! the API server during a rollout).
//!
//! Each stream is one task that owns its [`AgentConn`]: it forwards the
//! agent's events to the session's bounded queue with `try_send` (a slow
//! session drops and counts, it never stalls the port-forward nor the
//! agent) and sends the session's updates on the same stream. Updates
//! made while the stream is still opening wait in the task's queue and go
//! out right after `Hello`, so none is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use fivexx_core::protocol::{AgentMessage, AgentStats, StreamFilter};
use fivexx_core::KernelEvent;

use super::link::{compatible, AgentConn, AgentPod, Hello, LinkError};
use crate::kube::KubeClient;

/// What the streams send to the session, through one bounded queue.
pub enum Feed {
    Event(Box<KernelEvent>),
    Stats(String, Box<AgentStats>),
}

/// Rare messages that must not be dropped (an unbounded queue).
pub enum Control {
    Lost { node: String, reason: String },
    Skew { node: String, version: String },
    Connected { node: String, hello: Box<Hello> },
}

/// Where a stream's task sends.
#[derive(Clone)]
pub struct Sinks {
    pub feed: mpsc::Sender<Feed>,
    pub control: mpsc::UnboundedSender<Control>,
}

/// The session's handle on one node's stream.
pub struct Subscription {
    updates: mpsc::UnboundedSender<StreamFilter>,
    /// Events this plugin dropped because the session's queue was full.
    pub dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Opens the node's stream with `filter` in a task of its own; the
    /// outcome arrives on the control queue (`Connected`, `Skew`, `Lost`).
    pub fn open(
        client: &KubeClient,
        agent: AgentPod,
        filter: StreamFilter,
        sinks: Sinks,
    ) -> Subscription {
        let (updates, rx) = mpsc::unbounded_channel();
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(
            client.clone(),
            agent,
            filter,
            rx,
            sinks,
            dropped.clone(),
        ));
        Subscription { updates, dropped }
    }

    /// Widens the stream's filter by `add` (an `Update` on the stream).
    /// After the stream ended this is a no-op: the session hears of the
    /// loss on the control queue.
    pub fn widen(&self, add: StreamFilter) {
        if !add.is_empty() {
            let _ = self.updates.send(add);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn run(
    client: KubeClient,
    agent: AgentPod,
    filter: StreamFilter,
    updates: mpsc::UnboundedReceiver<StreamFilter>,
    sinks: Sinks,
    dropped: Arc<AtomicU64>,
) {
    let node = agent.node.clone();
    let conn = match AgentConn::open(&client, &agent.pod, filter).await {
        Ok(conn) => conn,
        Err(LinkError::Protocol { theirs, .. }) => {
            let version = format!("protocol {theirs}");
            let _ = sinks.control.send(Control::Skew { node, version });
            return;
        }
        Err(e) => {
            let reason = format!("cannot connect: {e}");
            let _ = sinks.control.send(Control::Lost { node, reason });
            return;
        }
    };
    let hello = conn.hello.clone();
    if !compatible(&hello.agent_version) {
        let version = hello.agent_version;
        let _ = sinks.control.send(Control::Skew { node, version });
        return;
    }
    let hello = Box::new(hello);
    let _ = sinks.control.send(Control::Connected {
        node: node.clone(),
        hello,
    });
    if let Some(reason) = pump(&node, conn, updates, &sinks.feed, &dropped).await {
        let _ = sinks.control.send(Control::Lost { node, reason });
    }
}

/// Reads the stream and writes the updates until the stream ends (the
/// reason) or the session is gone (`None`).
async fn pump(
    node: &str,
    mut conn: AgentConn,
    mut updates: mpsc::UnboundedReceiver<StreamFilter>,
    feed: &mpsc::Sender<Feed>,
    dropped: &AtomicU64,
) -> Option<String> {
    let mut session_open = true;
    loop {
        tokio::select! {
            msg = conn.next() => match msg {
                Some(Ok(AgentMessage::Event { event })) => {
                    if feed.try_send(Feed::Event(Box::new(event))).is_err() {
                        if feed.is_closed() {
                            return None;
                        }
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(AgentMessage::Stats { stats })) => {
                    let _ = feed.try_send(Feed::Stats(node.to_string(), Box::new(stats)));
                }
                Some(Ok(AgentMessage::Goodbye { reason })) => {
                    return Some(format!("the agent said goodbye ({reason})"));
                }
                Some(Ok(AgentMessage::Hello { .. })) => {}
                Some(Err(e)) => return Some(e.to_string()),
                None => return Some("the stream ended (agent pod gone or restarted)".to_string()),
            },
            add = updates.recv(), if session_open => {
                let Some(mut add) = add else {
                    session_open = false;
                    continue;
                };
                // Pods that appeared together go out as one update.
                while let Ok(more) = updates.try_recv() {
                    add.update(&more, &StreamFilter::default());
                }
                if let Err(e) = conn.update(add, StreamFilter::default()).await {
                    return Some(format!("cannot update the stream's filter: {e}"));
                }
            }
        }
    }
}
