//! The lab's fake Kubernetes API server: real HTTP on 127.0.0.1, serving the
//! [`ClusterStore`] with the real REST conventions so that kube-rs, kubectl
//! and the `kubectl-fivexx` plugin run against it unmodified.
//!
//! Served: discovery; get, list and watch (label and field selectors,
//! resourceVersion, bookmarks, `410 Expired`) for every [`Kind`]; create,
//! replace, server-side apply, merge patch, delete and deletecollection;
//! `pods/portforward` over WebSocket; `pods/log` (follow, timestamps,
//! sinceTime, container) from real files; Table output for kubectl. Errors are
//! `Status` objects. RBAC is modelled as a deny list of (verb, resource)
//! pairs so that the plugin's permission errors can be provoked.
//!
//! The server counts the port-forward connections it accepts, per pod and
//! in total: [`ApiServer::port_forwards`] in process, and
//! `GET /debug/fivexx/portforwards` (JSON [`PortForwardStats`], no
//! authentication) for readers in another process, such as the bench.
//!
//! Wiring it into the lab:
//!
//! ```no_run
//! # async fn demo(agent_addr: std::net::SocketAddr) -> anyhow::Result<()> {
//! use fivexx_lab::control::{apiserver::{ApiServer, ApiServerConfig}, store::{ClusterStore, ANY_POD}};
//! let store = ClusterStore::new("lab-node");
//! let server = ApiServer::start(store.clone(), ApiServerConfig::default()).await?;
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! // `kubectl fivexx deploy` applies the agent DaemonSet: its pod (named
//! // `<ds>-<node>`) is ready when the lab's real agent is healthy, and
//! // port-forwards to it reach the agent's real 127.0.0.1 port.
//! store.set_daemon_set_readiness(|_ds, _node| true);
//! store.map_port_forward("fivexx-system", ANY_POD, 9000, agent_addr);
//! // Provoke the plugin's RBAC error path.
//! server.deny("list", "pods");
//! # Ok(()) }
//! ```

mod discovery;
mod object;
mod podlog;
mod portforward;
mod route;
mod selector;
mod status;
mod table;
mod tls;
mod view;
mod watch;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch as tokio_watch;

pub use self::podlog::{render as render_log_line, split_stamp, LogRequest};
pub use self::portforward::{
    PortForwardCounts, PortForwardStats, PROTOCOLS as PORT_FORWARD_PROTOCOLS,
};
use self::route::{parse_route, ObjectRoute, Query, Route};
pub use self::selector::{FieldSelector, LabelSelector};
pub use self::status::ApiError;
use crate::control::store::ClusterStore;

/// Largest request body accepted (a DaemonSet manifest is a few KiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Errors starting the server or writing its kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Kubeconfig(#[from] crate::control::kubeconfig::KubeconfigError),
    #[error("{0}")]
    Tls(String),
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Bearer token every request must carry (`None`: no authentication),
    /// also written into the kubeconfig. kubectl (client-go) sends
    /// kubeconfig credentials only over TLS: with a token, set `tls` too for
    /// kubectl (kube-rs sends it either way).
    pub token: Option<String>,
    /// The user name RBAC messages name.
    pub user: String,
    /// DELETE of a pod marks it terminating (deletionTimestamp) and leaves
    /// the final removal to the kubelet simulator, as a real cluster does.
    /// When false, pods are removed at once (no kubelet is watching).
    pub graceful_pod_delete: bool,
    /// How often watches with `allowWatchBookmarks=true` get a bookmark.
    pub bookmark_interval: Duration,
    /// Serve HTTPS with a throw-away CA (written into the kubeconfig), as
    /// a real API server does. Needed for kubectl to send the token.
    pub tls: bool,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            token: None,
            user: "fivexx-lab-user".into(),
            graceful_pod_delete: false,
            bookmark_interval: Duration::from_secs(5),
            tls: false,
        }
    }
}

/// The RBAC model: (verb, resource) pairs that are forbidden. A resource is
/// a plural (`pods`) or plural/subresource (`pods/portforward`); `*`
/// matches any verb or resource.
#[derive(Debug, Clone, Default)]
struct Access(Arc<RwLock<HashSet<(String, String)>>>);

impl Access {
    fn denies(&self, verb: &str, resource: &str) -> bool {
        let set = self.0.read().unwrap_or_else(|e| e.into_inner());
        [(verb, resource), ("*", resource), (verb, "*")]
            .iter()
            .any(|(v, r)| set.contains(&(v.to_string(), r.to_string())))
    }
}

#[derive(Clone)]
struct AppState {
    store: ClusterStore,
    config: Arc<ApiServerConfig>,
    access: Access,
    shutdown: tokio_watch::Receiver<bool>,
    addr: SocketAddr,
    port_forwards: PortForwardCounts,
}

