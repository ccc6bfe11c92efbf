//! The kubelet simulator: one [`Kubelet`] runs the lab's node (or nodes)
//! and its pods; the controllers those pods depend on are in
//! [`crate::sim::controllers`] as methods of the same type. Pod start and
//! restart are in [`pod`], termination in [`terminate`].
//!
//! Termination follows the kubelet exactly: deletionTimestamp; the endpoint
//! turns terminating at once but reaches the ingress only after the
//! configured lag; preStop (counted against the grace period); SIGTERM;
//! SIGKILL when the grace period runs out; sandbox (netns) teardown. Every
//! step is written to the [`ClusterStore`] and the [`Timeline`].

mod pod;
mod terminate;

use crate::control::store::ClusterStore;
use crate::node::backend::Behaviour;
use crate::node::cgroup::ContainerCgroup;
use crate::node::naming;
use crate::node::netns::{self, IpPool, PodNetwork};
use crate::node::proxy::ProxyConfig;
use crate::sim::k8s::PodFacts;
use crate::sim::timeline::Timeline;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What a Deployment's pods look like (one revision).
#[derive(Clone, Debug)]
pub struct PodTemplate {
    pub app: String,
    pub namespace: String,
    /// pod-template-hash: a rollout changes it. The pods' ReplicaSet is
    /// `<app>-<revision>`, as the Deployment controller names it.
    pub revision: String,
    /// The uid of that ReplicaSet (the pods' controller owner reference).
    pub replica_set_uid: String,
    pub behaviour: Behaviour,
    pub delay_ms: Option<u64>,
    pub drain_ms: u64,
    pub idle_timeout_ms: u64,
    pub oom_after_ms: u64,
    /// terminationGracePeriodSeconds (sub-second values are kept for tests).
    pub grace: Duration,
    pub prestop: Option<Duration>,
    /// An exec preStop hook (`[sleep, 5]`), run as the runtime would, with
    /// the container's `PATH`.
    pub prestop_exec: Option<Vec<String>>,
    /// The container's `PATH` for exec hooks: a distroless image has no
    /// `sleep` on it (`None`: the node's own, which has one).
    pub exec_path: Option<String>,
    /// Time after container start before the readiness probe first runs.
    pub readiness_delay: Duration,
    /// Container memory limit, bytes.
    pub memory_limit: Option<u64>,
}

impl PodTemplate {
    /// The name of this revision's ReplicaSet: `<deployment>-<pod-template-hash>`.
    pub fn replica_set(&self) -> String {
        format!("{}-{}", self.app, self.revision)
    }

    pub fn new(app: &str, behaviour: Behaviour) -> PodTemplate {
        PodTemplate {
            app: app.into(),
            namespace: "shop".into(),
            revision: naming::short_suffix(8),
            replica_set_uid: uuid::Uuid::new_v4().to_string(),
            behaviour,
            delay_ms: None,
            drain_ms: 5000,
            idle_timeout_ms: 0,
            oom_after_ms: 3000,
            grace: Duration::from_secs(30),
            prestop: None,
            prestop_exec: None,
            exec_path: None,
            readiness_delay: Duration::from_millis(300),
            memory_limit: None,
        }
    }

    /// The same template as a new revision (what `kubectl rollout restart`
    /// does): a new pod-template-hash, so a new ReplicaSet.
    pub fn next_revision(&self) -> PodTemplate {
        PodTemplate {
            revision: naming::short_suffix(8),
            replica_set_uid: uuid::Uuid::new_v4().to_string(),
            ..self.clone()
        }
    }
}

/// Node-level settings.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The `fivexx-lab` binary, run as `fivexx-lab backend` in each pod.
    pub lab_exe: PathBuf,
    /// How long an endpoint change takes to reach the ingress.
    pub endpoint_lag: Duration,
    /// Time from the container's exit to the sandbox (netns) removal (the
    /// kubelet notices exits on its PLEG relist, every second).
    pub sandbox_teardown_delay: Duration,
    pub probe_period: Duration,
    /// The ingress proxy and its settings.
    pub proxy: ProxyConfig,
    /// The proxy plays an external load balancer instead of the ingress:
    /// outside the pod network, no pod in the API, targeting the pods'
    /// IPs and deregistering a removed endpoint this much later
    /// (lb-deregistration-lag). `None`: the in-cluster ingress.
    pub external_lb: Option<Duration>,
}

pub(crate) struct PodRt {
    pub(crate) facts: PodFacts,
    pub(crate) template: PodTemplate,
    pub(crate) net: Arc<PodNetwork>,
    pub(crate) cgroup: Option<ContainerCgroup>,
    pub(crate) pid: Option<i32>,
    pub(crate) exit_rx: watch::Receiver<Option<std::process::ExitStatus>>,
    pub(crate) terminating: bool,
    /// Its node vanished: nothing about it reaches the API any more (no
    /// kubelet is left to report), until the node lifecycle controller
    /// marks it not ready.
    pub(crate) lost: bool,
}

pub(crate) struct State {
    pub(crate) pods: BTreeMap<String, PodRt>,
    pub(crate) ips: IpPool,
    /// Node name and whether it is cordoned.
    pub(crate) nodes: Vec<(String, bool)>,
}

