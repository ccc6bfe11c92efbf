//! Request paths and query strings: which resource a URL names, as the
//! real API server's REST layout puts it.

use super::discovery;
use super::status::ApiError;
use super::view::View;
use crate::control::store::Kind;

/// The resource a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
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
    /// `GET /debug/fivexx/portforwards`: the lab's own debug endpoint, the
    /// port-forward connections accepted so far (for out-of-process readers
    /// such as the bench). Not authenticated, like `/version`.
    DebugPortForwards,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ObjectRoute {
    pub(super) kind: Kind,
    /// How the stored objects are presented (another API version).
    pub(super) view: View,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) subresource: Option<String>,
}

pub(super) fn parse_route(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let not_found = || ApiError::not_found_path(path);
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz" | "livez" | "readyz"] => return Ok(Route::Health),
        ["debug", "fivexx", "portforwards"] => return Ok(Route::DebugPortForwards),
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
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
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

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}
