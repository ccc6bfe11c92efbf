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
//! Wiring it into the lab:
//!
//! ```no_run
//! # async fn demo(agent_addr: std::net::SocketAddr) -> anyhow::Result<()> {
//! use fivexx_lab::{apiserver::{ApiServer, ApiServerConfig}, cluster::{ClusterStore, ANY_POD}};
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
mod podlog;
mod portforward;
mod selector;
mod status;
mod table;
mod tls;
mod view;
mod watch;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch as tokio_watch;

pub use self::podlog::{render as render_log_line, split_stamp, LogRequest};
pub use self::portforward::PROTOCOLS as PORT_FORWARD_PROTOCOLS;
pub use self::selector::{FieldSelector, LabelSelector};
pub use self::status::ApiError;
use self::view::View;
use self::watch::WatchRequest;
use crate::cluster::{ClusterStore, Kind};

/// Largest request body accepted (a DaemonSet manifest is a few KiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Errors starting the server or writing its kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::KubeconfigError),
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
}

/// A running fake API server. Dropping it stops it.
pub struct ApiServer {
    addr: SocketAddr,
    config: Arc<ApiServerConfig>,
    access: Access,
    ca_pem: Option<String>,
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
        let state = AppState {
            store,
            config: config.clone(),
            access: access.clone(),
            shutdown: shutdown_rx.clone(),
            addr,
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
        let spec = crate::kubeconfig::KubeconfigSpec {
            server: &url,
            token: self.token(),
            namespace: Some("default"),
            ca_pem: self.ca_pem(),
        };
        crate::kubeconfig::write_spec(path, &spec)?;
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

/// The resource a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    Resources {
        group: String,
        version: String,
    },
    Object(ObjectRoute),
    /// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
    AccessReview,
    Health,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ObjectRoute {
    kind: Kind,
    /// How the stored objects are presented (another API version).
    view: View,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_route(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let not_found = || ApiError::not_found_path(path);
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz" | "livez" | "readyz"] => return Ok(Route::Health),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis", discovery::AUTHORIZATION_GROUP, "v1", "selfsubjectaccessreviews"] => {
            return Ok(Route::AccessReview)
        }
        ["apis"] => return Ok(Route::Groups),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["api", v] => {
            return Ok(Route::Resources {
                group: String::new(),
                version: v.to_string(),
            })
        }
        ["apis", g, v] => {
            return Ok(Route::Resources {
                group: g.to_string(),
                version: v.to_string(),
            })
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let kind_at = |plural: &str| View::resolve(group, version, plural).ok_or_else(not_found);
    let owned = |s: Option<&&str>| s.map(|s| s.to_string());
    // /namespaces/NS/<plural>[/name[/sub]] is namespaced; /namespaces[/NAME[/sub]]
    // is the Namespace object itself.
    if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        if let Some((kind, view)) = View::resolve(group, version, rest[2]) {
            if !kind.info().namespaced || rest.len() > 5 {
                return Err(not_found());
            }
            return Ok(Route::Object(ObjectRoute {
                kind,
                view,
                namespace: Some(rest[1].to_string()),
                name: owned(rest.get(3)),
                subresource: owned(rest.get(4)),
            }));
        }
    }
    if rest.is_empty() || rest.len() > 3 {
        return Err(not_found());
    }
    let (kind, view) = kind_at(rest[0])?;
    let route = ObjectRoute {
        kind,
        view,
        namespace: None,
        name: owned(rest.get(1)),
        subresource: owned(rest.get(2)),
    };
    // A namespaced object needs its namespace; only collections span them.
    if kind.info().namespaced && route.name.is_some() {
        return Err(not_found());
    }
    Ok(Route::Object(route))
}

/// Query parameters; repeated keys keep every value.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let pairs = raw
            .map(|q| {
                axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
                    &format!("/?{q}")
                        .parse()
                        .map_err(|_| ApiError::bad_request("malformed query"))?,
                )
                .map(|q| q.0)
                .map_err(|e| ApiError::bad_request(format!("malformed query: {e}")))
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Query(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
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
    let public = matches!(route, Route::Version | Route::Health);
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
        Route::Object(route) => serve_object(state, route, request).await,
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

async fn serve_object(
    state: AppState,
    route: ObjectRoute,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query())?;
    let kind = route.kind;
    let info = kind.info();
    let verb = verb_of(&parts.method, &route, &query);
    let resource = match &route.subresource {
        Some(sub) => format!("{}/{sub}", info.plural),
        None => info.plural.to_string(),
    };
    if let Some(sub) = &route.subresource {
        if !info.subresources.contains(&sub.as_str()) {
            return Err(ApiError::not_found_path(parts.uri.path()));
        }
    }
    if state.access.denies(verb, &resource) {
        return Err(ApiError::forbidden(
            &state.config.user,
            verb,
            kind,
            route.subresource.as_deref(),
            route.namespace.as_deref(),
            route.name.as_deref(),
        ));
    }
    if query.get("dryRun").is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the fivexx lab API server",
        ));
    }
    if route.view.read_only() && parts.method != Method::GET {
        return Err(ApiError::method_not_allowed(
            parts.method.as_str(),
            &format!(
                "{} (a read-only view; write core/v1 instead)",
                parts.uri.path()
            ),
        ));
    }
    let view = route.view;
    let store = &state.store;
    let ns = route.namespace.clone().unwrap_or_default();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let as_table = table::wanted(accept.as_deref());

    match (
        parts.method.clone(),
        route.name.clone(),
        route.subresource.as_deref(),
    ) {
        (Method::GET, Some(name), Some("portforward"))
        | (Method::POST, Some(name), Some("portforward")) => {
            let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(|_| {
                ApiError::bad_request("pods/portforward needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not supported")
            })?;
            port_forward(&state, &ns, &name, &query, upgrade)
        }
        (Method::GET, Some(name), Some("log")) => pod_log(&state, &ns, &name, &query),
        (Method::GET, None, None) if query.flag("watch") => {
            let request = WatchRequest {
                kind,
                namespace: route.namespace.clone(),
                labels: label_selector(&query)?,
                fields: field_selector(&route, &query)?,
                view,
                resource_version: parse_rv(query.get("resourceVersion"))?,
                timeout: query
                    .get("timeoutSeconds")
                    .map(|t| t.parse::<u64>().map(Duration::from_secs))
                    .transpose()
                    .map_err(|_| {
                        ApiError::bad_request("timeoutSeconds must be a whole number of seconds")
                    })?,
                bookmarks: query.flag("allowWatchBookmarks"),
                send_initial_events: query.flag("sendInitialEvents"),
                as_table,
            };
            Ok(watch::serve(
                store,
                request,
                state.config.bookmark_interval,
                state.shutdown.clone(),
            ))
        }
        (Method::GET, None, None) => {
            let labels = label_selector(&query)?;
            let fields = field_selector(&route, &query)?;
            let (items, rv) = store.list(kind, route.namespace.as_deref());
            let (natives, items): (Vec<Value>, Vec<Value>) = items
                .into_iter()
                .map(|o| {
                    let shown = view.present(&o);
                    (o, shown)
                })
                .filter(|(_, o)| labels.matches(o) && fields.matches(o))
                .unzip();
            if as_table {
                return Ok(json_response(
                    StatusCode::OK,
                    &table::render(kind, &natives, rv, true),
                    table::CONTENT_TYPE,
                ));
            }
            Ok(ok_json(&json!({
                "kind": format!("{}List", info.kind),
                "apiVersion": view.api_version(kind),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })))
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let object = store
                .get(kind, &ns, &name)
                .ok_or_else(|| ApiError::from_cluster(kind, not_found(kind, &name)))?;
            if as_table {
                let rv = crate::cluster::object_rv(&object);
                return Ok(json_response(
                    StatusCode::OK,
                    &table::render(kind, std::slice::from_ref(&object), rv, true),
                    table::CONTENT_TYPE,
                ));
            }
            Ok(ok_json(&view.present(&object)))
        }
        (Method::POST, Some(name), Some("eviction")) => {
            // kubectl drain's path: an Eviction is a graceful delete (the
            // lab has no PodDisruptionBudgets to refuse it).
            // kube-rs sends neither kind nor apiVersion (the subresource
            // implies them), and its delete options as `delete_options`.
            let eviction = read_json(body).await?;
            if !eviction.is_object()
                || eviction
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k != "Eviction")
            {
                return Err(ApiError::bad_request(
                    "the body of pods/eviction must be an Eviction",
                ));
            }
            let grace = [
                "/deleteOptions/gracePeriodSeconds",
                "/delete_options/gracePeriodSeconds",
            ]
            .iter()
            .find_map(|p| eviction.pointer(p).and_then(Value::as_i64));
            delete_one(&state, kind, &ns, &name, grace)?;
            let done = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
            Ok(json_response(
                StatusCode::CREATED,
                &done,
                "application/json",
            ))
        }
        (Method::POST, None, None) => {
            let mut object = read_json(body).await?;
            place(kind, &mut object, route.namespace.as_deref(), None)?;
            let created = store
                .create(kind, object)
                .map_err(|e| ApiError::from_cluster(kind, e))?;
            Ok(json_response(
                StatusCode::CREATED,
                &created,
                "application/json",
            ))
        }
        (Method::PUT, Some(name), None | Some("status")) => {
            let mut object = read_json(body).await?;
            place(kind, &mut object, route.namespace.as_deref(), Some(&name))?;
            let replaced = store
                .replace(kind, object)
                .map_err(|e| ApiError::from_cluster(kind, e))?;
            Ok(ok_json(&replaced))
        }
        (Method::PATCH, Some(name), None | Some("status")) => {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let patch = read_json(body).await?;
            match content_type.as_str() {
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                    let manager = query
                        .get("fieldManager")
                        .filter(|m| !m.is_empty())
                        .ok_or_else(|| ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"))?;
                    let existed = store.get(kind, &ns, &name).is_some();
                    let applied = store
                        .apply(kind, &ns, &name, patch, manager, query.flag("force"))
                        .map_err(|e| ApiError::from_cluster(kind, e))?;
                    let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
                    Ok(json_response(code, &applied, "application/json"))
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    let patched = store
                        .merge_patch(kind, &ns, &name, &patch)
                        .map_err(|e| ApiError::from_cluster(kind, e))?;
                    Ok(ok_json(&patched))
                }
                other => Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"),
                )),
            }
        }
        (Method::DELETE, Some(name), None) => {
            let options = read_json(body).await.unwrap_or(Value::Null);
            let grace = query
                .get("gracePeriodSeconds")
                .and_then(|g| g.parse::<i64>().ok())
                .or_else(|| options.get("gracePeriodSeconds").and_then(Value::as_i64));
            delete_one(&state, kind, &ns, &name, grace)
        }
        (Method::DELETE, None, None) => {
            let labels = label_selector(&query)?;
            let fields = field_selector(&route, &query)?;
            let (items, rv) = store.list(kind, route.namespace.as_deref());
            let mut deleted = Vec::new();
            for o in items
                .iter()
                .filter(|o| labels.matches(o) && fields.matches(o))
            {
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Ok(gone) = store.delete(kind, ns, name) {
                    deleted.push(gone);
                }
            }
            Ok(ok_json(&json!({
                "kind": format!("{}List", info.kind),
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": rv.to_string()},
                "items": deleted,
            })))
        }
        (method, _, _) => Err(ApiError::method_not_allowed(
            method.as_str(),
            parts.uri.path(),
        )),
    }
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

