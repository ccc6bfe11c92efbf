//! The agent's manifests, embedded from `deploy/` so that `kubectl fivexx
//! deploy` and `kubectl apply -f deploy/` install the same objects, and
//! rendered with the user's choices (image, node selector, capabilities
//! for old kernels).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Serialize;

/// Namespace, name and labels shared with `status`, `trace` and `undeploy`.
pub const AGENT_NAMESPACE: &str = "fivexx-system";
pub const AGENT_NAME: &str = "fivexx-agent";
pub const AGENT_PORT: u16 = 7450;
/// Every object `deploy` creates carries this label; `undeploy` selects by it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-fivexx");
/// Selects the agent's pods.
pub const AGENT_SELECTOR: &str = "app.kubernetes.io/name=fivexx-agent";
/// The server-side apply field manager.
pub const FIELD_MANAGER: &str = "kubectl-fivexx";

const FILES: [(&str, &str); 5] = [
    (
        "00-namespace.yaml",
        include_str!("../../deploy/00-namespace.yaml"),
    ),
    (
        "01-serviceaccount.yaml",
        include_str!("../../deploy/01-serviceaccount.yaml"),
    ),
    (
        "02-clusterrole.yaml",
        include_str!("../../deploy/02-clusterrole.yaml"),
    ),
    (
        "03-clusterrolebinding.yaml",
        include_str!("../../deploy/03-clusterrolebinding.yaml"),
    ),
    (
        "04-daemonset.yaml",
        include_str!("../../deploy/04-daemonset.yaml"),
    ),
];

/// The default agent image: the one released with this plugin.
pub fn default_image() -> String {
    format!("kubectl-fivexx/fivexx-agent:v{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("embedded manifest {file} is invalid: {source}")]
    Parse {
        file: &'static str,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("--node-selector {0}: expected KEY=VALUE[,KEY=VALUE]")]
    NodeSelector(String),
}

/// What the user chose at deploy time.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub image: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// Capabilities beyond BPF and PERFMON, for nodes with older kernels.
    pub extra_capabilities: Vec<String>,
}

/// The rendered objects, in apply order.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub namespace: Namespace,
    pub service_account: ServiceAccount,
    pub cluster_role: ClusterRole,
    pub cluster_role_binding: ClusterRoleBinding,
    pub daemon_set: DaemonSet,
}

impl Manifests {
    pub fn render(opts: &RenderOptions) -> Result<Manifests, ManifestError> {
        let mut m = Manifests {
            namespace: parse(0)?,
            service_account: parse(1)?,
            cluster_role: parse(2)?,
            cluster_role_binding: parse(3)?,
            daemon_set: parse(4)?,
        };
        let spec = m
            .daemon_set
            .spec
            .template
            .spec
            .as_mut()
            .expect("the embedded DaemonSet has a pod spec");
        if !opts.node_selector.is_empty() {
            spec.node_selector = Some(opts.node_selector.clone());
        }
        let container = spec
            .containers
            .first_mut()
            .expect("the embedded DaemonSet has a container");
        container.image = Some(opts.image.clone().unwrap_or_else(default_image));
        if !opts.extra_capabilities.is_empty() {
            let caps = container
                .security_context
                .get_or_insert_with(Default::default)
                .capabilities
                .get_or_insert_with(Default::default)
                .add
                .get_or_insert_with(Vec::new);
            for c in &opts.extra_capabilities {
                if !caps.contains(c) {
                    caps.push(c.clone());
                }
            }
        }
        Ok(m)
    }

    /// The objects as multi-document YAML (`--dry-run -o yaml`).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for doc in self.documents() {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&doc).expect("manifests serialize"));
        }
        out
    }

    /// The objects as a `v1/List` (`--dry-run -o json`).
    pub fn to_json(&self) -> String {
        let list =
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": self.documents()});
        serde_json::to_string_pretty(&list).expect("manifests serialize") + "\n"
    }

    fn documents(&self) -> Vec<serde_json::Value> {
        fn v<T: Serialize>(t: &T) -> serde_json::Value {
            serde_json::to_value(t).expect("manifests serialize")
        }
        vec![
            v(&self.namespace),
            v(&self.service_account),
            v(&self.cluster_role),
            v(&self.cluster_role_binding),
            v(&self.daemon_set),
        ]
    }
}

fn parse<T: serde::de::DeserializeOwned>(i: usize) -> Result<T, ManifestError> {
    let (file, text) = FILES[i];
    serde_yaml::from_str(text).map_err(|source| ManifestError::Parse { file, source })
}

/// `disktype=ssd,zone=a` as kubectl writes selectors.
pub fn parse_node_selector(s: &str) -> Result<BTreeMap<String, String>, ManifestError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| ManifestError::NodeSelector(s.to_string()))?;
        if k.trim().is_empty() {
            return Err(ManifestError::NodeSelector(s.to_string()));
        }
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Capabilities the agent needs beyond BPF and PERFMON on a kernel
/// (`uname -r` as the node reports it): SYS_ADMIN before 5.8 (no CAP_BPF
/// or CAP_PERFMON yet), SYS_RESOURCE before 5.11 (BPF maps charged to
/// RLIMIT_MEMLOCK).
pub fn capabilities_for_kernel(release: &str) -> Vec<&'static str> {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    let mut caps = Vec::new();
    if (major, minor) < (5, 8) {
        caps.push("SYS_ADMIN");
    }
    if (major, minor) < (5, 11) {
        caps.push("SYS_RESOURCE");
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifests_render_least_privilege() {
        let m = Manifests::render(&RenderOptions::default()).unwrap();
        let pod = m.daemon_set.spec.template.spec.unwrap();
        assert_eq!(pod.host_pid, Some(true));
        assert_ne!(pod.host_network, Some(true));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_ne!(sc.privileged, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.add.as_deref().unwrap(), ["BPF", "PERFMON"]);
        assert_eq!(caps.drop.as_deref().unwrap(), ["ALL"]);
        assert!(c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| v.read_only == Some(true)));
        assert_eq!(c.image.as_deref(), Some(default_image().as_str()));
        for rule in m.cluster_role.rules.unwrap() {
            assert_eq!(rule.verbs, ["get", "list", "watch"]);
        }
    }

    #[test]
    fn options_change_image_selector_and_capabilities() {
        let opts = RenderOptions {
            image: Some("reg/agent:dev".into()),
            node_selector: parse_node_selector("pool=web, zone=a").unwrap(),
            extra_capabilities: vec!["SYS_ADMIN".into()],
        };
        let m = Manifests::render(&opts).unwrap();
        let yaml = m.to_yaml();
        assert!(yaml.contains("image: reg/agent:dev"), "{yaml}");
        assert!(yaml.contains("pool: web"));
        assert!(yaml.contains("- SYS_ADMIN"));
        assert_eq!(yaml.matches("---\n").count(), 5);
        assert!(parse_node_selector("novalue").is_err());
    }

    #[test]
    fn old_kernels_need_more_capabilities() {
        assert_eq!(
            capabilities_for_kernel("4.19.0-25-amd64"),
            ["SYS_ADMIN", "SYS_RESOURCE"]
        );
        assert_eq!(capabilities_for_kernel("5.10.0"), ["SYS_RESOURCE"]);
        assert!(capabilities_for_kernel("6.18.0").is_empty());
        assert!(capabilities_for_kernel("5.11.3-gke").is_empty());
    }
}
