//! Ring-buffer bytes to `KernelEvent`. Pure and total: any byte string gives
//! either an event or a `DecodeError`, never a panic (property-tested).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fivexx_core::{
    ExitStatus, FourTuple, KernelEvent, KernelEventKind, SignalResult, TaskRef, TcpState,
};
use tracer_ebpf::{flags, EventKind, RawEvent, REASON_UNKNOWN};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than a RawEvent ({size})", size = RawEvent::SIZE)]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
}

/// What decoding needs to know about this agent and kernel.
pub struct Decoder {
    /// Added to monotonic ns to get Unix-epoch ns; measured once at start-up.
    pub wall_offset_ns: i64,
    pub reset_reasons: BTreeMap<u64, String>,
    pub node: String,
    /// Keyed hash: socket identities are stable within one agent run and do
    /// not leak kernel addresses.
    sock_key: std::collections::hash_map::RandomState,
}

impl Decoder {
    pub fn new(wall_offset_ns: i64, reset_reasons: BTreeMap<u64, String>, node: String) -> Decoder {
        Decoder {
            wall_offset_ns,
            reset_reasons,
            node,
            sock_key: std::collections::hash_map::RandomState::new(),
        }
    }

    pub fn kind_of(raw: &RawEvent) -> Result<KernelEventKind, DecodeError> {
        EventKind::from_u8(raw.kind)
            .map(map_kind)
            .ok_or(DecodeError::UnknownKind(raw.kind))
    }

    pub fn decode_bytes(&self, buf: &[u8]) -> Result<KernelEvent, DecodeError> {
        let raw = RawEvent::from_bytes(buf).ok_or(DecodeError::Short(buf.len()))?;
        self.decode(&raw)
    }

    pub fn decode(&self, raw: &RawEvent) -> Result<KernelEvent, DecodeError> {
        let kind = Self::kind_of(raw)?;
        let wall = (raw.ts_ns as i64).saturating_add(self.wall_offset_ns);
        let mut ev = KernelEvent::new(kind, raw.ts_ns, wall);
        ev.node = self.node.clone();
        ev.task = Some(TaskRef {
            pid: raw.task_tgid as i32,
            comm: comm(&raw.task_comm),
        });
        match kind {
            KernelEventKind::SendReset
            | KernelEventKind::ReceiveReset
            | KernelEventKind::SockError
            | KernelEventKind::StateChange
            | KernelEventKind::SynRetransmit => self.network(raw, &mut ev),
            KernelEventKind::Signal => {
                ev.signal = Some(raw.sig);
                ev.signal_result = Some(SignalResult::from_kernel(raw.result));
                ev.target = Some(TaskRef {
                    pid: raw.target_pid,
                    comm: comm(&raw.target_comm),
                });
                ev.cgroup_id = None; // the sender's; the agent resolves the target's
            }
            KernelEventKind::Exit => {
                ev.target = Some(TaskRef {
                    pid: raw.target_pid,
                    comm: comm(&raw.target_comm),
                });
                if raw.flags & flags::EXIT_CODE_KNOWN != 0 {
                    ev.exit = Some(ExitStatus::from_wait_status(raw.code));
                }
                ev.cgroup_id = Some(raw.cgroup_id);
            }
            KernelEventKind::OomVictim => {
                ev.target = Some(TaskRef {
                    pid: raw.target_pid,
                    comm: comm(&raw.target_comm),
                });
            }
            KernelEventKind::HttpResponse => {
                // Written by the proxy worker itself: the task is the sender.
                ev.http_status = u16::try_from(raw.code).ok();
                ev.fd = Some(raw.result);
                ev.http_peek_bytes = u8::try_from(raw.reserved).ok();
                ev.tuple = tuple(raw);
                ev.cgroup_id = Some(raw.cgroup_id);
                ev.sock_id = self.sock_id(raw.sock);
            }
        }
        Ok(ev)
    }

    /// Keyed hash of a kernel socket address: joins events of one
    /// connection without exposing the address.
    fn sock_id(&self, sock: u64) -> Option<u64> {
        (sock != 0).then(|| {
            let mut h = self.sock_key.build_hasher();
            h.write_u64(sock);
            h.finish()
        })
    }

    fn network(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        ev.tuple = tuple(raw);
        ev.tcp_state = TcpState::from_kernel(raw.state);
        if ev.kind == KernelEventKind::StateChange {
            ev.new_state = TcpState::from_kernel(raw.new_state);
        }
        ev.sock_id = self.sock_id(raw.sock);
        match ev.kind {
            KernelEventKind::SendReset if raw.reason != REASON_UNKNOWN => {
                ev.reset_reason = Some(
                    self.reset_reasons
                        .get(&(raw.reason as u64))
                        .cloned()
                        .unwrap_or_else(|| format!("REASON_{}", raw.reason)),
                );
            }
            KernelEventKind::ReceiveReset => {
                // What the application will see, as tcp_reset() decides it.
                ev.errno = ev
                    .tcp_state
                    .map(TcpState::errno_on_reset)
                    .filter(|e| *e != 0);
            }
            KernelEventKind::SockError => ev.errno = Some(raw.errno.abs()),
            KernelEventKind::StateChange if raw.state == tracer_ebpf::tcp_state::SYN_SENT => {}
            _ => {}
        }
        // Receive-side events run in softirq: the current task is whoever was
        // interrupted, so it is not reported as the socket's owner.
        if matches!(
            ev.kind,
            KernelEventKind::ReceiveReset | KernelEventKind::SynRetransmit
        ) || (ev.kind == KernelEventKind::SendReset && raw.sock == 0)
        {
            ev.task = None;
        }
    }
}

