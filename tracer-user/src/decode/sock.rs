//! `sock:inet_sk_error_report` and `sock:inet_sock_set_state`
//! (probes/sock.rs).

use fivexx_core::event::Errno;
use fivexx_core::{KernelEvent, TcpState};
use tracer_ebpf::{flags, RawEvent};

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
        if raw.flags & flags::IDLE_KNOWN != 0 && self.hz > 0 {
            ev.idle_us = Some(u64::from(raw.reserved) * 1_000_000 / u64::from(self.hz));
        }
    }
}
