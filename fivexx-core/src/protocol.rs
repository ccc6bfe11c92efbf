//! The protocol between an agent and its clients (the plugin, through the
//! API server's port-forward). Frames are length-delimited (u32 big-endian
//! length, then a JSON message): the framing lives at the I/O edges
//! (tokio-util's `LengthDelimitedCodec` configured with `MAX_FRAME`), the
//! messages and their matching rules live here, pure.
//!
//! A client connects, sends one `Subscribe`, and then receives `Hello`,
//! followed by `Event`s that match its filter and a `Stats` every second.
//! While the stream is open the client widens or narrows its filter in
//! place with `Update`: one stream per node per session, however many pods
//! come and go (a stream per pod would open nodes × pods port-forwards
//! through the API server during a rollout).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::capability::CapabilityReport;
use crate::{KernelEvent, KernelEventKind};

/// Bumped on incompatible changes; a client refuses a different major.
/// 2 added `ClientMessage::Update` (an agent of protocol 1 would drop the
/// stream on it).
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// What a client wants to see. Empty lists mean "everything".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<KernelEventKind>,
    /// Pods whose process events (signals, exits, OOM) to pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_uids: Vec<String>,
    /// Addresses whose network events to pass (either end of the 4-tuple).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// Proxy pods whose HTTP status lines the agent should peek at (in the
    /// kernel, filtered by their cgroups). The agent peeks at the union
    /// over its clients, and at nothing when no client asks: the syscall
    /// hooks are attached only while this set is non-empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_pods: Vec<String>,
}

impl StreamFilter {
    /// Applies an `Update`: `add` first, then `remove`. A list emptied by
    /// `remove` means "everything" again, as in a fresh filter, so a client
    /// that narrows to nothing should close the stream instead.
    pub fn update(&mut self, add: &StreamFilter, remove: &StreamFilter) {
        fn merge<T: PartialEq + Clone>(into: &mut Vec<T>, add: &[T], remove: &[T]) {
            for x in add {
                if !into.contains(x) {
                    into.push(x.clone());
                }
            }
            into.retain(|x| !remove.contains(x));
        }
        merge(&mut self.kinds, &add.kinds, &remove.kinds);
        merge(&mut self.pod_uids, &add.pod_uids, &remove.pod_uids);
        merge(&mut self.ips, &add.ips, &remove.ips);
        merge(&mut self.http_pods, &add.http_pods, &remove.http_pods);
    }

    /// Whether the filter names nothing (then it passes every event).
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
            && self.pod_uids.is_empty()
            && self.ips.is_empty()
            && self.http_pods.is_empty()
    }

    /// Pods and IPs widen each other: a trace of a Deployment wants the
    /// signals of its pods and the network failures towards their IPs.
    pub fn matches(&self, ev: &KernelEvent) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&ev.kind) {
            return false;
        }
        if self.pod_uids.is_empty() && self.ips.is_empty() {
            return true;
        }
        let pod_hit = ev.pod_uid.as_ref().is_some_and(|u| {
            self.pod_uids.iter().any(|p| p == u)
                || (ev.kind == KernelEventKind::HttpResponse
                    && self.http_pods.iter().any(|p| p == u))
        });
        let ip_hit = ev
            .tuple
            .is_some_and(|t| self.ips.contains(&t.saddr) || self.ips.contains(&t.daddr));
        pod_hit || ip_hit
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message of a stream.
    Subscribe {
        protocol: u32,
        #[serde(default)]
        filter: StreamFilter,
    },
    /// Widens (`add`) or narrows (`remove`) the stream's filter in place,
    /// without reconnecting; see [`StreamFilter::update`]. Only after a
    /// `Subscribe`.
    Update {
        #[serde(default)]
        add: StreamFilter,
        #[serde(default)]
        remove: StreamFilter,
    },
}

