//! The ingress proxy's pods: the first replica the lab always runs, more
//! replicas behind the clients' own balancer (proxy-terminated), and the
//! proxy as a load balancer outside the cluster (lb-deregistration-lag).
//! A replica's termination is the kubelet's: deletionTimestamp, then a
//! real SIGTERM to the proxy, whose own shutdown follows.

use crate::clock::Stamp;
use crate::node::cgroup::ContainerCgroup;
use crate::node::naming;
use crate::node::netns::PodNetwork;
use crate::node::proxy::{self, IngressProxy, RetryStats};
use crate::sim::k8s::{self, PodFacts};
use crate::sim::kubelet::{signal, Kubelet};
use crate::sim::timeline::{LabEvent, LabEventKind};
use crate::{Error, Result};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Replicas at most: their addresses are 10.244.0.2 to .9, below the pods'.
pub const MAX_REPLICAS: usize = 8;

/// The pod-template hash of the ingress Deployment's first revision, and
/// of the one a proxy rollout brings.
pub const FIRST_REVISION: &str = "7c6d9f8b5d";
pub const NEXT_REVISION: &str = "5f7b8c9d4c";

/// One running proxy: its pod's name (none for the external load
/// balancer, which is no pod), its replica number, the proxy.
pub(crate) struct IngressReplica {
    pub(crate) pod: Option<String>,
    pub(crate) index: usize,
    pub(crate) proxy: Box<dyn IngressProxy>,
}

impl Kubelet {
    /// The ingress controller is itself a pod, so its connections carry a
    /// kubelet-style cgroup too.
    pub(crate) fn start_ingress(&self) -> Result<()> {
        if self.inner.cfg.external_lb.is_some() {
            return self.start_external_lb();
        }
        self.start_ingress_replica(0, FIRST_REVISION).map(|_| ())
    }

