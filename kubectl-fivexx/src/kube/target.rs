//! What a trace is about: `pod/NAME`, `deploy/NAME`, `sts/NAME`,
//! `svc/NAME`, `node/NAME` or a whole namespace, resolved into a pod
//! predicate (which pods' signals and addresses the agents should send).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;

use crate::error::CliError;
use crate::kube::KubeClient;

/// The TARGET argument, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pod(String),
    Deployment(String),
    StatefulSet(String),
    Service(String),
    Node(String),
    /// Every pod of the namespace (or of all namespaces with -A).
    Namespace,
}

impl Target {
    pub fn parse(s: Option<&str>) -> Result<Target, CliError> {
        let Some(s) = s else {
            return Ok(Target::Namespace);
        };
        let Some((kind, name)) = s.split_once('/') else {
            return Err(CliError::new(
                format!("target `{s}` has no kind"),
                "write KIND/NAME: pod/NAME, deploy/NAME, sts/NAME, svc/NAME or node/NAME",
            ));
        };
        if name.is_empty() || name.contains('/') {
            return Err(CliError::new(
                format!("target `{s}`: bad name"),
                "write KIND/NAME, e.g. deploy/web",
            ));
        }
        let name = name.to_string();
        Ok(match kind.to_ascii_lowercase().as_str() {
            "pod" | "pods" | "po" => Target::Pod(name),
            "deploy" | "deployment" | "deployments" => Target::Deployment(name),
            "sts" | "statefulset" | "statefulsets" => Target::StatefulSet(name),
            "svc" | "service" | "services" => Target::Service(name),
            "node" | "nodes" | "no" => Target::Node(name),
            other => {
                return Err(CliError::new(
                    format!("target kind `{other}` is not supported"),
                    "use pod/NAME, deploy/NAME, sts/NAME, svc/NAME or node/NAME, or no target for the namespace",
                ))
            }
        })
    }
}

/// Which pods a trace follows.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// Label equality requirements a pod must meet.
    pub labels: BTreeMap<String, String>,
    pub pod_name: Option<String>,
    pub node: Option<String>,
    /// For `svc/NAME`: the Service (its slices are the routing truth).
    pub service: Option<String>,
    /// How the target is named in output.
    pub describe: String,
}

impl Scope {
    pub fn matches(&self, pod: &Pod) -> bool {
        let m = &pod.metadata;
        if let Some(ns) = &self.namespace {
            if m.namespace.as_deref() != Some(ns) {
                return false;
            }
        }
        if let Some(name) = &self.pod_name {
            if m.name.as_deref() != Some(name) {
                return false;
            }
        }
        if let Some(node) = &self.node {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                return false;
            }
        }
        let labels = m.labels.clone().unwrap_or_default();
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `a=b,c=d` (equality only: the plugin matches pods itself).
pub fn parse_selector(s: &str) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once("==")
            .or_else(|| part.split_once('='))
            .filter(|(k, _)| !k.is_empty() && !k.ends_with('!'))
            .ok_or_else(|| {
                CliError::new(
                    format!("-l {s}: only KEY=VALUE requirements are supported"),
                    "for example: -l app=web,tier=frontend",
                )
            })?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn match_labels(
    sel: Option<&LabelSelector>,
    what: &str,
) -> Result<BTreeMap<String, String>, CliError> {
    let sel = sel.cloned().unwrap_or_default();
    if sel
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        tracing::warn!("{what}: matchExpressions are ignored; matching on matchLabels only");
    }
    let labels = sel.match_labels.unwrap_or_default();
    if labels.is_empty() {
        return Err(CliError::new(
            format!("{what} has no matchLabels selector"),
            "trace its pods with -l KEY=VALUE instead",
        ));
    }
    Ok(labels)
}

