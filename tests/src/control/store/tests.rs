//! The store's own tests: identity and versions, watch resume and
//! compaction, garbage collection, server-side apply, terminating pods.

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
