//! Ring-buffer bytes to `KernelEvent`. Pure and total: any byte string gives
//! either an event or a `DecodeError`, never a panic (property-tested).
//!
//! One file per probe family, mirroring `tracer-ebpf/src/probes/`: each
//! reads the `RawEvent` fields its probes fill (the per-kind table is on
//! `RawEvent`). This file holds what every kind shares: the task, the clock,
//! the 4-tuple and the socket identity.

mod exit;
mod http;
pub mod kind;
mod oom;
mod reset;
mod retransmit;
mod signal;
mod sock;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fivexx_core::{FourTuple, KernelEvent, KernelEventKind, TaskRef, TcpState};
use tracer_ebpf::{EventKind, RawEvent};

pub use kind::{abi_kind, core_kind, counter_index, kind_for_index};

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
    /// The kernel's HZ, to turn the idle jiffies of a state change into
    /// time; 0 when unknown (then no idle time is reported).
    pub hz: u32,
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
            hz: 0,
            sock_key: std::collections::hash_map::RandomState::new(),
        }
    }

    pub fn kind_of(raw: &RawEvent) -> Result<KernelEventKind, DecodeError> {
        EventKind::from_u8(raw.kind)
            .map(core_kind)
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
            KernelEventKind::SendReset => self.send_reset(raw, &mut ev),
            KernelEventKind::ReceiveReset => self.receive_reset(raw, &mut ev),
            KernelEventKind::SockError => self.sock_error(raw, &mut ev),
            KernelEventKind::StateChange => self.state_change(raw, &mut ev),
            KernelEventKind::SynRetransmit => self.syn_retransmit(raw, &mut ev),
            KernelEventKind::Signal => signal::signal(raw, &mut ev),
            KernelEventKind::Exit => exit::exit(raw, &mut ev),
            KernelEventKind::OomVictim => oom::oom_victim(raw, &mut ev),
            KernelEventKind::HttpResponse => self.http_response(raw, &mut ev),
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

    /// What every TCP record carries: the 4-tuple, the (old) state and the
    /// socket identity.
    fn network(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        ev.tuple = tuple(raw);
        ev.tcp_state = TcpState::from_kernel(raw.state);
        ev.sock_id = self.sock_id(raw.sock);
    }
}

/// Receive-side events run in softirq: the current task is whoever was
/// interrupted, so it is not reported as the socket's owner.
fn not_the_owner(ev: &mut KernelEvent) {
    ev.task = None;
}

/// The target task of a process record (signal target, exiting task, OOM
/// victim).
fn target(raw: &RawEvent) -> TaskRef {
    TaskRef {
        pid: raw.target_pid,
        comm: comm(&raw.target_comm),
    }
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
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn decoder() -> Decoder {
        let mut reasons = BTreeMap::new();
        reasons.insert(1, "NO_SOCKET".to_string());
        Decoder::new(1_000, reasons, "node-a".into())
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
        assert_eq!(ev.errno, Some(fivexx_core::event::Errno::ETIMEDOUT));
    }

    #[test]
    fn a_failed_connect_says_when_its_syn_left() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::StateChange as u8;
        raw.family = 2;
        raw.state = tracer_ebpf::tcp_state::SYN_SENT;
        raw.new_state = tracer_ebpf::tcp_state::CLOSE;
        raw.ts_ns = 5_000_000_000;
        raw.syn_ns = 4_000_000_000;
        let ev = decoder().decode(&raw).unwrap();
        // The wall offset (1000 ns) applies to both times.
        assert_eq!(ev.syn_sent_ns, Some(4_000_001_000));
        assert_eq!(ev.wall_ns - ev.syn_sent_ns.unwrap(), 1_000_000_000);
        // Unseen (0) or after the close (a reused socket's): none.
        for syn in [0, 6_000_000_000] {
            raw.syn_ns = syn;
            assert_eq!(decoder().decode(&raw).unwrap().syn_sent_ns, None);
        }
    }

    #[test]
    fn abi_has_no_padding_surprises() {
        // 3 u64, 4 u8, 9 u32-sized, 2 u16, the kind-detail u32, 4 x 16 bytes,
        // then the u64 SYN time.
        assert_eq!(RawEvent::SIZE, 24 + 4 + 36 + 4 + 4 + 64 + 8);
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