fn not_found(kind: Kind, name: &str) -> crate::cluster::ClusterError {
    crate::cluster::ClusterError::NotFound {
        plural: kind.info().plural.into(),
        name: name.into(),
    }
}

fn delete_one(
    state: &AppState,
    kind: Kind,
    ns: &str,
    name: &str,
    grace: Option<i64>,
) -> Result<Response, ApiError> {
    let store = &state.store;
    if kind == Kind::Pod && state.config.graceful_pod_delete && grace != Some(0) {
        let pod = store
            .get(kind, ns, name)
            .ok_or_else(|| ApiError::from_cluster(kind, not_found(kind, name)))?;
        let owned_by_daemon_set = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"));
        if !owned_by_daemon_set {
            let terminating = store
                .mark_pod_terminating(ns, name, grace)
                .map_err(|e| ApiError::from_cluster(kind, e))?;
            return Ok(ok_json(&terminating));
        }
    }
    let gone = store
        .delete(kind, ns, name)
        .map_err(|e| ApiError::from_cluster(kind, e))?;
    Ok(ok_json(&status::deleted_status(kind, &gone)))
}

/// Puts the URL's namespace (and name) into a body, rejecting a mismatch.
fn place(
    kind: Kind,
    object: &mut Value,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<(), ApiError> {
    let Some(obj) = object.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let info = kind.info();
    for (field, want) in [("apiVersion", info.api_version), ("kind", info.kind)] {
        if let Some(got) = obj.get(field).and_then(Value::as_str) {
            if got != want {
                return Err(ApiError::bad_request(format!(
                    "{field} {got:?} in the body does not match the request's {want:?}"
                )));
            }
        }
    }
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    if let Some(name) = name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            _ => {
                meta.insert("name".into(), name.into());
            }
        }
    }
    if info.namespaced {
        let ns = namespace.unwrap_or("default");
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if n != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object does not match the namespace sent on the request ({n} vs {ns})"
                )))
            }
            _ => {
                meta.insert("namespace".into(), ns.into());
            }
        }
    }
    Ok(())
}

