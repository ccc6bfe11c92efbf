//! Kubernetes objects to fivexx-core facts. The watches deliver whole
//! objects; the engine wants changes (a pod got an IP, became ready, began
//! terminating, left a slice). These trackers remember the last state per
//! object and emit only what changed, stamped with the time we saw it.
//!
//! This file is longer than 600 lines because the trackers (pods, slices,
//! nodes, events) share one idea, a change from the last state seen, and
//! read best beside each other and their tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use fivexx_core::model::fact::{
    ClusterEvent, EndpointFact, NodeChange, NodeFact, PodChange, PodFact, ServiceFact, WorkloadRef,
};
use fivexx_core::Fact;

/// The session's trackers, one per watched kind.
#[derive(Default)]
pub struct Timeline {
    pub pods: PodTracker,
    pub slices: SliceTracker,
    pub nodes: NodeTracker,
    pub events: EventTracker,
    pub services: ServiceTracker,
}

/// The Services of the scope, by cluster IP: a connect refused without a
/// reset by a Service IP is a Service with no ready endpoint, and the
/// engine must know whose IP it was.
#[derive(Default, Debug)]
pub struct ServiceTracker {
    /// (namespace, name) -> cluster IP last reported.
    seen: HashMap<(String, String), Option<IpAddr>>,
}

impl ServiceTracker {
    /// A fact when the Service is new or its cluster IP changed.
    pub fn observe(&mut self, s: &Service, at_ns: i64) -> Option<Fact> {
        let key = service_key(s);
        let ip = s
            .spec
            .as_ref()
            .and_then(|sp| sp.cluster_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        if self.seen.get(&key) == Some(&ip) {
            return None;
        }
        self.seen.insert(key.clone(), ip);
        Some(service_fact(key, ip, true, at_ns))
    }

    pub fn gone(&mut self, s: &Service, at_ns: i64) -> Option<Fact> {
        let key = service_key(s);
        let ip = self.seen.remove(&key)?;
        Some(service_fact(key, ip, false, at_ns))
    }
}

fn service_key(s: &Service) -> (String, String) {
    (
        s.metadata.namespace.clone().unwrap_or_default(),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

fn service_fact(key: (String, String), ip: Option<IpAddr>, present: bool, at_ns: i64) -> Fact {
    Fact::Service(ServiceFact {
        at_ns,
        namespace: key.0,
        name: key.1,
        cluster_ip: ip,
        present,
    })
}

/// The workload that owns a pod, without reading ReplicaSets (the plugin
/// needs no RBAC on them): a ReplicaSet named `<deploy>-<pod-template-hash>`
/// belongs to Deployment `<deploy>`.
pub fn owner_of(pod: &Pod) -> Option<WorkloadRef> {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| pod.metadata.owner_references.as_ref()?.first())?;
    if owner.kind == "ReplicaSet" {
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"));
        if let Some(deploy) = hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
            return Some(WorkloadRef {
                kind: "Deployment".into(),
                name: deploy.to_string(),
            });
        }
    }
    Some(WorkloadRef {
        kind: owner.kind.clone(),
        name: owner.name.clone(),
    })
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[derive(Default, Debug)]
struct PodState {
    ip: Option<IpAddr>,
    ready: bool,
    deleting: bool,
    containers: HashSet<String>,
}

/// Pod changes, per uid.
#[derive(Default, Debug)]
pub struct PodTracker {
    pods: HashMap<String, PodState>,
}

impl PodTracker {
    /// The facts for this version of `pod`, seen at `at_ns`.
    pub fn observe(&mut self, pod: &Pod, at_ns: i64) -> Vec<Fact> {
        let Some(uid) = pod.metadata.uid.clone() else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        let is_new = !self.pods.contains_key(&uid);
        let st = self.pods.entry(uid.clone()).or_default();
        if is_new {
            changes.push(PodChange::Created);
        }
        let status = pod.status.as_ref();
        // A host-network pod's IP is its node's, shared with every host
        // process: it owns no address, or a refused connect to any host
        // port would be blamed on it.
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
            || status.is_some_and(|s| s.pod_ip.is_some() && s.pod_ip == s.host_ip);
        let ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|_| !host_network)
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        if let Some(ip) = ip {
            if st.ip != Some(ip) {
                st.ip = Some(ip);
                changes.push(PodChange::Ip { ip });
            }
        }
        for cs in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            let running = cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some();
            if let (true, Some(id)) = (running, cs.container_id.as_ref()) {
                // `containerd://<id>`: the engine matches the bare id.
                let bare = id.rsplit("://").next().unwrap_or(id).to_string();
                if st.containers.insert(bare.clone()) {
                    changes.push(PodChange::ContainerStarted {
                        container_id: bare,
                        name: cs.name.clone(),
                    });
                }
            }
        }
        let ready = is_ready(pod);
        if ready != st.ready || (is_new && !ready) {
            st.ready = ready;
            changes.push(if ready {
                PodChange::Ready
            } else {
                PodChange::NotReady
            });
        }
        if pod.metadata.deletion_timestamp.is_some() && !st.deleting {
            st.deleting = true;
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
                .unwrap_or(30);
            changes.push(PodChange::Deleting {
                grace_period_s: grace.clamp(0, u32::MAX as i64) as u32,
            });
        }
        changes
            .into_iter()
            .map(|change| pod_fact(pod, &uid, at_ns, change))
            .collect()
    }

