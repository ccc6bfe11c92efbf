//! The session's watches, fanned into one stream: the scope's pods,
//! EndpointSlices and Events, all Nodes, and the proxy pods by the proxy
//! labels (proxies started mid-session are adopted from it). A watch that
//! fails for RBAC ends the session; any other failure retries.

use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};

use super::KubeClient;
use crate::error::CliError;

#[allow(clippy::large_enum_variant)] // one at a time, moved not stored
pub enum KubeInput {
    Pod(watcher::Event<Pod>),
    Slice(watcher::Event<EndpointSlice>),
    Node(watcher::Event<Node>),
    Event(watcher::Event<Event>),
    Service(watcher::Event<Service>),
    /// Proxy pods in any namespace, by the proxy labels.
    Proxy(watcher::Event<Pod>),
    Failed(&'static str, watcher::Error),
}

/// The resource name of the proxy-pod watches: their failures are not
/// fatal ("when known": a denial only loses the proxy side).
pub const PROXY_WATCH: &str = "pods (proxies)";

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(watcher::Event<K>) -> KubeInput,
    resource: &'static str,
) -> BoxStream<'static, KubeInput>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    watcher(api, config)
        .default_backoff()
        .map(move |r| match r {
            Ok(ev) => wrap(ev),
            Err(e) => KubeInput::Failed(resource, e),
        })
        .boxed()
}

/// Every watch of a session in `ns` (all namespaces: `None`); the proxy
/// pods by the selectors whose initial list was allowed.
pub fn session_watches(
    client: &KubeClient,
    ns: Option<&str>,
    proxy_selectors: &[&str],
) -> SelectAll<BoxStream<'static, KubeInput>> {
    fn scoped<K>(c: &kube::Client, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(n) => Api::namespaced(c.clone(), n),
            None => Api::all(c.clone()),
        }
    }
    let c = &client.kube;
    let all = watcher::Config::default;
    let mut watches = SelectAll::new();
    watches.push(watch(scoped::<Pod>(c, ns), all(), KubeInput::Pod, "pods"));
    watches.push(watch(
        scoped::<EndpointSlice>(c, ns),
        all(),
        KubeInput::Slice,
        "endpointslices",
    ));
    watches.push(watch(
        Api::<Node>::all(c.clone()),
        all(),
        KubeInput::Node,
        "nodes",
    ));
    watches.push(watch(
        scoped::<Event>(c, ns),
        all(),
        KubeInput::Event,
        "events",
    ));
    watches.push(watch(
        scoped::<Service>(c, ns),
        all(),
        KubeInput::Service,
        "services",
    ));
    // Proxy pods started during the session (a proxy rollout or scale-up)
    // are peeked at and log-followed too.
    for sel in proxy_selectors {
        watches.push(watch(
            Api::<Pod>::all(c.clone()),
            all().labels(sel),
            KubeInput::Proxy,
            PROXY_WATCH,
        ));
    }
    watches
}

/// A watch failure that will not heal by retrying (RBAC).
pub fn fatal_watch_error(
    resource: &str,
    e: &watcher::Error,
    ns: Option<&str>,
    server: &str,
) -> Option<CliError> {
    let (verb, err) = match e {
        watcher::Error::InitialListFailed(k) => ("list", k),
        watcher::Error::WatchStartFailed(k) | watcher::Error::WatchFailed(k) => ("watch", k),
        watcher::Error::WatchError(s) if s.code == 403 => {
            return Some(crate::error::classify(
                &kube::Error::Api(s.clone()),
                &crate::error::Op {
                    verb: "watch",
                    resource,
                    namespace: ns,
                },
                server,
            ))
        }
        _ => return None,
    };
    match err {
        kube::Error::Api(s) if s.code == 403 || s.code == 401 => Some(crate::error::classify(
            err,
            &crate::error::Op {
                verb,
                resource,
                namespace: ns,
            },
            server,
        )),
        _ => None,
    }
}