pub(crate) struct Inner {
    pub(crate) cfg: KubeletConfig,
    pub(crate) store: ClusterStore,
    pub(crate) timeline: Timeline,
    pub(crate) state: Mutex<State>,
    pub(crate) endpoints_tx: mpsc::UnboundedSender<(Instant, Vec<Ipv4Addr>)>,
    pub(crate) ingress: Mutex<Vec<crate::sim::controllers::ingress::IngressReplica>>,
    pub(crate) ingress_synced: watch::Sender<Vec<Ipv4Addr>>,
    /// The external load balancer's targets, when it plays one.
    pub(crate) target_group: Mutex<crate::sim::controllers::target_group::TargetGroup>,
}

/// The node: pods, ingress and controllers. Cheap to clone.
#[derive(Clone)]
pub struct Kubelet {
    pub(crate) inner: Arc<Inner>,
}

impl Kubelet {
    /// Creates the bridge and starts the ingress (with no endpoints yet).
    pub async fn start(
        cfg: KubeletConfig,
        store: ClusterStore,
        timeline: Timeline,
    ) -> Result<Kubelet> {
        netns::ensure_bridge()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let node = store.node_name().to_string();
        let (synced, _) = watch::channel(Vec::new());
        let kubelet = Kubelet {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                store,
                timeline,
                state: Mutex::new(State {
                    pods: BTreeMap::new(),
                    ips: IpPool::default(),
                    nodes: vec![(node, false)],
                }),
                endpoints_tx: tx,
                ingress: Mutex::new(Vec::new()),
                ingress_synced: synced,
                target_group: Mutex::default(),
            }),
        };
        kubelet.start_ingress()?;
        let k = kubelet.clone();
        tokio::spawn(async move { k.ingress_controller(rx).await });
        Ok(kubelet)
    }

    pub fn store(&self) -> &ClusterStore {
        &self.inner.store
    }

    pub fn timeline(&self) -> &Timeline {
        &self.inner.timeline
    }

    /// Where clients send: the ingress, or the external load balancer.
    pub fn ingress_address(&self) -> std::net::SocketAddr {
        let ip = if self.inner.cfg.external_lb.is_some() {
            naming::EXTERNAL_LB_IP
        } else {
            naming::INGRESS_IP
        };
        std::net::SocketAddr::new(Ipv4Addr::from(ip).into(), 80)
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pod names of an app, oldest first, with (revision, ready, terminating).
    pub fn pods(&self, app: &str) -> Vec<(String, String, bool, bool)> {
        self.state()
            .pods
            .values()
            .filter(|p| p.template.app == app)
            .map(|p| {
                (
                    p.facts.name.clone(),
                    p.template.revision.clone(),
                    p.facts.ready,
                    p.terminating,
                )
            })
            .collect()
    }

    /// The IP and pid of a pod.
    pub fn pod_ip(&self, name: &str) -> Option<Ipv4Addr> {
        self.state().pods.get(name).map(|p| p.net.ip)
    }

    pub fn pod_pid(&self, name: &str) -> Option<i32> {
        self.state().pods.get(name).and_then(|p| p.pid)
    }

    pub fn pod_uid(&self, name: &str) -> Option<String> {
        self.state().pods.get(name).map(|p| p.facts.uid.clone())
    }

    /// Every pod name to IP mapping the lab has handed out so far is in the
    /// timeline; this is the live one.
    pub fn live_pods(&self) -> Vec<(String, Ipv4Addr)> {
        self.state()
            .pods
            .values()
            .map(|p| (p.facts.name.clone(), p.net.ip))
            .collect()
    }

    pub(crate) fn schedulable_node(&self) -> Result<String> {
        self.state()
            .nodes
            .iter()
            .find(|(_, cordoned)| !cordoned)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| Error::Lab("no schedulable node".into()))
    }

    /// Adds a second (logical) node: its pods run on this machine too.
    pub fn add_node(&self, name: &str) {
        if let Some(mut node) = self.inner.store.get_node(self.inner.store.node_name()) {
            node.metadata.name = Some(name.into());
            node.metadata.uid = None;
            node.metadata.resource_version = None;
            if let Some(l) = node.metadata.labels.as_mut() {
                l.insert("kubernetes.io/hostname".into(), name.into());
            }
            self.inner.store.apply_node(node);
        }
        self.state().nodes.push((name.into(), false));
    }
}

/// Sends a signal the way a node does: from a thread named like the
/// container runtime's shim, since that is the sender the kernel (and the
/// agent) reports on a real node (`runc kill` run by containerd-shim).
pub(crate) fn signal(pid: i32, sig: i32) {
    let send = move || {
        // SAFETY: plain kill(2) to a process we started.
        unsafe { libc::kill(pid, sig) };
    };
    match std::thread::Builder::new()
        .name("containerd-shim".into())
        .spawn(send)
    {
        Ok(t) => {
            let _ = t.join();
        }
        Err(_) => send(),
    }
}

/// "exit 0", "signal 9 (SIGKILL)".
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s} ({})", fivexx_core::event::signal_name(s)),
        _ => "unknown".into(),
    }
}

/// One readiness probe: GET /healthz answered 200 within 500 ms.
pub(crate) async fn probe(ip: Ipv4Addr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((ip, naming::BACKEND_PORT))
            .await
            .ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nUser-Agent: kube-probe/1.34\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}