/// A running fake API server. Dropping it stops it.
pub struct ApiServer {
    addr: SocketAddr,
    config: Arc<ApiServerConfig>,
    access: Access,
    ca_pem: Option<String>,
    port_forwards: PortForwardCounts,
    shutdown: tokio_watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// Starts serving `store` on an ephemeral port of 127.0.0.1.
    pub async fn start(
        store: ClusterStore,
        config: ApiServerConfig,
    ) -> Result<ApiServer, ApiServerError> {
        Self::start_on(store, config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts serving on a given address (port 0 picks one).
    pub async fn start_on(
        store: ClusterStore,
        config: ApiServerConfig,
        addr: SocketAddr,
    ) -> Result<ApiServer, ApiServerError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(ApiServerError::Bind)?;
        let addr = listener.local_addr().map_err(ApiServerError::Bind)?;
        let (shutdown, shutdown_rx) = tokio_watch::channel(false);
        let config = Arc::new(config);
        let access = Access::default();
        let port_forwards = PortForwardCounts::default();
        let state = AppState {
            store,
            config: config.clone(),
            access: access.clone(),
            shutdown: shutdown_rx.clone(),
            addr,
            port_forwards: port_forwards.clone(),
        };
        let app = Router::new().fallback(handle).with_state(state);
        let mut stop = shutdown_rx;
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let (task, ca_pem) = if config.tls {
            let identity = tls::self_signed().map_err(ApiServerError::Tls)?;
            let listener = tls::TlsListener {
                listener,
                acceptor: identity.acceptor,
            };
            let task = tokio::spawn(async move {
                // Serving over TLS only ends by the shutdown signal.
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await;
            });
            (task, Some(identity.ca_pem))
        } else {
            let task = tokio::spawn(async move {
                use axum::serve::ListenerExt;
                // As a real API server does: small watch and port-forward
                // frames go out at once instead of waiting on Nagle.
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "fake API server stopped");
                }
            });
            (task, None)
        };
        tracing::info!(%addr, tls = config.tls, "fake API server listening");
        Ok(ApiServer {
            addr,
            config,
            access,
            ca_pem,
            port_forwards,
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The port-forward connections accepted so far, per pod and in total
    /// (also served as JSON at `GET /debug/fivexx/portforwards`).
    pub fn port_forwards(&self) -> PortForwardStats {
        self.port_forwards.stats()
    }

    /// The CA certificate (PEM) clients must trust, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn token(&self) -> Option<&str> {
        self.config.token.as_deref()
    }

    /// Forbids `verb` (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`, or `*`) on `resource` (`pods`,
    /// `pods/portforward`, `daemonsets`, or `*`).
    pub fn deny(&self, verb: &str, resource: &str) {
        self.access
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((verb.into(), resource.into()));
    }

    /// Lifts one denial.
    pub fn allow(&self, verb: &str, resource: &str) {
        self.access
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(verb.to_string(), resource.to_string()));
    }

    /// Lifts every denial.
    pub fn allow_all(&self) {
        self.access
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Writes a kubeconfig for this server (context `fivexx-lab`,
    /// namespace `default`).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ApiServerError> {
        let url = self.url();
        let spec = crate::control::kubeconfig::KubeconfigSpec {
            server: &url,
            token: self.token(),
            namespace: Some("default"),
            ca_pem: self.ca_pem(),
        };
        crate::control::kubeconfig::write_spec(path, &spec)?;
        Ok(())
    }

    /// Stops serving and ends open watches and port-forwards.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("fake API server did not stop within 5 s");
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn json_response(code: StatusCode, value: &Value, content_type: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, content_type.to_string())],
        value.to_string(),
    )
        .into_response()
}

fn ok_json(value: &Value) -> Response {
    json_response(StatusCode::OK, value, "application/json")
}

/// Every request lands here: authenticate, route, authorize, serve.
async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = match serve(state, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "api request");
    response
}

async fn serve(state: AppState, request: Request) -> Result<Response, ApiError> {
    let route = parse_route(request.uri().path())?;
    let public = matches!(
        route,
        Route::Version | Route::Health | Route::DebugPortForwards
    );
    if let (Some(token), false) = (&state.config.token, public) {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(token.as_str()) {
            return Err(ApiError::unauthorized());
        }
    }
    let get_only = |r: Option<Value>, what: &str| -> Result<Response, ApiError> {
        if request.method() != Method::GET {
            return Err(ApiError::method_not_allowed(
                request.method().as_str(),
                what,
            ));
        }
        r.map(|v| ok_json(&v))
            .ok_or_else(|| ApiError::not_found_path(what))
    };
    match route {
        Route::Version => get_only(Some(discovery::version()), "version"),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::DebugPortForwards => get_only(
            serde_json::to_value(state.port_forwards.stats()).ok(),
            "debug/fivexx/portforwards",
        ),
        Route::CoreVersions => get_only(
            Some(discovery::core_versions(&state.addr.to_string())),
            "api",
        ),
        Route::Groups => get_only(Some(discovery::group_list()), "apis"),
        Route::Group(g) => get_only(discovery::group(&g), &format!("apis/{g}")),
        Route::Resources { group, version } => get_only(
            discovery::resource_list(&group, &version),
            &format!("{group}/{version}"),
        ),
        Route::Object(route) => object::serve_object(state, route, request).await,
        Route::AccessReview => {
            if request.method() != Method::POST {
                return Err(ApiError::method_not_allowed(
                    request.method().as_str(),
                    "selfsubjectaccessreviews",
                ));
            }
            let review = read_json(request.into_body()).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &access_review(&state, review)?,
                "application/json",
            ))
        }
    }
}

