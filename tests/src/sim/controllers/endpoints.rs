//! The EndpointSlice controller (the slice written from the pods at once)
//! and the ingress controller, itself a pod (in `ingress-nginx`,
//! `envoy-gateway-system` or `haproxy-controller`, as its controller
//! deploys it), that applies each endpoint set to the proxy `endpoint_lag`
//! later, in order, each proxy its own way (nginx reloads, Envoy takes an
//! EDS update, HAProxy a Runtime API change).

use crate::node::naming::SERVICE;
use crate::sim::k8s::{self, EndpointEntry};
use crate::sim::kubelet::Kubelet;
use crate::sim::timeline::LabEventKind;
use crate::{Error, Result};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The cluster IP of the lab's Service (the Service CIDR of a kind
/// cluster; nothing routes it here).
pub const SERVICE_CLUSTER_IP: &str = "10.96.0.80";

impl Kubelet {
    /// Applies endpoint sets to the ingress, each `endpoint_lag` after the
    /// EndpointSlice changed, in order. Sets that are all due by the time
    /// one is applied are applied as their latest, in one change, as the
    /// controllers batch their syncs: on a loaded machine an nginx reload
    /// takes long, and a queue of them would otherwise fall ever further
    /// behind. Each applied set's delay past its due time is in the
    /// timeline (`late_ms`), so a run shows the lag the proxy really had.
    pub(crate) async fn ingress_controller(
        self,
        mut rx: mpsc::UnboundedReceiver<(Instant, Vec<Ipv4Addr>)>,
    ) {
        let mut held: Option<(Instant, Vec<Ipv4Addr>)> = None;
        loop {
            let next = match held.take() {
                Some(x) => Some(x),
                None => rx.recv().await,
            };
            let Some((due, mut ips)) = next else { break };
            tokio::time::sleep_until(due).await;
            while let Ok((d, later)) = rx.try_recv() {
                if d <= Instant::now() {
                    ips = later;
                } else {
                    held = Some((d, later));
                    break;
                }
            }
            let mut guard = self.replicas();
            if guard.is_empty() {
                return;
            }
            if guard.iter().all(|r| r.proxy.endpoints() == ips.as_slice()) {
                continue;
            }
            let applied: Result<()> = guard
                .iter_mut()
                .filter(|r| r.proxy.endpoints() != ips.as_slice())
                .try_for_each(|r| r.proxy.set_endpoints(&ips));
            match applied {
                Ok(()) => {
                    let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
                    let late = Instant::now().saturating_duration_since(due);
                    self.inner.timeline.record(
                        LabEventKind::IngressReload,
                        None,
                        format!("{} late_ms={}", list.join(","), late.as_millis()),
                    );
                }
                Err(e) => {
                    tracing::warn!("ingress reload failed: {e}");
                    self.inner.timeline.record(
                        LabEventKind::IngressReload,
                        None,
                        format!("failed: {e}"),
                    );
                }
            }
            drop(guard);
            self.inner.ingress_synced.send_replace(ips);
        }
    }

    /// Writes the EndpointSlice from the pods now and queues the ingress
    /// update for `endpoint_lag` later.
    pub(crate) fn sync_endpoints(&self) {
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
        if self.inner.store.get_service(&ns, SERVICE).is_none() {
            self.inner
                .store
                .apply_service(k8s::service(&ns, SERVICE, SERVICE, SERVICE_CLUSTER_IP));
        }
        self.inner
            .store
            .apply_endpoint_slice(k8s::endpoint_slice(&ns, SERVICE, &entries));
        let due = Instant::now() + self.inner.cfg.endpoint_lag;
        let targets = match self.inner.cfg.external_lb {
            Some(delay) => {
                let targets = self.target_group().targets(&ready, due, delay);
                // The end of a deregistration this change began (none
                // when no target is draining).
                if targets.len() > ready.len() {
                    let k = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(due + delay).await;
                        let now = Instant::now();
                        let targets = k.target_group().refresh(now, delay);
                        let _ = k.inner.endpoints_tx.send((now, targets));
                    });
                }
                targets
            }
            None => ready,
        };
        let _ = self.inner.endpoints_tx.send((due, targets));
    }

    fn target_group(
        &self,
    ) -> std::sync::MutexGuard<'_, crate::sim::controllers::target_group::TargetGroup> {
        self.inner
            .target_group
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn namespace(&self) -> String {
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
        let synced = |ips: &Vec<Ipv4Addr>| {
            let mut a = ips.clone();
            a.sort();
            a == want
        };
        // Half the time, then the ready set once more: a CI run saw the
        // ingress stay on an older set for 16 s with no later reload
        // recorded, so the update it waited for never reached the
        // controller. The second send is what the endpoints controller's
        // periodic resync does in a cluster.
        let half = timeout / 2;
        let mut ok = tokio::time::timeout(half, rx.wait_for(synced))
            .await
            .map(|_| ());
        if ok.is_err() {
            tracing::warn!(
                "the ingress is not on the ready endpoints after {half:?}: sending them again"
            );
            self.sync_endpoints();
            ok = tokio::time::timeout(timeout - half, rx.wait_for(synced))
                .await
                .map(|_| ());
        }
        match ok {
            Ok(()) => Ok(()),
            Err(_) => {
                let last = self.inner.ingress_synced.borrow().clone();
                let failure = self
                    .inner
                    .timeline
                    .events()
                    .into_iter()
                    .rev()
                    .find(|e| e.kind == LabEventKind::IngressReload)
                    .map(|e| e.detail)
                    .unwrap_or_default();
                Err(Error::Lab(format!(
                    "the ingress did not reach endpoints {want:?} in {timeout:?} (last applied {last:?}; last change: {failure})"
                )))
            }
        }
    }

    pub(crate) fn ready_ips(&self) -> Vec<Ipv4Addr> {
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
}