fn parse_rv(raw: Option<&str>) -> Result<Option<u64>, ApiError> {
    match raw {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {v:?}"))),
    }
}

fn label_selector(query: &Query) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(query.get("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)
}

fn field_selector(route: &ObjectRoute, query: &Query) -> Result<FieldSelector, ApiError> {
    let text = query.get("fieldSelector").unwrap_or("");
    match route.view {
        View::Native => FieldSelector::parse(route.kind, text),
        View::EventsV1 => FieldSelector::parse_fields(text, &view::EVENTS_V1_FIELDS),
    }
    .map_err(ApiError::bad_request)
}

/// Validates a log request (pod, container, since) and streams the log.
fn pod_log(
    state: &AppState,
    namespace: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let pod = state
        .store
        .get(Kind::Pod, namespace, name)
        .ok_or_else(|| ApiError::from_cluster(Kind::Pod, not_found(Kind::Pod, name)))?;
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match query.get("container") {
        Some(c) if !containers.contains(&c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None if containers.len() > 1 => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
        _ => {}
    }
    let now = jiff::Timestamp::now()
        .as_nanosecond()
        .try_into()
        .unwrap_or(i64::MAX);
    let request = LogRequest::parse(
        query.flag("follow"),
        query.flag("timestamps"),
        query.get("sinceTime"),
        query.get("sinceSeconds"),
        now,
    )
    .map_err(ApiError::bad_request)?;
    Ok(podlog::serve(
        state.store.clone(),
        namespace.to_string(),
        name.to_string(),
        state.store.pod_log_path(namespace, name),
        request,
        state.shutdown.clone(),
    ))
}

/// Validates a port-forward and upgrades it.
fn port_forward(
    state: &AppState,
    namespace: &str,
    name: &str,
    query: &Query,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let pod = state
        .store
        .get(Kind::Pod, namespace, name)
        .ok_or_else(|| ApiError::from_cluster(Kind::Pod, not_found(Kind::Pod, name)))?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    if phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} is not running (phase {phase})"
        )));
    }
    let ports = portforward::parse_ports(query.all("ports")).map_err(ApiError::bad_request)?;
    let pod_ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let targets = ports
        .iter()
        .map(|&port| portforward::PortTarget {
            port,
            target: state
                .store
                .port_forward_target(namespace, name, port)
                .or_else(|| pod_ip.map(|ip| SocketAddr::new(ip, port)))
                .ok_or_else(|| "the pod has no IP".to_string()),
        })
        .collect();
    let shutdown = state.shutdown.clone();
    let pod_name = format!("{namespace}/{name}");
    Ok(upgrade
        .protocols(portforward::PROTOCOLS)
        .on_upgrade(move |socket| portforward::run(socket, pod_name, targets, shutdown)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
