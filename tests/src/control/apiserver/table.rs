//! Server-side printing (`meta.k8s.io/v1` Table), which `kubectl get` asks
//! for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. The
//! columns follow the real printers for the kinds the lab shows most.

use serde_json::{json, Value};

use crate::control::store::Kind;

/// True when the Accept header asks for a Table.
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|t| t.contains("as=Table")))
}

/// The content type of a Table response.
pub const CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

fn column(name: &str, ty: &str, format: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn or_none(text: &str) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text.into()
    }
}

/// Age as kubectl prints it (`5s`, `3m2s`, `4h`, `2d`).
fn age(object: &Value) -> String {
    let Ok(created) =
        s(object, "/metadata/creationTimestamp").parse::<k8s_openapi::jiff::Timestamp>()
    else {
        return "<unknown>".into();
    };
    let now = crate::control::store::now().0;
    let secs = (now.as_second() - created.as_second()).max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..600 => format!("{}m{}s", secs / 60, secs % 60),
        600..10800 => format!("{}m", secs / 60),
        10800..172800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn columns(kind: Kind) -> Vec<Value> {
    let name = column("Name", "string", "name", 0);
    let age = column("Age", "string", "", 0);
    match kind {
        Kind::Pod => vec![
            name,
            column("Ready", "string", "", 0),
            column("Status", "string", "", 0),
            column("Restarts", "string", "", 0),
            age,
            column("IP", "string", "", 1),
            column("Node", "string", "", 1),
        ],
        Kind::EndpointSlice => vec![
            name,
            column("AddressType", "string", "", 0),
            column("Ports", "string", "", 0),
            column("Endpoints", "string", "", 0),
            age,
        ],
        Kind::Node => vec![
            name,
            column("Status", "string", "", 0),
            column("Roles", "string", "", 0),
            age,
            column("Version", "string", "", 0),
            column("Kernel-Version", "string", "", 1),
        ],
        Kind::Event => vec![
            column("Last Seen", "string", "", 0),
            column("Type", "string", "", 0),
            column("Reason", "string", "", 0),
            column("Object", "string", "", 0),
            column("Message", "string", "", 0),
        ],
        Kind::DaemonSet => vec![
            name,
            column("Desired", "integer", "", 0),
            column("Current", "integer", "", 0),
            column("Ready", "integer", "", 0),
            column("Up-to-date", "integer", "", 0),
            column("Available", "integer", "", 0),
            age,
        ],
        _ => vec![name, age],
    }
}

fn cells(kind: Kind, o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    match kind {
        Kind::Pod => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.map_or(0, |c| c.iter().filter(|c| c["ready"] == true).count());
            let restarts: i64 = statuses.map_or(0, |c| {
                c.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
            });
            let status = if o.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating".to_string()
            } else {
                or_none(s(o, "/status/phase"))
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                json!(age(o)),
                json!(or_none(s(o, "/status/podIP"))),
                json!(or_none(s(o, "/spec/nodeName"))),
            ]
        }
        Kind::EndpointSlice => {
            let ports: Vec<String> = o["ports"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|p| p["port"].as_i64())
                        .map(|p| p.to_string())
                        .collect()
                })
                .unwrap_or_default();
            let addrs: Vec<String> = o["endpoints"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(s(o, "/addressType")),
                json!(or_none(&ports.join(","))),
                json!(or_none(&addrs.join(","))),
                json!(age(o)),
            ]
        }
        Kind::Node => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .is_some_and(|c| c["status"] == "True");
            let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
            if o.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
                status.push_str(",SchedulingDisabled");
            }
            vec![
                name,
                json!(status),
                json!("<none>"),
                json!(age(o)),
                json!(s(o, "/status/nodeInfo/kubeletVersion")),
                json!(s(o, "/status/nodeInfo/kernelVersion")),
            ]
        }
        Kind::Event => vec![
            json!(age(o)),
            json!(s(o, "/type")),
            json!(s(o, "/reason")),
            json!(format!(
                "{}/{}",
                s(o, "/involvedObject/kind").to_lowercase(),
                s(o, "/involvedObject/name")
            )),
            json!(s(o, "/message")),
        ],
        Kind::DaemonSet => {
            let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            vec![
                name,
                json!(n("/status/desiredNumberScheduled")),
                json!(n("/status/currentNumberScheduled")),
                json!(n("/status/numberReady")),
                json!(n("/status/updatedNumberScheduled")),
                json!(n("/status/numberAvailable")),
                json!(age(o)),
            ]
        }
        _ => vec![name, json!(age(o))],
    }
}

/// A Table of `objects`; each row carries its object (kubectl reads the
/// namespace column and `-o name` from it).
pub fn render(kind: Kind, objects: &[Value], resource_version: u64, with_columns: bool) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({"cells": cells(kind, o), "object": o}))
        .collect();
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "rows": rows,
    });
    if with_columns {
        table["columnDefinitions"] = Value::Array(columns(kind));
    }
    table
}
