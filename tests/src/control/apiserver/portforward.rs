//! `pods/portforward` over WebSocket, as kube-rs 5.0 and the kubelet speak
//! it (subprotocols `v5.channel.k8s.io` and `v4.channel.k8s.io`).
//!
//! For the i-th requested port, channel `2i` carries data and `2i+1` errors.
//! Every message is binary with the channel as its first byte; the first
//! message on each channel is the channel byte and the port as u16
//! little-endian. Each port gets one real TCP connection to the pod's
//! address (or to the local address the lab routed it to); when every
//! connection has ended the server closes the WebSocket, as the kubelet does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// The subprotocols served, in order of preference.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// v5's CLOSE signal channel: `[255, data channel]` half-closes a stream.
const CLOSE_CHANNEL: u8 = 255;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The port-forward connections the server accepted (WebSocket upgrades
/// completed), per pod (`namespace/name`) and in total, since it started.
/// Read in process with [`ApiServer::port_forwards`](super::ApiServer::port_forwards)
/// and out of process at `GET /debug/fivexx/portforwards` (see
/// [`PortForwardStats`]).
#[derive(Debug, Clone, Default)]
pub struct PortForwardCounts(Arc<Mutex<BTreeMap<String, u64>>>);

impl PortForwardCounts {
    /// Counts one accepted connection to `pod` (`namespace/name`).
    pub fn accepted(&self, pod: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(pod.to_string()).or_default() += 1;
    }

    /// The counts so far.
    pub fn stats(&self) -> PortForwardStats {
        let per_pod = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        PortForwardStats {
            total: per_pod.values().sum(),
            per_pod,
        }
    }
}

/// A snapshot of [`PortForwardCounts`]; its JSON is what the debug endpoint
/// serves: `{"total": 2, "per_pod": {"fivexx-system/fivexx-agent-lab-node-1": 1, ...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortForwardStats {
    /// Connections accepted, all pods.
    pub total: u64,
    /// Connections accepted per pod, keyed `namespace/name`.
    pub per_pod: BTreeMap<String, u64>,
}

impl PortForwardStats {
    /// The counts for the pods of one namespace (the agent's: which nodes
    /// the plugin connected to, and how often).
    pub fn in_namespace(&self, namespace: &str) -> BTreeMap<String, u64> {
        let prefix = format!("{namespace}/");
        self.per_pod
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), *v)))
            .collect()
    }
}

/// One forwarded port: where it goes, or why it cannot.
pub struct PortTarget {
    pub port: u16,
    pub target: Result<SocketAddr, String>,
}

/// Parses `ports=80,8080` (also repeated `ports=`): 1..=128 distinct ports.
pub fn parse_ports<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for value in values {
        for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port {p:?}: must be 1-65535"))?;
            if ports.contains(&port) {
                return Err(format!("duplicate port {port}"));
            }
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("at least one port must be given with ?ports=".into());
    }
    if ports.len() > 128 {
        return Err("the number of ports cannot be more than 128".into());
    }
    Ok(ports)
}

fn frame(channel: u8, payload: &[u8]) -> Message {
    let mut data = Vec::with_capacity(payload.len() + 1);
    data.push(channel);
    data.extend_from_slice(payload);
    Message::Binary(Bytes::from(data))
}

/// What the per-port tasks send to the session.
enum Out {
    Frame(Message),
    /// Port `index` is connected; the session writes client bytes to it.
    Connected(usize, OwnedWriteHalf),
    /// The port's TCP connection ended (EOF, error, or failed to connect).
    Ended,
}

