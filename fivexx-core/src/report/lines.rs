//! The one-line renderings of kernel events that both binaries print: the
//! agent's `trace` table and the plugin's live `trace` lines come from
//! here, so a fact reads the same on a node and on a laptop.

use crate::event::{signal_name, KernelEvent, KernelEventKind as K, SignalResult};
use crate::explain::{Failure, FailureKind, Verdict};
use std::fmt::Write;

/// Where a line is printed decides its columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineLayout {
    /// On the node (`fivexx-agent trace`): time of day and kind.
    Node,
    /// In a session over many nodes: full UTC time, node, kind.
    Cluster,
}

/// The header of the [`LineLayout::Node`] table.
pub const NODE_TABLE_HEADER: &str = "TIME            KIND            DETAIL";

/// `HH:MM:SS.mmm` (UTC) of an event: the node table's time column.
pub fn clock(wall_ns: i64) -> String {
    let secs = wall_ns.div_euclid(1_000_000_000);
    let ms = wall_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let day = secs.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        day / 3600,
        day / 60 % 60,
        day % 60
    )
}

/// Whether the event is itself a failure (a terminal shows it in colour).
pub fn is_failure(ev: &KernelEvent) -> bool {
    matches!(
        ev.kind,
        K::SendReset | K::ReceiveReset | K::SockError | K::HttpResponse | K::OomVictim
    )
}

/// One line: time, (node,) kind, and what matters for that kind.
pub fn event_line(ev: &KernelEvent, layout: LineLayout) -> String {
    let d = event_detail(ev);
    match layout {
        LineLayout::Node => format!("{:<15} {:<15} {}", clock(ev.wall_ns), ev.kind.name(), d),
        LineLayout::Cluster => format!(
            "{}  {:<14} {:<15} {}",
            super::format_time(ev.wall_ns),
            ev.node,
            ev.kind.name(),
            d
        ),
    }
}

/// What an event says, by kind: tuple, state, errno, signal, exit.
pub fn event_detail(ev: &KernelEvent) -> String {
    let mut d = String::new();
    if let Some(t) = &ev.tuple {
        let _ = write!(d, "{t}");
    }
    match ev.kind {
        K::SendReset | K::ReceiveReset | K::SynRetransmit => {
            if let Some(s) = ev.tcp_state {
                let _ = write!(d, " state={s}");
            }
            if let Some(r) = &ev.reset_reason {
                let _ = write!(d, " reason={r}");
            }
            if let Some(e) = ev.errno {
                let _ = write!(d, " => {e}");
            }
        }
        K::SockError => {
            if let Some(e) = ev.errno {
                let _ = write!(d, " error={e}");
            }
        }
        K::StateChange => {
            let name = |s: Option<crate::TcpState>| s.map_or("?", |s| s.name());
            let _ = write!(d, " {}->{}", name(ev.tcp_state), name(ev.new_state));
        }
        K::Signal => signal_detail(ev, &mut d),
        K::Exit => {
            if let Some(t) = &ev.target {
                let _ = write!(d, "{}[{}]", t.comm, t.pid);
            }
            match ev.exit {
                Some(x) if x.signal.is_some() => {
                    let _ = write!(d, " killed by {}", x.signal.map_or("?", signal_name));
                }
                Some(x) => {
                    let _ = write!(d, " exit code {}", x.code.unwrap_or(-1));
                }
                None => d.push_str(" exit code unknown"),
            }
        }
        K::OomVictim => {
            if let Some(t) = &ev.target {
                let _ = write!(d, "OOM victim {}[{}]", t.comm, t.pid);
            }
        }
        K::HttpResponse => {
            let _ = write!(d, " HTTP {}", ev.http_status.unwrap_or(0));
            if let Some(t) = &ev.task {
                let _ = write!(d, " by {}[{}] fd {}", t.comm, t.pid, ev.fd.unwrap_or(-1));
            }
        }
    }
    if let Some(uid) = &ev.pod_uid {
        let _ = write!(d, " pod={uid}");
        if let Some(c) = &ev.container_id {
            let _ = write!(d, " ctr={}", &c[..c.len().min(12)]);
        }
    }
    d.trim().to_string()
}

