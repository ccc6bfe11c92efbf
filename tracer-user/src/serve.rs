//! Serve the event stream to clients on 127.0.0.1 (reached from outside only
//! through the API server's `pods/portforward`, which RBAC guards).
//!
//! One reader drains the ring; each client has a bounded queue. A slow
//! client loses events (counted and reported to it), it never blocks the
//! reader or the other clients.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fivexx_core::capability::CapabilityReport;
use fivexx_core::protocol::{
    self as wire, AgentMessage, AgentStats, ClientMessage, StreamFilter, PROTOCOL_VERSION,
};
use fivexx_core::KernelEvent;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::counts::RingCounts;

/// Per-client queue depth before events are dropped for that client.
pub const CLIENT_QUEUE: usize = 8192;

pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(wire::MAX_FRAME)
        .new_codec()
}

/// Shared between the ring reader and the client tasks.
pub struct Hub {
    clients: Mutex<Vec<ClientSlot>>,
    /// The ring's ledger as of the last tick: generated, dropped and
    /// received sampled together, so that every `Stats` balances.
    ring: Mutex<RingCounts>,
    client_count: AtomicU32,
    next_id: AtomicU64,
    pub report: CapabilityReport,
    pub node: String,
    /// Tells clients the agent is leaving.
    pub shutdown: broadcast::Sender<String>,
}

struct ClientSlot {
    /// Which stream this is, for its filter updates.
    id: u64,
    filter: StreamFilter,
    /// Encoded `AgentMessage::Event` frames, shared by every client.
    tx: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

impl Hub {
    pub fn new(report: CapabilityReport, node: String) -> Arc<Hub> {
        Arc::new(Hub {
            clients: Mutex::new(Vec::new()),
            ring: Mutex::new(RingCounts::default()),
            client_count: AtomicU32::new(0),
            next_id: AtomicU64::new(0),
            report,
            node,
            shutdown: broadcast::channel(4).0,
        })
    }

