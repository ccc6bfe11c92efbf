//! Requests on objects: get, list and watch with selectors, create,
//! replace, server-side apply and merge patch, delete (graceful for pods)
//! and deletecollection, evictions, and the `log` and `portforward`
//! subresources of pods.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::{header, request::Parts, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::podlog::{self, LogRequest};
use super::portforward;
use super::route::{ObjectRoute, Query};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, ApiError};
use super::table;
use super::view::{self, View};
use super::watch::{self, WatchRequest};
use super::{json_response, ok_json, read_json, verb_of, AppState};
use crate::control::store::Kind;

/// Authorizes a request on objects and serves it.
pub(super) async fn serve_object(
    state: AppState,
    route: ObjectRoute,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query())?;
    authorize(&state, &route, &parts, &query)?;
    let kind = route.kind;
    let ns = route.namespace.clone().unwrap_or_default();
    let as_table = table::wanted(
        parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let store = &state.store;
    match (
        parts.method.clone(),
        route.name.clone(),
        route.subresource.as_deref(),
    ) {
        (Method::GET | Method::POST, Some(name), Some("portforward")) => {
            let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(|_| {
                ApiError::bad_request("pods/portforward needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not supported")
            })?;
            port_forward(&state, &ns, &name, &query, upgrade)
        }
        (Method::GET, Some(name), Some("log")) => pod_log(&state, &ns, &name, &query),
        (Method::GET, None, None) if query.flag("watch") => {
            watch_objects(&state, &route, &query, as_table)
        }
        (Method::GET, None, None) => list_objects(&state, &route, &query, as_table),
        (Method::GET, Some(name), None | Some("status")) => {
            let object = store
                .get(kind, &ns, &name)
                .ok_or_else(|| ApiError::from_cluster(kind, not_found(kind, &name)))?;
            if as_table {
                let rv = crate::control::store::object_rv(&object);
                return Ok(json_response(
                    StatusCode::OK,
                    &table::render(kind, std::slice::from_ref(&object), rv, true),
                    table::CONTENT_TYPE,
                ));
            }
            Ok(ok_json(&route.view.present(&object)))
        }
        (Method::POST, Some(name), Some("eviction")) => evict(&state, kind, &ns, &name, body).await,
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
            patch_object(&state, kind, &ns, &name, &parts, &query, body).await
        }
        (Method::DELETE, Some(name), None) => {
            let options = read_json(body).await.unwrap_or(Value::Null);
            let grace = query
                .get("gracePeriodSeconds")
                .and_then(|g| g.parse::<i64>().ok())
                .or_else(|| options.get("gracePeriodSeconds").and_then(Value::as_i64));
            delete_one(&state, kind, &ns, &name, grace)
        }
        (Method::DELETE, None, None) => delete_collection(&state, &route, &query),
        (method, _, _) => Err(ApiError::method_not_allowed(
            method.as_str(),
            parts.uri.path(),
        )),
    }
}

/// The checks before any object request: the subresource exists, RBAC
/// allows the verb, no dry run, and read-only views are only read.
fn authorize(
    state: &AppState,
    route: &ObjectRoute,
    parts: &Parts,
    query: &Query,
) -> Result<(), ApiError> {
    let kind = route.kind;
    let info = kind.info();
    let verb = verb_of(&parts.method, route, query);
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
    Ok(())
}

/// `GET collection?watch=true`.
fn watch_objects(
    state: &AppState,
    route: &ObjectRoute,
    query: &Query,
    as_table: bool,
) -> Result<Response, ApiError> {
    let request = WatchRequest {
        kind: route.kind,
        namespace: route.namespace.clone(),
        labels: label_selector(query)?,
        fields: field_selector(route, query)?,
        view: route.view,
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
        &state.store,
        request,
        state.config.bookmark_interval,
        state.shutdown.clone(),
    ))
}

/// `GET collection`: a List (or a Table) of the objects that match.
fn list_objects(
    state: &AppState,
    route: &ObjectRoute,
    query: &Query,
    as_table: bool,
) -> Result<Response, ApiError> {
    let kind = route.kind;
    let view = route.view;
    let labels = label_selector(query)?;
    let fields = field_selector(route, query)?;
    let (items, rv) = state.store.list(kind, route.namespace.as_deref());
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
        "kind": format!("{}List", kind.info().kind),
        "apiVersion": view.api_version(kind),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })))
}

/// `POST pods/NAME/eviction`: kubectl drain's path. An Eviction is a
/// graceful delete (the lab has no PodDisruptionBudgets to refuse it).
/// kube-rs sends neither kind nor apiVersion (the subresource implies
/// them), and its delete options as `delete_options`.
async fn evict(
    state: &AppState,
    kind: Kind,
    ns: &str,
    name: &str,
    body: Body,
) -> Result<Response, ApiError> {
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
    delete_one(state, kind, ns, name, grace)?;
    let done = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(
        StatusCode::CREATED,
        &done,
        "application/json",
    ))
}

/// `PATCH`: server-side apply or a merge patch, by content type.
async fn patch_object(
    state: &AppState,
    kind: Kind,
    ns: &str,
    name: &str,
    parts: &Parts,
    query: &Query,
    body: Body,
) -> Result<Response, ApiError> {
    let store = &state.store;
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
            let existed = store.get(kind, ns, name).is_some();
            let applied = store
                .apply(kind, ns, name, patch, manager, query.flag("force"))
                .map_err(|e| ApiError::from_cluster(kind, e))?;
            let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
            Ok(json_response(code, &applied, "application/json"))
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let patched = store
                .merge_patch(kind, ns, name, &patch)
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

/// `DELETE collection`: deletes what the selectors match; returns them.
fn delete_collection(
    state: &AppState,
    route: &ObjectRoute,
    query: &Query,
) -> Result<Response, ApiError> {
    let kind = route.kind;
    let info = kind.info();
    let labels = label_selector(query)?;
    let fields = field_selector(route, query)?;
    let (items, rv) = state.store.list(kind, route.namespace.as_deref());
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
        if let Ok(gone) = state.store.delete(kind, ns, name) {
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

fn not_found(kind: Kind, name: &str) -> crate::control::store::ClusterError {
    crate::control::store::ClusterError::NotFound {
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
    if state.store.is_silenced(namespace, name) {
        return Err(ApiError::bad_request(format!(
            "error dialing backend: the node of pod {name} does not answer"
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
    let counts = state.port_forwards.clone();
    let store = state.store.clone();
    let (ns, pod) = (namespace.to_string(), name.to_string());
    let silenced = Box::new(move || store.is_silenced(&ns, &pod));
    Ok(upgrade
        .protocols(portforward::PROTOCOLS)
        .on_upgrade(move |socket| {
            counts.accepted(&pod_name);
            portforward::run(socket, pod_name, targets, shutdown, silenced)
        }))
}
