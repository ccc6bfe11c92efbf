//! `fivexx-lab api`: the lab's fake API server on its own, for one node
//! whose agent DaemonSet pod port-forwards to a real `fivexx-agent serve`.
//! No scenario runs and no root is needed: it is the control plane that
//! `kubectl fivexx deploy` and `kubectl fivexx trace node/NODE` talk to
//! (used by `make bench` for the plugin's event-to-screen latency).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fivexx_lab::control::apiserver::{ApiServer, ApiServerConfig};
use fivexx_lab::control::store::{ClusterStore, ANY_POD};

/// The namespace `kubectl fivexx deploy` puts the agent DaemonSet in.
const AGENT_NAMESPACE: &str = "fivexx-system";

#[derive(Args, Debug)]
pub struct ApiFlags {
    /// The real agent's `serve --listen` address: port-forwards to any pod
    /// of fivexx-system on --agent-port reach it.
    #[arg(long)]
    agent_addr: SocketAddr,
    /// Where to write the kubeconfig pointing at this server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The lab node's name (the agent pod's node).
    #[arg(long, default_value = fivexx_lab::sim::scenario::NODE)]
    node: String,
    /// The agent pod's port that the plugin port-forwards to.
    #[arg(long, default_value_t = 7450)]
    agent_port: u16,
    /// Where the fake API server listens (loopback only; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Serves until SIGTERM or SIGINT, then stops cleanly (exit 0).
pub fn run(flags: ApiFlags) -> anyhow::Result<i32> {
    anyhow::ensure!(
        flags.listen.ip().is_loopback(),
        "--listen must be a loopback address (the lab serves 127.0.0.1 only), got {}",
        flags.listen
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Listen for signals before announcing readiness: a SIGTERM right
        // after the ready line is not lost.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let store = ClusterStore::new(&flags.node);
        store.map_port_forward(AGENT_NAMESPACE, ANY_POD, flags.agent_port, flags.agent_addr);
        // The lab's agent is real and healthy: its DaemonSet pod is ready.
        store.set_daemon_set_readiness(|_, _| true);
        let server = ApiServer::start_on(store, ApiServerConfig::default(), flags.listen)
            .await
            .context("starting the fake API server")?;
        server
            .write_kubeconfig(&flags.kubeconfig)
            .with_context(|| format!("writing {}", flags.kubeconfig.display()))?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "fivexx-lab api: serving {} for node {}, kubeconfig {}, port-forward {}/*:{} -> {}",
                server.url(),
                flags.node,
                flags.kubeconfig.display(),
                AGENT_NAMESPACE,
                flags.agent_port,
                flags.agent_addr
            )?;
            out.flush()?;
        }
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        server.shutdown().await;
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(0)
}
