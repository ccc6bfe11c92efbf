//! Answers as the join sees them, made from a peeked status line or an
//! access-log line.

use crate::event::{FourTuple, KernelEvent};
use crate::explain::verdict::{FailureKind, HttpAnswer, UpstreamConn};
use crate::model::{Evidence, FactSource, Observation, ProxyLogFact};
use std::net::SocketAddr;
use std::sync::Arc;

/// The upstream a logged answer tried last among those that failed (status
/// `-` or 5xx), with that status.
pub(super) fn last_failed_upstream(l: &ProxyLogFact) -> Option<(SocketAddr, Option<u16>)> {
    l.account.failed_tries().last().map(|t| (t.addr, t.status))
}

/// A proxy's logged 5xx (`upstream`: the address of
/// [`last_failed_upstream`]). It is placed at the end of its format's
/// slack (`first_ns` keeps the logged time), so that it sorts after the
/// kernel's view of the same answer and of its upstream.
pub(super) fn logged_answer(l: &ProxyLogFact, upstream: Option<SocketAddr>) -> HttpAnswer {
    let account = &l.account;
    // The proxy's own end of it when logged (Envoy's upstream local
    // address).
    let local = account
        .upstream_local
        .filter(|_| upstream.is_some_and(|u| Some(u) == account.last_upstream()));
    let pod = format!("{}/{}", l.namespace, l.pod);
    let shared = Arc::new(account.clone());
    HttpAnswer {
        at_ns: account.at_ns.saturating_add(account.slack_ns()),
        first_ns: account.at_ns,
        kind: FailureKind::Http5xxLogged,
        http_status: account.status,
        client: account.client,
        client_port: account.client_port,
        tuple: None,
        node: l.node.clone().unwrap_or_default(),
        proxy_pid: None,
        proxy_pod: Some(pod.clone()),
        upstream: upstream.map(|remote| UpstreamConn { local, remote }),
        failed_tries: account.failed_tries().map(|t| t.addr).collect(),
        upstream_kind: None,
        upstream_failures: 0,
        evidence: vec![Evidence {
            at_ns: account.at_ns,
            source: FactSource::Api,
            fact: Observation::Logged {
                pod: Arc::from(pod),
                account: shared.clone(),
            },
        }],
        account: Some(shared),
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
        client: Some(tuple.daddr),
        client_port: Some(tuple.dport),
        tuple: Some(tuple),
        node: e.node.clone(),
        proxy_pid: e.task.as_ref().map(|t| t.pid),
        proxy_pod: None,
        upstream: None,
        failed_tries: Vec::new(),
        upstream_kind: None,
        upstream_failures: 0,
        account: None,
        evidence: vec![Evidence {
            at_ns: e.wall_ns,
            source: FactSource::Node(Arc::from(e.node.as_str())),
            fact: Observation::text(format!("HTTP {status} written{who} on {tuple}")),
        }],
    }
}
