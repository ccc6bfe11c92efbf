//! `sock:inet_sk_error_report` and `sock:inet_sock_set_state`
//! (probes/sock.rs).

use fivexx_core::event::Errno;
use fivexx_core::{KernelEvent, TcpState};
use tracer_ebpf::RawEvent;

use super::Decoder;

impl Decoder {
    /// The error a TCP socket reported: `errno` (positive).
    pub(super) fn sock_error(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        self.network(raw, ev);
        ev.errno = Errno::from_kernel(raw.errno);
    }

    /// An abnormal transition, or a close after a long idle (ESTABLISHED
    /// -> FIN_WAIT1): `state` is the old state, `new_state` the new; a
    /// failed connect says when its SYN left; where the kernel read it,
    /// how long the connection had been idle (jiffies, at HZ).
    pub(super) fn state_change(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        self.network(raw, ev);
        ev.new_state = TcpState::from_kernel(raw.new_state);
        if raw.syn_ns != 0 && raw.syn_ns <= raw.ts_ns {
            ev.syn_sent_ns = Some((raw.syn_ns as i64).saturating_add(self.wall_offset_ns));
        }
        if let Some(jiffies) = raw.idle_jiffies().filter(|_| self.hz > 0) {
            ev.idle_us = Some(u64::from(jiffies) * 1_000_000 / u64::from(self.hz));
        }
    }
}

#[cfg(test)]
mod tests {
    use tracer_ebpf::{tcp_state, EventKind, RawEvent};

    use crate::decode::tests::decoder;

    fn idle_close(jiffies: Option<u32>) -> RawEvent {
        let mut raw = RawEvent::zeroed();
        raw.kind = EventKind::StateChange as u8;
        raw.family = 2;
        raw.state = tcp_state::ESTABLISHED;
        raw.new_state = tcp_state::FIN_WAIT1;
        raw.set_idle_jiffies(jiffies);
        raw
    }

    #[test]
    fn idle_jiffies_become_microseconds_at_the_kernels_hz() {
        let mut d = decoder();
        d.hz = 250;
        let ev = d.decode(&idle_close(Some(500))).unwrap();
        assert_eq!(ev.idle_us, Some(2_000_000));
        // Unknown on this kernel, or HZ unmeasured: no idle time at all.
        assert_eq!(d.decode(&idle_close(None)).unwrap().idle_us, None);
        d.hz = 0;
        assert_eq!(d.decode(&idle_close(Some(500))).unwrap().idle_us, None);
    }

    #[test]
    fn a_kind_detail_reads_only_as_its_own_kinds() {
        let mut raw = idle_close(Some(500));
        assert_eq!(raw.idle_jiffies(), Some(500));
        assert_eq!(raw.peeked_len(), None, "a StateChange peeks nothing");
        raw.kind = EventKind::HttpResponse as u8;
        assert_eq!(raw.idle_jiffies(), None, "an HTTP answer has no idle time");
        assert_eq!(raw.peeked_len(), Some(500));
    }
}