/// The RBAC verb of a request.
fn verb_of(method: &Method, route: &ObjectRoute, query: &Query) -> &'static str {
    let collection = route.name.is_none();
    match *method {
        Method::GET if route.subresource.as_deref() == Some("portforward") => "create",
        Method::GET if collection && query.flag("watch") => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

async fn read_json(body: Body) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body must be JSON (YAML is not supported by the lab server): {e}"
        ))
    })
}

/// Answers a SelfSubjectAccessReview from the deny list: allowed unless a
/// (verb, resource[/subresource]) pair is denied.
fn access_review(state: &AppState, mut review: Value) -> Result<Value, ApiError> {
    let attrs = review
        .pointer("/spec/resourceAttributes")
        .cloned()
        .ok_or_else(|| {
            ApiError::bad_request(
                "SelfSubjectAccessReview: spec.resourceAttributes is required (nonResourceAttributes are not supported)",
            )
        })?;
    let field = |f: &str| attrs.get(f).and_then(Value::as_str).unwrap_or("");
    let verb = field("verb");
    if verb.is_empty() || field("resource").is_empty() {
        return Err(ApiError::bad_request(
            "SelfSubjectAccessReview: spec.resourceAttributes.verb and .resource are required",
        ));
    }
    let resource = match field("subresource") {
        "" => field("resource").to_string(),
        sub => format!("{}/{sub}", field("resource")),
    };
    let allowed = !state.access.denies(verb, &resource);
    review["apiVersion"] = "authorization.k8s.io/v1".into();
    review["kind"] = "SelfSubjectAccessReview".into();
    review["status"] = if allowed {
        json!({"allowed": true, "reason": "allowed by the lab's RBAC"})
    } else {
        json!({"allowed": false, "reason": format!("denied by the lab's RBAC: cannot {verb} {resource}")})
    };
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::view::View;
    use super::*;
    use crate::control::store::Kind;

    fn obj(kind: Kind, ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> Route {
        Route::Object(ObjectRoute {
            kind,
            view: View::Native,
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        })
    }

    #[test]
    fn routes_follow_the_rest_layout() {
        assert_eq!(
            parse_route("/api/v1/pods").unwrap(),
            obj(Kind::Pod, None, None, None)
        );
        assert_eq!(
            parse_route("/api/v1/namespaces/d/pods/p/portforward").unwrap(),
            obj(Kind::Pod, Some("d"), Some("p"), Some("portforward"))
        );
        assert_eq!(
            parse_route("/api/v1/namespaces").unwrap(),
            obj(Kind::Namespace, None, None, None)
        );
        assert_eq!(
            parse_route("/api/v1/namespaces/kube-system").unwrap(),
            obj(Kind::Namespace, None, Some("kube-system"), None)
        );
        assert_eq!(
            parse_route("/apis/apps/v1/namespaces/x/daemonsets/a").unwrap(),
            obj(Kind::DaemonSet, Some("x"), Some("a"), None)
        );
        assert_eq!(
            parse_route("/apis/rbac.authorization.k8s.io/v1/clusterroles/r").unwrap(),
            obj(Kind::ClusterRole, None, Some("r"), None)
        );
        assert_eq!(
            parse_route("/apis/discovery.k8s.io/v1/endpointslices").unwrap(),
            obj(Kind::EndpointSlice, None, None, None)
        );
        assert!(
            parse_route("/api/v1/pods/p").is_err(),
            "namespaced object without namespace"
        );
        assert!(
            parse_route("/api/v1/namespaces/d/nodes/n").is_err(),
            "cluster-scoped kind in a namespace"
        );
        assert!(parse_route("/apis/apps/v2/daemonsets").is_err());
        assert!(parse_route("/nope").is_err());
    }

    #[test]
    fn access_wildcards() {
        let a = Access::default();
        a.0.write().unwrap().insert(("list".into(), "*".into()));
        a.0.write()
            .unwrap()
            .insert(("*".into(), "pods/portforward".into()));
        assert!(a.denies("list", "pods"));
        assert!(a.denies("create", "pods/portforward"));
        assert!(!a.denies("get", "pods"));
    }
}
