//! The kubelet simulator, with the controllers a node's pods depend on: the
//! EndpointSlice controller, the ingress controller (with its lag), the
//! Deployment controller (rolling updates) and `kubectl drain`.
//!
//! Termination follows the kubelet exactly: deletionTimestamp; the endpoint
//! turns terminating at once but reaches the ingress only after the
//! configured lag; preStop (counted against the grace period); SIGTERM;
//! SIGKILL when the grace period runs out; sandbox (netns) teardown. Every
//! step is written to the [`ClusterStore`] and the [`Timeline`].

use crate::backend::Behaviour;
use crate::cgroup::{self, ContainerCgroup};
use crate::cluster::ClusterStore;
use crate::ingress::{Ingress, IngressConfig};
use crate::k8s::{self, EndpointEntry, PodFacts};
use crate::netns::{self, IpPool, PodNetwork};
use crate::timeline::{LabEvent, LabEventKind, Timeline};
use crate::{clock::Stamp, io_err, naming, Error, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a Deployment's pods look like (one revision).
#[derive(Clone, Debug)]
pub struct PodTemplate {
    pub app: String,
    pub namespace: String,
    /// pod-template-hash: a rollout changes it.
    pub revision: String,
    pub behaviour: Behaviour,
    pub delay_ms: Option<u64>,
    pub drain_ms: u64,
    pub idle_timeout_ms: u64,
    pub oom_after_ms: u64,
    /// terminationGracePeriodSeconds (sub-second values are kept for tests).
    pub grace: Duration,
    pub prestop: Option<Duration>,
    /// Time after container start before the readiness probe first runs.
    pub readiness_delay: Duration,
    /// Container memory limit, bytes.
    pub memory_limit: Option<u64>,
}

impl PodTemplate {
    pub fn new(app: &str, behaviour: Behaviour) -> PodTemplate {
        PodTemplate {
            app: app.into(),
            namespace: "shop".into(),
            revision: naming::short_suffix(8),
            behaviour,
            delay_ms: None,
            drain_ms: 5000,
            idle_timeout_ms: 0,
            oom_after_ms: 3000,
            grace: Duration::from_secs(30),
            prestop: None,
            readiness_delay: Duration::from_millis(300),
            memory_limit: None,
        }
    }

    /// The same template as a new revision (what `kubectl rollout restart` does).
    pub fn next_revision(&self) -> PodTemplate {
        PodTemplate {
            revision: naming::short_suffix(8),
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
    pub ingress: IngressConfig,
}

/// The Service the Deployment's pods back.
pub const SERVICE: &str = "web";

struct PodRt {
    facts: PodFacts,
    template: PodTemplate,
    net: Arc<PodNetwork>,
    cgroup: Option<ContainerCgroup>,
    pid: Option<i32>,
    exit_rx: watch::Receiver<Option<std::process::ExitStatus>>,
    terminating: bool,
}

struct State {
    pods: BTreeMap<String, PodRt>,
    ips: IpPool,
    /// Node name and whether it is cordoned.
    nodes: Vec<(String, bool)>,
}

struct Inner {
    cfg: KubeletConfig,
    store: ClusterStore,
    timeline: Timeline,
    state: Mutex<State>,
    endpoints_tx: mpsc::UnboundedSender<(Instant, Vec<Ipv4Addr>)>,
    ingress: Mutex<Option<Ingress>>,
    ingress_synced: watch::Sender<Vec<Ipv4Addr>>,
}

/// The node: pods, ingress and controllers. Cheap to clone.
#[derive(Clone)]
pub struct Kubelet {
    inner: Arc<Inner>,
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
                ingress: Mutex::new(None),
                ingress_synced: synced,
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

    pub fn ingress_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(Ipv4Addr::from(naming::INGRESS_IP).into(), 80)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ingress controller is itself a pod (in `ingress-nginx`), so its
    /// connections carry a kubelet-style cgroup too.
    fn start_ingress(&self) -> Result<()> {
        let ip = Ipv4Addr::from(naming::INGRESS_IP);
        let net = PodNetwork::create(naming::INGRESS_NETNS, ip)?;
        let uid = naming::new_pod_uid();
        let cid = naming::new_container_id();
        let cg = ContainerCgroup::create(&uid, &cid, None)?;
        let fds = cg.open_procs_files()?;
        let ingress = Ingress::start(self.inner.cfg.ingress.clone(), net, fds, &[])?;
        let facts = PodFacts {
            namespace: "ingress-nginx".into(),
            name: format!("ingress-nginx-controller-{}", naming::short_suffix(5)),
            uid,
            app: "ingress-nginx".into(),
            revision: "lab".into(),
            node: self.inner.store.node_name().into(),
            ip: Some(ip.to_string()),
            grace_seconds: 300,
            prestop_seconds: None,
            memory_limit: None,
            phase: "Running",
            ready: true,
            container_id: Some(cid),
            restart_count: 0,
            running: true,
            last_terminated: None,
        };
        self.inner.store.apply_pod(k8s::pod(&facts));
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::ContainerStarted,
            pod: Some(facts.name.clone()),
            ip: Some(ip.to_string()),
            pid: Some(ingress.master_pid()),
            detail: "ingress nginx".into(),
        });
        *self.inner.ingress.lock().unwrap_or_else(|e| e.into_inner()) = Some(ingress);
        Ok(())
    }

    /// Applies endpoint sets to the ingress, each `endpoint_lag` after the
    /// EndpointSlice changed, in order.
    async fn ingress_controller(self, mut rx: mpsc::UnboundedReceiver<(Instant, Vec<Ipv4Addr>)>) {
        while let Some((due, ips)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            let mut guard = self.inner.ingress.lock().unwrap_or_else(|e| e.into_inner());
            let Some(ing) = guard.as_mut() else { return };
            if ing.endpoints() == ips.as_slice() {
                continue;
            }
            match ing.set_endpoints(&ips) {
                Ok(()) => {
                    let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
                    self.inner
                        .timeline
                        .record(LabEventKind::IngressReload, None, list.join(","));
                }
                Err(e) => tracing::warn!("ingress reload failed: {e}"),
            }
            drop(guard);
            self.inner.ingress_synced.send_replace(ips);
        }
    }

    /// Writes the EndpointSlice from the pods now and queues the ingress
    /// update for `endpoint_lag` later.
    fn sync_endpoints(&self) {
        let (entries, ready): (Vec<EndpointEntry>, Vec<Ipv4Addr>) = {
            let st = self.state();
            let mut entries = Vec::new();
            let mut ready = Vec::new();
            for p in st.pods.values() {
                if p.facts.ip.is_none() {
                    continue;
                }
                if p.facts.ready && !p.terminating {
                    ready.push(p.net.ip);
                }
                if p.facts.ready || p.terminating {
                    entries.push(EndpointEntry {
                        ip: p.net.ip.to_string(),
                        pod: p.facts.name.clone(),
                        uid: p.facts.uid.clone(),
                        node: p.facts.node.clone(),
                        ready: p.facts.ready,
                        terminating: p.terminating,
                    });
                }
            }
            (entries, ready)
        };
        let ns = self.namespace();
        self.inner
            .store
            .apply_endpoint_slice(k8s::endpoint_slice(&ns, SERVICE, &entries));
        let due = Instant::now() + self.inner.cfg.endpoint_lag;
        let _ = self.inner.endpoints_tx.send((due, ready));
    }

    fn namespace(&self) -> String {
        self.state()
            .pods
            .values()
            .next()
            .map(|p| p.template.namespace.clone())
            .unwrap_or_else(|| "shop".into())
    }

    /// Waits until the ingress routes to exactly the pods that are ready now.
    pub async fn wait_ingress_synced(&self, timeout: Duration) -> Result<()> {
        let want = self.ready_ips();
        let mut rx = self.inner.ingress_synced.subscribe();
        let ok = tokio::time::timeout(
            timeout,
            rx.wait_for(|ips| {
                let mut a = ips.clone();
                a.sort();
                a == want
            }),
        )
        .await;
        match ok {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Lab(format!(
                "the ingress did not reach endpoints {want:?} in {timeout:?}"
            ))),
        }
    }

    fn ready_ips(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .state()
            .pods
            .values()
            .filter(|p| p.facts.ready && !p.terminating)
            .map(|p| p.net.ip)
            .collect();
        v.sort();
        v
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

    fn schedulable_node(&self) -> Result<String> {
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

    /// Creates a pod and starts its container; readiness follows later.
    pub fn start_pod(&self, template: &PodTemplate) -> Result<String> {
        let node = self.schedulable_node()?;
        self.start_pod_on(template, &node)
    }

    pub fn start_pod_on(&self, template: &PodTemplate, node: &str) -> Result<String> {
        let name = format!(
            "{}-{}-{}",
            template.app,
            template.revision,
            naming::short_suffix(5)
        );
        let ip = self.state().ips.allocate()?;
        let uid = naming::new_pod_uid();
        let facts = PodFacts {
            namespace: template.namespace.clone(),
            name: name.clone(),
            uid,
            app: template.app.clone(),
            revision: template.revision.clone(),
            node: node.into(),
            ip: None,
            grace_seconds: template.grace.as_secs_f64().ceil() as i64,
            prestop_seconds: template.prestop.map(|d| d.as_secs_f64().ceil() as i64),
            memory_limit: template.memory_limit,
            phase: "Pending",
            ready: false,
            container_id: None,
            restart_count: 0,
            running: false,
            last_terminated: None,
        };
        self.inner.store.apply_pod(k8s::pod(&facts));
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::PodCreated,
            pod: Some(name.clone()),
            ip: Some(ip.to_string()),
            pid: None,
            detail: format!("node {node}, revision {}", template.revision),
        });
        let net = match PodNetwork::create(&naming::pod_netns(&name), ip) {
            Ok(n) => Arc::new(n),
            Err(e) => {
                self.state().ips.release(ip);
                return Err(e);
            }
        };
        let (_, exit_rx) = watch::channel(None);
        self.state().pods.insert(
            name.clone(),
            PodRt {
                facts,
                template: template.clone(),
                net,
                cgroup: None,
                pid: None,
                exit_rx,
                terminating: false,
            },
        );
        if let Err(e) = self.start_container(&name) {
            self.remove_sandbox(&name);
            return Err(e);
        }
        Ok(name)
    }

    /// Starts (or restarts) the pod's container: a new container id and
    /// scope, the backend joined to the pod's netns and cgroup before exec.
    fn start_container(&self, name: &str) -> Result<()> {
        let (template, facts, net) = {
            let st = self.state();
            let p = st
                .pods
                .get(name)
                .ok_or_else(|| Error::Lab(format!("no pod {name}")))?;
            (p.template.clone(), p.facts.clone(), p.net.clone())
        };
        let cid = naming::new_container_id();
        let cg = ContainerCgroup::create(&facts.uid, &cid, template.memory_limit)?;
        let fds = cg.open_procs_files()?;
        let netns =
            std::fs::File::open(net.path()).map_err(io_err(format!("opening {}", net.path())))?;
        let log_dir = PathBuf::from(naming::RUN_DIR).join("pods");
        std::fs::create_dir_all(&log_dir).map_err(io_err("creating the pod log dir"))?;
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))
            .map_err(io_err("creating a pod log"))?;
        let mut cmd = tokio::process::Command::new(&self.inner.cfg.lab_exe);
        cmd.arg("backend")
            .arg("--pod")
            .arg(name)
            .arg("--behaviour")
            .arg(template.behaviour.name())
            .arg("--drain-ms")
            .arg(template.drain_ms.to_string())
            .arg("--idle-timeout-ms")
            .arg(template.idle_timeout_ms.to_string())
            .arg("--oom-after-ms")
            .arg(template.oom_after_ms.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(false);
        if let Some(d) = template.delay_ms {
            cmd.arg("--delay-ms").arg(d.to_string());
        }
        let ns_fd = netns.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                cgroup::join_in_child(&fds)?;
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(io_err("starting the backend"))?;
        drop(netns);
        let pid = child.id().map(|p| p as i32);
        let (exit_tx, exit_rx) = watch::channel(None);
        {
            let mut st = self.state();
            if let Some(p) = st.pods.get_mut(name) {
                p.pid = pid;
                p.exit_rx = exit_rx;
                p.cgroup = Some(cg);
                p.facts.container_id = Some(cid.clone());
                p.facts.ip = Some(p.net.ip.to_string());
                p.facts.phase = "Running";
                p.facts.running = true;
                p.facts.ready = false;
                self.inner.store.apply_pod(k8s::pod(&p.facts));
            }
        }
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::ContainerStarted,
            pod: Some(name.into()),
            ip: Some(net.ip.to_string()),
            pid,
            detail: format!("container {}", &cid[..12]),
        });
        let k = self.clone();
        let pod = name.to_string();
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = exit_tx.send(status);
            if let Some(status) = status {
                k.on_container_exit(&pod, &cid, status).await;
            }
        });
        let k = self.clone();
        let pod = name.to_string();
        let cid = self
            .state()
            .pods
            .get(name)
            .and_then(|p| p.facts.container_id.clone());
        tokio::spawn(async move { k.readiness_probe(&pod, cid, template.readiness_delay).await });
        Ok(())
    }

    /// HTTP GET /healthz from the node until it answers 200, then Ready.
    async fn readiness_probe(&self, name: &str, cid: Option<String>, delay: Duration) {
        tokio::time::sleep(delay).await;
        loop {
            let (ip, current) = {
                let st = self.state();
                let Some(p) = st.pods.get(name) else { return };
                if p.terminating || p.facts.container_id != cid {
                    return;
                }
                (p.net.ip, p.facts.container_id.clone())
            };
            if probe(ip).await {
                let mut st = self.state();
                if let Some(p) = st.pods.get_mut(name) {
                    if p.terminating || p.facts.container_id != current {
                        return;
                    }
                    p.facts.ready = true;
                    self.inner.store.apply_pod(k8s::pod(&p.facts));
                }
                drop(st);
                self.inner.timeline.push(LabEvent {
                    at: Stamp::now(),
                    kind: LabEventKind::PodReady,
                    pod: Some(name.into()),
                    ip: Some(ip.to_string()),
                    pid: None,
                    detail: String::new(),
                });
                self.sync_endpoints();
                return;
            }
            tokio::time::sleep(self.inner.cfg.probe_period).await;
        }
    }

    /// A container ended on its own (not by our termination): OOM or crash.
    /// The kubelet marks the pod not ready and restarts the container.
    async fn on_container_exit(&self, name: &str, cid: &str, status: std::process::ExitStatus) {
        use std::os::unix::process::ExitStatusExt;
        let (oom, restarts) = {
            let mut st = self.state();
            let Some(p) = st.pods.get_mut(name) else {
                return;
            };
            if p.terminating || p.facts.container_id.as_deref() != Some(cid) {
                return;
            }
            let oom = p.cgroup.as_ref().map(cgroup::oom_kills).unwrap_or(0) > 0;
            let code = status.code().unwrap_or(128 + status.signal().unwrap_or(0));
            let reason = if oom { "OOMKilled" } else { "Error" };
            p.facts.last_terminated = Some((code, status.signal(), reason.into()));
            p.facts.ready = false;
            p.facts.running = false;
            p.pid = None;
            p.facts.restart_count += 1;
            self.inner.store.apply_pod(k8s::pod(&p.facts));
            if let Some(cg) = p.cgroup.take() {
                // The old container's scope goes; the pod slice stays.
                let _ = std::fs::remove_dir(&cg.v2_dir);
                if let Some(d) = &cg.v1_memory_dir {
                    let _ = std::fs::remove_dir(d);
                }
            }
            (oom, p.facts.restart_count)
        };
        self.inner
            .timeline
            .record(LabEventKind::ContainerExited, Some(name), describe(status));
        if oom {
            self.inner
                .timeline
                .record(LabEventKind::OomKilled, Some(name), "memory limit");
            let node = self.inner.store.node_name().to_string();
            self.inner.store.record_event(k8s::event(
                k8s::Involved {
                    namespace: "default",
                    kind: "Node",
                    name: &node,
                    uid: None,
                },
                "OOMKilling",
                &format!("Memory cgroup out of memory: Killed process of pod {name}"),
                "Warning",
                k8s::Reporter {
                    component: "kernel-monitor",
                    host: &node,
                },
            ));
        }
        self.sync_endpoints();
        // CrashLoopBackOff: the first restart is immediate, then 10 s, 20 s...
        let backoff = if restarts <= 1 {
            Duration::ZERO
        } else {
            Duration::from_secs(10 << (restarts - 2).min(4))
        };
        tokio::time::sleep(backoff).await;
        let still_there = self.state().pods.get(name).is_some_and(|p| !p.terminating);
        if still_there {
            if let Err(e) = self.start_container(name) {
                tracing::warn!("restarting {name}: {e}");
            }
        }
    }

    /// Deletes a pod gracefully; the returned task ends when the pod is gone.
    pub fn delete_pod(&self, name: &str) -> JoinHandle<()> {
        let k = self.clone();
        let name = name.to_string();
        tokio::spawn(async move { k.terminate(&name).await })
    }

    async fn terminate(&self, name: &str) {
        let start = Instant::now();
        let (ns, template, uid, pid, mut exit_rx, ip) = {
            let mut st = self.state();
            let Some(p) = st.pods.get_mut(name) else {
                return;
            };
            if p.terminating {
                return;
            }
            p.terminating = true;
            (
                p.template.namespace.clone(),
                p.template.clone(),
                p.facts.uid.clone(),
                p.pid,
                p.exit_rx.clone(),
                p.net.ip,
            )
        };
        let grace_s = template.grace.as_secs_f64().ceil() as i64;
        let _ = self
            .inner
            .store
            .mark_pod_terminating(&ns, name, Some(grace_s));
        self.inner.timeline.record(
            LabEventKind::DeletionRequested,
            Some(name),
            format!("grace {} ms", template.grace.as_millis()),
        );
        self.sync_endpoints();
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::EndpointRemoved,
            pod: Some(name.into()),
            ip: Some(ip.to_string()),
            pid: None,
            detail: format!(
                "reaches the ingress in {} ms",
                self.inner.cfg.endpoint_lag.as_millis()
            ),
        });
        let node = self.inner.store.node_name().to_string();
        self.inner.store.record_event(k8s::event(
            k8s::Involved {
                namespace: &ns,
                kind: "Pod",
                name,
                uid: Some(&uid),
            },
            "Killing",
            &format!("Stopping container {}", template.app),
            "Normal",
            k8s::Reporter {
                component: "kubelet",
                host: &node,
            },
        ));
        let deadline = start + template.grace;
        if let Some(pre) = template.prestop {
            self.inner.timeline.record(
                LabEventKind::PreStopStarted,
                Some(name),
                format!("sleep {} ms", pre.as_millis()),
            );
            tokio::time::sleep_until((start + pre).min(deadline)).await;
        }
        let alive = exit_rx.borrow().is_none();
        if let (Some(pid), true) = (pid, alive) {
            signal(pid, libc::SIGTERM);
            self.push_signal(LabEventKind::SigtermSent, name, pid);
            let exited = tokio::time::timeout_at(deadline, exit_rx.wait_for(|s| s.is_some()))
                .await
                .is_ok_and(|r| r.is_ok());
            if !exited {
                signal(pid, libc::SIGKILL);
                self.push_signal(LabEventKind::SigkillSent, name, pid);
                let waited =
                    tokio::time::timeout(Duration::from_secs(5), exit_rx.wait_for(|s| s.is_some()))
                        .await;
                drop(waited);
            }
            let how = exit_rx
                .borrow()
                .map(describe)
                .unwrap_or_else(|| "unknown".into());
            self.inner.timeline.push(LabEvent {
                at: Stamp::now(),
                kind: LabEventKind::ContainerExited,
                pod: Some(name.into()),
                ip: Some(ip.to_string()),
                pid: Some(pid),
                detail: how,
            });
        }
        tokio::time::sleep(self.inner.cfg.sandbox_teardown_delay).await;
        self.remove_sandbox(name);
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::SandboxRemoved,
            pod: Some(name.into()),
            ip: Some(ip.to_string()),
            pid: None,
            detail: String::new(),
        });
        self.sync_endpoints();
        self.inner.store.delete_pod(&ns, name);
        self.inner
            .timeline
            .record(LabEventKind::PodDeleted, Some(name), "");
    }

    fn push_signal(&self, kind: LabEventKind, pod: &str, pid: i32) {
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind,
            pod: Some(pod.into()),
            ip: None,
            pid: Some(pid),
            detail: String::new(),
        });
    }

    /// Kills what is left of the pod, removes its cgroups and netns, frees the IP.
    fn remove_sandbox(&self, name: &str) {
        let Some(p) = self.state().pods.remove(name) else {
            return;
        };
        if let Some(cg) = &p.cgroup {
            cg.remove();
        }
        for dir in cgroup::lab_pod_dirs() {
            if dir
                .to_string_lossy()
                .contains(&cgroup::pod_slice(&p.facts.uid))
            {
                cgroup::remove_pod_dir(&dir);
            }
        }
        p.net.destroy();
        self.state().ips.release(p.net.ip);
    }

    /// Starts `replicas` pods and waits until all are ready and routed.
    pub async fn create_deployment(&self, template: &PodTemplate, replicas: u32) -> Result<()> {
        self.inner.store.apply_namespace(&template.namespace);
        for _ in 0..replicas {
            self.start_pod(template)?;
        }
        self.wait_ready(&template.app, replicas, Duration::from_secs(15))
            .await?;
        self.wait_ingress_synced(Duration::from_secs(15) + self.inner.cfg.endpoint_lag)
            .await
    }

    async fn wait_ready(&self, app: &str, n: u32, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self.pods(app).iter().filter(|p| p.2 && !p.3).count() as u32;
            if ready >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Lab(format!(
                    "{app}: only {ready}/{n} pods ready after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A rolling update to `template` (a new revision) with maxSurge and
    /// maxUnavailable, as the Deployment controller does it. Returns when
    /// the old pods are gone and the new ones ready.
    pub async fn rollout(
        &self,
        template: &PodTemplate,
        replicas: u32,
        max_surge: u32,
        max_unavailable: u32,
    ) -> Result<()> {
        if max_surge == 0 && max_unavailable == 0 {
            return Err(Error::Lab(
                "maxSurge and maxUnavailable cannot both be 0".into(),
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut terminations = Vec::new();
        loop {
            let pods = self.pods(&template.app);
            let new: Vec<_> = pods
                .iter()
                .filter(|p| p.1 == template.revision && !p.3)
                .collect();
            let old: Vec<_> = pods
                .iter()
                .filter(|p| p.1 != template.revision && !p.3)
                .collect();
            let new_ready = new.iter().filter(|p| p.2).count() as u32;
            if old.is_empty() && new_ready >= replicas {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Lab("rollout did not finish in 120 s".into()));
            }
            // Scale up the new ReplicaSet within the surge.
            let mut total = (new.len() + old.len()) as u32;
            let mut new_count = new.len() as u32;
            while total < replicas + max_surge && new_count < replicas {
                self.start_pod(template)?;
                self.inner
                    .timeline
                    .step(format!("rollout: surge {}/{replicas}", new_count + 1));
                total += 1;
                new_count += 1;
            }
            // Scale down the old one as far as availability allows
            // (deployment controller: allPods - minAvailable - newUnavailable).
            let min_available = replicas.saturating_sub(max_unavailable) as i64;
            let new_unavailable = (new_count - new_ready) as i64;
            let max_scaled_down = total as i64 - min_available - new_unavailable;
            let mut victims: Vec<_> = old.iter().collect();
            victims.sort_by_key(|p| p.2); // not-ready first
            for p in victims.into_iter().take(max_scaled_down.max(0) as usize) {
                self.inner.timeline.step(format!("rollout: delete {}", p.0));
                terminations.push(self.delete_pod(&p.0));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        for t in terminations {
            let _ = t.await;
        }
        Ok(())
    }

    /// `kubectl drain NODE`: cordon, then evict its pods one by one; with a
    /// PDB (`min_available`), wait before each eviction until it allows one.
    /// The ReplicaSet replaces each evicted pod on a schedulable node.
    pub async fn drain(
        &self,
        node: &str,
        min_available: Option<u32>,
        evict_interval: Duration,
    ) -> Result<()> {
        if let Some(mut n) = self.inner.store.get_node(node) {
            let spec = n.spec.get_or_insert_with(Default::default);
            spec.unschedulable = Some(true);
            spec.taints = Some(vec![k8s_openapi::api::core::v1::Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                effect: "NoSchedule".into(),
                time_added: Some(k8s::now()),
                value: None,
            }]);
            n.metadata.resource_version = None;
            self.inner.store.apply_node(n);
        }
        for entry in self.state().nodes.iter_mut() {
            if entry.0 == node {
                entry.1 = true;
            }
        }
        self.inner
            .timeline
            .record(LabEventKind::NodeCordoned, None, node);
        self.inner.timeline.step(format!("drain: cordoned {node}"));
        let victims: Vec<(String, PodTemplate)> = self
            .state()
            .pods
            .values()
            .filter(|p| p.facts.node == node && !p.terminating)
            .map(|p| (p.facts.name.clone(), p.template.clone()))
            .collect();
        let mut terminations = Vec::new();
        for (i, (name, template)) in victims.iter().enumerate() {
            if let Some(min) = min_available {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let ready = self
                        .pods(&template.app)
                        .iter()
                        .filter(|p| p.2 && !p.3)
                        .count() as u32;
                    if ready > min {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(Error::Lab(format!(
                            "PDB minAvailable {min} blocked the drain for 60 s"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            } else if i > 0 {
                tokio::time::sleep(evict_interval).await;
            }
            self.inner.timeline.step(format!("drain: evict {name}"));
            self.inner.timeline.record(
                LabEventKind::Evicted,
                Some(name),
                format!("drain of {node}"),
            );
            terminations.push(self.delete_pod(name));
            self.start_pod(template)?;
        }
        for t in terminations {
            let _ = t.await;
        }
        Ok(())
    }

    /// Removes a pod's network namespace while its endpoint stays: the pod IP
    /// goes dark (node-level failure, or a sandbox torn down under a lagging
    /// endpoint). The kubelet then notices and deletes the pod.
    pub fn yank_sandbox(&self, name: &str) -> Option<Ipv4Addr> {
        let (net, pid) = {
            let st = self.state();
            let p = st.pods.get(name)?;
            (p.net.clone(), p.pid)
        };
        if let Some(pid) = pid {
            signal(pid, libc::SIGKILL);
        }
        net.destroy();
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::SandboxRemoved,
            pod: Some(name.into()),
            ip: Some(net.ip.to_string()),
            pid,
            detail: "netns removed under a live endpoint".into(),
        });
        Some(net.ip)
    }

    /// Stops everything this kubelet started: pods, sandboxes, the ingress.
    pub async fn shutdown(&self) {
        let names: Vec<String> = self.state().pods.keys().cloned().collect();
        for n in names {
            self.remove_sandbox(&n);
        }
        let ing = self
            .inner
            .ingress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut ing) = ing {
            ing.stop();
            ing.net.destroy();
        }
        for dir in cgroup::lab_pod_dirs() {
            cgroup::remove_pod_dir(&dir);
        }
    }
}

/// Sends a signal the way a node does: from a thread named like the
/// container runtime's shim, since that is the sender the kernel (and the
/// agent) reports on a real node (`runc kill` run by containerd-shim).
fn signal(pid: i32, sig: i32) {
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
async fn probe(ip: Ipv4Addr) -> bool {
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
