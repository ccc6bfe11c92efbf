//! A node's context for `kubectl fivexx node`: its cordon state and
//! taints, the pods on it and which are terminating, recent evictions.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};

use super::KubeClient;
use crate::error::CliError;

/// Cordon state, terminating pods and recent evictions of one node.
pub async fn node_context(client: &KubeClient, node: &Node) -> Result<String, CliError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let mut out = String::new();
    let cordoned = spec.unschedulable.unwrap_or(false);
    let taints: Vec<String> = spec
        .taints
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    let kernel = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kernel_version.clone())
        .unwrap_or_default();
    out.push_str(&format!(
        "node/{name}: {}, kernel {kernel}{}\n",
        if cordoned {
            "cordoned (SchedulingDisabled)"
        } else {
            "schedulable"
        },
        if taints.is_empty() {
            String::new()
        } else {
            format!(", taints {}", taints.join(" "))
        }
    ));
    let pods: Api<Pod> = Api::all(client.kube.clone());
    let on_node = client
        .call(
            "list",
            "pods",
            None,
            pods.list(&ListParams::default().fields(&format!("spec.nodeName={name}"))),
        )
        .await?;
    let terminating: Vec<String> = on_node
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    out.push_str(&format!(
        "pods: {} on the node, {} terminating{}\n",
        on_node.items.len(),
        terminating.len(),
        if terminating.is_empty() {
            String::new()
        } else {
            format!(": {}", terminating.join(", "))
        }
    ));
    let events: Api<Event> = Api::all(client.kube.clone());
    let evs = client
        .call("list", "events", None, events.list(&ListParams::default()))
        .await?;
    let pod_names: HashSet<(String, String)> = on_node
        .items
        .iter()
        .map(|p| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut evictions: Vec<String> = evs
        .items
        .iter()
        .filter(|e| {
            matches!(
                e.reason.as_deref(),
                Some("Evicted" | "Evict" | "TaintManagerEviction" | "Preempted")
            )
        })
        .filter(|e| {
            e.source.as_ref().and_then(|s| s.host.as_deref()) == Some(name.as_str())
                || pod_names.contains(&(
                    e.involved_object.namespace.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default(),
                ))
        })
        .map(|e| {
            format!(
                "{} {}/{}",
                e.reason.as_deref().unwrap_or(""),
                e.involved_object.namespace.as_deref().unwrap_or(""),
                e.involved_object.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    evictions.truncate(20);
    out.push_str(&format!(
        "recent evictions: {}\n",
        if evictions.is_empty() {
            "none".to_string()
        } else {
            evictions.join(", ")
        }
    ));
    Ok(out)
}
