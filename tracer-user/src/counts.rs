//! What became of the records of each kind, in one shape from the kernel's
//! per-CPU arrays to the agent's stats and captures.
//!
//! The programs count every record they try to emit (`GENERATED`) and
//! every ring reservation that fails (`DROPPED`), one slot per kind; the
//! agent counts what it reads. Those three used to travel as two arrays,
//! a slice, a tuple per kind, a pair of maps and a map of names, each
//! indexed its own way. They are one [`RingCounts`] of [`KindCounts`] now,
//! turned into the protocol's and the capture's shapes only at the edge.

use std::collections::BTreeMap;

use fivexx_core::KernelEventKind;
use tracer_ebpf::KIND_COUNT;

use crate::decode::{counter_index, kind_for_index};

/// One count per event kind, stored in the kernel's counter order (slot =
/// `EventKind` tag), so that summing a per-CPU array into it needs no
/// translation and reading it needs no index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts([u64; KIND_COUNT]);

impl KindCounts {
    pub fn get(&self, kind: KernelEventKind) -> u64 {
        self.0[counter_index(kind)]
    }

    pub fn add(&mut self, kind: KernelEventKind, n: u64) {
        self.0[counter_index(kind)] += n;
    }

    /// Every kind with its count, zeros included, in the kernel's order.
    pub fn iter(&self) -> impl Iterator<Item = (KernelEventKind, u64)> + '_ {
        (0..KIND_COUNT).filter_map(|i| kind_for_index(i).map(|k| (k, self.0[i])))
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// As the protocol's `AgentStats` carries them.
    pub fn by_kind(&self) -> BTreeMap<KernelEventKind, u64> {
        self.iter().collect()
    }

    /// The slots in the kernel's order, for summing a per-CPU counter
    /// array (one slot per kind) into.
    pub(crate) fn slots_mut(&mut self) -> &mut [u64; KIND_COUNT] {
        &mut self.0
    }
}

/// The ring buffer's ledger: per kind, the records the programs tried to
/// emit, the reservations that failed, and the records the agent read.
/// Once the ring is drained, `received + dropped = generated` for every
/// kind: the "no silent loss" rule, checked by [`RingCounts::unbalanced`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounts {
    pub generated: KindCounts,
    pub dropped: KindCounts,
    pub received: KindCounts,
}

/// One kind's line of the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindLedger {
    pub kind: KernelEventKind,
    pub generated: u64,
    pub received: u64,
    pub dropped: u64,
}

impl RingCounts {
    /// Every kind's line, in the kernel's order.
    pub fn ledger(&self) -> impl Iterator<Item = KindLedger> + '_ {
        self.generated.iter().map(|(kind, generated)| KindLedger {
            kind,
            generated,
            received: self.received.get(kind),
            dropped: self.dropped.get(kind),
        })
    }

    /// The kinds whose records are neither received nor counted as
    /// dropped (or the reverse): a lost record, or a counter that lies.
    pub fn unbalanced(&self) -> impl Iterator<Item = KindLedger> + '_ {
        self.ledger()
            .filter(|l| l.received + l.dropped != l.generated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_back_by_kind_in_every_shape() {
        let mut c = KindCounts::default();
        c.add(KernelEventKind::Signal, 3);
        c.add(KernelEventKind::HttpResponse, 1);
        c.add(KernelEventKind::Signal, 2);
        assert_eq!(c.get(KernelEventKind::Signal), 5);
        assert_eq!(c.total(), 6);
        assert_eq!(c.iter().count(), KIND_COUNT, "zeros are listed too");
        assert_eq!(c.by_kind()[&KernelEventKind::HttpResponse], 1);
        assert_eq!(c.by_kind()[&KernelEventKind::Signal], 5);
        assert_eq!(c.by_kind()[&KernelEventKind::Exit], 0);
    }

    #[test]
    fn a_record_neither_received_nor_dropped_unbalances_its_kind() {
        let mut r = RingCounts::default();
        r.generated.add(KernelEventKind::Signal, 10);
        r.received.add(KernelEventKind::Signal, 7);
        r.dropped.add(KernelEventKind::Signal, 3);
        assert_eq!(r.unbalanced().count(), 0);
        r.generated.add(KernelEventKind::Exit, 1);
        let bad: Vec<_> = r.unbalanced().map(|l| l.kind).collect();
        assert_eq!(bad, [KernelEventKind::Exit]);
    }
}
