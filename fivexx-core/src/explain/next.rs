//! The next command: what a person runs to narrow a verdict down further,
//! as a triage table pairs each status with its first command. Filled in
//! with the names the facts gave (namespace, workload, pod, Service, the
//! proxy pod), never with placeholders: when a name is not known the
//! command asks the cluster for it instead.

use super::verdict::{Cause, Failure, NextStep, Verdict};
use crate::model::timeline::ClusterTimeline;
use std::net::IpAddr;

/// The next step for `v`; `tl` names the proxy behind an address.
pub(crate) fn next_step(v: &Verdict, tl: &ClusterTimeline, skew: i64) -> Option<NextStep> {
    let n = Names::of(v);
    let step = |command: String, why: String| Some(NextStep { command, why });
    match v.cause {
        Cause::EndpointLagNetnsAlive | Cause::EndpointLagNetnsGone => {
            let ns = n.ns?;
            let command = match &n.service {
                Some(svc) => format!(
                    "kubectl get endpointslices -n {ns} -l kubernetes.io/service-name={svc} -w"
                ),
                None => format!("kubectl get endpointslices -n {ns} -w"),
            };
            step(
                command,
                format!(
                    "run it during the next rollout: {} should leave the endpoints before its SIGTERM; the time between its deletion and that update is the lag the preStop sleep must cover",
                    n.pod.unwrap_or("the pod")
                ),
            )
        }
        Cause::LbDeregistrationLag => lb_deregistration(&n),
        Cause::ProxyTerminated => step(
            format!(
                "kubectl get -n {} {} -o jsonpath='{{{}.terminationGracePeriodSeconds}} {{{}.containers[*].lifecycle.preStop}}'",
                n.ns?,
                n.target?,
                n.spec,
                n.spec
            ),
            "the proxy pods' grace period and preStop: a replica must keep accepting until the load balancer in front (or the clients' DNS) has stopped sending to it, and drain within its grace period".into(),
        ),
        Cause::KeepAliveRace => step(
            format!(
                "kubectl get -n {} {} -o jsonpath='{{{}.containers[*].lifecycle.preStop}}'",
                n.ns?,
                n.target?,
                n.spec
            ),
            "a pod that closes pooled connections as it stops needs a preStop sleep longer than the proxy's idle keep-alive reuse: see whether it has one".into(),
        ),
        Cause::SigkillAtGraceExpiry => step(
            format!(
                "kubectl get -n {} {} -o jsonpath='{{{}.terminationGracePeriodSeconds}}'",
                n.ns?,
                n.target?,
                n.spec
            ),
            "the app was still serving when its grace period ran out: compare the grace period with how long its shutdown takes".into(),
        ),
        Cause::SigtermIgnored => step(
            format!(
                "kubectl exec -n {} {} -- grep -E '^Sig(Ign|Cgt)' /proc/1/status",
                n.ns?,
                n.target?
            ),
            "PID 1 ignored SIGTERM: bit 15 (0x4000) set in SigIgn means it ignores it, clear in SigCgt means it has no handler (a shell wrapper as PID 1 often does neither)".into(),
        ),
        Cause::OomKill => step(
            format!(
                "kubectl describe pod -n {} {} | grep -E -A4 'Last State|Limits'",
                n.ns?,
                n.pod_name?
            ),
            "OOMKilled in its last state, and the memory limit it hit".into(),
        ),
        Cause::NotReadyAtStart => step(
            format!(
                "kubectl get -n {} {} -o jsonpath='{{{}.containers[*].readinessProbe}}'",
                n.ns?,
                n.target?,
                n.spec
            ),
            "traffic reached it before it listened: a readiness probe on the serving port keeps it out of the endpoints until then".into(),
        ),
        Cause::NoEndpoints => {
            let ns = n.ns?;
            let svc = n.service?;
            step(
                format!(
                    "kubectl get endpointslices -n {ns} -l kubernetes.io/service-name={svc} -o wide"
                ),
                format!("Service {ns}/{svc} had no ready address: see which pods are not ready, and why"),
            )
        }
        Cause::PrestopFailed => step(
            format!(
                "kubectl get events -n {} --field-selector reason=FailedPreStopHook",
                n.ns?
            ),
            "the kubelet's message names the hook and why it failed; lifecycle.preStop.sleep needs no binary in the image".into(),
        ),
        Cause::KeepAliveIdleTimeout => step(
            format!(
                "kubectl get -n {} {} -o jsonpath='{{{}.containers[*].args}} {{{}.containers[*].env}}'",
                n.ns?,
                n.target?,
                n.spec,
                n.spec
            ),
            "find the server's idle keep-alive timeout (Node.js keepAliveTimeout defaults to 5 s, Gunicorn --keep-alive to 2 s, Puma persistent_timeout to 20 s): it must be longer than the proxy's upstream idle timeout (ingress-nginx upstream-keepalive-timeout 60 s, HAProxy timeout http-keep-alive, Envoy's cluster idle_timeout 1 h)".into(),
        ),
        Cause::NodeLost => {
            let node = v.episode.as_ref().map(|e| e.subject.clone());
            match node {
                Some(node) => step(
                    format!("kubectl describe node {node}"),
                    format!("its Conditions and Events say when node {node} stopped posting status and why (a reboot, a shutdown, a spot reclaim); the cloud's instance history says whether it was terminated"),
                ),
                None => step(
                    "kubectl get nodes".into(),
                    "find the node that is NotReady or gone".into(),
                ),
            }
        }
        Cause::Unexplained => unexplained(v, &n, tl, skew),
    }
}

