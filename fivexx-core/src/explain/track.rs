//! One pod's life as the report's timeline draws it: its lifecycle marks
//! (deletion, SIGTERM, SIGKILL, exits, OOM kill), when it was ready, when
//! it was in a Service's ready endpoints, and how long proxies went on
//! routing to it. Taken from the timeline when the engine forgets the pod
//! (or at the end), so a long capture keeps one small record per pod.

use crate::event::signal_name;
use crate::model::timeline::{ClusterTimeline, PodTimeline};
use serde::{Deserialize, Serialize};

/// At most this many pods are drawn: beyond it a capture is better read
/// through `--workload` or `--pod`.
pub const MAX_TRACKS: usize = 5_000;

/// What happened to a pod at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    Created,
    Deleted,
    Sigterm,
    Sigkill,
    Exit,
    OomKill,
    Gone,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at_ns: i64,
    pub kind: MarkKind,
    /// For a person: "grace 30 s", "pid 7 (nginx), ignored", "exit 0".
    pub detail: String,
}

/// A stretch of time; `to_ns` is `None` while it lasted to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub from_ns: i64,
    pub to_ns: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodTrack {
    /// `namespace/name`.
    pub pod: String,
    pub uid: String,
    /// The report's grouping key (`namespace/kind/name`), where the API
    /// named the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub ips: Vec<std::net::IpAddr>,
    /// In time order.
    pub marks: Vec<Mark>,
    /// Ready by the API's account.
    pub ready: Vec<Span>,
    /// In a Service's ready endpoints.
    pub in_endpoints: Vec<Span>,
    /// From termination to the last new connection a proxy still sent
    /// it, when the engine measured that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies_routed: Option<Span>,
}

impl PodTrack {
    /// The track of `p`; `proxy_lag_ns` is how long after its termination
    /// proxies still sent it new connections (measured by the assembler).
    pub fn of(tl: &ClusterTimeline, p: &PodTimeline, proxy_lag_ns: Option<i64>) -> PodTrack {
        let mut marks = Vec::new();
        let mut mark = |at_ns: i64, kind: MarkKind, detail: String| {
            marks.push(Mark {
                at_ns,
                kind,
                detail,
            })
        };
        if let Some(t) = p.created_ns {
            mark(t, MarkKind::Created, String::new());
        }
        if let Some((t, grace)) = p.deleting {
            mark(t, MarkKind::Deleted, format!("grace {grace} s"));
        }
        let signal = |s: &crate::model::timeline::SignalSeen| {
            let target = s
                .target
                .as_ref()
                .map_or(String::new(), |t| format!("pid {} ({})", t.pid, t.comm));
            let result = match s.result {
                Some(crate::event::SignalResult::Ignored) => ", ignored",
                _ => "",
            };
            format!("{} {target}{result}", signal_name(s.signal))
        };
        if let Some(s) = &p.sigterm {
            mark(s.at_ns, MarkKind::Sigterm, signal(s));
        }
        for k in &p.sigkills {
            mark(k.at_ns, MarkKind::Sigkill, signal(k));
        }
        for e in &p.exits {
            let who = e
                .task
                .as_ref()
                .map_or(String::new(), |t| format!("pid {} ({}) ", t.pid, t.comm));
            let how = match e.status {
                Some(crate::event::ExitStatus {
                    signal: Some(sig), ..
                }) => format!("killed by {}", signal_name(sig)),
                Some(crate::event::ExitStatus { code: Some(c), .. }) => format!("exit {c}"),
                _ => "exited".to_string(),
            };
            mark(e.at_ns, MarkKind::Exit, format!("{who}{how}"));
        }
        if let Some((t, task)) = &p.oom {
            let who = task
                .as_ref()
                .map_or(String::new(), |t| format!("pid {} ({})", t.pid, t.comm));
            mark(*t, MarkKind::OomKill, who);
        }
        if let Some(t) = p.gone_ns {
            mark(t, MarkKind::Gone, String::new());
        }
        marks.sort_by_key(|m| (m.at_ns, m.kind));
        let mut ready = Vec::new();
        let mut readiness = p.readiness.clone();
        readiness.sort_by_key(|(t, r)| (*t, *r));
        for (t, r) in readiness {
            match (r, ready.last_mut()) {
                (true, Some(Span { to_ns: None, .. })) => {}
                (true, _) => ready.push(Span {
                    from_ns: t,
                    to_ns: None,
                }),
                (false, Some(s @ Span { to_ns: None, .. })) => s.to_ns = Some(t),
                (false, _) => {}
            }
        }
        // Readiness is not reported once a pod is gone: it ends there.
        if let (Some(gone), Some(last)) = (p.gone_ns, ready.last_mut()) {
            if last.to_ns.is_none() {
                last.to_ns = Some(gone.max(last.from_ns));
            }
        }
        let mut in_endpoints: Vec<Span> = p
            .ips
            .iter()
            .flat_map(|(_, ip)| tl.routable_spans(*ip))
            .map(|(from_ns, to_ns)| Span { from_ns, to_ns })
            .collect();
        in_endpoints.sort_by_key(|s| s.from_ns);
        let proxies_routed = match (p.termination_ns(), proxy_lag_ns) {
            (Some(t), Some(lag)) if lag > 0 => Some(Span {
                from_ns: t,
                to_ns: Some(t + lag),
            }),
            _ => None,
        };
        PodTrack {
            pod: p.display.to_string(),
            uid: p.uid.clone(),
            workload_key: p.key.as_deref().map(str::to_string),
            node: p.node.clone(),
            ips: p.ips.iter().map(|(_, ip)| *ip).collect(),
            marks,
            ready,
            in_endpoints,
            proxies_routed,
        }
    }
}
