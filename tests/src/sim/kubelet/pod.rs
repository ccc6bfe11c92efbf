//! Pod start as the kubelet runs it: the sandbox (netns, IP), the container
//! (a new id and cgroup scope, the backend joined to both before exec), the
//! readiness probe, and restarts after an exit the lab did not ask for (OOM,
//! crash) with CrashLoopBackOff.

use super::{describe, probe, Kubelet, PodRt, PodTemplate};
use crate::node::cgroup::{self, ContainerCgroup};
use crate::node::naming;
use crate::node::netns::PodNetwork;
use crate::sim::k8s::{self, PodFacts};
use crate::sim::timeline::{LabEvent, LabEventKind};
use crate::{clock::Stamp, io_err, Error, Result};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

impl Kubelet {
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
        self.ensure_replica_set(template);
        let ip = self.state().ips.allocate()?;
        let uid = naming::new_pod_uid();
        let facts = PodFacts {
            namespace: template.namespace.clone(),
            name: name.clone(),
            uid,
            app: template.app.clone(),
            revision: template.revision.clone(),
            owner: Some((
                "ReplicaSet".into(),
                template.replica_set(),
                template.replica_set_uid.clone(),
            )),
            node: node.into(),
            ip: None,
            grace_seconds: template.grace.as_secs_f64().ceil() as i64,
            prestop_seconds: template.prestop.map(|d| d.as_secs_f64().ceil() as i64),
            prestop_exec: template.prestop_exec.clone(),
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
                lost: false,
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
    pub(crate) fn start_container(&self, name: &str) -> Result<()> {
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
    pub(crate) async fn readiness_probe(&self, name: &str, cid: Option<String>, delay: Duration) {
        tokio::time::sleep(delay).await;
        loop {
            let (ip, current) = {
                let st = self.state();
                let Some(p) = st.pods.get(name) else { return };
                if p.terminating || p.lost || p.facts.container_id != cid {
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
    pub(crate) async fn on_container_exit(
        &self,
        name: &str,
        cid: &str,
        status: std::process::ExitStatus,
    ) {
        use std::os::unix::process::ExitStatusExt;
        let (oom, restarts) = {
            let mut st = self.state();
            let Some(p) = st.pods.get_mut(name) else {
                return;
            };
            if p.terminating || p.lost || p.facts.container_id.as_deref() != Some(cid) {
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
}
