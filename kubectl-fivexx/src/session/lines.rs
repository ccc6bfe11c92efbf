//! What a live session prints on stdout: one line per kernel fact and an
//! inline explanation per verdict.

use fivexx_core::explain::{FailureKind, Verdict};
use fivexx_core::report::{event_line, is_failure, LineLayout};
use fivexx_core::KernelEvent;

use crate::style::Painter;

/// One line per kernel fact: the renderer the agent's table uses too.
pub fn kernel_line(ev: &KernelEvent, p: Painter) -> String {
    let s = event_line(ev, LineLayout::Cluster);
    if is_failure(ev) {
        p.yellow(&s)
    } else {
        s
    }
}

/// The inline explanation of one failure.
pub fn verdict_line(v: &Verdict, p: Painter) -> String {
    let who = v
        .pod
        .clone()
        .or_else(|| v.workload_key.clone())
        .unwrap_or_else(|| v.failure.tuple.daddr.to_string());
    let mut s = if let Some(status) = v.failure.http_status {
        // A proxy's answer: client, proxy, status, upstream pod, cause.
        let upstream = v
            .failure
            .upstream
            .map_or("no failed upstream".to_string(), |u| {
                // Only a pod or workload names the upstream: `who`'s last
                // fallback is the client's address here.
                match v.pod.as_ref().or(v.workload_key.as_ref()) {
                    Some(w) => format!("upstream {}:{} ({w})", u.daddr, u.dport),
                    None => format!("upstream {}:{}", u.daddr, u.dport),
                }
            });
        let (client, proxy) = if v.failure.kind == FailureKind::Http5xxLogged {
            (
                v.failure.tuple.daddr.to_string(),
                format!("proxy on {} (access log)", v.failure.client_node),
            )
        } else {
            (
                format!("{}:{}", v.failure.tuple.daddr, v.failure.tuple.dport),
                format!("proxy {}:{}", v.failure.tuple.saddr, v.failure.tuple.sport),
            )
        };
        format!(
            "  => HTTP {status} to client {client} from {proxy}: {upstream}: {}, {:?} confidence",
            v.cause.label(),
            v.confidence
        )
    } else {
        format!(
            "  => {} {} to {} ({}): {}, {:?} confidence",
            v.cause.typical_http(),
            v.failure.kind.name(),
            v.failure.tuple.daddr,
            who,
            v.cause.label(),
            v.confidence
        )
    };
    if let Some(fix) = &v.fix {
        s.push_str(&format!("; fix: {} ({})", fix.action, fix.because));
    } else if let Some(n) = &v.note {
        s.push_str(&format!("; {n}"));
    }
    p.red(&s)
}
