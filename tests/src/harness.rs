//! What the end-to-end tests of the real binaries share: finding the built
//! `kubectl-fivexx` and `fivexx-agent`, a real `fivexx-agent serve` behind
//! the agent pod's port-forward, and a cluster store the plugin can trace.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::cluster::{ClusterStore, ANY_POD};
use crate::scenario::NODE;

/// A built binary of this workspace: `$FIVEXX_<NAME>` (e.g.
/// `FIVEXX_KUBECTL_FIVEXX`), else next to the running test, else
/// `target/debug`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(format!("FIVEXX_{}", name.to_uppercase().replace('-', "_"))) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    let mut cands: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join(name))
        .collect();
    cands.push(ws.join("target/debug").join(name));
    cands.into_iter().find(|p| p.is_file())
}

/// The plugin and the agent, or a message saying how to build them.
pub fn plugin_and_agent() -> Result<(PathBuf, PathBuf), String> {
    match (find_binary("kubectl-fivexx"), find_binary("fivexx-agent")) {
        (Some(p), Some(a)) => Ok((p, a)),
        _ => Err("build kubectl-fivexx and fivexx-agent first (cargo build), or set FIVEXX_KUBECTL_FIVEXX / FIVEXX_FIVEXX_AGENT".into()),
    }
}

/// A running `fivexx-agent serve` on a loopback port; SIGTERM on drop.
pub struct AgentServe {
    child: Child,
    pub addr: SocketAddr,
}

impl AgentServe {
    /// Starts the agent for `NODE` and waits (up to 60 s) until its probe
    /// answers: every hook attached.
    pub fn start(bin: &Path) -> AgentServe {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(bin)
            .args(["serve", "--listen", &addr.to_string(), "--node", NODE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fivexx-agent serve");
        let agent = AgentServe { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Command::new(bin)
            .args(["probe", "--addr", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "the agent did not start serving");
            std::thread::sleep(Duration::from_millis(200));
        }
        agent
    }
}

impl Drop for AgentServe {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A store as the plugin finds it on a cluster where `kubectl fivexx
/// deploy` ran: the agent pod's port 7450 forwards to `agent`, agents are
/// ready, the ingress pod's `pods/log` is nginx's access log, and the
/// lab's Deployment `shop/web` exists (the kubelet simulator
/// models its pods, not the Deployment object that `kubectl apply` makes).
pub fn plugin_store(agent: SocketAddr) -> ClusterStore {
    let store = ClusterStore::new(NODE);
    store.apply_deployment(Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        spec: DeploymentSpec {
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    });
    store.map_port_forward("fivexx-system", ANY_POD, 7450, agent);
    store.set_daemon_set_readiness(|_, _| true);
    // The ingress pod's container log (`--proxy-logs`) is the real nginx's
    // upstreaminfo access log.
    store.map_pod_log(
        "ingress-nginx",
        ANY_POD,
        crate::ingress::container_log_path(),
    );
    store
}
