//! Discovery documents: `/version`, `/api`, `/apis` and the per
//! group-version resource lists that kube-rs and kubectl read to map kinds
//! to URLs.

use serde_json::{json, Value};

use super::view::EVENTS_GROUP;
use crate::control::store::{Kind, LAB_KUBELET_VERSION};

/// The Kubernetes version the fake server claims (k8s-openapi's feature).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "37";

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "emulationMajor": MAJOR,
        "emulationMinor": MINOR,
        "gitVersion": LAB_KUBELET_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": format!("linux/{}", match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The group of SelfSubjectAccessReview, which the server answers from its
/// deny list so that a client can check its permissions up front.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

/// The named groups served, with their single version each.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = vec![(AUTHORIZATION_GROUP, "v1"), (EVENTS_GROUP, "v1")];
    for k in Kind::ALL {
        let i = k.info();
        if !i.group.is_empty() && !groups.contains(&(i.group, i.version)) {
            groups.push((i.group, i.version));
        }
    }
    groups
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `/apis`: every named group.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(|(g, v)| group_json(g, v)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`.
pub fn group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_json(g, v);
    doc["kind"] = "APIGroup".into();
    doc["apiVersion"] = "v1".into();
    Some(doc)
}

/// The verbs of a kind's main resource: every kind is fully writable.
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api/v1` or `/apis/<group>/<version>`: the resources of a group version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (EVENTS_GROUP, "v1") {
        return Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "events.k8s.io/v1",
            "resources": [{
                "name": "events",
                "singularName": "event",
                "namespaced": true,
                "kind": "Event",
                "verbs": ["get", "list", "watch"],
                "shortNames": ["ev"],
            }],
        }));
    }
    if (group, version) == (AUTHORIZATION_GROUP, "v1") {
        return Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "authorization.k8s.io/v1",
            "resources": [{
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": false,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }],
        }));
    }
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.info().group == group && k.info().version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in kinds {
        let i = k.info();
        resources.push(json!({
            "name": i.plural,
            "singularName": i.singular,
            "namespaced": i.namespaced,
            "kind": i.kind,
            "verbs": VERBS,
            "shortNames": i.short_names,
        }));
        for sub in i.subresources {
            let (kind, verbs): (&str, Vec<&str>) = match *sub {
                "portforward" => ("PodPortForwardOptions", vec!["create", "get"]),
                "eviction" => ("Eviction", vec!["create"]),
                "log" => ("Pod", vec!["get"]),
                _ => (i.kind, vec!["get", "patch", "update"]),
            };
            resources.push(json!({
                "name": format!("{}/{sub}", i.plural),
                "singularName": "",
                "namespaced": i.namespaced,
                "kind": kind,
                "verbs": verbs,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