/// What an agent's stream lost: kernel ring-buffer reservations that
/// failed, by kind, and the events a client read too slowly to get (at the
/// agent, or in the client itself). One shape from the agent's stats to a
/// capture's drops record and the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    #[serde(default)]
    pub kernel: BTreeMap<KernelEventKind, u64>,
    #[serde(default)]
    pub stream: u64,
}

impl DropCounts {
    pub fn total(&self) -> u64 {
        self.kernel.values().sum::<u64>() + self.stream
    }

    /// The larger of each count: drops are cumulative, so the latest of
    /// two readings is the larger.
    pub fn max_with(&mut self, other: &DropCounts) {
        for (k, n) in &other.kernel {
            let e = self.kernel.entry(*k).or_default();
            *e = (*e).max(*n);
        }
        self.stream = self.stream.max(other.stream);
    }

    /// Each count and where it was lost, for a line (`send_reset 3,
    /// stream 2`), the non-zero ones.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .kernel
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if self.stream > 0 {
            parts.push(format!("stream {}", self.stream));
        }
        parts.join(", ")
    }
}

/// Per-kind counters as an agent reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Records the kernel programs tried to emit, by kind.
    pub generated: BTreeMap<KernelEventKind, u64>,
    /// Ring-buffer reservations that failed in the kernel, by kind.
    pub dropped: BTreeMap<KernelEventKind, u64>,
    /// Records the agent read from the ring, by kind.
    pub received: BTreeMap<KernelEventKind, u64>,
    /// Events this client missed because it read too slowly.
    pub client_dropped: u64,
    pub clients: u32,
}