/// Resolves a target to a scope, reading the workload or Service.
pub async fn resolve(
    client: &KubeClient,
    target: &Target,
    all_namespaces: bool,
    extra_labels: BTreeMap<String, String>,
) -> Result<Scope, CliError> {
    let ns = client.namespace.clone();
    let mut scope = Scope {
        namespace: (!all_namespaces).then(|| ns.clone()),
        labels: extra_labels,
        pod_name: None,
        node: None,
        service: None,
        describe: String::new(),
    };
    let not_found = |kind: &str, name: &str| {
        CliError::new(
            format!("{kind} \"{name}\" not found in namespace {ns}"),
            format!("list them with `kubectl get {kind} -n {ns}`, or pass -n NAMESPACE"),
        )
    };
    match target {
        Target::Namespace => {
            scope.describe = match &scope.namespace {
                Some(n) => format!("namespace {n}"),
                None => "all namespaces".into(),
            };
        }
        Target::Pod(name) => {
            scope.namespace = Some(ns.clone());
            scope.pod_name = Some(name.clone());
            let pods: Api<Pod> = Api::namespaced(client.kube.clone(), &ns);
            if client
                .get_opt("pods", Some(&ns), pods.get(name))
                .await?
                .is_none()
            {
                return Err(not_found("pod", name));
            }
            scope.describe = format!("pod/{name} in {ns}");
        }
        Target::Deployment(name) => {
            scope.namespace = Some(ns.clone());
            let api: Api<Deployment> = Api::namespaced(client.kube.clone(), &ns);
            let d = client
                .get_opt("deployments", Some(&ns), api.get(name))
                .await?
                .ok_or_else(|| not_found("deployment", name))?;
            let what = format!("deployment/{name}");
            scope
                .labels
                .extend(match_labels(Some(&d.spec.selector), &what)?);
            scope.describe = format!("{what} in {ns}");
        }
        Target::StatefulSet(name) => {
            scope.namespace = Some(ns.clone());
            let api: Api<StatefulSet> = Api::namespaced(client.kube.clone(), &ns);
            let s = client
                .get_opt("statefulsets", Some(&ns), api.get(name))
                .await?
                .ok_or_else(|| not_found("statefulset", name))?;
            let what = format!("statefulset/{name}");
            scope
                .labels
                .extend(match_labels(Some(&s.spec.selector), &what)?);
            scope.describe = format!("{what} in {ns}");
        }
        Target::Service(name) => {
            scope.namespace = Some(ns.clone());
            let api: Api<Service> = Api::namespaced(client.kube.clone(), &ns);
            let s = client
                .get_opt("services", Some(&ns), api.get(name))
                .await?
                .ok_or_else(|| not_found("service", name))?;
            let sel = s.spec.and_then(|s| s.selector).unwrap_or_default();
            if sel.is_empty() {
                return Err(CliError::new(
                    format!("service/{name} has no selector (its endpoints are managed by hand)"),
                    "trace the backing pods with -l KEY=VALUE",
                ));
            }
            scope.labels.extend(sel);
            scope.service = Some(name.clone());
            scope.describe = format!("service/{name} in {ns}");
        }
        Target::Node(name) => {
            scope.namespace = None;
            scope.node = Some(name.clone());
            scope.describe = format!("node/{name}");
        }
    }
    Ok(scope)
}

