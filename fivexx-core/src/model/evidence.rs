//! What a verdict cites: observations, each with its time and source.
//!
//! These live with the model (not the engine): the timelines record the
//! evidence of what they saw (a SIGTERM, a deletion) as they build, and the
//! engine only assembles it into verdicts.

use super::fact::{FactSource, WorkloadRef};
use crate::event::{Errno, FourTuple, KernelEventKind, ResetReason, TcpState};
use crate::proxylog::ProxyAccount;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// One fact cited by a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub at_ns: i64,
    pub source: FactSource,
    pub fact: Observation,
}

/// What a piece of evidence says: one sentence for humans and in JSON.
/// Kept structured (and shared) so that the engine formats no text for the
/// millions of verdicts that are only counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Text(Arc<str>),
    /// A kernel event of the failed connection, seen by the client.
    Conn {
        kind: KernelEventKind,
        state: Option<TcpState>,
        errno: Option<Errno>,
        tuple: FourTuple,
    },
    /// The server's kernel sent a RST (with the kernel's reason, 6.10+).
    RstSent {
        reason: Option<ResetReason>,
        tuple: FourTuple,
    },
    Owns {
        addr: IpAddr,
        pod: Arc<str>,
    },
    LeftEndpoints(IpAddr),
    Cordoned(Arc<str>),
    /// A proxy's access-log line: its own account of the answer, shared
    /// with the answer the verdict is about.
    Logged {
        /// `namespace/name` of the proxy pod.
        pod: Arc<str>,
        account: Arc<ProxyAccount>,
    },
}

impl Observation {
    pub fn text(s: impl Into<String>) -> Observation {
        Observation::Text(Arc::from(s.into()))
    }

    /// Whether the sentence contains `needle` (handy in tests).
    pub fn contains(&self, needle: &str) -> bool {
        self.to_string().contains(needle)
    }

    pub fn starts_with(&self, needle: &str) -> bool {
        self.to_string().starts_with(needle)
    }
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Text(t) => f.write_str(t),
            Observation::Conn {
                kind,
                state,
                errno,
                tuple,
            } => match kind {
                KernelEventKind::ReceiveReset => write!(
                    f,
                    "RST received in {} on {tuple}",
                    state.map_or("?", |s| s.name())
                ),
                KernelEventKind::SockError => match errno {
                    Some(e) => write!(f, "socket error {} {} on {tuple}", e.raw(), e.name()),
                    None => write!(f, "socket error on {tuple}"),
                },
                KernelEventKind::StateChange => {
                    write!(f, "SYN_SENT -> CLOSE without ESTABLISHED on {tuple}")
                }
                KernelEventKind::SynRetransmit => write!(f, "SYN retransmitted on {tuple}"),
                other => write!(f, "{other} on {tuple}"),
            },
            Observation::RstSent { reason, tuple } => write!(
                f,
                "RST sent ({}) on {tuple}",
                reason
                    .as_ref()
                    .map_or("reason unknown", ResetReason::as_str)
            ),
            Observation::Owns { addr, pod } => write!(f, "{addr} belongs to {pod}"),
            Observation::LeftEndpoints(addr) => write!(f, "{addr} left the ready endpoints"),
            Observation::Cordoned(node) => write!(f, "node {node} cordoned"),
            Observation::Logged { pod, account } => logged(f, pod, account),
        }
    }
}

/// A logged answer in a sentence: the proxy's own words first where its
/// format has them (Envoy, HAProxy), else what nginx's line lists.
fn logged(f: &mut fmt::Formatter<'_>, pod: &str, a: &ProxyAccount) -> fmt::Result {
    let client = a
        .client
        .map_or_else(|| "unknown".to_string(), |c| c.to_string());
    if let Some(words) = a.words_text() {
        return write!(f, "{words} (access log of {pod}, client {client})");
    }
    write!(
        f,
        "access log of {pod}: {} to {client}, upstream ",
        a.status
    )?;
    if a.tries.is_empty() {
        return f.write_str("-");
    }
    for (i, t) in a.tries.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        let status = t.status.map_or_else(|| "-".to_string(), |s| s.to_string());
        match t.response_ms {
            Some(ms) => write!(f, "{} ({status} after {:.3} s)", t.addr, ms as f64 / 1e3)?,
            None => write!(f, "{} ({status})", t.addr)?,
        }
    }
    Ok(())
}

impl Serialize for Observation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Observation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Observation, D::Error> {
        String::deserialize(d).map(Observation::text)
    }
}

/// The key failures are grouped by: `namespace/kind/name` of the workload
/// a pod belongs to (or `namespace/pod/name` for a bare pod); `None` for a
/// pod the API never named. All such pods share the `None` group.
pub type WorkloadKey = Option<Arc<str>>;

/// The [`WorkloadKey`] of a pod.
pub fn workload_key(
    namespace: &str,
    workload: Option<&WorkloadRef>,
    pod_name: &str,
) -> WorkloadKey {
    match workload {
        Some(w) => Some(Arc::from(format!("{namespace}/{w}"))),
        None if !pod_name.is_empty() => Some(Arc::from(format!("{namespace}/pod/{pod_name}"))),
        None => None,
    }
}

/// A workload key for a person: `shop/deployment/web` reads
/// `deployment shop/web`, `shop/pod/x` reads `pod shop/x`.
pub fn workload_label(key: &str) -> String {
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(kind), Some(name)) => format!("{kind} {ns}/{name}"),
        _ => key.to_string(),
    }
}
