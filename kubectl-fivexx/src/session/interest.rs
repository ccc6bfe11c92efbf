//! The interest set: which pods, addresses and nodes a session asks the
//! agents about. It gives the full filter a node's first (and only)
//! stream opens with, and the deltas that widen the open streams when a
//! pod or a proxy appears.
//!
//! It only grows: a deleted pod is never narrowed out, since failures
//! towards its old address (a late reset, a proxy still routing to it)
//! are what a session is for. One session's pods are few enough to keep.

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

use fivexx_core::protocol::StreamFilter;

#[derive(Default)]
pub struct Interest {
    /// A node session wants every event of its node: its filter names no
    /// pod and no address ("everything"), only the proxies to peek at.
    pub node_target: bool,
    pub uids: HashSet<String>,
    pub ips: HashSet<IpAddr>,
    /// Proxy pods whose HTTP status lines the agents peek at.
    pub proxies: HashSet<String>,
    /// Their addresses, for the engine (hidden-by-retry counting).
    pub proxy_ips: HashSet<IpAddr>,
    /// Nodes that run a pod of interest: each gets one stream.
    pub nodes: HashSet<String>,
}

impl Interest {
    pub fn new(node: Option<&str>) -> Interest {
        Interest {
            node_target: node.is_some(),
            nodes: node.map(str::to_string).into_iter().collect(),
            ..Interest::default()
        }
    }

    /// The filter a node's stream opens with.
    pub fn filter(&self) -> StreamFilter {
        let http_pods = self.proxies.iter().cloned().collect();
        if self.node_target {
            return StreamFilter {
                http_pods,
                ..Default::default()
            };
        }
        StreamFilter {
            pod_uids: self.uids.iter().cloned().collect(),
            ips: self.ips.iter().copied().collect(),
            http_pods,
            ..Default::default()
        }
    }

    /// Adds a pod in scope; what the open streams must add to see it
    /// (empty when nothing is new, and always for a node session).
    pub fn add_pod(&mut self, p: &Pod) -> StreamFilter {
        let mut delta = StreamFilter::default();
        if let Some(u) = &p.metadata.uid {
            if self.uids.insert(u.clone()) {
                delta.pod_uids.push(u.clone());
            }
        }
        if let Some(ip) = pod_ip(p) {
            if self.ips.insert(ip) {
                delta.ips.push(ip);
            }
        }
        if let Some(n) = pod_node(p) {
            self.nodes.insert(n);
        }
        if self.node_target {
            return StreamFilter::default();
        }
        delta
    }

    /// Adds a proxy pod (peeked at unless `peek` is off); what the open
    /// streams must add. See [`proxy_delta`].
    pub fn add_proxy(&mut self, p: &Pod, uid: &str, ip: IpAddr, peek: bool) -> StreamFilter {
        self.add_pod(p);
        if peek {
            self.proxies.insert(uid.to_string());
            self.proxy_ips.insert(ip);
        }
        proxy_delta(uid, ip, peek, self.node_target)
    }

    /// The proxies peeked at from the start, sorted (the capture header's
    /// `http_peek_proxies`).
    pub fn peeked(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.proxy_ips.iter().copied().collect();
        v.sort();
        v
    }
}

/// What widens the open streams to a new proxy pod. A node session
/// already gets every event of its node, so it only asks for the peek
/// (`http_pods`: adding the pod or its address would narrow "everything"
/// to them); without the peek it needs nothing.
pub fn proxy_delta(uid: &str, ip: IpAddr, peek: bool, node_target: bool) -> StreamFilter {
    let http_pods = if peek {
        vec![uid.to_string()]
    } else {
        Vec::new()
    };
    if node_target {
        return StreamFilter {
            http_pods,
            ..Default::default()
        };
    }
    StreamFilter {
        pod_uids: vec![uid.to_string()],
        ips: vec![ip],
        http_pods,
        ..Default::default()
    }
}

pub fn pod_ip(p: &Pod) -> Option<IpAddr> {
    p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

pub fn pod_node(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone()
}

/// Whether a filter still passes every event (it may name proxies to peek).
#[cfg(test)]
fn is_everything(f: &StreamFilter) -> bool {
    f.kinds.is_empty() && f.pod_uids.is_empty() && f.ips.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, ip: &str, node: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.uid = Some(uid.into());
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        });
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            pod_ip: Some(ip.into()),
            ..Default::default()
        });
        p
    }

    /// A delta names only what is new; a node session never narrows its
    /// "everything" filter with pods or addresses.
    #[test]
    fn deltas_widen_with_what_is_new_only() {
        let mut i = Interest::new(None);
        let d = i.add_pod(&pod("u1", "10.0.0.1", "n1"));
        assert_eq!(d.pod_uids, vec!["u1".to_string()]);
        assert!(i.add_pod(&pod("u1", "10.0.0.1", "n1")).is_empty());
        let d = i.add_pod(&pod("u2", "10.0.0.1", "n2"));
        assert_eq!((d.pod_uids.len(), d.ips.len()), (1, 0));
        assert_eq!(i.nodes.len(), 2);
        assert_eq!(i.filter().pod_uids.len(), 2);

        let mut n = Interest::new(Some("n1"));
        assert!(n.add_pod(&pod("u1", "10.0.0.1", "n1")).is_empty());
        let p = pod("px", "10.0.0.50", "n1");
        let d = n.add_proxy(&p, "px", "10.0.0.50".parse().unwrap(), true);
        assert!(is_everything(&d) && d.http_pods == vec!["px".to_string()]);
        assert!(is_everything(&n.filter()));
        assert_eq!(n.peeked(), vec!["10.0.0.50".parse::<IpAddr>().unwrap()]);
    }

    /// A node session's filter for a new proxy must never name pods or
    /// addresses (that would narrow "everything").
    #[test]
    fn proxy_deltas_widen_without_narrowing_a_node_session() {
        let ip: IpAddr = "10.244.0.50".parse().unwrap();
        let f = proxy_delta("u1", ip, true, false);
        assert_eq!(
            (f.pod_uids.clone(), f.ips.clone()),
            (vec!["u1".into()], vec![ip])
        );
        assert_eq!(f.http_pods, vec!["u1".to_string()]);
        let f = proxy_delta("u1", ip, false, false);
        assert!(f.http_pods.is_empty() && f.ips == vec![ip]);
        let f = proxy_delta("u1", ip, true, true);
        assert!(is_everything(&f));
        assert_eq!(f.http_pods, vec!["u1".to_string()]);
        assert!(proxy_delta("u1", ip, false, true).is_empty());
    }
}
