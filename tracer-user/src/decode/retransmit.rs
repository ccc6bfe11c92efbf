//! `tcp:tcp_retransmit_skb` in SYN_SENT (probes/retransmit.rs).

use fivexx_core::KernelEvent;
use tracer_ebpf::RawEvent;

use super::{not_the_owner, Decoder};

impl Decoder {
    /// A SYN sent again into silence; fired from the retransmit timer.
    pub(super) fn syn_retransmit(&self, raw: &RawEvent, ev: &mut KernelEvent) {
        self.network(raw, ev);
        not_the_owner(ev);
    }
}