/// Connects one port and pumps pod-to-client bytes until EOF.
async fn forward_port(index: usize, pod: String, target: PortTarget, tx: mpsc::Sender<Out>) {
    let data_ch = (2 * index) as u8;
    let port = target.port;
    let connected = match target.target {
        Ok(addr) => match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!(
                "error forwarding port {port} to pod {pod}: failed to connect to {addr}: {e}"
            )),
            Err(_) => Err(format!(
                "error forwarding port {port} to pod {pod}: timed out connecting to {addr}"
            )),
        },
        Err(why) => Err(format!("error forwarding port {port} to pod {pod}: {why}")),
    };
    match connected {
        Ok(conn) => {
            let (mut reader, writer) = conn.into_split();
            if tx.send(Out::Connected(index, writer)).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(Out::Frame(frame(data_ch, &buf[..n])))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
        Err(message) => {
            tracing::debug!(%message, "port-forward connect failed");
            let _ = tx
                .send(Out::Frame(frame(data_ch + 1, message.as_bytes())))
                .await;
        }
    }
    let _ = tx.send(Out::Ended).await;
}

/// A port's connection as the session sees it.
enum PortState {
    /// Connecting: client bytes wait here.
    Pending(Vec<u8>, bool),
    Open(OwnedWriteHalf),
    Closed,
}

impl PortState {
    async fn write(&mut self, data: &[u8]) {
        match self {
            PortState::Pending(buf, _) => buf.extend_from_slice(data),
            PortState::Open(w) => {
                if w.write_all(data).await.is_err() {
                    *self = PortState::Closed;
                }
            }
            PortState::Closed => {}
        }
    }

    async fn shutdown(&mut self) {
        match self {
            PortState::Pending(_, half_closed) => *half_closed = true,
            PortState::Open(w) => {
                let _ = w.shutdown().await;
            }
            PortState::Closed => {}
        }
    }
}

/// Runs one port-forward session on an upgraded WebSocket.
pub async fn run(
    socket: WebSocket,
    pod: String,
    targets: Vec<PortTarget>,
    mut shutdown: watch::Receiver<bool>,
    silenced: Box<dyn Fn() -> bool + Send>,
) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);

    // Announce every channel, then connect the ports concurrently.
    let mut ports: Vec<PortState> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let data_ch = (2 * i) as u8;
        let port = t.port.to_le_bytes();
        if sink.send(frame(data_ch, &port)).await.is_err()
            || sink.send(frame(data_ch + 1, &port)).await.is_err()
        {
            return;
        }
        ports.push(PortState::Pending(Vec::new(), false));
    }
    let mut active = targets.len();
    for (i, t) in targets.into_iter().enumerate() {
        tokio::spawn(forward_port(i, pod.clone(), t, out_tx.clone()));
    }
    drop(out_tx);

    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            out = out_rx.recv() => match out {
                Some(Out::Connected(i, mut writer)) => {
                    if let Some(PortState::Pending(buf, half_closed)) = ports.get(i) {
                        let (buf, half_closed) = (buf.clone(), *half_closed);
                        if !buf.is_empty() && writer.write_all(&buf).await.is_err() {
                            ports[i] = PortState::Closed;
                            continue;
                        }
                        if half_closed {
                            let _ = writer.shutdown().await;
                        }
                        ports[i] = PortState::Open(writer);
                    }
                }
                Some(Out::Ended) => {
                    active = active.saturating_sub(1);
                    if active == 0 {
                        break;
                    }
                }
                // A vanished node's stream: open, silent both ways.
                Some(Out::Frame(_)) if silenced() => {}
                Some(Out::Frame(msg)) => {
                    if sink.send(msg).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                    let channel = data[0];
                    if channel == CLOSE_CHANNEL {
                        // v5: the client finished sending on a data channel.
                        if let Some(p) = data.get(1).and_then(|c| ports.get_mut(usize::from(*c) / 2)) {
                            p.shutdown().await;
                        }
                        continue;
                    }
                    if channel % 2 == 1 || silenced() {
                        continue; // clients do not send errors
                    }
                    if let Some(p) = ports.get_mut(usize::from(channel) / 2) {
                        p.write(&data[1..]).await;
                    }
                }
                // Complete the closing handshake the client started.
                Some(Ok(Message::Close(_))) => {
                    let _ = sink.close().await;
                    return;
                }
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    // Wait (briefly) for the client's Close so the handshake completes.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
