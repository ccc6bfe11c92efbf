//! Object metadata helpers: identity, resourceVersion checks, field
//! managers, JSON merge patch and the API server's clock.

use super::*;

/// The namespace and name of an object body; the name is required.
pub(super) fn identity(kind: Kind, object: &Value) -> Result<(String, String), ClusterError> {
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

pub(super) fn check_resource_version(
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
pub(super) fn other_apply_manager(current: &Value, manager: &str) -> Option<String> {
    current
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)?
        .iter()
        .filter(|e| e["operation"] == "Apply")
        .filter_map(|e| e["manager"].as_str())
        .find(|m| *m != manager)
        .map(str::to_string)
}

pub(super) fn set_managed_fields(
    object: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
) {
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
