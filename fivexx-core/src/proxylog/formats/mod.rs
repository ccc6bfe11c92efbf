//! The registry: every access-log format read, in the order a line is
//! tried, and the gateway products that write them.
//!
//! A format is a module (its reader, its words, its clock) and a row in
//! [`FORMATS`]; a gateway product is a row in [`GATEWAYS`] naming its
//! engine, the formats it ships with, how its pods are found and the
//! setting that turns its access log on. Nothing else names a format.

pub mod envoy;
pub mod haproxy;
pub mod nginx;
pub mod nginx_main;

use super::{FormatSpec, ProxyKind};

/// Every format, in the order a line is tried: each reader claims only
/// lines in its own format, but nginx's (the last) reports what is wrong
/// with any line that starts as `combined` does.
pub static FORMATS: &[&FormatSpec] = &[
    &envoy::GATEWAY_JSON_SPEC,
    &envoy::TEXT_SPEC,
    &envoy::ISTIO_SPEC,
    &haproxy::HTTPLOG_SPEC,
    &nginx_main::MAIN_SPEC,
    &nginx::COMBINED_SPEC,
    &nginx::UPSTREAMINFO_SPEC,
];

/// How a gateway product's proxy pods are told apart: a label (key and,
/// if given, one of its values) or, for Gateway API pods, a container name.
#[derive(Clone, Copy, Debug)]
pub enum PodMatch {
    /// `key=value` (one of `values`); any value when `values` is empty.
    Label {
        key: &'static str,
        values: &'static [&'static str],
    },
    /// A name label (`app.kubernetes.io/name` or `app`) that is one of
    /// these.
    Name(&'static [&'static str]),
    /// A Gateway API data-plane pod (`gateway.networking.k8s.io/
    /// gateway-name`) with a container of this name.
    GatewayContainer(&'static str),
    /// A name label (`app.kubernetes.io/name` or `app`) containing every
    /// one of these words.
    NameContains(&'static [&'static str]),
}

/// One gateway or ingress product as it ships.
#[derive(Debug)]
pub struct Gateway {
    pub product: &'static str,
    /// The proxy it runs.
    pub engine: ProxyKind,
    /// The access-log formats it writes by default, where it logs at all.
    pub formats: &'static [&'static FormatSpec],
    /// Any one of these finds its proxy pods.
    pub pods: &'static [PodMatch],
    /// The container that writes the access log, in a pod of several.
    pub containers: &'static [&'static str],
    /// What turns its access log on, for products that ship with it off.
    pub logs_on: &'static str,
}

