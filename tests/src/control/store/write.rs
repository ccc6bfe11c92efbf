//! The writes the API server forwards: create, replace, server-side apply,
//! merge patch, delete, and the graceful delete of a pod.

use super::*;

impl ClusterStore {
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
}
