//! The Deployment controller: a Deployment's pods started through its
//! ReplicaSet, and rolling updates with maxSurge and maxUnavailable as the
//! real controller computes them.

use crate::control::store::Kind;
use crate::sim::kubelet::{Kubelet, PodTemplate};
use crate::{Error, Result};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

impl Kubelet {
    /// The revision's ReplicaSet `<app>-<pod-template-hash>` with the uid
    /// its pods' owner references carry, owned in turn by the Deployment
    /// `<app>` when the store has one (as the Deployment controller makes
    /// it). Written once per revision.
    pub(crate) fn ensure_replica_set(&self, template: &PodTemplate) {
        let store = &self.inner.store;
        let name = template.replica_set();
        if store
            .get(Kind::ReplicaSet, &template.namespace, &name)
            .is_some()
        {
            return;
        }
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), template.app.clone()),
            ("pod-template-hash".to_string(), template.revision.clone()),
        ]
        .into();
        let owner = store
            .get(Kind::Deployment, &template.namespace, &template.app)
            .and_then(|d| d.pointer("/metadata/uid")?.as_str().map(str::to_string))
            .map(|uid| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: template.app.clone(),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            });
        store.apply_replica_set(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(template.namespace.clone()),
                uid: Some(template.replica_set_uid.clone()),
                labels: Some(labels.clone()),
                owner_references: owner,
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                ..Default::default()
            },
            ..Default::default()
        });
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

    /// Starts `n` more pods of `template` on `node` and waits until the
    /// app's `total` pods are ready and routed.
    pub async fn scale_onto(
        &self,
        template: &PodTemplate,
        node: &str,
        n: u32,
        total: u32,
    ) -> Result<()> {
        for _ in 0..n {
            self.start_pod_on(template, node)?;
        }
        self.wait_ready(&template.app, total, Duration::from_secs(15))
            .await?;
        self.wait_ingress_synced(Duration::from_secs(15) + self.inner.cfg.endpoint_lag)
            .await
    }

    pub(crate) async fn wait_ready(&self, app: &str, n: u32, timeout: Duration) -> Result<()> {
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
        self.rollout_to(template, None, replicas, max_surge, max_unavailable)
            .await
    }

    /// [`Kubelet::rollout`] with the new pods on `node` (`None`: the first
    /// schedulable node), as a scheduler that picks another node does.
    pub async fn rollout_to(
        &self,
        template: &PodTemplate,
        node: Option<&str>,
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
                match node {
                    Some(n) => self.start_pod_on(template, n)?,
                    None => self.start_pod(template)?,
                };
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
}
