//! The lab's cluster state: the objects a real API server would hold in etcd,
//! with resource versions, watch history and the few controllers whose side
//! effects the plugin observes (namespace and owner garbage collection, the
//! DaemonSet controller).
//!
//! The lab (kubelet simulator, scenarios) writes typed k8s-openapi objects
//! through [`ClusterStore`]; the fake API server (`crate::apiserver`) serves
//! the same objects as JSON. Objects are kept as JSON values so that every
//! kind shares one code path for resource versions, selectors and watches,
//! and so that what the server sends is exactly what k8s-openapi serialized.

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

/// The kinds the lab's control plane serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pod,
    Node,
    Event,
    Namespace,
    ServiceAccount,
    Service,
    EndpointSlice,
    ClusterRole,
    ClusterRoleBinding,
    DaemonSet,
    Deployment,
    ReplicaSet,
    StatefulSet,
}

/// Static facts about a kind, taken from k8s-openapi's `Resource` impls.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// API group, "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// `group/version` or `v1` for the core group.
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The URL segment (`pods`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served, listed in discovery (`status`, `portforward`).
    pub subresources: &'static [&'static str],
}

fn info<K: Resource>(
    singular: &'static str,
    short_names: &'static [&'static str],
    subresources: &'static [&'static str],
) -> KindInfo {
    KindInfo {
        group: K::GROUP,
        version: K::VERSION,
        api_version: K::API_VERSION,
        kind: K::KIND,
        plural: K::URL_PATH_SEGMENT,
        singular,
        namespaced: std::any::type_name::<K::Scope>().ends_with("NamespaceResourceScope"),
        short_names,
        subresources,
    }
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Pod,
        Kind::Node,
        Kind::Event,
        Kind::Namespace,
        Kind::ServiceAccount,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::ClusterRole,
        Kind::ClusterRoleBinding,
        Kind::DaemonSet,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::StatefulSet,
    ];

    pub fn info(self) -> KindInfo {
        match self {
            Kind::Pod => info::<Pod>(
                "pod",
                &["po"],
                &["status", "portforward", "eviction", "log"],
            ),
            Kind::Node => info::<Node>("node", &["no"], &["status"]),
            Kind::Event => info::<Event>("event", &["ev"], &[]),
            Kind::Namespace => info::<Namespace>("namespace", &["ns"], &["status"]),
            Kind::ServiceAccount => info::<ServiceAccount>("serviceaccount", &["sa"], &[]),
            Kind::Service => info::<Service>("service", &["svc"], &["status"]),
            Kind::EndpointSlice => info::<EndpointSlice>("endpointslice", &[], &[]),
            Kind::ClusterRole => info::<ClusterRole>("clusterrole", &[], &[]),
            Kind::ClusterRoleBinding => info::<ClusterRoleBinding>("clusterrolebinding", &[], &[]),
            Kind::DaemonSet => info::<DaemonSet>("daemonset", &["ds"], &["status"]),
            Kind::Deployment => info::<Deployment>("deployment", &["deploy"], &["status"]),
            Kind::ReplicaSet => info::<ReplicaSet>("replicaset", &["rs"], &["status"]),
            Kind::StatefulSet => info::<StatefulSet>("statefulset", &["sts"], &["status"]),
        }
    }

    /// The kind served at `group/version/plural`, if any.
    pub fn from_path(group: &str, version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            let i = k.info();
            i.group == group && i.version == version && i.plural == plural
        })
    }

    /// The kind named by `apiVersion` and `kind` fields.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.info().api_version == api_version && k.info().kind == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().plural)
    }
}

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

    /// POST: creates an object; fails if it exists or its namespace does not.
    pub fn create(&self, kind: Kind, object: Value) -> Result<Value, ClusterError> {
        let (ns, name) = identity(kind, &object)?;
        let mut st = self.lock();
        if kind.info().namespaced
            && !st
                .bucket(Kind::Namespace)
                .contains_key(&key(Kind::Namespace, "", &ns))
        {
            return Err(not_found(Kind::Namespace, &ns));
        }
        if st.bucket(kind).contains_key(&key(kind, &ns, &name)) {
            return Err(ClusterError::AlreadyExists {
                plural: kind.info().plural.into(),
                name,
            });
        }
        Ok(self.commit(&mut st, kind, object))
    }

    /// PUT: replaces an existing object; a resourceVersion in the body must
    /// match the stored one.
    pub fn replace(&self, kind: Kind, object: Value) -> Result<Value, ClusterError> {
        let (ns, name) = identity(kind, &object)?;
        let mut st = self.lock();
        let current = st
            .bucket(kind)
            .get(&key(kind, &ns, &name))
            .cloned()
            .ok_or_else(|| not_found(kind, &name))?;
        check_resource_version(kind, &name, &object, &current)?;
        Ok(self.commit(&mut st, kind, object))
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply by one
    /// field manager. The applied configuration replaces what the same
    /// manager applied before (labels, annotations and every top-level field
    /// but `status`); an object applied by another manager conflicts unless
    /// `force`.
    pub fn apply(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        applied: Value,
        field_manager: &str,
        force: bool,
    ) -> Result<Value, ClusterError> {
        let Value::Object(mut applied) = applied else {
            return Err(ClusterError::Invalid(
                "apply patch must be a JSON or YAML object".into(),
            ));
        };
        let info = kind.info();
        for (field, want) in [("apiVersion", info.api_version), ("kind", info.kind)] {
            match applied.get(field).and_then(Value::as_str) {
                Some(got) if got == want => {}
                Some(got) => {
                    return Err(ClusterError::Invalid(format!(
                        "{field} {got:?} in the body does not match the request's {want:?}"
                    )))
                }
                None => {
                    return Err(ClusterError::Invalid(format!(
                        "{field} must be set in an apply patch"
                    )))
                }
            }
        }
        let meta = applied
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            return Err(ClusterError::Invalid("metadata must be an object".into()));
        };
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ClusterError::Invalid(format!(
                    "the name of the object ({n}) does not match the name in the URL ({name})"
                )))
            }
            None => {
                meta.insert("name".into(), name.into());
            }
        }
        if info.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if n == namespace => {}
                Some(n) => {
                    return Err(ClusterError::Invalid(format!(
                        "the namespace of the object ({n}) does not match the namespace in the URL ({namespace})"
                    )))
                }
                None => {
                    meta.insert("namespace".into(), namespace.into());
                }
            }
        } else {
            meta.remove("namespace");
        }

        let mut st = self.lock();
        if info.namespaced
            && !st
                .bucket(Kind::Namespace)
                .contains_key(&key(Kind::Namespace, "", namespace))
        {
            return Err(not_found(Kind::Namespace, namespace));
        }
        let current = st.bucket(kind).get(&key(kind, namespace, name)).cloned();
        let mut merged = Value::Object(applied);
        if let Some(current) = &current {
            check_resource_version(kind, name, &merged, current)?;
            if !force {
                if let Some(other) = other_apply_manager(current, field_manager) {
                    return Err(ClusterError::Conflict {
                        plural: info.plural.into(),
                        name: name.into(),
                        detail: format!(
                            "Apply failed with conflicts: fields are managed by \"{other}\" (use force to take them over)"
                        ),
                    });
                }
            }
            // Keep what the applier does not own: status and system metadata
            // (labels and annotations of others are replaced, as the single
            // applier owns them all in the lab).
            if let (Some(status), Value::Object(m)) = (current.get("status"), &mut merged) {
                m.entry("status").or_insert_with(|| status.clone());
            }
        }
        set_managed_fields(&mut merged, field_manager, "Apply", info.api_version);
        Ok(self.commit(&mut st, kind, merged))
    }

    /// PATCH with a JSON merge patch (RFC 7386); strategic merge patches are
    /// treated the same, which is exact for maps and replaces lists.
    pub fn merge_patch(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ClusterError> {
        let mut st = self.lock();
        let mut current = st
            .bucket(kind)
            .get(&key(kind, namespace, name))
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        check_resource_version(kind, name, patch, &current)?;
        json_merge(&mut current, patch);
        // The patch may not rename or move the object.
        if let Some(m) = current.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("name".into(), name.into());
            if kind.info().namespaced {
                m.insert("namespace".into(), namespace.into());
            }
        }
        Ok(self.commit(&mut st, kind, current))
    }

    /// DELETE: removes an object and, as the garbage collector would, the
    /// objects it owns (a namespace's contents, a DaemonSet's pods).
    /// Returns the deleted object.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<Value, ClusterError> {
        let mut st = self.lock();
        self.remove(&mut st, kind, namespace, name)
            .ok_or_else(|| not_found(kind, name))
    }

    /// Marks a pod as terminating (deletionTimestamp and grace period), as the
    /// API server does on a graceful delete; the kubelet removes it later
    /// with [`ClusterStore::delete_pod`].
    pub fn mark_pod_terminating(
        &self,
        namespace: &str,
        name: &str,
        grace_seconds: Option<i64>,
    ) -> Result<Value, ClusterError> {
        let mut st = self.lock();
        let mut pod = st
            .bucket(Kind::Pod)
            .get(&key(Kind::Pod, namespace, name))
            .cloned()
            .ok_or_else(|| not_found(Kind::Pod, name))?;
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(pod);
        }
        let grace = grace_seconds
            .or_else(|| {
                pod.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30);
        let deadline = now()
            .0
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(grace))
            .unwrap_or(now().0);
        if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("deletionTimestamp".into(), json!(Time(deadline)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        Ok(self.commit(&mut st, Kind::Pod, pod))
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

    /// Stores `object` (create or replace), filling the fields the API server
    /// owns, records the change and runs the controllers it triggers.
    fn commit(&self, st: &mut State, kind: Kind, mut object: Value) -> Value {
        let info = kind.info();
        if !object.is_object() {
            object = json!({});
        }
        let obj = object.as_object_mut().expect("checked above");
        obj.insert("apiVersion".into(), info.api_version.into());
        obj.insert("kind".into(), info.kind.into());
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({});
        }
        let ns = if info.namespaced {
            meta.get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let k = key(kind, &ns, &name);
        let previous = st.bucket(kind).get(&k).cloned();

        st.resource_version += 1;
        let rv = st.resource_version;
        let meta = meta.as_object_mut().expect("checked above");
        if info.namespaced {
            meta.insert("namespace".into(), ns.clone().into());
        } else {
            meta.remove("namespace");
        }
        meta.insert("resourceVersion".into(), rv.to_string().into());
        match &previous {
            Some(prev) => {
                // Identity and birth are the server's, not the writer's.
                for f in ["uid", "creationTimestamp"] {
                    if let Some(v) = prev.pointer(&format!("/metadata/{f}")) {
                        meta.insert(f.into(), v.clone());
                    }
                }
                if matches!(
                    kind,
                    Kind::DaemonSet | Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
                ) {
                    let generation = prev
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    meta.insert("generation".into(), generation.into());
                }
            }
            None => {
                let has_uid = meta
                    .get("uid")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if !has_uid {
                    meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
                }
                if !meta.contains_key("creationTimestamp") || meta["creationTimestamp"].is_null() {
                    meta.insert("creationTimestamp".into(), json!(now()));
                }
                if matches!(
                    kind,
                    Kind::DaemonSet | Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
                ) {
                    meta.insert("generation".into(), 1.into());
                }
            }
        }
        // Spec changes bump the generation of workload objects.
        if let Some(prev) = &previous {
            if matches!(
                kind,
                Kind::DaemonSet | Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
            ) && prev.get("spec") != object.get("spec")
            {
                let generation = prev
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    + 1;
                if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("generation".into(), generation.into());
                }
            }
        }

        st.bucket(kind).insert(k, object.clone());
        let change = if previous.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(
            st,
            Change {
                kind,
                change,
                object: object.clone(),
                previous,
                resource_version: rv,
            },
        );
        if kind == Kind::DaemonSet {
            self.reconcile_daemon_set(st, &ns, &name);
            return st
                .bucket(kind)
                .get(&key(kind, &ns, &name))
                .cloned()
                .unwrap_or(object);
        }
        if kind == Kind::Node {
            let keys: Vec<Key> = st.bucket(Kind::DaemonSet).keys().cloned().collect();
            for (ns, name) in keys {
                self.reconcile_daemon_set(st, &ns, &name);
            }
        }
        object
    }

    fn remove(&self, st: &mut State, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let mut object = st.bucket(kind).remove(&key(kind, namespace, name))?;
        st.resource_version += 1;
        let rv = st.resource_version;
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), rv.to_string().into());
        }
        self.record(
            st,
            Change {
                kind,
                change: ChangeType::Deleted,
                object: object.clone(),
                previous: None,
                resource_version: rv,
            },
        );
        // Garbage collection: a namespace's contents, then owned objects.
        if kind == Kind::Namespace {
            for k in Kind::ALL.into_iter().filter(|k| k.info().namespaced) {
                let names: Vec<Key> = st
                    .bucket(k)
                    .keys()
                    .filter(|(ns, _)| ns == name)
                    .cloned()
                    .collect();
                for (ns, n) in names {
                    self.remove(st, k, &ns, &n);
                }
            }
        }
        if let Some(uid) = object.pointer("/metadata/uid").and_then(Value::as_str) {
            let mut owned = Vec::new();
            for k in Kind::ALL {
                for ((ns, n), v) in st.bucket(k).iter() {
                    let owners = v
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array);
                    if owners.is_some_and(|o| {
                        o.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                    }) {
                        owned.push((k, ns.clone(), n.clone()));
                    }
                }
            }
            for (k, ns, n) in owned {
                self.remove(st, k, &ns, &n);
            }
        }
        Some(object)
    }

    fn record(&self, st: &mut State, change: Change) {
        let change = Arc::new(change);
        st.history.push_back(change.clone());
        while st.history.len() > st.history_limit {
            if let Some(old) = st.history.pop_front() {
                st.compacted = old.resource_version;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.inner.live.send(change);
    }

    /// The DaemonSet controller: one pod per node matching the pod
    /// template's nodeSelector, named `<ds>-<node>`, owned by the DaemonSet;
    /// readiness from the lab's hook; status counts written back.
    fn reconcile_daemon_set(&self, st: &mut State, namespace: &str, name: &str) {
        let Some(ds_value) = st
            .bucket(Kind::DaemonSet)
            .get(&key(Kind::DaemonSet, namespace, name))
            .cloned()
        else {
            return;
        };
        let Ok(ds) = serde_json::from_value::<DaemonSet>(ds_value.clone()) else {
            tracing::warn!(
                namespace,
                name,
                "DaemonSet does not parse; controller skips it"
            );
            return;
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let template = ds.spec.template.clone();
        let selector = template
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default();
        let nodes: Vec<Node> = st
            .bucket(Kind::Node)
            .values()
            .filter_map(|v| serde_json::from_value::<Node>(v.clone()).ok())
            .filter(|n| {
                let labels = n.metadata.labels.clone().unwrap_or_default();
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        let readiness = st.daemon_set_readiness.clone();
        let mut ready = 0;
        let mut wanted = Vec::new();
        for node in &nodes {
            let node_name = node.metadata.name.clone().unwrap_or_default();
            let is_ready = readiness.as_ref().is_some_and(|f| f(&ds, &node_name));
            ready += i32::from(is_ready);
            let pod_name = format!("{name}-{node_name}");
            wanted.push(pod_name.clone());
            let existing = st
                .bucket(Kind::Pod)
                .get(&key(Kind::Pod, namespace, &pod_name))
                .cloned();
            let node_ip = node
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone())
                .unwrap_or_else(|| "127.0.0.1".into());
            let mut meta = template.metadata.clone().unwrap_or_default();
            meta.name = Some(pod_name.clone());
            meta.namespace = Some(namespace.into());
            meta.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "DaemonSet".into(),
                name: name.into(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]);
            let mut spec = template.spec.clone().unwrap_or_default();
            spec.node_name = Some(node_name.clone());
            let now = now();
            let condition = |t: &str, ok: bool| PodCondition {
                type_: t.into(),
                status: if ok { "True" } else { "False" }.into(),
                last_transition_time: Some(now.clone()),
                ..Default::default()
            };
            let container_statuses = spec
                .containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    image_id: String::new(),
                    container_id: Some(format!("containerd://{}", uuid::Uuid::new_v4().simple())),
                    ready: is_ready,
                    started: Some(true),
                    restart_count: 0,
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(now.clone()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect();
            let pod = Pod {
                metadata: meta,
                spec: Some(spec),
                status: Some(PodStatus {
                    phase: Some("Running".into()),
                    host_ip: Some(node_ip.clone()),
                    // The agent runs with hostNetwork, so its IP is the
                    // node's; the lab allocates no pod IPs for other
                    // DaemonSets either.
                    pod_ip: Some(node_ip),
                    container_statuses: Some(container_statuses),
                    start_time: Some(now.clone()),
                    conditions: Some(vec![
                        condition("PodScheduled", true),
                        condition("Initialized", true),
                        condition("ContainersReady", is_ready),
                        condition("Ready", is_ready),
                    ]),
                    ..Default::default()
                }),
            };
            let Ok(mut value) = serde_json::to_value(&pod) else {
                continue;
            };
            if let Some(existing) = &existing {
                let was_ready = existing
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .is_some_and(|c| c["status"] == "True");
                if was_ready == is_ready && existing.get("spec") == value.get("spec") {
                    continue;
                }
                // Keep the container ids of a pod that only changed readiness.
                if let (Some(old), Some(new)) = (
                    existing
                        .pointer("/status/containerStatuses")
                        .and_then(Value::as_array),
                    value
                        .pointer_mut("/status/containerStatuses")
                        .and_then(Value::as_array_mut),
                ) {
                    for (o, n) in old.iter().zip(new.iter_mut()) {
                        n["containerID"] = o["containerID"].clone();
                    }
                }
                // Keep the start time of a pod that only changed readiness.
                if let (Some(start), Some(status)) = (
                    existing.pointer("/status/startTime"),
                    value.get_mut("status"),
                ) {
                    status["startTime"] = start.clone();
                }
            }
            self.commit(st, Kind::Pod, value);
        }
        // Pods for nodes that no longer match.
        let stale: Vec<Key> = st
            .bucket(Kind::Pod)
            .iter()
            .filter(|((ns, n), v)| {
                ns == namespace
                    && !wanted.contains(n)
                    && v.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|o| o.iter().any(|r| r["uid"] == uid.as_str()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, n) in stale {
            self.remove(st, Kind::Pod, &ns, &n);
        }

        let desired = i32::try_from(nodes.len()).unwrap_or(i32::MAX);
        let status = DaemonSetStatus {
            current_number_scheduled: desired,
            desired_number_scheduled: desired,
            number_misscheduled: 0,
            number_ready: ready,
            number_available: Some(ready),
            number_unavailable: Some(desired - ready),
            updated_number_scheduled: Some(desired),
            observed_generation: ds.metadata.generation,
            ..Default::default()
        };
        let Ok(status) = serde_json::to_value(&status) else {
            return;
        };
        if ds_value.get("status") == Some(&status) {
            return;
        }
        let mut updated = ds_value;
        updated["status"] = status;
        // Status writes do not re-run the controller (spec is unchanged).
        st.resource_version += 1;
        let rv = st.resource_version;
        updated["metadata"]["resourceVersion"] = rv.to_string().into();
        let previous = st
            .bucket(Kind::DaemonSet)
            .insert(key(Kind::DaemonSet, namespace, name), updated.clone());
        self.record(
            st,
            Change {
                kind: Kind::DaemonSet,
                change: ChangeType::Modified,
                object: updated,
                previous,
                resource_version: rv,
            },
        );
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

/// The namespace and name of an object body; the name is required.
fn identity(kind: Kind, object: &Value) -> Result<(String, String), ClusterError> {
    let meta = object
        .get("metadata")
        .ok_or_else(|| ClusterError::Invalid("metadata is required".into()))?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ClusterError::Invalid("metadata.name: Required value: name is required".into())
        })?;
    let ns = if kind.info().namespaced {
        meta.get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
    } else {
        ""
    };
    Ok((ns.to_string(), name.to_string()))
}

/// The resourceVersion stored in an object, 0 if absent.
pub fn object_rv(object: &Value) -> u64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn check_resource_version(
    kind: Kind,
    name: &str,
    body: &Value,
    current: &Value,
) -> Result<(), ClusterError> {
    match body.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        Some(want) if !want.is_empty() && want != current.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default() => {
            Err(ClusterError::Conflict {
                plural: kind.info().plural.into(),
                name: name.into(),
                detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
            })
        }
        _ => Ok(()),
    }
}

/// Another field manager that server-side applied this object, if any.
fn other_apply_manager(current: &Value, manager: &str) -> Option<String> {
    current
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)?
        .iter()
        .filter(|e| e["operation"] == "Apply")
        .filter_map(|e| e["manager"].as_str())
        .find(|m| *m != manager)
        .map(str::to_string)
}

fn set_managed_fields(object: &mut Value, manager: &str, operation: &str, api_version: &str) {
    let entry = ManagedFieldsEntry {
        api_version: Some(api_version.into()),
        fields_type: Some("FieldsV1".into()),
        manager: Some(manager.into()),
        operation: Some(operation.into()),
        time: Some(now()),
        ..Default::default()
    };
    if let (Ok(entry), Some(meta)) = (
        serde_json::to_value(entry),
        object.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        meta.insert("managedFields".into(), Value::Array(vec![entry]));
    }
}

/// RFC 7386 JSON merge patch.
pub fn json_merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The current time as a Kubernetes `Time` (k8s-openapi's jiff has no clock).
pub fn now() -> Time {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    Time(Timestamp::from_nanosecond(nanos).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The lab's node as a kubelet would register it.
fn lab_node(name: &str) -> Node {
    let now = now();
    let (kernel, arch) = uname();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                [
                    ("kubernetes.io/hostname".to_string(), name.to_string()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                    ("kubernetes.io/arch".to_string(), arch.clone()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some("10.244.0.0/24".into()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: "127.0.0.1".into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
            ]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now),
            }]),
            node_info: Some(NodeSystemInfo {
                architecture: arch,
                kernel_version: kernel,
                kubelet_version: LAB_KUBELET_VERSION.into(),
                kube_proxy_version: String::new(),
                operating_system: "linux".into(),
                os_image: os_image(),
                container_runtime_version: "containerd://fivexx-lab".into(),
                boot_id: String::new(),
                machine_id: String::new(),
                system_uuid: String::new(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Kernel release and Kubernetes architecture name of this machine.
fn uname() -> (String, String) {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (kernel, arch.to_string())
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(ns: &str, name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(7),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn apply_keeps_identity_and_bumps_resource_version() {
        let store = ClusterStore::new("n1");
        let first = store.apply_pod(pod("default", "a"));
        let second = store.apply_pod(pod("default", "a"));
        assert_eq!(first.metadata.uid, second.metadata.uid);
        assert!(first.metadata.uid.is_some());
        assert_eq!(
            first.metadata.creation_timestamp,
            second.metadata.creation_timestamp
        );
        let rv = |p: &Pod| {
            p.metadata
                .resource_version
                .clone()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&second) > rv(&first));
        assert_eq!(store.list_pods(Some("default")).len(), 1);
        assert_eq!(store.list_pods(Some("other")).len(), 0);
        // A pod in a new namespace creates the namespace, as the lab expects.
        store.apply_pod(pod("shop", "b"));
        assert!(store.get(Kind::Namespace, "", "shop").is_some());
        assert_eq!(store.list_pods(None).len(), 2);
    }

    #[test]
    fn watch_resumes_after_a_version_and_expires_when_compacted() {
        let store = ClusterStore::with_history("n1", 4);
        let a = store.apply_pod(pod("default", "a"));
        let after = object_rv(&serde_json::to_value(&a).unwrap());
        store.apply_pod(pod("default", "b"));
        store.apply_endpoint_slice(EndpointSlice {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: None,
            ports: None,
        });
        store.delete_pod("default", "a");
        let start = store.watch(Kind::Pod, Some(after)).unwrap();
        let seen: Vec<_> = start
            .backlog
            .iter()
            .map(|c| {
                (
                    c.change,
                    c.object["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (ChangeType::Added, "b".into()),
                (ChangeType::Deleted, "a".into())
            ]
        );
        for i in 0..5 {
            store.apply_pod(pod("default", &format!("x{i}")));
        }
        assert!(matches!(
            store.watch(Kind::Pod, Some(after)),
            Err(ClusterError::Gone { .. })
        ));
        let fresh = store.watch(Kind::Pod, None).unwrap();
        assert_eq!(fresh.backlog.len(), 6, "synthetic ADDED for every pod");
    }

    #[test]
    fn deleting_a_namespace_collects_its_objects() {
        let store = ClusterStore::new("n1");
        store.apply_pod(pod("shop", "a"));
        store.apply_pod(pod("default", "b"));
        let mut live = store.subscribe();
        store.delete(Kind::Namespace, "", "shop").unwrap();
        assert!(store.get_pod("shop", "a").is_none());
        assert!(store.get_pod("default", "b").is_some());
        let mut deleted = Vec::new();
        while let Ok(c) = live.try_recv() {
            deleted.push((c.kind, c.change));
        }
        assert_eq!(
            deleted,
            [
                (Kind::Namespace, ChangeType::Deleted),
                (Kind::Pod, ChangeType::Deleted)
            ]
        );
        assert!(matches!(
            store.delete(Kind::Namespace, "", "shop"),
            Err(ClusterError::NotFound { .. })
        ));
    }

    #[test]
    fn server_side_apply_validates_and_detects_other_managers() {
        let store = ClusterStore::new("n1");
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                          "metadata": {"name": "r"}, "rules": []});
        store
            .apply(Kind::ClusterRole, "", "r", role.clone(), "a", false)
            .unwrap();
        let conflict = store.apply(Kind::ClusterRole, "", "r", role.clone(), "b", false);
        assert!(
            matches!(conflict, Err(ClusterError::Conflict { .. })),
            "{conflict:?}"
        );
        store
            .apply(Kind::ClusterRole, "", "r", role.clone(), "b", true)
            .unwrap();
        let wrong_name = store.apply(Kind::ClusterRole, "", "other", role.clone(), "b", true);
        assert!(matches!(wrong_name, Err(ClusterError::Invalid(_))));
        let mut no_kind = role.clone();
        no_kind.as_object_mut().unwrap().remove("kind");
        assert!(matches!(
            store.apply(Kind::ClusterRole, "", "r", no_kind, "b", true),
            Err(ClusterError::Invalid(_))
        ));
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}});
        assert!(matches!(
            store.apply(Kind::DaemonSet, "missing-ns", "d", ds, "a", false),
            Err(ClusterError::NotFound { .. })
        ));
    }

    #[test]
    fn terminating_pods_and_cordoned_nodes() {
        let store = ClusterStore::new("n1");
        store.apply_pod(pod("default", "a"));
        let marked = store.mark_pod_terminating("default", "a", None).unwrap();
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 7);
        assert!(store
            .get_pod("default", "a")
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some());
        store
            .merge_patch(
                Kind::Node,
                "",
                "n1",
                &json!({"spec": {"unschedulable": true}}),
            )
            .unwrap();
        let node = store.get_node("n1").unwrap();
        assert_eq!(node.spec.and_then(|s| s.unschedulable), Some(true));
        assert!(
            node.status.and_then(|s| s.node_info).is_some(),
            "merge keeps the rest"
        );
    }
}
