//! Pod termination exactly as the kubelet runs it: deletionTimestamp, the
//! endpoint turning terminating, preStop (counted against the grace period),
//! SIGTERM, SIGKILL at grace expiry, then the sandbox teardown; and the
//! sandbox yanked from under a live endpoint, and the lab's shutdown.

use super::{describe, signal, Kubelet};
use crate::clock::Stamp;
use crate::node::cgroup;
use crate::node::netns::PodNetwork;
use crate::sim::k8s;
use crate::sim::timeline::{LabEvent, LabEventKind};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

impl Kubelet {
    /// Deletes a pod gracefully; the returned task ends when the pod is gone.
    pub fn delete_pod(&self, name: &str) -> JoinHandle<()> {
        let k = self.clone();
        let name = name.to_string();
        tokio::spawn(async move { k.terminate(&name).await })
    }

    pub(crate) async fn terminate(&self, name: &str) {
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
        if let Some(cmd) = &template.prestop_exec {
            self.exec_prestop(name, &ns, &uid, &template, cmd, deadline)
                .await;
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

    /// Runs an exec preStop hook as the runtime would (the container's
    /// `PATH`, bounded by the grace period). When it cannot start or fails,
    /// the kubelet records `FailedPreStopHook` with its own message and
    /// goes on to SIGTERM at once.
    async fn exec_prestop(
        &self,
        name: &str,
        ns: &str,
        uid: &str,
        template: &crate::sim::kubelet::PodTemplate,
        cmd: &[String],
        deadline: Instant,
    ) {
        self.inner.timeline.record(
            LabEventKind::PreStopStarted,
            Some(name),
            format!("exec {cmd:?}"),
        );
        let Some((program, args)) = cmd.split_first() else {
            return;
        };
        let mut c = tokio::process::Command::new(program);
        c.args(args).kill_on_drop(true);
        if let Some(path) = &template.exec_path {
            c.env_clear().env("PATH", path);
        }
        let failure = match c.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "command '{}' exited with 126: , message: \"OCI runtime exec failed: exec failed: unable to start container process: exec: \\\"{program}\\\": executable file not found in $PATH: unknown\\r\\n\"",
                cmd.join(" ")
            )),
            Err(e) => Some(format!("command '{}' failed to start: {e}", cmd.join(" "))),
            Ok(mut child) => match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(Ok(st)) if st.success() => None,
                Ok(Ok(st)) => Some(format!(
                    "command '{}' exited with {}: , message: \"\"",
                    cmd.join(" "),
                    st.code().unwrap_or(-1)
                )),
                Ok(Err(e)) => Some(format!("command '{}': {e}", cmd.join(" "))),
                Err(_) => None,
            },
        };
        let Some(error) = failure else { return };
        let message = format!(
            "Exec lifecycle hook ([{}]) for Container {:?} in Pod \"{name}_{ns}({uid})\" failed - error: {error}",
            cmd.join(" "),
            template.app
        );
        let node = self.inner.store.node_name().to_string();
        self.inner.store.record_event(k8s::event(
            k8s::Involved {
                namespace: ns,
                kind: "Pod",
                name,
                uid: Some(uid),
            },
            "FailedPreStopHook",
            &message,
            "Warning",
            k8s::Reporter {
                component: "kubelet",
                host: &node,
            },
        ));
        self.inner
            .timeline
            .record(LabEventKind::PreStopFailed, Some(name), message);
    }

    pub(crate) fn push_signal(&self, kind: LabEventKind, pod: &str, pid: i32) {
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
    pub(crate) fn remove_sandbox(&self, name: &str) {
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

    /// `node` vanishes, as a VM does (a spot reclaim, a crash): its pods'
    /// networks go first, so nothing they send gets out (no FIN, no RST
    /// from the dying processes), then their processes die at once, with
    /// no SIGTERM and nothing reported to the API. The endpoints keep the
    /// pods until [`Kubelet::node_not_ready`]. Returns the lost pods.
    pub fn lose_node(&self, node: &str) -> Vec<String> {
        let lost: Vec<(String, Arc<PodNetwork>, Option<i32>)> = {
            let mut st = self.state();
            st.pods
                .values_mut()
                .filter(|p| p.facts.node == node && !p.terminating)
                .map(|p| {
                    p.lost = true;
                    (p.facts.name.clone(), p.net.clone(), p.pid)
                })
                .collect()
        };
        for (name, net, pid) in &lost {
            net.destroy();
            if let Some(pid) = pid {
                // SAFETY: plain kill(2) to a process we started.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            self.inner.timeline.push(LabEvent {
                at: Stamp::now(),
                kind: LabEventKind::NodeLost,
                pod: Some(name.clone()),
                ip: Some(net.ip.to_string()),
                pid: *pid,
                detail: format!("node {node} vanished"),
            });
        }
        lost.into_iter().map(|(n, _, _)| n).collect()
    }

    /// The node lifecycle controller, a node-monitor grace period after a
    /// node stopped posting status: the Node's Ready condition Unknown, the
    /// `unreachable` NoExecute taint, and its pods marked not ready, which
    /// takes them out of the endpoints.
    pub fn node_not_ready(&self, node: &str) {
        if let Some(mut n) = self.inner.store.get_node(node) {
            if let Some(st) = n.status.as_mut() {
                for c in st.conditions.iter_mut().flatten() {
                    if c.type_ == "Ready" {
                        c.status = "Unknown".into();
                        c.reason = Some("NodeStatusUnknown".into());
                        c.message = Some("Kubelet stopped posting node status.".into());
                    }
                }
            }
            let spec = n.spec.get_or_insert_with(Default::default);
            spec.taints
                .get_or_insert_with(Vec::new)
                .push(k8s_openapi::api::core::v1::Taint {
                    key: "node.kubernetes.io/unreachable".into(),
                    effect: "NoExecute".into(),
                    ..Default::default()
                });
            self.inner.store.apply_node(n);
        }
        {
            let mut st = self.state();
            for p in st.pods.values_mut().filter(|p| p.lost) {
                p.facts.ready = false;
                self.inner.store.apply_pod(k8s::pod(&p.facts));
            }
        }
        self.inner
            .timeline
            .record(LabEventKind::NodeNotReady, None, format!("node {node}"));
        self.sync_endpoints();
    }

    /// Stops everything this kubelet started: pods, sandboxes, the ingress.
    pub async fn shutdown(&self) {
        let names: Vec<String> = self.state().pods.keys().cloned().collect();
        for n in names {
            self.remove_sandbox(&n);
        }
        let replicas = std::mem::take(&mut *self.replicas());
        for mut r in replicas {
            r.proxy.stop();
            r.proxy.network().destroy();
        }
        for dir in cgroup::lab_pod_dirs() {
            cgroup::remove_pod_dir(&dir);
        }
    }
}
