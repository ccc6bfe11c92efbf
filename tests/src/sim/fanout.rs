//! Fan-out: a cluster of many nodes whose pods are API objects only (no
//! netns, no process), for measuring what the plugin does when a trace
//! spans hundreds of nodes and pods (`fivexx-lab api --nodes N`, the
//! bench's fan-out row).
//!
//! Every node is registered as the lab's node is (`lab-node-1` and
//! `lab-node-2` .. `lab-node-N`), so the agent DaemonSet that
//! `kubectl fivexx deploy` creates gets one pod on each; the lab routes all
//! of their port-forwards to one real agent. The Deployment `web`'s pods
//! are written as the kubelet would write a running, ready pod, owned by
//! the ReplicaSet of their revision. Their IPs are loopback addresses
//! (`127.1.0.0/16`), so a connect to one of them is refused by this
//! machine's kernel: a real kernel event about a pod in scope, which the
//! agent reports.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::control::store::{lab_node, ClusterStore, Kind};
use crate::node::naming;
use crate::sim::k8s::{self, PodFacts};

/// The Deployment whose pods a fan-out run starts.
pub const APP: &str = "web";

/// The name of the i-th node (0-based): `first` for 0, else
/// `lab-node-{i+1}`.
pub fn node_name(first: &str, i: usize) -> String {
    if i == 0 {
        first.to_string()
    } else {
        format!("lab-node-{}", i + 1)
    }
}

/// Registers nodes 2..=n next to the store's own node (the DaemonSet
/// controller gives each an agent pod once the DaemonSet exists).
pub fn add_nodes(store: &ClusterStore, n: usize) {
    for i in 1..n {
        store.apply_node(lab_node(&node_name(store.node_name(), i)));
    }
}

/// The IP of the i-th pod (0-based) of a fan-out run: 127.1.0.1, ...
pub fn pod_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).unwrap_or(u32::MAX - 1) + 1;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i)
}

/// The Deployment `web` in `namespace`, and one revision of it: its
/// ReplicaSet's (name, uid, pod-template-hash).
pub struct Revision {
    pub namespace: String,
    pub replica_set: String,
    pub uid: String,
    pub hash: String,
}

impl Revision {
    /// Writes the Deployment (once) and a new ReplicaSet for a new
    /// pod-template-hash, as `kubectl rollout restart` makes it.
    pub fn new(store: &ClusterStore, namespace: &str) -> Revision {
        store.apply_namespace(namespace);
        let selector: BTreeMap<String, String> = [("app".to_string(), APP.to_string())].into();
        if store.get(Kind::Deployment, namespace, APP).is_none() {
            store.apply_deployment(Deployment {
                metadata: ObjectMeta {
                    name: Some(APP.into()),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                },
                spec: DeploymentSpec {
                    selector: LabelSelector {
                        match_labels: Some(selector.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            });
        }
        let deployment_uid = store
            .get(Kind::Deployment, namespace, APP)
            .and_then(|d| d.pointer("/metadata/uid")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let hash = naming::short_suffix(8);
        let uid = uuid::Uuid::new_v4().to_string();
        let replica_set = format!("{APP}-{hash}");
        let mut labels = selector.clone();
        labels.insert("pod-template-hash".into(), hash.clone());
        store.apply_replica_set(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(replica_set.clone()),
                namespace: Some(namespace.into()),
                uid: Some(uid.clone()),
                labels: Some(labels.clone()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: APP.into(),
                    uid: deployment_uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        });
        Revision {
            namespace: namespace.into(),
            replica_set,
            uid,
            hash,
        }
    }

    /// Writes the `k`-th running, ready pod of this revision on `node` with
    /// `ip`. Its name's 5-character suffix encodes `k` in the alphabet of
    /// real suffixes, so hundreds of pods never collide.
    pub fn start_pod(&self, store: &ClusterStore, k: usize, node: &str, ip: Ipv4Addr) -> String {
        let name = format!("{}-{}", self.replica_set, suffix(k));
        let facts = PodFacts {
            namespace: self.namespace.clone(),
            name: name.clone(),
            uid: uuid::Uuid::new_v4().to_string(),
            app: APP.into(),
            revision: self.hash.clone(),
            owner: Some((
                "ReplicaSet".into(),
                self.replica_set.clone(),
                self.uid.clone(),
            )),
            node: node.into(),
            ip: Some(ip.to_string()),
            grace_seconds: 30,
            prestop_seconds: None,
            prestop_exec: None,
            memory_limit: None,
            phase: "Running",
            ready: true,
            container_id: Some(naming::new_container_id()),
            restart_count: 0,
            running: true,
            last_terminated: None,
        };
        store.apply_pod(k8s::pod(&facts));
        name
    }
}

/// `k` in base 27 over the alphabet of generated name suffixes, 5 digits.
fn suffix(k: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut k = k;
    let mut out = [b'b'; 5];
    for c in out.iter_mut().rev() {
        *c = ALPHABET[k % ALPHABET.len()];
        k /= ALPHABET.len();
    }
    out.iter().map(|&b| b as char).collect()
}

/// Starts `pods` pods of a new revision, round-robin over `nodes` nodes
/// (node i gets pods i, i + nodes, ...), one every `interval`; pod k gets
/// [`pod_ip`]`(first_ip + k)`. Returns the pods' (name, node, IP).
pub async fn rollout(
    store: &ClusterStore,
    namespace: &str,
    nodes: usize,
    pods: usize,
    first_ip: usize,
    interval: Duration,
) -> Vec<(String, String, Ipv4Addr)> {
    let revision = Revision::new(store, namespace);
    let mut started = Vec::with_capacity(pods);
    for k in 0..pods {
        let node = node_name(store.node_name(), k % nodes.max(1));
        let ip = pod_ip(first_ip + k);
        let name = revision.start_pod(store, k, &node, ip);
        started.push((name, node, ip));
        if !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
    }
    started
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ips() {
        assert_eq!(node_name("lab-node-1", 0), "lab-node-1");
        assert_eq!(node_name("lab-node-1", 199), "lab-node-200");
        assert_eq!(pod_ip(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(pod_ip(299), Ipv4Addr::new(127, 1, 1, 44));
        assert_eq!(suffix(0), "bbbbb");
        assert_eq!(suffix(28), "bbbcc");
        let all: std::collections::HashSet<String> = (0..1000).map(suffix).collect();
        assert_eq!(all.len(), 1000);
    }

    #[tokio::test]
    async fn a_rollout_spreads_owned_pods_over_the_nodes() {
        let store = ClusterStore::new("lab-node-1");
        add_nodes(&store, 4);
        assert_eq!(store.list_nodes().len(), 4);
        let pods = rollout(&store, "shop", 4, 6, 0, Duration::ZERO).await;
        assert_eq!(pods.len(), 6);
        let listed = store.list_pods(Some("shop"));
        assert_eq!(listed.len(), 6);
        let on_4 = listed
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("lab-node-4"))
            .count();
        assert_eq!(on_4, 1);
        let owner = &listed[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(owner.name.starts_with("web-"));
        let hash = &listed[0].metadata.labels.as_ref().unwrap()["pod-template-hash"];
        assert_eq!(owner.name, format!("web-{hash}"));
        assert!(store.get(Kind::ReplicaSet, "shop", &owner.name).is_some());
    }
}
