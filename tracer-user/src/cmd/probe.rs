//! `fivexx-agent probe`: is an agent answering (liveness and readiness)?

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use fivexx_core::KernelEventKind;
use tracer_user::serve;

use super::runtime;

pub fn run(addr: SocketAddr) -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;
    runtime()?.block_on(async {
        let stream =
            tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| anyhow::anyhow!("no agent answered on {addr} within 3 s"))?
                .with_context(|| format!("no agent listening on {addr}"))?;
        let mut framed = Framed::new(stream, serve::codec());
        let sub = fivexx_core::protocol::ClientMessage::Subscribe {
            protocol: fivexx_core::protocol::PROTOCOL_VERSION,
            filter: fivexx_core::protocol::StreamFilter {
                kinds: vec![KernelEventKind::OomVictim],
                ..Default::default()
            },
        };
        framed
            .send(bytes::Bytes::from(fivexx_core::protocol::encode(&sub)))
            .await?;
        let frame = tokio::time::timeout(Duration::from_secs(3), framed.next())
            .await
            .map_err(|_| anyhow::anyhow!("agent on {addr} did not say hello within 3 s"))?
            .ok_or_else(|| anyhow::anyhow!("agent on {addr} closed the connection"))??;
        match fivexx_core::protocol::decode_agent(&frame)? {
            fivexx_core::protocol::AgentMessage::Hello { capabilities, .. } => {
                let attached = capabilities
                    .hooks
                    .iter()
                    .filter(|h| {
                        matches!(
                            h.state,
                            fivexx_core::capability::HookState::Attached
                                | fivexx_core::capability::HookState::Degraded
                        )
                    })
                    .count();
                anyhow::ensure!(attached > 0, "agent on {addr} has no hook attached");
                println!(
                    "ok: agent {} on {}, {attached}/{} hooks attached",
                    capabilities.agent_version,
                    capabilities.kernel_release,
                    capabilities.hooks.len()
                );
                Ok(())
            }
            other => anyhow::bail!("unexpected first message from {addr}: {other:?}"),
        }
    })
}
