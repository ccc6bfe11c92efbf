//! `tcp:tcp_send_reset` and `tcp:tcp_receive_reset` (probes/reset.rs).

use fivexx_core::event::ResetReason;
use fivexx_core::{KernelEvent, TcpState};
use tracer_ebpf::{flags, RawEvent, REASON_UNKNOWN};

use super::{not_the_owner, Decoder};

impl Decoder {
    /// A RST this host sent; `reason` is the kernel's `sk_rst_reason` (6.10+).
    pub(super) fn send_reset(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        self.network(raw, ev);
        if raw.flags & flags::FROM_SKB_DROP != 0 {
            // kfree_skb's record: the program emits only SYNs dropped with
            // reason NO_SOCKET, which the kernel answers with a NO_SOCKET
            // RST; `reason` holds the drop reason's value, not an
            // sk_rst_reason, so it is not looked up.
            ev.reset_reason = Some(ResetReason::NoSocket);
        } else if raw.reason != REASON_UNKNOWN {
            ev.reset_reason = Some(match self.reset_reasons.get(&u64::from(raw.reason)) {
                Some(name) => ResetReason::from_name(name),
                None => ResetReason::Other(format!("REASON_{}", raw.reason).into()),
            });
        }
        // A socket-less RST (the reply from a closed port) is sent from
        // softirq on behalf of nobody.
        if raw.sock == 0 {
            not_the_owner(ev);
        }
    }

    /// A RST a peer sent us, in softirq; the state decides the errno.
    pub(super) fn receive_reset(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        self.network(raw, ev);
        // What the application will see, as tcp_reset() decides it.
        ev.errno = ev.tcp_state.and_then(TcpState::errno_on_reset);
        not_the_owner(ev);
    }
}

#[cfg(test)]
mod tests {
    use fivexx_core::event::ResetReason;
    use fivexx_core::TcpState;
    use tracer_ebpf::{EventKind, RawEvent};

    use crate::decode::tests::decoder;

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
        assert_eq!(ev.errno, Some(fivexx_core::event::Errno::ECONNREFUSED));
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
            decoder()
                .decode(&raw)
                .unwrap()
                .reset_reason
                .as_ref()
                .map(ResetReason::as_str),
            Some("NO_SOCKET")
        );
        raw.reason = 77;
        assert_eq!(
            decoder()
                .decode(&raw)
                .unwrap()
                .reset_reason
                .as_ref()
                .map(ResetReason::as_str),
            Some("REASON_77")
        );
    }

    #[test]
    fn a_no_socket_drop_is_a_no_socket_reset_from_the_closed_port() {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::SendReset as u8;
        raw.flags = tracer_ebpf::flags::FROM_SKB_DROP;
        // A drop reason value that means something else as an sk_rst_reason.
        raw.reason = 2;
        raw.family = 2;
        raw.saddr[..4].copy_from_slice(&[10, 244, 0, 7]);
        raw.daddr[..4].copy_from_slice(&[10, 0, 0, 9]);
        raw.sport = 8080;
        raw.dport = 41000;
        let ev = decoder().decode(&raw).unwrap();
        assert_eq!(
            ev.reset_reason.as_ref().map(ResetReason::as_str),
            Some("NO_SOCKET")
        );
        let t = ev.tuple.unwrap();
        assert_eq!((t.sport, t.dport), (8080, 41000));
        assert!(ev.task.is_none());
    }
}