    /// The pod is gone from the API.
    pub fn gone(&mut self, pod: &Pod, at_ns: i64) -> Vec<Fact> {
        let Some(uid) = pod.metadata.uid.clone() else {
            return Vec::new();
        };
        self.pods.remove(&uid);
        vec![pod_fact(pod, &uid, at_ns, PodChange::Gone)]
    }
}

fn pod_fact(pod: &Pod, uid: &str, at_ns: i64, change: PodChange) -> Fact {
    Fact::Pod(PodFact {
        at_ns,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: uid.to_string(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        owner: owner_of(pod),
        change,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct EndpointState {
    pod_uid: Option<String>,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// EndpointSlice membership, per (namespace, slice, address).
#[derive(Default, Debug)]
pub struct SliceTracker {
    slices: HashMap<(String, String), (String, HashMap<IpAddr, EndpointState>)>,
}

impl SliceTracker {
    pub fn observe(&mut self, slice: &EndpointSlice, at_ns: i64) -> Vec<Fact> {
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let name = slice.metadata.name.clone().unwrap_or_default();
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
            .unwrap_or_default();
        let mut now: HashMap<IpAddr, EndpointState> = HashMap::new();
        for ep in slice.endpoints.iter().flatten() {
            let c = ep.conditions.as_ref();
            // Unset `ready` means ready (discovery.k8s.io/v1 semantics).
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let st = EndpointState {
                pod_uid: ep
                    .target_ref
                    .as_ref()
                    .filter(|t| t.kind.as_deref().is_none_or(|k| k == "Pod"))
                    .and_then(|t| t.uid.clone()),
                ready,
                serving: c.and_then(|c| c.serving).unwrap_or(ready),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
            };
            for a in &ep.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    now.insert(ip, st.clone());
                }
            }
        }
        let key = (ns.clone(), name.clone());
        let before = self.slices.remove(&key).map(|(_, m)| m).unwrap_or_default();
        let mut out = Vec::new();
        for (ip, st) in &now {
            if before.get(ip) != Some(st) {
                out.push(endpoint_fact(&ns, &service, &name, *ip, st, true, at_ns));
            }
        }
        for (ip, st) in &before {
            if !now.contains_key(ip) {
                out.push(endpoint_fact(&ns, &service, &name, *ip, st, false, at_ns));
            }
        }
        self.slices.insert(key, (service, now));
        out
    }

    /// The slice was deleted: all its addresses left.
    pub fn gone(&mut self, slice: &EndpointSlice, at_ns: i64) -> Vec<Fact> {
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let name = slice.metadata.name.clone().unwrap_or_default();
        let Some((service, before)) = self.slices.remove(&(ns.clone(), name.clone())) else {
            return Vec::new();
        };
        before
            .iter()
            .map(|(ip, st)| endpoint_fact(&ns, &service, &name, *ip, st, false, at_ns))
            .collect()
    }
}

fn endpoint_fact(
    ns: &str,
    service: &str,
    slice: &str,
    address: IpAddr,
    st: &EndpointState,
    present: bool,
    at_ns: i64,
) -> Fact {
    Fact::Endpoint(EndpointFact {
        at_ns,
        namespace: ns.to_string(),
        service: service.to_string(),
        slice: slice.to_string(),
        address,
        pod_uid: st.pod_uid.clone(),
        present,
        ready: st.ready,
        serving: st.serving,
        terminating: st.terminating,
    })
}

/// What was last seen of one node: cordoned, its taints, Ready.
type NodeSeen = (bool, HashSet<(String, String)>, Option<bool>);

/// Cordon, taint and readiness changes, per node.
#[derive(Default, Debug)]
pub struct NodeTracker {
    nodes: HashMap<String, NodeSeen>,
}

/// The Node's `Ready` condition: `True`, else (`False`, `Unknown`) not
/// ready; `None` when it has none yet.
fn node_ready(node: &Node) -> Option<bool> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status == "True")
}

impl NodeTracker {
    pub fn observe(&mut self, node: &Node, at_ns: i64) -> Vec<Fact> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        let cordoned = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let taints: HashSet<(String, String)> = spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect();
        let ready = node_ready(node);
        let (was_cordoned, was_taints, was_ready) =
            self.nodes
                .remove(&name)
                .unwrap_or((false, HashSet::new(), None));
        let mut changes = Vec::new();
        // A node first seen NotReady is one (the session may start in the
        // middle of a loss); a first Ready is no change.
        match (was_ready, ready) {
            (Some(true) | None, Some(false)) => changes.push(NodeChange::NotReady),
            (Some(false), Some(true)) => changes.push(NodeChange::Ready),
            _ => {}
        }
        if cordoned != was_cordoned {
            changes.push(if cordoned {
                NodeChange::Cordoned
            } else {
                NodeChange::Uncordoned
            });
        }
        for (key, effect) in taints.difference(&was_taints) {
            changes.push(NodeChange::TaintAdded {
                key: key.clone(),
                effect: effect.clone(),
            });
        }
        for (key, effect) in was_taints.difference(&taints) {
            changes.push(NodeChange::TaintRemoved {
                key: key.clone(),
                effect: effect.clone(),
            });
        }
        self.nodes
            .insert(name.clone(), (cordoned, taints, ready.or(was_ready)));
        changes
            .into_iter()
            .map(|change| {
                Fact::Node(NodeFact {
                    at_ns,
                    node: name.clone(),
                    change,
                })
            })
            .collect()
    }
}