impl AgentStats {
    /// What this client lost of the agent's stream: the kernel's drops,
    /// and its own at the agent plus `local` (missed in the client).
    pub fn drops(&self, local: u64) -> DropCounts {
        DropCounts {
            kernel: self.dropped.clone(),
            stream: self.client_dropped + local,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum AgentMessage {
    Hello {
        protocol: u32,
        agent_version: String,
        node: String,
        capabilities: CapabilityReport,
    },
    Event {
        event: KernelEvent,
    },
    Stats {
        stats: AgentStats,
    },
    /// The agent is going away (SIGTERM) or refused the client.
    Goodbye {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("protocol version {theirs} is not supported (this side speaks {ours})")]
    Version { ours: u32, theirs: u32 },
}

pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).expect("wire messages always serialize")
}

pub fn decode_agent(frame: &[u8]) -> Result<AgentMessage, WireError> {
    Ok(serde_json::from_slice(frame)?)
}

pub fn decode_client(frame: &[u8]) -> Result<ClientMessage, WireError> {
    let msg: ClientMessage = serde_json::from_slice(frame)?;
    if let ClientMessage::Subscribe { protocol, .. } = &msg {
        if *protocol != PROTOCOL_VERSION {
            return Err(WireError::Version {
                ours: PROTOCOL_VERSION,
                theirs: *protocol,
            });
        }
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FourTuple;

    fn net_event(daddr: &str) -> KernelEvent {
        let mut ev = KernelEvent::new(KernelEventKind::ReceiveReset, 1, 2);
        ev.tuple = Some(FourTuple {
            saddr: "10.244.0.2".parse().unwrap(),
            sport: 40000,
            daddr: daddr.parse().unwrap(),
            dport: 8080,
        });
        ev
    }

    #[test]
    fn empty_filter_passes_everything() {
        assert!(StreamFilter::default().matches(&net_event("10.244.0.7")));
    }

    #[test]
    fn ips_and_pods_widen_each_other() {
        let f = StreamFilter {
            ips: vec!["10.244.0.7".parse().unwrap()],
            pod_uids: vec!["uid-1".into()],
            ..Default::default()
        };
        assert!(f.matches(&net_event("10.244.0.7")));
        assert!(!f.matches(&net_event("10.244.0.8")));
        let mut sig = KernelEvent::new(KernelEventKind::Signal, 1, 2);
        sig.pod_uid = Some("uid-1".into());
        assert!(f.matches(&sig));
        sig.pod_uid = Some("uid-2".into());
        assert!(!f.matches(&sig));
    }

    #[test]
    fn kinds_narrow() {
        let f = StreamFilter {
            kinds: vec![KernelEventKind::Signal],
            ..Default::default()
        };
        assert!(!f.matches(&net_event("10.244.0.7")));
    }

    #[test]
    fn updates_widen_and_narrow_in_place() {
        let mut f = StreamFilter {
            pod_uids: vec!["a".into()],
            ..Default::default()
        };
        let add = StreamFilter {
            pod_uids: vec!["a".into(), "b".into()],
            ips: vec!["10.244.0.7".parse().unwrap()],
            ..Default::default()
        };
        f.update(&add, &StreamFilter::default());
        assert_eq!(f.pod_uids, vec!["a".to_string(), "b".to_string()]);
        assert!(f.matches(&net_event("10.244.0.7")));
        let remove = StreamFilter {
            ips: vec!["10.244.0.7".parse().unwrap()],
            ..Default::default()
        };
        f.update(&StreamFilter::default(), &remove);
        assert!(!f.matches(&net_event("10.244.0.7")));
        let msg = ClientMessage::Update { add, remove };
        assert_eq!(decode_client(&encode(&msg)).unwrap(), msg);
    }

    #[test]
    fn messages_round_trip_and_versions_are_checked() {
        let sub = ClientMessage::Subscribe {
            protocol: PROTOCOL_VERSION,
            filter: StreamFilter::default(),
        };
        assert_eq!(decode_client(&encode(&sub)).unwrap(), sub);
        let newer = ClientMessage::Subscribe {
            protocol: PROTOCOL_VERSION + 1,
            filter: StreamFilter::default(),
        };
        let err = decode_client(&encode(&newer)).unwrap_err().to_string();
        assert!(err.contains(&format!("{}", PROTOCOL_VERSION + 1)), "{err}");
        assert!(decode_agent(b"\x89PNG").is_err());
        let ev = AgentMessage::Event {
            event: net_event("10.244.0.7"),
        };
        assert_eq!(decode_agent(&encode(&ev)).unwrap(), ev);
    }

    /// Messages as an agent of b85a75d (the previous version) sends them:
    /// the errno a bare number (0 from some sockets), the RST reason the
    /// kernel's name, the stats' per-kind maps. This plugin reads them as
    /// they are.
    #[test]
    fn messages_of_the_previous_agent_still_decode() {
        let event = br#"{"type":"event","event":{"mono_ns":1,"wall_ns":2,"kind":"send_reset","node":"n","tuple":{"saddr":"10.0.0.2","sport":8080,"daddr":"10.0.0.1","dport":40000},"tcp_state":"SYN_RECV","reset_reason":"NO_SOCKET","errno":0}}"#;
        let AgentMessage::Event { event } = decode_agent(event).unwrap() else {
            panic!("an event");
        };
        assert_eq!(
            event.reset_reason,
            Some(crate::event::ResetReason::NoSocket)
        );
        assert_eq!(event.errno, None, "0 is no errno");
        let refused = br#"{"type":"event","event":{"mono_ns":1,"wall_ns":2,"kind":"sock_error","errno":111}}"#;
        let AgentMessage::Event { event } = decode_agent(refused).unwrap() else {
            panic!("an event");
        };
        assert_eq!(event.errno, Some(crate::event::Errno::ECONNREFUSED));
        let stats = br#"{"type":"stats","stats":{"generated":{"signal":4},"dropped":{"signal":1},"received":{"signal":3},"client_dropped":2,"clients":1}}"#;
        let AgentMessage::Stats { stats } = decode_agent(stats).unwrap() else {
            panic!("stats");
        };
        assert_eq!(stats.drops(5).total(), 8);
    }
}
