//! The rules about Services: a connect refused without a reset by a
//! Service IP with no ready endpoint, and a proxy's own 503 while the
//! Service it routes to had none.

use super::classification::{api, Classification, ZeroEndpoints};
use super::config::ExplainConfig;
use super::verdict::{Cause, Confidence, FailedConnection, FailureKind};
use crate::model::timeline::ClusterTimeline;
use crate::model::Observation;

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// A proxy's 503 with no failed upstream connection behind it: a proxy
/// answers 503 itself when the Service it routes to has no ready endpoint
/// (ingress-nginx, Envoy's UH, HAProxy's `<NOSRV>`). It is `no_endpoints`
/// when a Service of the capture had none then, as the proxy saw it: from
/// the API's last removal to its first new ready endpoint plus the
/// proxies' propagation allowance. Otherwise `None`: the upstream's own
/// 503 stays unexplained.
pub(crate) fn classify_no_endpoints(
    status: u16,
    t: i64,
    tl: &ClusterTimeline,
    cfg: &ExplainConfig,
    horizon: i64,
) -> Option<Classification> {
    if status != 503 {
        return None;
    }
    let slack = cfg.proxy_propagation_ns + cfg.skew_ns;
    let zero: Vec<_> = tl
        .services_without_endpoints(t - slack, t.min(horizon))
        .into_iter()
        .filter(|(_, since, until)| {
            *since <= t + cfg.skew_ns && until.is_none_or(|u| t <= u + slack)
        })
        .collect();
    let ((svc, since, until), others) = zero.split_first()?;
    // Those going when the last endpoint left; those coming, not yet
    // ready, just before one was ready again (or now).
    let (terminating, _, _) = tl.service_pods_at(svc, *since);
    let back = until.filter(|u| *u <= horizon).unwrap_or(t.min(horizon));
    let (_, starting, _) = tl.service_pods_at(svc, back - 1);
    let name = format!("{}/{}", svc.0, svc.1);
    let how_long = match until.filter(|u| *u <= horizon) {
        Some(u) => format!("for {:.1} s", secs(u - since)),
        None => format!("for at least {:.1} s", secs(t.min(horizon) - since)),
    };
    let evidence = vec![api(
        *since,
        Observation::text(format!(
            "{name} had 0 ready endpoints {how_long} ({terminating} pods terminating, {starting} not yet ready)"
        )),
    )];
    let note = (!others.is_empty()).then(|| {
        format!(
            "{} other Service(s) had no ready endpoint then too: {}",
            others.len(),
            others
                .iter()
                .map(|(s, _, _)| format!("{}/{}", s.0, s.1))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    Some(Classification {
        cause: Cause::NoEndpoints,
        confidence: if others.is_empty() {
            Confidence::High
        } else {
            Confidence::Low
        },
        evidence,
        pod_uid: None,
        service: Some(svc.clone()),
        no_endpoints_why: Some(ZeroEndpoints {
            terminating,
            starting,
            for_ns: until.filter(|u| *u <= horizon).map(|u| u - since),
        }),
        note,
    })
}

pub(crate) fn classify_service(
    f: &FailedConnection,
    tl: &ClusterTimeline,
    svc: (String, String),
    t: i64,
) -> Classification {
    let name = format!("service {}/{}", svc.0, svc.1);
    if f.kind == FailureKind::Refused && !f.rst {
        let (ready, last_left) = tl.service_ready_count(&svc, t);
        if ready == 0 {
            if let Some(left) = last_left {
                let why = ZeroEndpoints {
                    terminating: tl.service_pods_at(&svc, left).0,
                    starting: tl.service_pods_at(&svc, t).1,
                    for_ns: None,
                };
                return Classification {
                    cause: Cause::NoEndpoints,
                    confidence: Confidence::High,
                    evidence: vec![api(
                        left,
                        Observation::text(format!(
                            "the last ready endpoint of {name} left; none remained"
                        )),
                    )],
                    pod_uid: None,
                    service: Some(svc),
                    no_endpoints_why: Some(why),
                    note: None,
                };
            }
        }
        return Classification::unexplained(
            format!("refused by {name}, which had {ready} ready endpoints"),
            None,
        );
    }
    Classification::unexplained(
        format!("{} failure to {name} (virtual IP): no rule", f.kind.name()),
        None,
    )
}
