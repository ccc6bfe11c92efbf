//! Committing a change: the fields the API server owns (uid, birth,
//! resourceVersion, generation), the watch history, and the controllers a
//! change triggers (DaemonSets; garbage collection of namespaces and owned
//! objects on removal).

use super::*;

impl ClusterStore {
    /// Stores `object` (create or replace), filling the fields the API server
    /// owns, records the change and runs the controllers it triggers.
    pub(super) fn commit(&self, st: &mut State, kind: Kind, mut object: Value) -> Value {
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

    pub(super) fn remove(
        &self,
        st: &mut State,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
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

    pub(super) fn record(&self, st: &mut State, change: Change) {
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
}
