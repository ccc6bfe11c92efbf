//! The RBAC preflight: every permission a session needs, checked before
//! anything starts.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::target::Scope;
use super::KubeClient;
use crate::error::CliError;
use crate::manifests::AGENT_NAMESPACE;

/// Checks up front, with SelfSubjectAccessReviews, every permission the
/// session needs, so that a denial names its verb and resource before
/// anything starts. When reviews themselves are not allowed, the calls
/// will tell instead.
pub async fn preflight(client: &KubeClient, scope: &Scope) -> Result<(), CliError> {
    let ns = scope.namespace.clone();
    let mut wanted: Vec<(&str, &str, &str, Option<String>)> = Vec::new();
    for (group, res) in [
        ("", "pods"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "events"),
        ("", "services"),
    ] {
        for verb in ["list", "watch"] {
            wanted.push((verb, group, res, ns.clone()));
        }
    }
    for verb in ["list", "watch"] {
        wanted.push((verb, "", "nodes", None));
    }
    wanted.push((
        "create",
        "",
        "pods/portforward",
        Some(AGENT_NAMESPACE.to_string()),
    ));
    let api: Api<SelfSubjectAccessReview> = Api::all(client.kube.clone());
    let reviews = wanted.iter().map(|(verb, group, res, ns)| {
        let (resource, sub) = match res.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (res.to_string(), None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource),
                    subresource: sub,
                    namespace: ns.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api = api.clone();
        async move { api.create(&PostParams::default(), &review).await }
    });
    let answers = futures::future::join_all(reviews).await;
    for ((verb, _, res, ns), answer) in wanted.iter().zip(answers) {
        let Ok(review) = answer else { continue };
        let status = review.status.unwrap_or_default();
        if !status.allowed {
            let scope = match ns {
                Some(n) => format!(" in namespace {n}"),
                None => " at cluster scope".into(),
            };
            return Err(CliError::new(
                format!(
                    "forbidden: cannot {verb} {res}{scope}{}",
                    status.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                format!(
                    "ask your cluster admin for `{verb}` on `{res}` (check with `kubectl auth can-i {verb} {res}{}`)",
                    ns.as_ref().map(|n| format!(" -n {n}")).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}
