//! `?watch=true`: a chunked stream of WatchEvent JSON lines, resumable from
//! a resourceVersion, with bookmarks, selector-aware ADDED/DELETED
//! translation, `timeoutSeconds`, and `410 Expired` for compacted versions.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::table;
use super::view::View;
use crate::control::store::{Change, ChangeType, ClusterError, ClusterStore, Kind};

/// What one watch request asked for.
pub struct WatchRequest {
    pub kind: Kind,
    /// `None`: all namespaces (or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// How objects are presented (and selected): another API version.
    pub view: View,
    /// `None` for `""`/`"0"`: start with the current state.
    pub resource_version: Option<u64>,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: synthetic ADDED events, then a bookmark
    /// annotated `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
    /// kubectl's `-w`: each object as a one-row Table.
    pub as_table: bool,
}

impl WatchRequest {
    fn selects(&self, object: &Value) -> bool {
        let ns_ok = match &self.namespace {
            Some(ns) if self.kind.info().namespaced => {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(ns)
            }
            _ => true,
        };
        if !ns_ok {
            return false;
        }
        let shown = self.view.present(object);
        self.labels.matches(&shown) && self.fields.matches(&shown)
    }

    /// The event a watcher with this filter sees for a change, if any: an
    /// object entering the selection is ADDED, one leaving it is DELETED.
    fn event_for(&self, change: &Change) -> Option<(&'static str, Value)> {
        let now = self.selects(&change.object);
        let ty = match change.change {
            ChangeType::Added | ChangeType::Deleted if now => change.change.as_str(),
            ChangeType::Modified => {
                let before = change.previous.as_ref().is_some_and(|p| self.selects(p));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            _ => return None,
        };
        let object = if self.as_table {
            table::render(
                self.kind,
                std::slice::from_ref(&change.object),
                change.resource_version,
                true,
            )
        } else {
            self.view.present(&change.object)
        };
        Some((ty, object))
    }

    fn bookmark(&self, resource_version: u64, initial_events_end: bool) -> Value {
        let info = self.kind.info();
        let api_version = self.view.api_version(self.kind);
        let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        json!({
            "type": "BOOKMARK",
            "object": { "kind": info.kind, "apiVersion": api_version, "metadata": metadata },
        })
    }
}

fn line(event: &Value) -> Result<Bytes, Infallible> {
    let mut text = event.to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

/// Starts the watch and returns the streaming response.
pub fn serve(
    store: &ClusterStore,
    request: WatchRequest,
    bookmark_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let start = store.watch(request.kind, request.resource_version);
    tokio::spawn(async move {
        let start = match start {
            Ok(start) => start,
            Err(err @ ClusterError::Gone { .. }) => {
                // As the real server: 200, then one ERROR event, then EOF.
                let status = ApiError::from_cluster(request.kind, err).to_status();
                let _ = tx
                    .send(line(&json!({"type": "ERROR", "object": status})))
                    .await;
                return;
            }
            Err(err) => {
                let status = ApiError::from_cluster(request.kind, err).to_status();
                let _ = tx
                    .send(line(&json!({"type": "ERROR", "object": status})))
                    .await;
                return;
            }
        };
        let mut progress = start.resource_version;
        for change in &start.backlog {
            if let Some((ty, object)) = request.event_for(change) {
                if tx
                    .send(line(&json!({"type": ty, "object": object})))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if request.send_initial_events {
            let _ = tx.send(line(&request.bookmark(progress, true))).await;
        }
        let mut live = start.live;
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                _ = shutdown.changed() => break,
                _ = sleep_until(deadline) => break,
                _ = ticker.tick(), if request.bookmarks => {
                    if tx.send(line(&request.bookmark(progress, false))).await.is_err() {
                        break;
                    }
                }
                next = live.recv() => match next {
                    Ok(change) => {
                        if change.resource_version <= progress {
                            continue;
                        }
                        progress = change.resource_version;
                        if change.kind != request.kind {
                            continue;
                        }
                        if let Some((ty, object)) = request.event_for(&change) {
                            if tx.send(line(&json!({"type": ty, "object": object}))).await.is_err() {
                                break;
                            }
                        }
                    }
                    // Too slow a reader: end the watch; the client resumes
                    // from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(kind = %request.kind, skipped = n, "watcher lagged; closing watch");
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