fn map_kind(k: EventKind) -> KernelEventKind {
    match k {
        EventKind::SendReset => KernelEventKind::SendReset,
        EventKind::ReceiveReset => KernelEventKind::ReceiveReset,
        EventKind::SockError => KernelEventKind::SockError,
        EventKind::StateChange => KernelEventKind::StateChange,
        EventKind::SynRetransmit => KernelEventKind::SynRetransmit,
        EventKind::Signal => KernelEventKind::Signal,
        EventKind::Exit => KernelEventKind::Exit,
        EventKind::OomVictim => KernelEventKind::OomVictim,
        EventKind::HttpResponse => KernelEventKind::HttpResponse,
    }
}

/// The agent's kind for a counter index of the kernel side.
pub fn kind_for_index(i: usize) -> Option<KernelEventKind> {
    EventKind::ALL.get(i).copied().map(map_kind)
}

fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn tuple(raw: &RawEvent) -> Option<FourTuple> {
    let (saddr, daddr) = match raw.family {
        2 => (ipv4(&raw.saddr), ipv4(&raw.daddr)),
        10 => (ipv6(&raw.saddr), ipv6(&raw.daddr)),
        _ => return None,
    };
    Some(FourTuple {
        saddr,
        sport: raw.sport,
        daddr,
        dport: raw.dport,
    })
}

fn ipv4(b: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) are shown as IPv4, the
/// way pod IPs appear in EndpointSlices.
fn ipv6(b: &[u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(*b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoder() -> Decoder {
        let mut reasons = BTreeMap::new();
        reasons.insert(1, "NO_SOCKET".to_string());
        Decoder::new(1_000, reasons, "node-a".into())
    }

    #[test]
    fn refused_connect_reset_maps_to_econnrefused() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::ReceiveReset as u8;
        raw.family = 2;
        raw.state = tracer_ebpf::tcp_state::SYN_SENT;
        raw.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        raw.daddr[..4].copy_from_slice(&[10, 244, 0, 7]);
        raw.sport = 40000;
        raw.dport = 8080;
        raw.sock = 0xffff_8880_dead_beef;
        let ev = decoder().decode(&raw).unwrap();
        assert_eq!(ev.errno, Some(111));
        assert_eq!(ev.tcp_state, Some(TcpState::SynSent));
        let t = ev.tuple.unwrap();
        assert_eq!(t.daddr.to_string(), "10.244.0.7");
        assert_eq!(t.dport, 8080);
        assert!(ev.task.is_none(), "softirq context is not an owner");
        assert_ne!(ev.sock_id, Some(raw.sock), "kernel address must not leak");
    }

    #[test]
    fn reset_reason_uses_the_kernel_names() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::SendReset as u8;
        raw.reason = 1;
        assert_eq!(
            decoder().decode(&raw).unwrap().reset_reason.as_deref(),
            Some("NO_SOCKET")
        );
        raw.reason = 77;
        assert_eq!(
            decoder().decode(&raw).unwrap().reset_reason.as_deref(),
            Some("REASON_77")
        );
    }

    #[test]
    fn v4_mapped_v6_shows_as_v4() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::SockError as u8;
        raw.family = 10;
        raw.daddr = Ipv4Addr::new(10, 244, 0, 9).to_ipv6_mapped().octets();
        raw.errno = 110;
        let ev = decoder().decode(&raw).unwrap();
        assert_eq!(ev.tuple.unwrap().daddr.to_string(), "10.244.0.9");
        assert_eq!(ev.errno, Some(110));
    }

    #[test]
    fn abi_has_no_padding_surprises() {
        // 3 u64, 4 u8, 9 u32-sized, 2 u16, a reserved u32, 4 x 16 bytes.
        assert_eq!(RawEvent::SIZE, 24 + 4 + 36 + 4 + 4 + 64);
        assert_eq!(std::mem::align_of::<RawEvent>(), 8);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let d = decoder();
            match d.decode_bytes(&bytes) {
                Ok(ev) => prop_assert!(bytes.len() >= RawEvent::SIZE && (ev.mono_ns as usize) < usize::MAX),
                Err(DecodeError::Short(n)) => prop_assert!(n < RawEvent::SIZE),
                Err(DecodeError::UnknownKind(k)) => prop_assert!(k as usize >= tracer_ebpf::KIND_COUNT),
            }
        }
    }
}
