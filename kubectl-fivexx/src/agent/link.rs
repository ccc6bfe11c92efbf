//! One connection to a node's agent: `pods/portforward` to the agent pod's
//! loopback port, length-delimited JSON frames (fivexx-core's protocol),
//! a `Subscribe` with the stream filter, then `Hello`; after that the
//! agent's messages one way and filter `Update`s the other, on the same
//! stream (a session keeps one per node, see [`super::subscription`]).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use fivexx_core::capability::CapabilityReport;
use fivexx_core::protocol::{
    self as wire, AgentMessage, ClientMessage, StreamFilter, PROTOCOL_VERSION,
};

use crate::error::CliError;
use crate::kube::KubeClient;
use crate::manifests::{AGENT_NAME, AGENT_NAMESPACE, AGENT_PORT, AGENT_SELECTOR};

/// How long an agent may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

type Stream = Framed<tokio::io::DuplexStream, LengthDelimitedCodec>;

/// An agent pod and the node it runs on.
#[derive(Debug, Clone)]
pub struct AgentPod {
    pub pod: String,
    pub node: String,
    pub ready: bool,
}

/// The agent pods, or "not deployed" when the DaemonSet is missing.
pub async fn agent_pods(client: &KubeClient) -> Result<Vec<AgentPod>, CliError> {
    let ds: Api<k8s_openapi::api::apps::v1::DaemonSet> =
        Api::namespaced(client.kube.clone(), AGENT_NAMESPACE);
    let found = client
        .get_opt("daemonsets", Some(AGENT_NAMESPACE), ds.get(AGENT_NAME))
        .await?;
    if found.is_none() {
        return Err(CliError::agent_not_deployed(AGENT_NAMESPACE));
    }
    let pods: Api<Pod> = Api::namespaced(client.kube.clone(), AGENT_NAMESPACE);
    let list = client
        .call(
            "list",
            "pods",
            Some(AGENT_NAMESPACE),
            pods.list(&ListParams::default().labels(AGENT_SELECTOR)),
        )
        .await?;
    let mut out: Vec<AgentPod> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Some(AgentPod {
                pod: p.metadata.name?,
                node,
                ready,
            })
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(out)
}

/// What the agent said when we connected.
#[derive(Debug, Clone)]
pub struct Hello {
    pub agent_version: String,
    pub node: String,
    pub capabilities: CapabilityReport,
}

/// A subscribed stream from one agent.
pub struct AgentConn {
    pub hello: Hello,
    framed: Stream,
    // Keeps the port-forward's WebSocket alive as long as the stream.
    _forwarder: Option<kube::api::Portforwarder>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Cli(#[from] CliError),
    #[error("the agent closed the connection before saying hello")]
    NoHello,
    #[error("the agent did not say hello within {0:?}")]
    HelloTimeout(Duration),
    #[error("the agent refused the stream: {0}")]
    Refused(String),
    #[error("the agent speaks protocol {theirs}, this plugin speaks {ours}")]
    Protocol { ours: u32, theirs: u32 },
    #[error("{0}")]
    Wire(#[from] wire::WireError),
    #[error("port-forward stream: {0}")]
    Io(#[from] std::io::Error),
}

impl AgentConn {
    /// Port-forwards to `pod`, subscribes with `filter` and reads Hello.
    pub async fn open(
        client: &KubeClient,
        pod: &str,
        filter: StreamFilter,
    ) -> Result<AgentConn, LinkError> {
        let pods: Api<Pod> = Api::namespaced(client.kube.clone(), AGENT_NAMESPACE);
        let mut forwarder = client
            .call(
                "create",
                "pods/portforward",
                Some(AGENT_NAMESPACE),
                pods.portforward(pod, &[AGENT_PORT]),
            )
            .await?;
        let stream = forwarder
            .take_stream(AGENT_PORT)
            .ok_or_else(|| LinkError::Refused("no stream for the agent port".into()))?;
        Self::handshake(stream, filter, Some(forwarder)).await
    }

    /// Subscribes with `filter` on an open byte stream to an agent and
    /// reads its Hello.
    pub async fn handshake(
        stream: tokio::io::DuplexStream,
        filter: StreamFilter,
        forwarder: Option<kube::api::Portforwarder>,
    ) -> Result<AgentConn, LinkError> {
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(wire::MAX_FRAME)
            .new_codec();
        let mut framed = Framed::new(stream, codec);
        let sub = ClientMessage::Subscribe {
            protocol: PROTOCOL_VERSION,
            filter,
        };
        framed.send(bytes::Bytes::from(wire::encode(&sub))).await?;
        let first = tokio::time::timeout(HELLO_TIMEOUT, framed.next())
            .await
            .map_err(|_| LinkError::HelloTimeout(HELLO_TIMEOUT))?;
        let frame = match first {
            Some(f) => f?,
            None => return Err(LinkError::NoHello),
        };
        let hello = match wire::decode_agent(&frame)? {
            AgentMessage::Hello {
                protocol,
                agent_version,
                node,
                capabilities,
            } => {
                if protocol != PROTOCOL_VERSION {
                    return Err(LinkError::Protocol {
                        ours: PROTOCOL_VERSION,
                        theirs: protocol,
                    });
                }
                Hello {
                    agent_version,
                    node,
                    capabilities,
                }
            }
            AgentMessage::Goodbye { reason } => return Err(LinkError::Refused(reason)),
            _ => return Err(LinkError::NoHello),
        };
        Ok(AgentConn {
            hello,
            framed,
            _forwarder: forwarder,
        })
    }

    /// Widens (`add`) or narrows (`remove`) the stream's filter in place.
    pub async fn update(
        &mut self,
        add: StreamFilter,
        remove: StreamFilter,
    ) -> Result<(), LinkError> {
        let msg = ClientMessage::Update { add, remove };
        self.framed
            .send(bytes::Bytes::from(wire::encode(&msg)))
            .await?;
        Ok(())
    }

    /// The next message; `None` when the stream ended. Cancel-safe: a
    /// partly read frame stays buffered.
    pub async fn next(&mut self) -> Option<Result<AgentMessage, LinkError>> {
        let frame = self.framed.next().await?;
        Some(
            frame
                .map_err(LinkError::from)
                .and_then(|f| wire::decode_agent(&f).map_err(LinkError::from)),
        )
    }
}

/// Whether an agent of `agent_version` works with this plugin: same
/// major, and for 0.x the same minor (semver's breaking digit).
pub fn compatible(agent_version: &str) -> bool {
    fn key(v: &str) -> (u64, u64) {
        let mut it = v
            .trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
        let major = it.next().unwrap_or(u64::MAX);
        let minor = it.next().unwrap_or(u64::MAX);
        if major == 0 {
            (0, minor)
        } else {
            (major, 0)
        }
    }
    key(agent_version) == key(env!("CARGO_PKG_VERSION"))
}

/// The error for an agent whose version does not match the plugin's.
pub fn skew_error(node: &str, agent_version: &str) -> CliError {
    CliError::new(
        format!(
            "version skew: plugin {} but the agent on node {node} is {agent_version}",
            env!("CARGO_PKG_VERSION")
        ),
        format!(
            "redeploy the agent that matches this plugin (`kubectl fivexx deploy`), or install plugin {agent_version}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_on_the_breaking_digit() {
        let ours = env!("CARGO_PKG_VERSION");
        assert!(compatible(ours));
        assert!(compatible(&format!("v{ours}")));
        assert!(!compatible("9.0.0"));
        assert!(!compatible("garbage"));
    }
}