/// The label keys that name an app.
pub const NAME_KEYS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// The products whose pods are followed, first match wins: the four
/// Envoy-based gateways, HAProxy's two ingress controllers, the
/// nginx-based ones.
pub static GATEWAYS: &[Gateway] = &[
    Gateway {
        product: "Envoy Gateway",
        engine: ProxyKind::Envoy,
        formats: &[&envoy::GATEWAY_JSON_SPEC, &envoy::TEXT_SPEC],
        pods: &[
            PodMatch::Label {
                key: "gateway.envoyproxy.io/owning-gateway-name",
                values: &[],
            },
            PodMatch::Label {
                key: "app.kubernetes.io/managed-by",
                values: &["envoy-gateway"],
            },
        ],
        containers: &["envoy"],
        logs_on: "on by default (EnvoyProxy spec.telemetry.accessLog)",
    },
    Gateway {
        product: "Istio",
        engine: ProxyKind::Envoy,
        formats: &[&envoy::ISTIO_SPEC],
        pods: &[
            PodMatch::Label {
                key: "istio",
                values: &["ingressgateway"],
            },
            PodMatch::Name(&["istio-ingressgateway"]),
            PodMatch::GatewayContainer("istio-proxy"),
        ],
        containers: &["istio-proxy"],
        logs_on: "meshConfig.accessLogFile: /dev/stdout (off by default)",
    },
    Gateway {
        product: "Contour",
        engine: ProxyKind::Envoy,
        formats: &[&envoy::TEXT_SPEC],
        pods: &[
            PodMatch::Label {
                key: "app.kubernetes.io/component",
                values: &["envoy"],
            },
            PodMatch::Name(&["envoy"]),
        ],
        containers: &["envoy"],
        logs_on: "on by default (accesslog-format: envoy)",
    },
    Gateway {
        product: "an Envoy Gateway API data plane",
        engine: ProxyKind::Envoy,
        formats: &[&envoy::TEXT_SPEC],
        pods: &[PodMatch::GatewayContainer("envoy")],
        containers: &["envoy"],
        logs_on: "the implementation's access-log setting",
    },
    Gateway {
        product: "HAProxy Kubernetes Ingress",
        engine: ProxyKind::Haproxy,
        formats: &[&haproxy::HTTPLOG_SPEC],
        pods: &[PodMatch::Name(&["kubernetes-ingress"])],
        containers: &["kubernetes-ingress-controller", "haproxy"],
        logs_on: "on by default (syslog-server: address:stdout, format: raw)",
    },
    Gateway {
        product: "HAProxy Ingress",
        engine: ProxyKind::Haproxy,
        formats: &[&haproxy::HTTPLOG_SPEC],
        pods: &[PodMatch::Name(&["haproxy-ingress"])],
        containers: &["haproxy-ingress", "haproxy"],
        logs_on: "syslog-endpoint: stdout, httplog (off by default)",
    },
    Gateway {
        product: "ingress-nginx",
        engine: ProxyKind::Nginx,
        formats: &[&nginx::UPSTREAMINFO_SPEC],
        pods: &[PodMatch::Name(&["ingress-nginx"])],
        containers: &["controller"],
        logs_on: "on by default (log-format-upstream)",
    },
    Gateway {
        product: "F5 NGINX Ingress Controller",
        engine: ProxyKind::Nginx,
        formats: &[&nginx_main::MAIN_SPEC],
        pods: &[PodMatch::Name(&["nginx-ingress"])],
        containers: &["nginx-ingress", "controller", "nginx"],
        logs_on: "on by default (ConfigMap log-format)",
    },
    Gateway {
        product: "NGINX Gateway Fabric",
        engine: ProxyKind::Nginx,
        formats: &[&nginx::COMBINED_SPEC],
        pods: &[
            PodMatch::Name(&["nginx-gateway", "nginx-gateway-fabric"]),
            PodMatch::GatewayContainer("nginx"),
        ],
        containers: &["nginx"],
        logs_on: "on by default (NginxProxy spec.logging)",
    },
    Gateway {
        product: "an nginx ingress or gateway",
        engine: ProxyKind::Nginx,
        formats: &[&nginx::COMBINED_SPEC, &nginx::UPSTREAMINFO_SPEC],
        pods: &[
            PodMatch::NameContains(&["nginx", "ingress"]),
            PodMatch::NameContains(&["nginx", "gateway"]),
        ],
        containers: &["controller", "nginx"],
        logs_on: "the controller's access-log setting",
    },
];

/// Products whose logs no format here reads: their pods are traced and
/// peeked, never followed, even where a rule above would match them.
pub const NOT_FOLLOWED: [&str; 2] = ["traefik", "kong"];

impl Gateway {
    /// The product whose proxy pods look like this (`label` reads a pod's
    /// label, `containers` are its containers' names), if any.
    pub fn of_pod<'a>(
        label: impl Fn(&str) -> Option<&'a str>,
        containers: &[&str],
    ) -> Option<&'static Gateway> {
        let names: Vec<&str> = NAME_KEYS.iter().filter_map(|k| label(k)).collect();
        if names.iter().any(|n| NOT_FOLLOWED.contains(n)) {
            return None;
        }
        let gateway_api = label("gateway.networking.k8s.io/gateway-name").is_some();
        let matches = |m: &PodMatch| match *m {
            PodMatch::Label { key, values } => {
                label(key).is_some_and(|v| values.is_empty() || values.contains(&v))
            }
            PodMatch::Name(values) => names.iter().any(|n| values.contains(n)),
            PodMatch::GatewayContainer(c) => gateway_api && containers.contains(&c),
            PodMatch::NameContains(words) => {
                names.iter().any(|n| words.iter().all(|w| n.contains(w)))
            }
        };
        GATEWAYS.iter().find(|g| g.pods.iter().any(matches))
    }

    /// The container that writes the access log, in a pod of several: the
    /// product's own, else one named for its engine, else the first.
    pub fn log_container<'c>(&self, containers: &[&'c str]) -> Option<&'c str> {
        if containers.len() < 2 {
            return None;
        }
        let word = match self.engine {
            ProxyKind::Envoy => "envoy",
            ProxyKind::Haproxy => "haproxy",
            ProxyKind::Nginx => "nginx",
        };
        self.containers
            .iter()
            .find_map(|p| containers.iter().find(|c| *c == p))
            .or_else(|| containers.iter().find(|c| c.contains(word)))
            .or(containers.first())
            .copied()
    }
}