    /// Fans an event out to every client whose filter matches; never waits.
    /// The event is encoded once, when the first client wants it, and the
    /// frame is shared by all of them.
    pub fn publish(&self, ev: KernelEvent) {
        let mut frame: Option<Bytes> = None;
        let mut clients = self.clients.lock().expect("lock");
        clients.retain(|c| !c.tx.is_closed());
        for c in clients.iter() {
            if !c.filter.matches(&ev) {
                continue;
            }
            let frame = frame.get_or_insert_with(|| event_frame(&ev));
            if c.tx.try_send(frame.clone()).is_err() {
                c.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The proxy pods any live client wants the HTTP peek on.
    pub fn http_pods(&self) -> std::collections::BTreeSet<String> {
        let clients = self.clients.lock().expect("lock");
        clients
            .iter()
            .filter(|c| !c.tx.is_closed())
            .flat_map(|c| c.filter.http_pods.iter().cloned())
            .collect()
    }

    /// Widens or narrows one client's filter in place (`Update`).
    fn update_filter(&self, id: u64, add: &StreamFilter, remove: &StreamFilter) {
        let mut clients = self.clients.lock().expect("lock");
        if let Some(c) = clients.iter_mut().find(|c| c.id == id) {
            c.filter.update(add, remove);
        }
    }

    pub fn clients(&self) -> u32 {
        self.client_count.load(Ordering::Relaxed)
    }

    /// What the next `Stats` of every client reports.
    pub fn set_ring_counts(&self, counts: RingCounts) {
        *self.ring.lock().expect("lock") = counts;
    }

    /// The protocol's shape of the ledger, plus what this client missed
    /// by reading too slowly.
    fn stats(&self, client_dropped: u64) -> AgentStats {
        let ring = *self.ring.lock().expect("lock");
        AgentStats {
            generated: ring.generated.by_kind(),
            dropped: ring.dropped.by_kind(),
            received: ring.received.by_kind(),
            client_dropped,
            clients: self.clients(),
        }
    }
}

/// Why the agent cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--listen {0}: the agent serves on loopback only; remote clients come through pods/portforward")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why one client's stream ended early (logged; the agent serves on).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no Subscribe within 10 s")]
    NoSubscribe,
    #[error("closed before Subscribe")]
    ClosedBeforeSubscribe,
    #[error("the first message must be a Subscribe")]
    FirstNotSubscribe,
    #[error("a second Subscribe on one stream")]
    SecondSubscribe,
    #[error("unreadable client message")]
    Wire(#[from] wire::WireError),
    #[error("the client's stream")]
    Io(#[from] std::io::Error),
}

/// `AgentMessage::Event { event }` encoded from a borrowed event: the same
/// bytes as `wire::encode` of the owned message (tested), without cloning
/// the event first.
fn event_frame(event: &KernelEvent) -> Bytes {
    #[derive(serde::Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Frame<'a> {
        Event { event: &'a KernelEvent },
    }
    Bytes::from(wire::encode(&Frame::Event { event }))
}

/// Binds the listener; refuses anything but a loopback address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

pub async fn accept_loop(listener: TcpListener, hub: Arc<Hub>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let hub = hub.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_client(stream, hub).await {
                        tracing::info!("client {peer}: {}", crate::chain(&e));
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_client(stream: TcpStream, hub: Arc<Hub>) -> Result<(), ClientError> {
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, codec());
    let first = tokio::time::timeout(Duration::from_secs(10), framed.next())
        .await
        .map_err(|_| ClientError::NoSubscribe)?
        .ok_or(ClientError::ClosedBeforeSubscribe)??;
    let filter = match wire::decode_client(&first) {
        Ok(ClientMessage::Subscribe { filter, .. }) => filter,
        Ok(ClientMessage::Update { .. }) => {
            let e = ClientError::FirstNotSubscribe;
            let bye = AgentMessage::Goodbye {
                reason: e.to_string(),
            };
            framed.send(Bytes::from(wire::encode(&bye))).await?;
            return Err(e);
        }
        Err(e) => {
            let bye = AgentMessage::Goodbye {
                reason: crate::chain(&e),
            };
            framed.send(Bytes::from(wire::encode(&bye))).await?;
            return Err(e.into());
        }
    };
    let hello = AgentMessage::Hello {
        protocol: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        node: hub.node.clone(),
        capabilities: hub.report.clone(),
    };
    framed.send(Bytes::from(wire::encode(&hello))).await?;

    let (tx, mut rx) = mpsc::channel(CLIENT_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    hub.clients.lock().expect("lock").push(ClientSlot {
        id,
        filter,
        tx,
        dropped: dropped.clone(),
    });
    hub.client_count.fetch_add(1, Ordering::Relaxed);
    let mut shutdown = hub.shutdown.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = async {
        loop {
            tokio::select! {
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    framed.feed(frame).await?;
                    // Batch what is already queued, then flush once.
                    while let Ok(frame) = rx.try_recv() {
                        framed.feed(frame).await?;
                    }
                    SinkExt::<Bytes>::flush(&mut framed).await?;
                }
                _ = tick.tick() => {
                    let msg = AgentMessage::Stats { stats: hub.stats(dropped.load(Ordering::Relaxed)) };
                    framed.send(Bytes::from(wire::encode(&msg))).await?;
                }
                reason = shutdown.recv() => {
                    let reason = reason.unwrap_or_else(|_| "agent stopping".into());
                    let msg = AgentMessage::Stats { stats: hub.stats(dropped.load(Ordering::Relaxed)) };
                    framed.send(Bytes::from(wire::encode(&msg))).await?;
                    framed.send(Bytes::from(wire::encode(&AgentMessage::Goodbye { reason }))).await?;
                    break;
                }
                // A client that hangs up is noticed here, not only on
                // write; an `Update` changes what this stream passes.
                incoming = framed.next() => {
                    let Some(frame) = incoming else { break };
                    match wire::decode_client(&frame?)? {
                        ClientMessage::Update { add, remove } => hub.update_filter(id, &add, &remove),
                        ClientMessage::Subscribe { .. } => return Err(ClientError::SecondSubscribe),
                    }
                }
            }
        }
        Ok::<(), ClientError>(())
    }
    .await;
    hub.client_count.fetch_sub(1, Ordering::Relaxed);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use fivexx_core::{FourTuple, KernelEventKind, TaskRef};

    fn report() -> CapabilityReport {
        CapabilityReport {
            agent_version: "test".into(),
            node: "node-a".into(),
            kernel_release: "6.18".into(),
            tracefs: None,
            btf: false,
            btf_error: None,
            btf_offsets: Default::default(),
            ring_buffer_bytes: 4096,
            loaded: false,
            hooks: Vec::new(),
        }
    }

    fn event() -> KernelEvent {
        let mut ev = KernelEvent::new(KernelEventKind::ReceiveReset, 5, 1_000_005);
        ev.node = "node-a".into();
        ev.task = Some(TaskRef {
            pid: 7,
            comm: "nginx".into(),
        });
        ev.tuple = Some(FourTuple {
            saddr: "10.0.0.1".parse().unwrap(),
            sport: 40000,
            daddr: "10.0.0.2".parse().unwrap(),
            dport: 8080,
        });
        ev.errno = Some(fivexx_core::event::Errno::ECONNREFUSED);
        ev
    }

    #[test]
    fn the_shared_frame_is_the_event_message() {
        let ev = event();
        let owned = wire::encode(&AgentMessage::Event { event: ev.clone() });
        assert_eq!(event_frame(&ev).as_ref(), owned.as_slice());
        match wire::decode_agent(&event_frame(&ev)).unwrap() {
            AgentMessage::Event { event } => assert_eq!(event, ev),
            other => panic!("decoded {other:?}"),
        }
    }

    fn slot(
        hub: &Hub,
        filter: StreamFilter,
        depth: usize,
    ) -> (mpsc::Receiver<Bytes>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(depth);
        let dropped = Arc::new(AtomicU64::new(0));
        let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
        hub.clients.lock().unwrap().push(ClientSlot {
            id,
            filter,
            tx,
            dropped: dropped.clone(),
        });
        (rx, dropped)
    }

    #[test]
    fn one_encoding_reaches_every_matching_client_and_full_queues_count_drops() {
        let hub = Hub::new(report(), "node-a".into());
        let (mut all, all_dropped) = slot(&hub, StreamFilter::default(), 8);
        let (mut signals, _) = slot(
            &hub,
            StreamFilter {
                kinds: vec![KernelEventKind::Signal],
                ..Default::default()
            },
            8,
        );
        let (mut small, small_dropped) = slot(&hub, StreamFilter::default(), 1);
        hub.publish(event());
        hub.publish(event());
        let a = all.try_recv().unwrap();
        let b = small.try_recv().unwrap();
        // The same allocation: encoded once, shared.
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert!(all.try_recv().is_ok());
        assert!(signals.try_recv().is_err(), "the filter passed a reset");
        assert_eq!(all_dropped.load(Ordering::Relaxed), 0);
        assert_eq!(small_dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn stats_report_the_ledger_of_the_last_tick_and_the_clients_own_drops() {
        let hub = Hub::new(report(), "node-a".into());
        let mut ring = RingCounts::default();
        ring.generated.add(KernelEventKind::Signal, 5);
        ring.dropped.add(KernelEventKind::Signal, 2);
        ring.received.add(KernelEventKind::Signal, 3);
        hub.set_ring_counts(ring);
        let stats = hub.stats(7);
        assert_eq!(stats.generated[&KernelEventKind::Signal], 5);
        assert_eq!(stats.dropped[&KernelEventKind::Signal], 2);
        assert_eq!(stats.received[&KernelEventKind::Signal], 3);
        assert_eq!(stats.received[&KernelEventKind::Exit], 0);
        assert_eq!(stats.client_dropped, 7);
    }
}
