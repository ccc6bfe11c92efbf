//! The proxies a session adopts: the ingress and proxy pods found by the
//! proxy labels at the start, and those that start during the session (a
//! proxy rollout or scale-up), which are peeked at, subscribed to and
//! log-followed like the first ones.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::interest::{pod_ip, pod_node, Interest};
use crate::kube::proxy_logs::ProxyPod;
use crate::kube::target::PROXY_SELECTORS;
use crate::kube::KubeClient;

/// The proxies found at the start.
#[derive(Default)]
pub struct Found {
    pub count: usize,
    /// Their uids: the proxy watch's initial list adopts no one twice.
    pub known: HashSet<String>,
    /// Those whose log format is parsed (nginx, Envoy, HAProxy), whose
    /// logs `--proxy-logs` follows.
    pub log_pods: Vec<ProxyPod>,
    /// The selectors whose list was allowed: watched for new proxies.
    pub selectors: Vec<&'static str>,
    /// `namespace/name` by address: the burst lines name the proxy.
    pub names: HashMap<IpAddr, String>,
}

/// Lists the proxy pods in every namespace and adds them to `interest`
/// ("when known": a denial here only loses the proxy side).
pub async fn discover(client: &KubeClient, interest: &mut Interest, peek: bool) -> Found {
    let all_pods: Api<Pod> = Api::all(client.kube.clone());
    let mut found = Found::default();
    for sel in PROXY_SELECTORS {
        let Ok(list) = all_pods.list(&ListParams::default().labels(sel)).await else {
            continue;
        };
        found.selectors.push(sel);
        for p in &list.items {
            // A pod may match several selectors: adopted once.
            if let Some(uid) = &p.metadata.uid {
                if !found.known.insert(uid.clone()) {
                    continue;
                }
            }
            if let Some(ip) = pod_ip(p) {
                found.names.insert(ip, pod_name(p));
            }
            let log = ProxyPod::of(p).filter(|q| !found.log_pods.contains(q));
            found.log_pods.extend(log);
            interest.add_pod(p);
            if let (Some(uid), true) = (&p.metadata.uid, peek) {
                interest.proxies.insert(uid.clone());
                interest.proxy_ips.extend(pod_ip(p));
            }
            found.count += 1;
        }
    }
    found
}

/// A proxy pod not seen before, once it runs somewhere with an address:
/// its uid, address and node.
pub fn new_proxy(p: &Pod, known: &HashSet<String>) -> Option<(String, IpAddr, String)> {
    let uid = p.metadata.uid.clone()?;
    if known.contains(&uid) || p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    Some((uid, pod_ip(p)?, pod_node(p)?))
}

/// `namespace/name` of a pod.
pub fn pod_name(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or("?"),
        p.metadata.name.as_deref().unwrap_or("?")
    )
}

/// What the session says about an adopted proxy.
pub fn adopted_line(p: &Pod, node: &str, peek: bool, logged: bool) -> String {
    format!(
        "proxy pod {} started on {node}: {}",
        pod_name(p),
        match (peek, logged) {
            (true, true) => "peeking at its HTTP status lines, following its log",
            (true, false) => "peeking at its HTTP status lines",
            (false, true) => "following its log",
            (false, false) => "tracing its connections",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_unseen_proxies_are_new() {
        let mut p = Pod::default();
        p.metadata.uid = Some("u1".into());
        assert!(new_proxy(&p, &HashSet::new()).is_none(), "no address yet");
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("n1".into()),
            ..Default::default()
        });
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            pod_ip: Some("10.0.0.1".into()),
            ..Default::default()
        });
        assert_eq!(
            new_proxy(&p, &HashSet::new()),
            Some(("u1".into(), "10.0.0.1".parse().unwrap(), "n1".into()))
        );
        assert!(new_proxy(&p, &["u1".to_string()].into()).is_none());
    }
}
