//! `kubectl drain`: cordon the node, then evict its pods one by one (with a
//! PodDisruptionBudget when asked); the ReplicaSet replaces each one on a
//! schedulable node.

use crate::sim::k8s;
use crate::sim::kubelet::{Kubelet, PodTemplate};
use crate::sim::timeline::LabEventKind;
use crate::{Error, Result};
use std::time::Duration;
use tokio::time::Instant;

impl Kubelet {
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
}