/// A load balancer outside the cluster: its settings live on the Service
/// (or Ingress) that made it; the pods' side is their preStop.
fn lb_deregistration(n: &Names) -> Option<NextStep> {
    let ns = n.ns?;
    let (command, why) = match &n.service {
        Some(svc) => (
            format!("kubectl get service -n {ns} {svc} -o jsonpath='{{.metadata.annotations}}'"),
            "the load balancer's target settings (target type ip, deregistration delay, health checks) are in its annotations (a TargetGroupBinding or an Ingress's annotations on AWS, a BackendConfig on GKE); the pods need a preStop sleep longer than its deregistration",
        ),
        None => (
            format!(
                "kubectl get -n {ns} {} -o jsonpath='{{{}.containers[*].lifecycle.preStop}}'",
                n.target.as_deref()?,
                n.spec
            ),
            "a load balancer outside the cluster sends to the pods' IPs: they need a preStop sleep longer than its deregistration",
        ),
    };
    Some(NextStep {
        command,
        why: why.into(),
    })
}

/// An unexplained failure: an upstream's own 5xx points at its log, a
/// proxy's 502/504 at the proxy's, an address nobody owned at who owns it.
fn unexplained(v: &Verdict, n: &Names, tl: &ClusterTimeline, skew: i64) -> Option<NextStep> {
    match &v.failure {
        Failure::Answer(a) => {
            let t = a.at_ns;
            let status = a.http_status;
            let upstream = a
                .upstream
                .map(|u| u.remote.ip())
                .or_else(|| a.failed_tries.last().map(|s| s.ip()))
                .and_then(|ip| tl.owner_at(ip, t, skew));
            if !matches!(status, 502 | 504) {
                if let Some(p) = upstream {
                    let target = p
                        .workload
                        .as_ref()
                        .map_or(format!("pod/{}", p.name), |w| w.to_string());
                    return Some(NextStep {
                        command: format!("kubectl logs -n {} {target} --since=15m", p.namespace),
                        why: format!("the upstream answered {status} itself: its own log says why"),
                    });
                }
            }
            let proxy = v.involved.proxy.as_ref();
            let proxy_pod = proxy.and_then(|p| p.pod.clone()).or_else(|| {
                let ip = proxy?.address?;
                tl.owner_at(ip, t, skew).map(|p| p.display.to_string())
            });
            if let Some((ns, name)) = proxy_pod.as_deref().and_then(|p| p.split_once('/')) {
                return Some(NextStep {
                    command: format!("kubectl logs -n {ns} {name} --since=15m | grep -w {status}"),
                    why: format!(
                        "no failed upstream connection was seen behind this {status}: the proxy's own log names the upstream and why it gave up"
                    ),
                });
            }
            let ip = proxy.and_then(|p| p.address)?;
            Some(who_owns(
                ip,
                format!("find the proxy that answered {status}, then read its log"),
            ))
        }
        Failure::Connection(c) => {
            if let (Some(ns), Some(target)) = (n.ns, &n.target) {
                return Some(NextStep {
                    command: format!("kubectl logs -n {ns} {target} --since=15m"),
                    why: format!(
                        "{} failed a connection with no termination, kill or endpoint change around it: the app's own log may say why",
                        n.pod.unwrap_or("the pod")
                    ),
                });
            }
            Some(who_owns(
                c.tuple.daddr,
                format!(
                    "nothing in the capture owned {} then: see what does now",
                    c.tuple.daddr
                ),
            ))
        }
    }
}

fn who_owns(ip: IpAddr, why: String) -> NextStep {
    NextStep {
        command: format!("kubectl get pods -A -o wide --field-selector status.podIP={ip}"),
        why,
    }
}

/// The names a command needs, from the verdict.
struct Names<'a> {
    ns: Option<&'a str>,
    /// `namespace/name` of the pod, and its name alone.
    pod: Option<&'a str>,
    pod_name: Option<&'a str>,
    /// `deployment/web`, or `pod/NAME` for a bare pod.
    target: Option<String>,
    /// The pod spec's path under `target`.
    spec: &'static str,
    /// The Service's name.
    service: Option<&'a str>,
}

impl<'a> Names<'a> {
    fn of(v: &'a Verdict) -> Names<'a> {
        let i = &v.involved;
        let pod_name = i.pod.as_deref().map(|p| p.rsplit('/').next().unwrap_or(p));
        let target = match (&i.workload, pod_name) {
            (Some(w), _) => Some(w.to_string()),
            (None, Some(p)) => Some(format!("pod/{p}")),
            _ => None,
        };
        Names {
            ns: i.namespace.as_deref(),
            pod: i.pod.as_deref(),
            pod_name,
            spec: if i.workload.is_some() {
                ".spec.template.spec"
            } else {
                ".spec"
            },
            target,
            service: i
                .service
                .as_deref()
                .map(|s| s.rsplit('/').next().unwrap_or(s)),
        }
    }
}