/// The inline explanation of one verdict: what failed, the cause, and
/// the fix (or, unexplained, what was looked for).
pub fn verdict_line(v: &Verdict) -> String {
    let inv = &v.involved;
    let mut s = match &v.failure {
        Failure::Answer(a) => {
            // A proxy's answer: client, proxy, status, upstream pod, cause.
            let upstream = a.upstream.map_or("no failed upstream".to_string(), |u| {
                match inv.pod.as_ref().or(inv.workload_key.as_ref()) {
                    Some(w) => format!("upstream {} ({w})", u.remote),
                    None => format!("upstream {}", u.remote),
                }
            });
            let (client, proxy) = match (a.kind, a.tuple) {
                (FailureKind::Http5xx, Some(t)) => (
                    format!("{}:{}", t.daddr, t.dport),
                    format!("proxy {}:{}", t.saddr, t.sport),
                ),
                _ => (
                    a.client
                        .map_or_else(|| "unknown".to_string(), |c| c.to_string()),
                    match &a.proxy_pod {
                        Some(p) => format!("proxy {p} (access log)"),
                        None => format!("proxy on {} (access log)", a.node),
                    },
                ),
            };
            format!(
                "  => HTTP {} to client {client} from {proxy}: {upstream}: {}, {:?} confidence",
                a.http_status,
                v.cause.label(),
                v.confidence
            )
        }
        Failure::Connection(c) => {
            let who = inv
                .pod
                .clone()
                .or_else(|| inv.workload_key.clone())
                .unwrap_or_else(|| c.tuple.daddr.to_string());
            format!(
                "  => {} to {} ({who}): {}, {:?} confidence",
                c.kind.name(),
                c.tuple.daddr,
                v.cause.label(),
                v.confidence
            )
        }
    };
    if let Some(fix) = &v.fix {
        let _ = write!(s, "; fix: {} ({})", fix.action, fix.because);
    } else if let Some(n) = &v.note {
        let _ = write!(s, "; {n}");
    }
    s
}

fn signal_detail(ev: &KernelEvent, d: &mut String) {
    let _ = write!(d, "{} ", signal_name(ev.signal.unwrap_or(0)));
    if let Some(t) = &ev.task {
        let _ = write!(d, "{}[{}] ", t.comm, t.pid);
    }
    if let Some(t) = &ev.target {
        let _ = write!(d, "-> {}[{}]", t.comm, t.pid);
    }
    if let Some(r) = ev.signal_result {
        let r = match r {
            SignalResult::Delivered => "delivered",
            SignalResult::Ignored => "ignored",
            SignalResult::AlreadyPending => "already_pending",
            SignalResult::OverflowFail => "overflow_fail",
            SignalResult::LoseInfo => "lose_info",
            SignalResult::Unknown => "unknown",
        };
        let _ = write!(d, " result={r}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FourTuple, TaskRef};

    #[test]
    fn a_refusal_and_a_signal_read_the_same_in_both_layouts() {
        let mut ev = KernelEvent::new(K::ReceiveReset, 1, 1_700_000_000_123_000_000);
        ev.node = "node-1".into();
        ev.tuple = Some(FourTuple {
            saddr: "10.0.0.1".parse().unwrap(),
            sport: 40000,
            daddr: "10.0.0.2".parse().unwrap(),
            dport: 8080,
        });
        ev.tcp_state = Some(crate::TcpState::SynSent);
        ev.errno = Some(crate::event::Errno::ECONNREFUSED);
        let node = event_line(&ev, LineLayout::Node);
        let cluster = event_line(&ev, LineLayout::Cluster);
        assert!(node.starts_with("22:13:20.123"), "{node}");
        assert!(cluster.contains("node-1"), "{cluster}");
        for l in [&node, &cluster] {
            assert!(l.contains("ECONNREFUSED (111)"), "{l}");
        }
        let mut sig = KernelEvent::new(K::Signal, 1, 1);
        sig.signal = Some(15);
        sig.target = Some(TaskRef {
            pid: 7,
            comm: "web".into(),
        });
        sig.signal_result = Some(SignalResult::Ignored);
        let d = event_detail(&sig);
        assert_eq!(d, "SIGTERM -> web[7] result=ignored");
    }
}
