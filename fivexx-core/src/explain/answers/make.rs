//! Answers as the join sees them, made from a peeked status line or an
//! access-log line.

use crate::event::{FourTuple, KernelEvent};
use crate::explain::config::SECOND;
use crate::explain::verdict::{FailureKind, HttpAnswer};
use crate::model::{Evidence, FactSource, Observation, ProxyLogFact};
use crate::proxylog::LogFormat;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The client of a logged answer whose line names none (Envoy's default
/// format without `X-Forwarded-For`): [`HttpAnswer::client`] is an
/// address, so the unspecified one stands for "unknown", and the joins
/// take it to match any client.
pub(super) const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// A logged answer's client as the line gave it.
pub(super) fn known_client(ip: IpAddr) -> Option<IpAddr> {
    Some(ip).filter(|c| !c.is_unspecified())
}

/// How much later than its logged time a proxy's answer may really have
/// happened. nginx stamps `$msec` from the time it cached at the start of
/// its event-loop turn, a few ms before the kernel sees the same turn's
/// failed connect and 5xx write; `$time_local` is whole seconds. Envoy
/// logs a request when it is done, but a busy worker that fails every
/// request pending on one failed connect writes their 503s out up to
/// 76 ms after logging them (measured under load): its lines get the
/// pairing's own allowance, so that such an answer is still known when
/// its line is, and is not counted a second time from the log.
fn log_slack(l: &ProxyLogFact) -> i64 {
    match (l.precise_time, l.format) {
        (true, LogFormat::EnvoyText | LogFormat::IstioText | LogFormat::EnvoyGatewayJson) => {
            super::logged::WRITE_LAG_NS
        }
        (true, _) => 50_000_000,
        (false, _) => SECOND - 1,
    }
}

/// The upstream a logged answer tried last among those that failed (status
/// `-` or 5xx), with that status.
pub(super) fn last_failed_upstream(l: &ProxyLogFact) -> Option<(SocketAddr, Option<u16>)> {
    l.upstream_addrs
        .iter()
        .zip(l.upstream_statuses.iter().chain(std::iter::repeat(&None)))
        .filter(|(_, s)| s.is_none_or(|s| s >= 500))
        .map(|(a, s)| (*a, *s))
        .last()
}

/// A proxy's logged 5xx (`upstream`: the address of
/// [`last_failed_upstream`]). It is placed at the end of its slack
/// (`first_ns` keeps the logged time), so that it sorts after the kernel's
/// view of the same answer and of its upstream.
pub(super) fn logged_answer(l: &ProxyLogFact, upstream: Option<SocketAddr>) -> HttpAnswer {
    // The proxy's own end of it when logged (Envoy's upstream local
    // address), else unknown (port 0).
    let local = l
        .upstream_local
        .filter(|_| upstream.is_some_and(|u| Some(u) == l.last_upstream()));
    let upstream = upstream.map(|a| FourTuple {
        saddr: local.map_or(IpAddr::from([0u8, 0, 0, 0]), |s| s.ip()),
        sport: local.map_or(0, |s| s.port()),
        daddr: a.ip(),
        dport: a.port(),
    });
    // Each try with its status and, when logged, how long the proxy
    // waited on it: a 504's wait is the proxy's connect or read timeout.
    let tried: Vec<String> = l
        .upstream_addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let status = l
                .upstream_statuses
                .get(i)
                .copied()
                .flatten()
                .map_or("-".to_string(), |s| s.to_string());
            match l.upstream_response_times_ms.get(i).copied().flatten() {
                Some(ms) => format!("{a} ({status} after {:.3} s)", ms as f64 / 1e3),
                None => format!("{a} ({status})"),
            }
        })
        .collect();
    HttpAnswer {
        at_ns: l.at_ns.saturating_add(log_slack(l)),
        first_ns: l.at_ns,
        kind: FailureKind::Http5xxLogged,
        http_status: l.status,
        client: l.client.unwrap_or(UNKNOWN_CLIENT),
        client_port: l.client_port,
        tuple: None,
        node: l.node.clone().unwrap_or_default(),
        proxy_pid: None,
        proxy_pod: Some(format!("{}/{}", l.namespace, l.pod)),
        upstream,
        failed_tries: l
            .upstream_addrs
            .iter()
            .zip(l.upstream_statuses.iter().chain(std::iter::repeat(&None)))
            .filter(|(_, s)| s.is_none_or(|s| s >= 500))
            .map(|(a, _)| *a)
            .collect(),
        upstream_kind: None,
        upstream_failures: 0,
        evidence: vec![Evidence {
            at_ns: l.at_ns,
            source: FactSource::Api,
            fact: Observation::text(match l.proxy_words() {
                // Envoy and HAProxy: the proxy's own words first.
                Some(words) => format!(
                    "{words} (access log of {}/{}, client {})",
                    l.namespace,
                    l.pod,
                    l.client.map_or("unknown".to_string(), |c| c.to_string())
                ),
                None => format!(
                    "access log of {}/{}: {} to {}, upstream {}",
                    l.namespace,
                    l.pod,
                    l.status,
                    l.client.map_or("unknown".to_string(), |c| c.to_string()),
                    if tried.is_empty() {
                        "-".to_string()
                    } else {
                        tried.join(", ")
                    }
                ),
            }),
        }],
    }
}

/// A proxy's 5xx the peek saw.
pub(super) fn peeked_answer(e: &KernelEvent, status: u16, tuple: FourTuple) -> HttpAnswer {
    let who = e
        .task
        .as_ref()
        .map_or(String::new(), |t| format!(" by {} (pid {})", t.comm, t.pid));
    HttpAnswer {
        at_ns: e.wall_ns,
        first_ns: e.wall_ns,
        kind: FailureKind::Http5xx,
        http_status: status,
        client: tuple.daddr,
        client_port: Some(tuple.dport),
        tuple: Some(tuple),
        node: e.node.clone(),
        proxy_pid: e.task.as_ref().map(|t| t.pid),
        proxy_pod: None,
        upstream: None,
        failed_tries: Vec::new(),
        upstream_kind: None,
        upstream_failures: 0,
        evidence: vec![Evidence {
            at_ns: e.wall_ns,
            source: FactSource::Node(Arc::from(e.node.as_str())),
            fact: Observation::text(format!("HTTP {status} written{who} on {tuple}")),
        }],
    }
}
