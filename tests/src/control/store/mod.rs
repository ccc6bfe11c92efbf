//! The lab's cluster state: the objects a real API server would hold in etcd,
//! with resource versions, watch history and the few controllers whose side
//! effects the plugin observes (namespace and owner garbage collection, the
//! DaemonSet controller).
//!
//! The lab (kubelet simulator, scenarios) writes typed k8s-openapi objects
//! through [`ClusterStore`]; the fake API server (`crate::control::apiserver`) serves
//! the same objects as JSON. Objects are kept as JSON values so that every
//! kind shares one code path for resource versions, selectors and watches,
//! and so that what the server sends is exactly what k8s-openapi serialized.
//!
//! This file is longer than 600 lines because the store's one lock guards
//! every kind, and the typed accessors the lab and the server use sit next
//! to it (the controllers and kinds are in their own modules).

mod commit;
mod daemonset;
mod kind;
mod meta;
mod node;
#[cfg(test)]
mod tests;
mod write;

pub use kind::{Kind, KindInfo};
use meta::*;
pub use meta::{json_merge, now, object_rv};
pub use node::lab_node;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Event, Namespace, Node, NodeAddress,
    NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodCondition, PodStatus, Service,
    ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::{Metadata, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

/// How many changes the store remembers for watches that resume from an
/// older resourceVersion. Older versions get `410 Gone`, as from etcd
/// compaction.
pub const DEFAULT_HISTORY: usize = 10_000;

/// Capacity of the live change channel. A watcher that falls this far
/// behind is ended and must resume from its last resourceVersion.
const LIVE_CHANNEL: usize = 4_096;

/// Namespaces every cluster starts with.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The kubelet version the lab node reports.
pub const LAB_KUBELET_VERSION: &str = "v1.37.0-fivexx-lab";

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    /// The `type` field of a Kubernetes WatchEvent.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: Kind,
    pub change: ChangeType,
    /// The object after the change (for deletions: its last state, with the
    /// deletion's resourceVersion).
    pub object: Value,
    /// The object before the change, so a filtered watch can tell an object
    /// that left its selector (sent as DELETED) from one that changed.
    pub previous: Option<Value>,
    pub resource_version: u64,
}

/// Errors of store operations, mapped to `Status` objects by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("{plural} \"{name}\" not found")]
    NotFound { plural: String, name: String },
    #[error("{plural} \"{name}\" already exists")]
    AlreadyExists { plural: String, name: String },
    /// An optimistic-concurrency or field-manager conflict.
    #[error("Operation cannot be fulfilled on {plural} \"{name}\": {detail}")]
    Conflict {
        plural: String,
        name: String,
        detail: String,
    },
    /// The object or request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The requested resourceVersion is older than the kept history.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
}

/// The start of a watch: the changes already missed, then the live channel.
pub struct WatchStart {
    /// Changes after the requested resourceVersion, oldest first (or a
    /// synthetic ADDED for every object when no version was given).
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The store's resourceVersion when the watch started.
    pub resource_version: u64,
}

/// Decides whether the agent DaemonSet's pod on a node is ready. The lab
/// sets it so that `kubectl fivexx deploy` sees the lab's real agent.
pub type DaemonSetReadiness = Arc<dyn Fn(&DaemonSet, &str) -> bool + Send + Sync>;

type Key = (String, String);

struct State {
    resource_version: u64,
    objects: BTreeMap<Kind, BTreeMap<Key, Value>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes up to and including this version are no longer in history.
    compacted: u64,
    daemon_set_readiness: Option<DaemonSetReadiness>,
}

struct Inner {
    node_name: String,
    state: Mutex<State>,
    live: broadcast::Sender<Arc<Change>>,
    port_forwards: Mutex<HashMap<(String, String, u16), SocketAddr>>,
    /// (namespace, pod) -> the file its container log is read from.
    pod_logs: Mutex<HashMap<(String, String), PathBuf>>,
    /// Pods on a node that vanished: their port-forwards go silent.
    silenced: Mutex<std::collections::HashSet<(String, String)>>,
}

/// The in-memory cluster, shared by the lab and the fake API server.
#[derive(Clone)]
pub struct ClusterStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterStore")
            .field("node_name", &self.inner.node_name)
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

/// Wildcard pod name for [`ClusterStore::map_port_forward`].
pub const ANY_POD: &str = "*";

