//! Alternate API versions of a stored kind. `events.k8s.io/v1` Events are
//! served as a read-only view of the stored core/v1 Events, converted field
//! by field as the real API server's conversion does, so a client may watch
//! either.

use serde_json::{json, Map, Value};

use crate::control::store::Kind;

/// How a stored object is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// As stored.
    #[default]
    Native,
    /// A core/v1 Event as an `events.k8s.io/v1` Event (read-only).
    EventsV1,
}

pub const EVENTS_GROUP: &str = "events.k8s.io";

/// Field labels `events.k8s.io/v1` Events can be selected by.
pub const EVENTS_V1_FIELDS: [&str; 11] = [
    "metadata.name",
    "metadata.namespace",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
];

impl View {
    /// The stored kind and view served at `group/version/plural`.
    pub fn resolve(group: &str, version: &str, plural: &str) -> Option<(Kind, View)> {
        if (group, version, plural) == (EVENTS_GROUP, "v1", "events") {
            return Some((Kind::Event, View::EventsV1));
        }
        Kind::from_path(group, version, plural).map(|k| (k, View::Native))
    }

    pub fn read_only(self) -> bool {
        self == View::EventsV1
    }

    /// `apiVersion` of presented objects.
    pub fn api_version(self, kind: Kind) -> &'static str {
        match self {
            View::Native => kind.info().api_version,
            View::EventsV1 => "events.k8s.io/v1",
        }
    }

    /// The object as this view presents it.
    pub fn present(self, object: &Value) -> Value {
        match self {
            View::Native => object.clone(),
            View::EventsV1 => core_event_to_v1(object),
        }
    }
}

/// core/v1 Event -> events.k8s.io/v1 Event.
fn core_event_to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), "events.k8s.io/v1".into());
    out.insert("kind".into(), "Event".into());
    let mut copy = |to: &str, from: &str| {
        if let Some(v) = core.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    };
    copy("metadata", "metadata");
    copy("regarding", "involvedObject");
    copy("related", "related");
    copy("note", "message");
    copy("reason", "reason");
    copy("type", "type");
    copy("action", "action");
    copy("deprecatedCount", "count");
    copy("deprecatedFirstTimestamp", "firstTimestamp");
    copy("deprecatedLastTimestamp", "lastTimestamp");
    copy("deprecatedSource", "source");
    let pick = |a: &str, b: &str| {
        core.pointer(a)
            .or_else(|| core.pointer(b))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(c) = pick("/reportingComponent", "/source/component") {
        out.insert("reportingController".into(), c.into());
    }
    if let Some(i) = pick("/reportingInstance", "/source/host") {
        out.insert("reportingInstance".into(), i.into());
    }
    // eventTime is required in v1: fall back to the first timestamp, in
    // MicroTime form.
    let event_time = core
        .get("eventTime")
        .filter(|v| !v.is_null())
        .cloned()
        .or_else(|| {
            core.get("firstTimestamp")
                .and_then(Value::as_str)
                .map(|t| json!(t.replacen('Z', ".000000Z", 1)))
        });
    if let Some(t) = event_time {
        out.insert("eventTime".into(), t);
    }
    if let Some(series) = core.get("series").filter(|v| !v.is_null()) {
        out.insert("series".into(), series.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_event_converts_to_events_v1() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-1.abc", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "reason": "Killing", "message": "Stopping container web", "type": "Normal",
            "count": 1, "firstTimestamp": "2026-01-01T00:00:00Z",
            "source": {"component": "kubelet", "host": "lab-node"},
        });
        let v1: k8s_openapi::api::events::v1::Event =
            serde_json::from_value(View::EventsV1.present(&core)).unwrap();
        assert_eq!(v1.note.as_deref(), Some("Stopping container web"));
        assert_eq!(v1.regarding.and_then(|r| r.name).as_deref(), Some("web-1"));
        assert_eq!(v1.reporting_controller.as_deref(), Some("kubelet"));
        assert_eq!(v1.reporting_instance.as_deref(), Some("lab-node"));
        assert!(v1.event_time.is_some());
        assert_eq!(v1.deprecated_count, Some(1));
    }
}
