//! `fivexx-lab api`: the lab's fake API server on its own, for one node
//! whose agent DaemonSet pod port-forwards to a real `fivexx-agent serve`.
//! No scenario runs and no root is needed: it is the control plane that
//! `kubectl fivexx deploy` and `kubectl fivexx trace node/NODE` talk to
//! (used by `make bench` for the plugin's event-to-screen latency).
//!
//! With `--nodes N` it presents N nodes, each with its agent pod once the
//! DaemonSet exists (all forwarding to the one real agent), and with
//! `--pods-namespace NS` a Deployment `web` there whose pods are API
//! objects only ([`fivexx_lab::sim::fanout`]): `--initial-pods` at start,
//! and `--rollout-pods` more, round-robin over the nodes, when the process
//! gets SIGUSR1 (the bench's fan-out row). Each step prints one line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fivexx_lab::control::apiserver::{ApiServer, ApiServerConfig};
use fivexx_lab::control::store::{ClusterStore, ANY_POD};
use fivexx_lab::sim::fanout;

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
    /// How many nodes: --node and lab-node-2 .. lab-node-N.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// A namespace with a Deployment `web` whose pods are API objects with
    /// loopback IPs (127.1.0.0/16).
    #[arg(long)]
    pods_namespace: Option<String>,
    /// Pods of `web` at start (on the first node).
    #[arg(long, default_value_t = 1)]
    initial_pods: usize,
    /// Pods of a new revision of `web` started on SIGUSR1, round-robin over
    /// the nodes.
    #[arg(long, default_value_t = 0)]
    rollout_pods: usize,
    /// Time between two of those pods.
    #[arg(long, default_value_t = 10)]
    rollout_interval_ms: u64,
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
        fanout::add_nodes(&store, flags.nodes);
        if let Some(ns) = &flags.pods_namespace {
            let first = fanout::Revision::new(&store, ns);
            for k in 0..flags.initial_pods {
                first.start_pod(&store, k, &flags.node, fanout::pod_ip(k));
            }
        }
        store.map_port_forward(AGENT_NAMESPACE, ANY_POD, flags.agent_port, flags.agent_addr);
        // The lab's agent is real and healthy: its DaemonSet pod is ready.
        store.set_daemon_set_readiness(|_, _| true);
        let server = ApiServer::start_on(store.clone(), ApiServerConfig::default(), flags.listen)
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
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = usr1.recv() => start_rollout(&store, &flags),
            }
        }
        // The accepted port-forwards, for the log (the bench reads them from
        // GET /debug/fivexx/portforwards before stopping us).
        let pf = server.port_forwards();
        println!("fivexx-lab api: {} port-forward(s) accepted", pf.total);
        server.shutdown().await;
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(0)
}

/// SIGUSR1: starts `--rollout-pods` pods of a new revision in the
/// background; prints one line when the last one is written.
fn start_rollout(store: &ClusterStore, flags: &ApiFlags) {
    let Some(ns) = flags.pods_namespace.clone() else {
        eprintln!("fivexx-lab api: SIGUSR1 without --pods-namespace: nothing to roll out");
        return;
    };
    let (store, nodes, pods) = (store.clone(), flags.nodes, flags.rollout_pods);
    let (first_ip, interval) = (
        flags.initial_pods,
        std::time::Duration::from_millis(flags.rollout_interval_ms),
    );
    tokio::spawn(async move {
        let started = fanout::rollout(&store, &ns, nodes, pods, first_ip, interval).await;
        let last = started
            .last()
            .map(|(name, node, ip)| format!(", last {name} on {node} at {ip}"));
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "fivexx-lab api: rollout started {} pod(s) in {ns} over {nodes} node(s){}",
            started.len(),
            last.unwrap_or_default()
        );
        let _ = out.flush();
    });
}