impl ClusterStore {
    /// A cluster with one node, `node_name`, and the system namespaces.
    pub fn new(node_name: &str) -> Self {
        Self::with_history(node_name, DEFAULT_HISTORY)
    }

    /// Like [`ClusterStore::new`], keeping only `history_limit` changes for
    /// resumed watches (tests use a small value to provoke `410 Gone`).
    pub fn with_history(node_name: &str, history_limit: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_CHANNEL);
        let store = ClusterStore {
            inner: Arc::new(Inner {
                node_name: node_name.to_string(),
                state: Mutex::new(State {
                    resource_version: 0,
                    objects: BTreeMap::new(),
                    history: VecDeque::new(),
                    history_limit: history_limit.max(1),
                    compacted: 0,
                    daemon_set_readiness: None,
                }),
                live,
                port_forwards: Mutex::new(HashMap::new()),
                pod_logs: Mutex::new(HashMap::new()),
                silenced: Mutex::new(std::collections::HashSet::new()),
            }),
        };
        for ns in SYSTEM_NAMESPACES {
            store.apply_namespace(ns);
        }
        store.apply_node(lab_node(node_name));
        store
    }

    /// The name of the lab's node.
    pub fn node_name(&self) -> &str {
        &self.inner.node_name
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    // ----- typed API for the lab -------------------------------------------

    /// Creates or replaces a pod (by namespace and name). Sets uid,
    /// creationTimestamp and resourceVersion; creates its namespace if
    /// missing. Emits ADDED or MODIFIED.
    pub fn apply_pod(&self, pod: Pod) -> Pod {
        self.put_typed(Kind::Pod, pod)
    }

    /// Removes a pod for good (the kubelet's final delete). Emits DELETED.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let _ = self.delete(Kind::Pod, namespace, name);
    }

    pub fn get_pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.get_typed(Kind::Pod, namespace, name)
    }

    /// Pods of one namespace, or of all namespaces for `None`.
    pub fn list_pods(&self, namespace: Option<&str>) -> Vec<Pod> {
        self.list_typed(Kind::Pod, namespace)
    }

    pub fn apply_endpoint_slice(&self, slice: EndpointSlice) -> EndpointSlice {
        self.put_typed(Kind::EndpointSlice, slice)
    }

    pub fn delete_endpoint_slice(&self, namespace: &str, name: &str) {
        let _ = self.delete(Kind::EndpointSlice, namespace, name);
    }

    pub fn get_endpoint_slice(&self, namespace: &str, name: &str) -> Option<EndpointSlice> {
        self.get_typed(Kind::EndpointSlice, namespace, name)
    }

    pub fn list_endpoint_slices(&self, namespace: Option<&str>) -> Vec<EndpointSlice> {
        self.list_typed(Kind::EndpointSlice, namespace)
    }

    /// Creates or replaces a node; cordon is `spec.unschedulable = true`.
    pub fn apply_node(&self, node: Node) -> Node {
        self.put_typed(Kind::Node, node)
    }

    pub fn get_node(&self, name: &str) -> Option<Node> {
        self.get_typed(Kind::Node, "", name)
    }

    pub fn list_nodes(&self) -> Vec<Node> {
        self.list_typed(Kind::Node, None)
    }

    /// Records a core/v1 Event (Killing, Evicted, OOMKilling, ...). A missing
    /// name is generated as the kubelet does (`<involved>.<hex>`), a missing
    /// namespace is the involved object's, else `default`.
    pub fn record_event(&self, mut event: Event) {
        if event.metadata.namespace.is_none() {
            event.metadata.namespace = Some(
                event
                    .involved_object
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            );
        }
        if event.metadata.name.is_none() {
            let base = event
                .involved_object
                .name
                .clone()
                .unwrap_or_else(|| "event".into());
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            event.metadata.name = Some(format!("{base}.{}", &suffix[..16]));
        }
        if event.first_timestamp.is_none() {
            event.first_timestamp = Some(now());
        }
        if event.last_timestamp.is_none() {
            event.last_timestamp = event.first_timestamp.clone();
        }
        if event.count.is_none() {
            event.count = Some(1);
        }
        if event.type_.is_none() {
            event.type_ = Some("Normal".into());
        }
        let _ = self.put_typed(Kind::Event, event);
    }

    pub fn list_events(&self, namespace: Option<&str>) -> Vec<Event> {
        self.list_typed(Kind::Event, namespace)
    }

    /// Creates a namespace if it does not exist.
    pub fn apply_namespace(&self, name: &str) -> Namespace {
        if let Some(ns) = self.get_typed(Kind::Namespace, "", name) {
            return ns;
        }
        self.put_typed(
            Kind::Namespace,
            Namespace {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some([("kubernetes.io/metadata.name".into(), name.into())].into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
    }

    pub fn apply_service(&self, service: Service) -> Service {
        self.put_typed(Kind::Service, service)
    }

    pub fn get_service(&self, namespace: &str, name: &str) -> Option<Service> {
        self.get_typed(Kind::Service, namespace, name)
    }

    pub fn apply_deployment(&self, deployment: Deployment) -> Deployment {
        self.put_typed(Kind::Deployment, deployment)
    }

    pub fn apply_replica_set(&self, replica_set: ReplicaSet) -> ReplicaSet {
        self.put_typed(Kind::ReplicaSet, replica_set)
    }

    pub fn get_daemon_set(&self, namespace: &str, name: &str) -> Option<DaemonSet> {
        self.get_typed(Kind::DaemonSet, namespace, name)
    }

    pub fn list_daemon_sets(&self, namespace: Option<&str>) -> Vec<DaemonSet> {
        self.list_typed(Kind::DaemonSet, namespace)
    }

    /// Sets how DaemonSet pods become ready (per DaemonSet and node) and
    /// re-evaluates every DaemonSet. Without it no DaemonSet pod is ready, as
    /// on a node that cannot pull the image.
    pub fn set_daemon_set_readiness(
        &self,
        readiness: impl Fn(&DaemonSet, &str) -> bool + Send + Sync + 'static,
    ) {
        self.lock().daemon_set_readiness = Some(Arc::new(readiness));
        self.refresh_daemon_sets();
    }

    /// Re-runs the DaemonSet controller: one pod per matching node, readiness
    /// from the hook, status counts. Call it when the readiness answer changes.
    pub fn refresh_daemon_sets(&self) {
        let mut st = self.lock();
        let keys: Vec<Key> = st.bucket(Kind::DaemonSet).keys().cloned().collect();
        for (ns, name) in keys {
            self.reconcile_daemon_set(&mut st, &ns, &name);
        }
    }

    /// Routes port-forwards to `namespace/pod:port` to a real local address
    /// (pod [`ANY_POD`] matches every pod of the namespace). Without a route
    /// the server connects to the pod's `status.podIP`.
    pub fn map_port_forward(&self, namespace: &str, pod: &str, port: u16, to: SocketAddr) {
        self.inner
            .port_forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.into(), pod.into(), port), to);
    }

    /// `namespace/pod`'s node vanished: its open port-forwards relay
    /// nothing more in either direction and stay open (no FIN, no RST:
    /// nothing answers for the node), and new ones fail.
    pub fn silence_pod(&self, namespace: &str, pod: &str) {
        self.inner
            .silenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.into(), pod.into()));
    }

    pub fn is_silenced(&self, namespace: &str, pod: &str) -> bool {
        self.inner
            .silenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(namespace.to_string(), pod.to_string()))
    }

    /// Where a port-forward to `namespace/pod:port` goes, if routed.
    pub fn port_forward_target(&self, namespace: &str, pod: &str, port: u16) -> Option<SocketAddr> {
        let routes = self
            .inner
            .port_forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        routes
            .get(&(namespace.to_string(), pod.to_string(), port))
            .or_else(|| routes.get(&(namespace.to_string(), ANY_POD.to_string(), port)))
            .copied()
    }

    /// Serves `namespace/pod`'s container log (`pods/log`) from a real
    /// file (pod [`ANY_POD`] matches every pod of the namespace), as the
    /// kubelet serves the file the container runtime wrote. A line may
    /// start with a Unix time in seconds (nginx's `$msec`): it stands for
    /// the runtime's timestamp. Without a route a pod's log is empty.
    pub fn map_pod_log(&self, namespace: &str, pod: &str, path: PathBuf) {
        self.inner
            .pod_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.into(), pod.into()), path);
    }

    /// The file `namespace/pod`'s log is read from, if routed.
    pub fn pod_log_path(&self, namespace: &str, pod: &str) -> Option<PathBuf> {
        let routes = self
            .inner
            .pod_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        routes
            .get(&(namespace.to_string(), pod.to_string()))
            .or_else(|| routes.get(&(namespace.to_string(), ANY_POD.to_string())))
            .cloned()
    }

    /// Subscribes to every committed change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.inner.live.subscribe()
    }

    /// Drops the whole watch history, as an etcd compaction does: watches
    /// from any older resourceVersion then get `410 Gone`.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.history.clear();
        st.compacted = st.resource_version;
    }

    // ----- generic API for the server --------------------------------------

    /// One object as JSON.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let st = self.lock();
        st.objects
            .get(&kind)
            .and_then(|b| b.get(&key(kind, namespace, name)))
            .cloned()
    }

    /// All objects of a kind (in one namespace, or everywhere for `None`),
    /// sorted by namespace and name, and the list's resourceVersion.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let st = self.lock();
        let items = st
            .objects
            .get(&kind)
            .map(|b| {
                b.iter()
                    .filter(|((ns, _), _)| {
                        namespace.is_none_or(|want| !kind.info().namespaced || ns == want)
                    })
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, st.resource_version)
    }

    /// Starts a watch of `kind` after `resource_version`; `None` starts with
    /// a synthetic ADDED for every current object (as `resourceVersion=""`
    /// or `"0"` does on a real server).
    pub fn watch(
        &self,
        kind: Kind,
        resource_version: Option<u64>,
    ) -> Result<WatchStart, ClusterError> {
        let st = self.lock();
        // Subscribing under the lock: no change can fall between backlog and live.
        let live = self.inner.live.subscribe();
        let backlog = match resource_version {
            None => st
                .bucket_ref(kind)
                .map(|b| {
                    b.values()
                        .map(|v| {
                            Arc::new(Change {
                                kind,
                                change: ChangeType::Added,
                                object: v.clone(),
                                previous: None,
                                resource_version: object_rv(v),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some(rv) => {
                if rv < st.compacted {
                    return Err(ClusterError::Gone {
                        requested: rv,
                        oldest: st.compacted,
                    });
                }
                if rv > st.resource_version {
                    // A version from the future: wait for it, as a real
                    // server would (rarely seen; the lab never restarts).
                }
                st.history
                    .iter()
                    .filter(|c| c.kind == kind && c.resource_version > rv)
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchStart {
            backlog,
            live,
            resource_version: st.resource_version,
        })
    }

    // ----- internals --------------------------------------------------------

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge the lab's control plane.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put_typed<K: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned>(
        &self,
        kind: Kind,
        object: K,
    ) -> K {
        let value = match serde_json::to_value(&object) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(%kind, error = %e, "cannot serialize object; not stored");
                return object;
            }
        };
        let mut st = self.lock();
        if kind.info().namespaced {
            let ns = object
                .metadata()
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            if !st
                .bucket(Kind::Namespace)
                .contains_key(&key(Kind::Namespace, "", &ns))
            {
                let ns_obj = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                });
                self.commit(&mut st, Kind::Namespace, ns_obj);
            }
        }
        let stored = self.commit(&mut st, kind, value);
        drop(st);
        serde_json::from_value(stored).unwrap_or(object)
    }

    fn get_typed<K: DeserializeOwned>(&self, kind: Kind, namespace: &str, name: &str) -> Option<K> {
        self.get(kind, namespace, name)
            .and_then(|v| serde_json::from_value(v).ok())
    }

    fn list_typed<K: DeserializeOwned>(&self, kind: Kind, namespace: Option<&str>) -> Vec<K> {
        self.list(kind, namespace)
            .0
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    }
}

impl State {
    fn bucket(&mut self, kind: Kind) -> &mut BTreeMap<Key, Value> {
        self.objects.entry(kind).or_default()
    }

    fn bucket_ref(&self, kind: Kind) -> Option<&BTreeMap<Key, Value>> {
        self.objects.get(&kind)
    }
}

fn key(kind: Kind, namespace: &str, name: &str) -> Key {
    let ns = if kind.info().namespaced {
        namespace
    } else {
        ""
    };
    (ns.to_string(), name.to_string())
}

fn not_found(kind: Kind, name: &str) -> ClusterError {
    ClusterError::NotFound {
        plural: kind.info().plural.into(),
        name: name.into(),
    }
}