/// Labels of well-known ingress controllers and proxies: their pods send
/// the traffic that fails, so their nodes and addresses join the trace.
/// Each is the label the controller itself sets on its proxy pods:
/// - `app.kubernetes.io/name`: ingress-nginx, Traefik, Kong (Helm charts),
///   Contour (Bitnami's chart: `contour`, with `component=envoy` on Envoy),
///   haproxytech's HAProxy Kubernetes Ingress (chart `kubernetes-ingress`),
///   jcmoraisjr's `haproxy-ingress`, NGINX Gateway Fabric 1.x
///   (`nginx-gateway`), Istio's classic gateway;
/// - `app`: the same in older manifests (Contour's quickstart Envoy is
///   `app=envoy`, NGINX Inc.'s `nginx-ingress`);
/// - `gateway.envoyproxy.io/owning-gateway-name`: Envoy Gateway's proxies;
/// - `gateway.networking.k8s.io/gateway-name`: any Gateway API
///   implementation that labels the pods it deploys per Gateway as the
///   Gateway API recommends (Istio, NGINX Gateway Fabric 2.x, kgateway);
/// - `istio=ingressgateway`: Istio's classic ingress gateway;
/// - `app.kubernetes.io/component=envoy`: Contour's Envoy (Bitnami, and
///   the gateway provisioner).
pub const PROXY_SELECTORS: [&str; 7] = [
    "app.kubernetes.io/name in (ingress-nginx,traefik,contour,envoy,haproxy-ingress,kubernetes-ingress,kong,istio-ingressgateway,nginx-gateway,nginx-gateway-fabric)",
    "app in (ingress-nginx,nginx-ingress,traefik,envoy,haproxy-ingress,kong,istio-ingressgateway)",
    "gateway.envoyproxy.io/owning-gateway-name",
    "gateway.networking.k8s.io/gateway-name",
    "istio=ingressgateway",
    "app.kubernetes.io/component=envoy",
    "app.kubernetes.io/managed-by=envoy-gateway",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a pod's labels match one of [`PROXY_SELECTORS`] (what the API
    /// server's list does, for the selector forms used there).
    fn is_proxy_pod(labels: &std::collections::BTreeMap<String, String>) -> bool {
        PROXY_SELECTORS
            .iter()
            .any(|sel| selector_matches(sel, labels))
    }

    /// One selector of the forms `key in (a,b)`, `key=value` or `key`.
    fn selector_matches(sel: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
        if let Some((key, set)) = sel.split_once(" in (") {
            let set = set.trim_end_matches(')');
            return labels
                .get(key)
                .is_some_and(|v| set.split(',').any(|x| x == v));
        }
        match sel.split_once('=') {
            Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
            None => labels.contains_key(sel),
        }
    }

    #[test]
    fn targets_parse_with_kubectl_aliases() {
        assert_eq!(
            Target::parse(Some("deploy/web")).unwrap(),
            Target::Deployment("web".into())
        );
        assert_eq!(
            Target::parse(Some("sts/db")).unwrap(),
            Target::StatefulSet("db".into())
        );
        assert_eq!(
            Target::parse(Some("svc/web")).unwrap(),
            Target::Service("web".into())
        );
        assert_eq!(
            Target::parse(Some("po/a")).unwrap(),
            Target::Pod("a".into())
        );
        assert_eq!(
            Target::parse(Some("node/n1")).unwrap(),
            Target::Node("n1".into())
        );
        assert_eq!(Target::parse(None).unwrap(), Target::Namespace);
        assert!(Target::parse(Some("web")).is_err());
        assert!(Target::parse(Some("cronjob/x")).is_err());
        assert!(Target::parse(Some("deploy/")).is_err());
    }

    /// Pods labelled as each controller labels its proxies (and as the
    /// lab runs them) are proxies; an app that merely runs nginx is not.
    #[test]
    fn each_controllers_proxy_pods_are_selected() {
        let labels = |kv: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for pod in [
            // Envoy Gateway (the lab's form too).
            vec![
                ("app.kubernetes.io/name", "envoy"),
                ("app.kubernetes.io/component", "proxy"),
                ("app.kubernetes.io/managed-by", "envoy-gateway"),
                ("gateway.envoyproxy.io/owning-gateway-name", "eg"),
                ("gateway.envoyproxy.io/owning-gateway-namespace", "shop"),
            ],
            // Istio: classic, and deployed for a Gateway API Gateway.
            vec![("app", "istio-ingressgateway"), ("istio", "ingressgateway")],
            vec![
                ("gateway.networking.k8s.io/gateway-name", "shop-gw"),
                ("istio.io/gateway-name", "shop-gw"),
            ],
            // Contour's Envoy: quickstart and Bitnami's chart.
            vec![("app", "envoy")],
            vec![
                ("app.kubernetes.io/name", "contour"),
                ("app.kubernetes.io/component", "envoy"),
            ],
            // HAProxy: haproxytech's chart (the lab's form), jcmoraisjr's.
            vec![
                ("app.kubernetes.io/name", "kubernetes-ingress"),
                ("app.kubernetes.io/instance", "haproxy-kubernetes-ingress"),
            ],
            vec![("app.kubernetes.io/name", "haproxy-ingress")],
            // NGINX Gateway Fabric 1.x and 2.x, Traefik, Kong.
            vec![("app.kubernetes.io/name", "nginx-gateway")],
            vec![("gateway.networking.k8s.io/gateway-name", "gateway")],
            vec![("app.kubernetes.io/name", "traefik")],
            vec![("app.kubernetes.io/name", "kong")],
            vec![("app.kubernetes.io/name", "ingress-nginx")],
        ] {
            assert!(is_proxy_pod(&labels(&pod)), "{pod:?}");
        }
        for pod in [
            vec![("app", "web"), ("app.kubernetes.io/name", "nginx")],
            vec![("app.kubernetes.io/name", "kubernetes-ingress-controller")],
            vec![("istio", "sidecar")],
        ] {
            assert!(!is_proxy_pod(&labels(&pod)), "{pod:?}");
        }
    }

    #[test]
    fn selectors_are_equality_only() {
        let s = parse_selector("app=web, tier==fe").unwrap();
        assert_eq!(s.get("app").unwrap(), "web");
        assert_eq!(s.get("tier").unwrap(), "fe");
        assert!(parse_selector("app!=web").is_err());
        assert!(parse_selector("app").is_err());
    }
}
