//! Errors as the API server sends them: `metav1.Status` objects with the
//! HTTP code, reason and details that clients (kube-rs, kubectl) parse.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::control::store::{ClusterError, Kind};

/// A failed request, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: StatusCode,
    /// `NotFound`, `Forbidden`, `Conflict`, `AlreadyExists`, `BadRequest`,
    /// `Unauthorized`, `Expired`, `Invalid`, `MethodNotAllowed`, ...
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status: (name, group, kind-as-plural).
    pub details: Option<(String, String, String)>,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found_path(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// RBAC's denial, worded as the real authorizer words it so that the
    /// plugin's parsing of "cannot VERB resource RES" is tested for real.
    pub fn forbidden(
        user: &str,
        verb: &str,
        kind: Kind,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Self {
        let info = kind.info();
        let resource = match subresource {
            Some(sub) => format!("{}/{sub}", info.plural),
            None => info.plural.to_string(),
        };
        let subject = match name {
            Some(n) => format!("{resource} \"{n}\""),
            None => resource.clone(),
        };
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        ApiError {
            code: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message: format!(
                "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
                info.group
            ),
            details: Some((name.unwrap_or_default().into(), info.group.into(), info.plural.into())),
        }
    }

    /// The Status object's JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some((name, group, kind)) = &self.details {
            let mut details = json!({ "kind": kind });
            if !name.is_empty() {
                details["name"] = name.clone().into();
            }
            if !group.is_empty() {
                details["group"] = group.clone().into();
            }
            status["details"] = details;
        }
        status
    }

    /// Maps a store error for `kind` to its Status.
    pub fn from_cluster(kind: Kind, err: ClusterError) -> Self {
        let info = kind.info();
        let message = err.to_string();
        let with = |code, reason, name: &str, group: &str, plural: &str| ApiError {
            code,
            reason,
            message: message.clone(),
            details: Some((name.into(), group.into(), plural.into())),
        };
        match &err {
            ClusterError::NotFound { plural, name } => {
                // The missing object may be the namespace, not `kind`.
                let group = if plural == "namespaces" {
                    ""
                } else {
                    info.group
                };
                with(StatusCode::NOT_FOUND, "NotFound", name, group, plural)
            }
            ClusterError::AlreadyExists { plural, name } => with(
                StatusCode::CONFLICT,
                "AlreadyExists",
                name,
                info.group,
                plural,
            ),
            ClusterError::Conflict { plural, name, .. } => {
                with(StatusCode::CONFLICT, "Conflict", name, info.group, plural)
            }
            ClusterError::Invalid(_) => ApiError::bad_request(message),
            ClusterError::Gone { .. } => ApiError::new(StatusCode::GONE, "Expired", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_status().to_string();
        (
            self.code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The `Status` a successful immediate deletion returns.
pub fn deleted_status(kind: Kind, object: &Value) -> Value {
    let info = kind.info();
    let mut details = json!({
        "name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
        "kind": info.plural,
        "uid": object.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
    });
    if !info.group.is_empty() {
        details["group"] = info.group.into();
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