/// Events, each once (by uid and count; the kubelet bumps `count` on
/// repeats), with a bounded memory of what was seen.
#[derive(Default, Debug)]
pub struct EventTracker {
    seen: HashSet<(String, i32)>,
    order: VecDeque<(String, i32)>,
}

const EVENT_MEMORY: usize = 65_536;

impl EventTracker {
    pub fn observe(&mut self, ev: &Event, seen_ns: i64) -> Vec<Fact> {
        let key = (
            ev.metadata.uid.clone().unwrap_or_default(),
            ev.count.unwrap_or(1),
        );
        if !self.seen.insert(key.clone()) {
            return Vec::new();
        }
        self.order.push_back(key);
        if self.order.len() > EVENT_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        // The event's own time (API server clock) is better than when we
        // saw it, which may be the initial list long after.
        let at_ns = ev
            .last_timestamp
            .as_ref()
            .or(ev.first_timestamp.as_ref())
            .map(|t| t.0.as_nanosecond() as i64)
            .or_else(|| ev.event_time.as_ref().map(|t| t.0.as_nanosecond() as i64))
            .unwrap_or(seen_ns);
        let io = &ev.involved_object;
        vec![Fact::Event(ClusterEvent {
            at_ns,
            namespace: ev.metadata.namespace.clone().unwrap_or_default(),
            reason: ev.reason.clone().unwrap_or_default(),
            message: ev.message.clone().unwrap_or_default(),
            object_kind: io.kind.clone().unwrap_or_default(),
            object_name: io.name.clone().unwrap_or_default(),
            object_uid: io.uid.clone(),
            node: ev.source.as_ref().and_then(|s| s.host.clone()),
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(ip: Option<&str>, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-7d9f-abcde".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                labels: Some([("pod-template-hash".to_string(), "7d9f".to_string())].into()),
                owner_references: Some(vec![OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "web-7d9f".into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            status: Some(PodStatus {
                pod_ip: ip.map(String::from),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn changes(f: &[Fact]) -> Vec<PodChange> {
        f.iter()
            .map(|f| match f {
                Fact::Pod(p) => p.change.clone(),
                _ => panic!("not a pod fact"),
            })
            .collect()
    }

    #[test]
    fn pods_emit_only_changes_and_resolve_deployments() {
        let mut t = PodTracker::default();
        let f = t.observe(&pod(None, false), 1);
        assert_eq!(changes(&f), [PodChange::Created, PodChange::NotReady]);
        let Fact::Pod(p) = &f[0] else { unreachable!() };
        assert_eq!(p.owner.as_ref().unwrap().to_string(), "deployment/web");
        let f = t.observe(&pod(Some("10.244.0.5"), true), 2);
        assert_eq!(
            changes(&f),
            [
                PodChange::Ip {
                    ip: "10.244.0.5".parse().unwrap()
                },
                PodChange::Ready
            ]
        );
        assert!(t.observe(&pod(Some("10.244.0.5"), true), 3).is_empty());
        let mut deleting = pod(Some("10.244.0.5"), true);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        deleting.metadata.deletion_grace_period_seconds = Some(5);
        assert_eq!(
            changes(&t.observe(&deleting, 4)),
            [PodChange::Deleting { grace_period_s: 5 }]
        );
        assert_eq!(changes(&t.gone(&deleting, 5)), [PodChange::Gone]);
    }

    /// A host-network pod (an agent, a CNI pod) shares its node's IP with
    /// every host process: refusals to that IP are not its doing.
    #[test]
    fn host_network_pods_own_no_address() {
        let mut t = PodTracker::default();
        let mut p = pod(Some("192.168.1.5"), true);
        p.status.as_mut().unwrap().host_ip = Some("192.168.1.5".into());
        let f = t.observe(&p, 1);
        assert_eq!(changes(&f), [PodChange::Created, PodChange::Ready]);
        let mut q = pod(Some("192.168.1.6"), true);
        q.metadata.uid = Some("u2".into());
        q.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            host_network: Some(true),
            ..Default::default()
        });
        assert!(!changes(&t.observe(&q, 2))
            .iter()
            .any(|c| matches!(c, PodChange::Ip { .. })));
    }

    #[test]
    fn slices_emit_joins_and_leaves() {
        let slice = |addrs: &[&str], ready: bool| EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("shop".into()),
                labels: Some(
                    [("kubernetes.io/service-name".to_string(), "web".to_string())].into(),
                ),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(
                addrs
                    .iter()
                    .map(|a| Endpoint {
                        addresses: vec![a.to_string()],
                        conditions: Some(EndpointConditions {
                            ready: Some(ready),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        let mut t = SliceTracker::default();
        let f = t.observe(&slice(&["10.0.0.1", "10.0.0.2"], true), 1);
        assert_eq!(f.len(), 2);
        assert!(t
            .observe(&slice(&["10.0.0.1", "10.0.0.2"], true), 2)
            .is_empty());
        let f = t.observe(&slice(&["10.0.0.1"], true), 3);
        let [Fact::Endpoint(e)] = f.as_slice() else {
            panic!("{f:?}")
        };
        assert!(!e.present);
        assert_eq!(e.address.to_string(), "10.0.0.2");
        assert_eq!(e.service, "web");
        let f = t.gone(&slice(&[], true), 4);
        assert_eq!(f.len(), 1);
    }

    /// A node's Ready condition: a turn to NotReady (False or Unknown,
    /// as the node lifecycle controller sets for a vanished node) and back
    /// are facts; a first Ready is none, a first NotReady is one.
    #[test]
    fn node_readiness_changes_are_facts() {
        use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
        let node = |status: &str| Node {
            metadata: ObjectMeta {
                name: Some("n2".into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let changes = |t: &mut NodeTracker, s: &str| -> Vec<NodeChange> {
            t.observe(&node(s), 1)
                .into_iter()
                .map(|f| match f {
                    Fact::Node(n) => n.change,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let mut t = NodeTracker::default();
        assert!(changes(&mut t, "True").is_empty());
        assert!(changes(&mut t, "True").is_empty());
        assert_eq!(changes(&mut t, "Unknown"), [NodeChange::NotReady]);
        assert!(changes(&mut t, "False").is_empty());
        assert_eq!(changes(&mut t, "True"), [NodeChange::Ready]);
        let mut late = NodeTracker::default();
        assert_eq!(changes(&mut late, "Unknown"), [NodeChange::NotReady]);
    }
}
