//! The kinds the lab's control plane serves, with what the REST layer
//! needs of each (group, version, plural, scope).

use super::*;

/// The kinds the lab's control plane serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pod,
    Node,
    Event,
    Namespace,
    ServiceAccount,
    Service,
    EndpointSlice,
    ClusterRole,
    ClusterRoleBinding,
    DaemonSet,
    Deployment,
    ReplicaSet,
    StatefulSet,
}

/// Static facts about a kind, taken from k8s-openapi's `Resource` impls.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// API group, "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// `group/version` or `v1` for the core group.
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The URL segment (`pods`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources served, listed in discovery (`status`, `portforward`).
    pub subresources: &'static [&'static str],
}

fn info<K: Resource>(
    singular: &'static str,
    short_names: &'static [&'static str],
    subresources: &'static [&'static str],
) -> KindInfo {
    KindInfo {
        group: K::GROUP,
        version: K::VERSION,
        api_version: K::API_VERSION,
        kind: K::KIND,
        plural: K::URL_PATH_SEGMENT,
        singular,
        namespaced: std::any::type_name::<K::Scope>().ends_with("NamespaceResourceScope"),
        short_names,
        subresources,
    }
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Pod,
        Kind::Node,
        Kind::Event,
        Kind::Namespace,
        Kind::ServiceAccount,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::ClusterRole,
        Kind::ClusterRoleBinding,
        Kind::DaemonSet,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::StatefulSet,
    ];

    pub fn info(self) -> KindInfo {
        match self {
            Kind::Pod => info::<Pod>(
                "pod",
                &["po"],
                &["status", "portforward", "eviction", "log"],
            ),
            Kind::Node => info::<Node>("node", &["no"], &["status"]),
            Kind::Event => info::<Event>("event", &["ev"], &[]),
            Kind::Namespace => info::<Namespace>("namespace", &["ns"], &["status"]),
            Kind::ServiceAccount => info::<ServiceAccount>("serviceaccount", &["sa"], &[]),
            Kind::Service => info::<Service>("service", &["svc"], &["status"]),
            Kind::EndpointSlice => info::<EndpointSlice>("endpointslice", &[], &[]),
            Kind::ClusterRole => info::<ClusterRole>("clusterrole", &[], &[]),
            Kind::ClusterRoleBinding => info::<ClusterRoleBinding>("clusterrolebinding", &[], &[]),
            Kind::DaemonSet => info::<DaemonSet>("daemonset", &["ds"], &["status"]),
            Kind::Deployment => info::<Deployment>("deployment", &["deploy"], &["status"]),
            Kind::ReplicaSet => info::<ReplicaSet>("replicaset", &["rs"], &["status"]),
            Kind::StatefulSet => info::<StatefulSet>("statefulset", &["sts"], &["status"]),
        }
    }

    /// The kind served at `group/version/plural`, if any.
    pub fn from_path(group: &str, version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            let i = k.info();
            i.group == group && i.version == version && i.plural == plural
        })
    }

    /// The kind named by `apiVersion` and `kind` fields.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.info().api_version == api_version && k.info().kind == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().plural)
    }
}
