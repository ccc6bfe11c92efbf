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

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// The stream ended; `last_heard_ns` is when its last message came
    /// (wall clock), `None` when it never connected.
    Lost {
        node: String,
        reason: String,
        last_heard_ns: Option<i64>,
    },
    Skew {
        node: String,
        version: String,
    },
    Connected {
        node: String,
        hello: Box<Hello>,
    },
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
        let client = client.clone();
        let node = agent.node.clone();
        let open = async move { AgentConn::open(&client, &agent.pod, filter).await };
        Subscription::start(node, open, sinks)
    }

    /// Runs `node`'s stream once `open` connected it.
    fn start(
        node: String,
        open: impl Future<Output = Result<AgentConn, LinkError>> + Send + 'static,
        sinks: Sinks,
    ) -> Subscription {
        let (updates, rx) = mpsc::unbounded_channel();
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(node, open, rx, sinks, dropped.clone()));
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
    node: String,
    open: impl Future<Output = Result<AgentConn, LinkError>>,
    updates: mpsc::UnboundedReceiver<StreamFilter>,
    sinks: Sinks,
    dropped: Arc<AtomicU64>,
) {
    let conn = match open.await {
        Ok(conn) => conn,
        Err(LinkError::Protocol { theirs, .. }) => {
            let version = format!("protocol {theirs}");
            let _ = sinks.control.send(Control::Skew { node, version });
            return;
        }
        Err(e) => {
            let reason = format!("cannot connect: {e}");
            let _ = sinks.control.send(Control::Lost {
                node,
                reason,
                last_heard_ns: None,
            });
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
    let mut last_heard_ns = crate::clock::now_ns();
    if let Some(reason) = pump(
        &node,
        conn,
        updates,
        &sinks.feed,
        &dropped,
        &mut last_heard_ns,
    )
    .await
    {
        let _ = sinks.control.send(Control::Lost {
            node,
            reason,
            last_heard_ns: Some(last_heard_ns),
        });
    }
}

/// An agent sends its counters every second; a stream silent this long
/// is lost even if its connection stays open, as one to a node that
/// vanished does (no FIN, no RST ever comes).
const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// Reads the stream and writes the updates until the stream ends (the
/// reason) or the session is gone (`None`); `last_heard_ns` follows the
/// last message that came.
async fn pump(
    node: &str,
    mut conn: AgentConn,
    mut updates: mpsc::UnboundedReceiver<StreamFilter>,
    feed: &mpsc::Sender<Feed>,
    dropped: &AtomicU64,
    last_heard_ns: &mut i64,
) -> Option<String> {
    let mut session_open = true;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(heard + SILENCE_LIMIT) => {
                return Some(format!(
                    "no message for {} s: the node or its agent stopped answering",
                    SILENCE_LIMIT.as_secs()
                ));
            }
            msg = conn.next() => {
                heard = tokio::time::Instant::now();
                *last_heard_ns = crate::clock::now_ns();
                match msg {
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
            }},
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

#[cfg(test)]
mod tests {
    use super::*;
    use fivexx_core::capability::CapabilityReport;
    use fivexx_core::protocol::{self as wire, ClientMessage, PROTOCOL_VERSION};
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    fn uids(u: &[&str]) -> StreamFilter {
        StreamFilter {
            pod_uids: u.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn hello() -> wire::AgentMessage {
        wire::AgentMessage::Hello {
            protocol: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            node: "n1".into(),
            capabilities: CapabilityReport {
                agent_version: env!("CARGO_PKG_VERSION").into(),
                node: "n1".into(),
                kernel_release: "6.1.0-fake".into(),
                tracefs: None,
                btf: true,
                btf_error: None,
                btf_offsets: fivexx_core::capability::BtfOffsets::default(),
                ring_buffer_bytes: 1 << 20,
                loaded: true,
                hooks: Vec::new(),
            },
        }
    }

    /// A node that vanishes sends neither FIN nor RST: its stream stays
    /// open and silent. After the silence limit it is lost, with when it
    /// was last heard.
    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_is_lost_after_the_silence_limit() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (feed, _feed_rx) = mpsc::channel(16);
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let open = async move { AgentConn::handshake(ours, uids(&["a"]), None).await };
        let _sub = Subscription::start("n1".into(), open, Sinks { feed, control });
        let mut agent = Framed::new(theirs, LengthDelimitedCodec::new());
        let _subscribe = agent.next().await.unwrap().unwrap();
        agent
            .send(bytes::Bytes::from(wire::encode(&hello())))
            .await
            .unwrap();
        assert!(matches!(
            control_rx.recv().await,
            Some(Control::Connected { .. })
        ));
        let before = crate::clock::now_ns();
        let started = tokio::time::Instant::now();
        match control_rx.recv().await {
            Some(Control::Lost {
                reason,
                last_heard_ns,
                ..
            }) => {
                assert!(reason.contains("no message for 5 s"), "{reason}");
                assert!(
                    last_heard_ns.is_some_and(|t| t <= before),
                    "{last_heard_ns:?}"
                );
            }
            _ => panic!("not lost"),
        }
        assert!(started.elapsed() >= SILENCE_LIMIT);
        drop(agent); // open until here: the loss was the silence's
    }

    /// Widenings made while the stream is still opening go out after the
    /// `Subscribe`, on the same stream, the queued ones as one `Update`;
    /// the agent's events reach the session's queue.
    #[tokio::test]
    async fn one_stream_subscribes_then_widens_in_place() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (feed, mut feed_rx) = mpsc::channel(16);
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let open = async move {
            let _ = wait.await; // the stream is "opening" until then
            AgentConn::handshake(ours, uids(&["a"]), None).await
        };
        let sub = Subscription::start("n1".into(), open, Sinks { feed, control });
        sub.widen(uids(&["b"]));
        sub.widen(uids(&["c"]));
        sub.widen(StreamFilter::default()); // nothing: not sent
        let _ = go.send(());

        let mut agent = Framed::new(theirs, LengthDelimitedCodec::new());
        let first = wire::decode_client(&agent.next().await.unwrap().unwrap()).unwrap();
        assert!(
            matches!(&first, ClientMessage::Subscribe { filter, .. } if filter.pod_uids == ["a"]),
            "{first:?}"
        );
        agent
            .send(bytes::Bytes::from(wire::encode(&hello())))
            .await
            .unwrap();
        let second = wire::decode_client(&agent.next().await.unwrap().unwrap()).unwrap();
        assert_eq!(
            second,
            ClientMessage::Update {
                add: uids(&["b", "c"]),
                remove: StreamFilter::default()
            }
        );
        assert!(matches!(
            control_rx.recv().await,
            Some(Control::Connected { .. })
        ));
        let ev = wire::AgentMessage::Event {
            event: KernelEvent::new(fivexx_core::KernelEventKind::ReceiveReset, 1, 1),
        };
        agent
            .send(bytes::Bytes::from(wire::encode(&ev)))
            .await
            .unwrap();
        assert!(matches!(feed_rx.recv().await, Some(Feed::Event(_))));
        drop(agent);
        assert!(matches!(
            control_rx.recv().await,
            Some(Control::Lost { .. })
        ));
    }
}
