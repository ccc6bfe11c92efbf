//! The fixes for causes outside the pods themselves: a node lost without
//! a drain, a load balancer outside the cluster that deregisters late,
//! the proxy tier rolled under traffic. Like every fix, each quotes what
//! was measured here.

use super::measure::{params, percentile, prestop_for_lag, s, terminations, WorkloadStats};
use super::verdict::Fix;
use std::collections::BTreeMap;

/// A node lost without a drain: quote how long the endpoints kept its
/// pods, which is what the clients paid for.
pub(super) fn node_lost(st: &WorkloadStats) -> Fix {
    let node = st.lost_node.as_deref().unwrap_or("the node");
    let action = "drain nodes before maintenance (kubectl drain); for spot and preemptible nodes run an interruption handler that cordons and drains on the notice; enable the kubelet's graceful node shutdown (shutdownGracePeriod); spread replicas across nodes (topologySpreadConstraints) so the others keep serving";
    let v = &st.kept_after_loss_ns;
    let Some((p50, max)) = p50_and_max(v) else {
        return Fix {
            action: action.into(),
            because: format!(
                "node {node} stopped answering without a drain and the endpoints still listed its {} pod(s) at the end of the capture",
                st.lost_pods
            ),
            params: params(&[("lost_pods", f64::from(st.lost_pods))]),
        };
    };
    Fix {
        action: action.into(),
        because: format!(
            "node {node} stopped answering without a drain, and the endpoints kept its {} pod(s) for {:.1} s (max {:.1} s) until the Node went NotReady: the node-monitor grace period and the endpoint update, during which every connection to them failed",
            st.lost_pods,
            s(p50),
            s(max)
        ),
        params: params(&[
            ("endpoints_kept_p50_s", s(p50)),
            ("endpoints_kept_max_s", s(max)),
            ("lost_pods", f64::from(st.lost_pods)),
        ]),
    }
}

/// An external load balancer that kept sending to terminating pods: the
/// pods must keep serving until it has stopped (a preStop sleep over the
/// measured lag), and the load balancer should stop sooner.
pub(super) fn lb_deregistration(st: &WorkloadStats) -> Fix {
    let lbs = st
        .lb_addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let lbs = if lbs.is_empty() { "?".to_string() } else { lbs };
    let settings = "and make the load balancer stop sooner: AWS target group deregistration (the Load Balancer Controller deregisters when the endpoint leaves; keep deregistration_delay.timeout_seconds below the pod's grace period), GKE NEG connection draining, Azure Application Gateway connection draining";
    let v = &st.lb_lags_ns;
    let Some((p50, max)) = p50_and_max(v) else {
        return Fix {
            action: format!("a preStop sleep longer than the load balancer's deregistration, {settings}"),
            because: format!("the load balancer at {lbs}, outside the cluster, sent new connections to terminating pods"),
            params: BTreeMap::new(),
        };
    };
    let rec = prestop_for_lag(s(max));
    Fix {
        action: format!("preStop sleep >= {rec} s (keep serving while the load balancer deregisters the pod), {settings}"),
        because: format!(
            "the load balancer at {lbs}, outside the cluster, sent new connections to pods {:.1} s after their termination began (p50; max {:.1} s over {}): its deregistration lags the endpoint removal",
            s(p50),
            s(max),
            terminations(v.len())
        ),
        params: params(&[
            ("prestop_sleep_s", rec),
            ("lb_lag_p50_s", s(p50)),
            ("lb_lag_max_s", s(max)),
            ("terminations", v.len() as f64),
        ]),
    }
}

/// A proxy replica terminated under traffic: it must keep serving until
/// whatever sends to it (the load balancer in front, clients' DNS or
/// connection pools) has stopped, then drain what it holds.
pub(super) fn proxy_terminated(st: &WorkloadStats) -> Fix {
    let drain = "and drain before exiting: ingress-nginx worker-shutdown-timeout (nginx's graceful SIGQUIT), Envoy's --drain-time-s with --drain-strategy immediate (Envoy Gateway's shutdown drainTimeout, Istio's terminationDrainDuration), HAProxy's soft stop (SIGUSR1) with hard-stop-after";
    let v = &st.proxy_lags_ns;
    let Some((p50, max)) = p50_and_max(v) else {
        return Fix {
            action: format!("a preStop sleep on the proxy pods longer than clients take to stop sending to a terminating replica, {drain}"),
            because: "clients still sent to a proxy replica that was shutting down".into(),
            params: BTreeMap::new(),
        };
    };
    let rec = prestop_for_lag(s(max));
    Fix {
        action: format!("preStop sleep >= {rec} s on the proxy pods (keep accepting while clients and the load balancer in front move away), {drain}"),
        because: format!(
            "clients still sent to terminating proxy pods {:.1} s after their termination began (p50; max {:.1} s over {}), after the proxy had stopped accepting",
            s(p50),
            s(max),
            terminations(v.len())
        ),
        params: params(&[
            ("prestop_sleep_s", rec),
            ("client_window_p50_s", s(p50)),
            ("client_window_max_s", s(max)),
            ("terminations", v.len() as f64),
        ]),
    }
}

/// The median and the largest of `v`, when it has any.
fn p50_and_max(v: &[i64]) -> Option<(i64, i64)> {
    Some((percentile(v, 50.0)?, v.iter().copied().max()?))
}
