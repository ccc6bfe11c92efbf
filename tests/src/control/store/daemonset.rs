//! The DaemonSet controller: one pod per matching node, named
//! `<ds>-<node>`, owned by the DaemonSet, readiness from the lab's hook.

use super::*;

impl ClusterStore {
    /// The DaemonSet controller: one pod per node matching the pod
    /// template's nodeSelector, named `<ds>-<node>`, owned by the DaemonSet;
    /// readiness from the lab's hook; status counts written back.
    pub(super) fn reconcile_daemon_set(&self, st: &mut State, namespace: &str, name: &str) {
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
            let pod = daemon_pod(&ds, &uid, namespace, &pod_name, node, is_ready);
            let Ok(mut value) = serde_json::to_value(&pod) else {
                continue;
            };
            if let Some(existing) = &existing {
                if !carry_over(existing, &mut value, is_ready) {
                    continue;
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

        self.write_daemon_set_status(st, namespace, name, &ds, ds_value, nodes.len(), ready);
    }

    /// Writes the DaemonSet's status counts back (a status write does not
    /// re-run the controller: the spec is unchanged).
    #[expect(
        clippy::too_many_arguments,
        reason = "the controller's loop state, passed once"
    )]
    fn write_daemon_set_status(
        &self,
        st: &mut State,
        namespace: &str,
        name: &str,
        ds: &DaemonSet,
        ds_value: Value,
        nodes: usize,
        ready: i32,
    ) {
        let desired = i32::try_from(nodes).unwrap_or(i32::MAX);
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

/// The DaemonSet's pod on `node`: the template's metadata and spec, owned
/// by the DaemonSet, bound to the node, running, with the node's IP (the
/// agent runs with hostNetwork; the lab allocates no pod IPs for other
/// DaemonSets either) and the readiness the lab's hook decided.
fn daemon_pod(
    ds: &DaemonSet,
    uid: &str,
    namespace: &str,
    pod_name: &str,
    node: &Node,
    is_ready: bool,
) -> Pod {
    let node_ip = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "127.0.0.1".into());
    let template = &ds.spec.template;
    let mut meta = template.metadata.clone().unwrap_or_default();
    meta.name = Some(pod_name.into());
    meta.namespace = Some(namespace.into());
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.node_name = node.metadata.name.clone();
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
    Pod {
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
    }
}

/// Keeps what an existing pod of the DaemonSet had (container ids, start
/// time) when only its readiness changed; false when nothing changed at all.
fn carry_over(existing: &Value, value: &mut Value, is_ready: bool) -> bool {
    let was_ready = existing
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True");
    if was_ready == is_ready && existing.get("spec") == value.get("spec") {
        return false;
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
    true
}