    /// Starts replica `k` of the ingress (`k` 0: the lab's one) in its own
    /// pod and network, routing to the endpoints the others route to.
    fn start_ingress_replica(&self, k: usize, revision: &str) -> Result<SocketAddr> {
        if k >= MAX_REPLICAS {
            return Err(Error::Lab(format!(
                "at most {MAX_REPLICAS} ingress replicas"
            )));
        }
        let [a, b, c, d] = naming::INGRESS_IP;
        let ip = Ipv4Addr::new(a, b, c, d + k as u8);
        let netns = if k == 0 {
            naming::INGRESS_NETNS.to_string()
        } else {
            format!("{}-{k}", naming::INGRESS_NETNS)
        };
        let net = PodNetwork::create(&netns, ip)?;
        let uid = naming::new_pod_uid();
        let cid = naming::new_container_id();
        let cg = ContainerCgroup::create(&uid, &cid, None)?;
        let fds = cg.open_procs_files()?;
        let kind = self.inner.cfg.proxy.kind;
        let id = kind.pod_identity();
        let dir = proxy::replica_dir(k);
        let routed = self.inner.ingress_synced.borrow().clone();
        let ingress = proxy::start_in(&self.inner.cfg.proxy, net, fds, &dir, &routed)?;
        // A replica of the controller's Deployment `name_prefix`, through
        // its revision's ReplicaSet, as the Deployment controller names
        // them (the plugin finds the pods by their labels either way).
        let replica_set = format!("{}-{revision}", id.name_prefix);
        let facts = PodFacts {
            namespace: id.namespace.into(),
            name: format!("{replica_set}-{}", naming::short_suffix(5)),
            uid,
            app: id.container.into(),
            revision: revision.into(),
            owner: Some((
                "ReplicaSet".into(),
                replica_set,
                format!("{}-rs-{revision}", naming::UID_PREFIX),
            )),
            node: self.inner.store.node_name().into(),
            ip: Some(ip.to_string()),
            grace_seconds: 30,
            prestop_seconds: None,
            prestop_exec: None,
            memory_limit: None,
            phase: "Running",
            ready: true,
            container_id: Some(cid),
            restart_count: 0,
            running: true,
            last_terminated: None,
        };
        self.inner
            .store
            .map_pod_log(id.namespace, &facts.name, kind.container_log_in(&dir));
        self.inner.store.apply_pod(k8s::ingress_pod(&facts, &id));
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::ContainerStarted,
            pod: Some(facts.name.clone()),
            ip: Some(ip.to_string()),
            pid: Some(ingress.pid()),
            detail: format!("ingress {} replica {k}", kind.name()),
        });
        let addr = ingress.address();
        self.replicas().push(IngressReplica {
            pod: Some(facts.name),
            index: k,
            proxy: ingress,
        });
        Ok(addr)
    }

    /// A new ingress replica (numbered after every running one, so that
    /// a replaced replica's address is not reused at once: the node's
    /// neighbour cache still maps it to the old veth, as CNI's host-local
    /// allocator avoids too): its address, once it routes to the current
    /// endpoints.
    pub fn add_ingress_replica(&self, revision: &str) -> Result<(String, SocketAddr)> {
        let k = self
            .replicas()
            .iter()
            .map(|x| x.index + 1)
            .max()
            .unwrap_or(0);
        let addr = self.start_ingress_replica(k, revision)?;
        let name = self
            .replicas()
            .iter()
            .find(|r| r.index == k)
            .and_then(|r| r.pod.clone())
            .unwrap_or_default();
        Ok((name, addr))
    }

    /// The ingress pods now: (pod name, address).
    pub fn ingress_replicas(&self) -> Vec<(String, SocketAddr)> {
        self.replicas()
            .iter()
            .filter_map(|r| Some((r.pod.clone()?, r.proxy.address())))
            .collect()
    }

    /// Deletes ingress pod `pod` as the kubelet does: deletionTimestamp,
    /// a real SIGTERM to the proxy (no preStop: what follows is the
    /// proxy's own shutdown), its exit, the sandbox torn down
    /// `sandbox_teardown_delay` later, the pod gone.
    pub async fn terminate_ingress_replica(&self, pod: &str) -> Result<()> {
        let ns = self.inner.cfg.proxy.kind.pod_identity().namespace;
        let pid = self
            .replicas()
            .iter()
            .find(|r| r.pod.as_deref() == Some(pod))
            .map(|r| r.proxy.pid())
            .ok_or_else(|| Error::Lab(format!("no ingress pod {pod}")))?;
        let _ = self.inner.store.mark_pod_terminating(ns, pod, Some(30));
        self.inner.timeline.record(
            LabEventKind::DeletionRequested,
            Some(pod),
            "ingress replica",
        );
        signal(pid, libc::SIGTERM);
        self.push_signal(LabEventKind::SigtermSent, pod, pid);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let exited = self
                .replicas()
                .iter_mut()
                .find(|r| r.pod.as_deref() == Some(pod))
                .is_none_or(|r| r.proxy.exited());
            if exited || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::ContainerExited,
            pod: Some(pod.into()),
            ip: None,
            pid: Some(pid),
            detail: "ingress replica".into(),
        });
        tokio::time::sleep(self.inner.cfg.sandbox_teardown_delay).await;
        let gone = {
            let mut r = self.replicas();
            let i = r.iter().position(|x| x.pod.as_deref() == Some(pod));
            i.map(|i| r.remove(i))
        };
        if let Some(mut g) = gone {
            g.proxy.stop();
            g.proxy.network().destroy();
        }
        self.inner
            .timeline
            .record(LabEventKind::SandboxRemoved, Some(pod), "ingress replica");
        self.inner.store.delete_pod(ns, pod);
        self.inner
            .timeline
            .record(LabEventKind::PodDeleted, Some(pod), "ingress replica");
        Ok(())
    }

    /// The proxy as a load balancer outside the cluster: its own netns
    /// off the pod bridge, an address in no pod or Service range, no pod
    /// in the API and no kubelet cgroup (no agent is told to peek at it:
    /// in a cloud it runs on no node of the cluster).
    fn start_external_lb(&self) -> Result<()> {
        let ip = Ipv4Addr::from(naming::EXTERNAL_LB_IP);
        let net = PodNetwork::create_external(
            naming::EXTERNAL_LB_NETNS,
            ip,
            Ipv4Addr::from(naming::EXTERNAL_NET_GW),
            naming::EXTERNAL_LB_VETH,
        )?;
        let lb = proxy::start(&self.inner.cfg.proxy, net, Vec::new())?;
        self.inner.timeline.push(LabEvent {
            at: Stamp::now(),
            kind: LabEventKind::ContainerStarted,
            pod: None,
            ip: Some(ip.to_string()),
            pid: Some(lb.pid()),
            detail: format!("external load balancer {}", lb.kind().name()),
        });
        self.replicas().push(IngressReplica {
            pod: None,
            index: 0,
            proxy: lb,
        });
        Ok(())
    }

    /// The ingress proxies' own retry counters, summed, while they run.
    pub fn ingress_retry_stats(&self) -> Option<RetryStats> {
        let r = self.replicas();
        let mut total: Option<RetryStats> = None;
        for x in r.iter() {
            match x.proxy.retry_stats() {
                Ok(Some(s)) => {
                    let t = total.get_or_insert_with(RetryStats::default);
                    t.retried += s.retried;
                    t.redispatched += s.redispatched;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("reading the ingress retry counters: {e}"),
            }
        }
        total
    }

    pub(crate) fn replicas(&self) -> std::sync::MutexGuard<'_, Vec<IngressReplica>> {
        self.inner.ingress.lock().unwrap_or_else(|e| e.into_inner())
    }
}
