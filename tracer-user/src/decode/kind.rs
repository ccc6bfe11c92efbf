//! The two kind enums, tied by name rather than by position.
//!
//! `tracer_ebpf::EventKind` is the ABI tag (its value indexes the kernel's
//! per-kind counters); `fivexx_core::KernelEventKind` is the schema the
//! engine and the protocol speak. Nothing may rely on the two listing their
//! kinds in the same order: every conversion goes through these matches,
//! which the compiler checks for exhaustiveness both ways.

use fivexx_core::KernelEventKind;
use tracer_ebpf::EventKind;

/// The schema kind of an ABI tag.
pub fn core_kind(k: EventKind) -> KernelEventKind {
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

/// The ABI tag of a schema kind.
pub fn abi_kind(k: KernelEventKind) -> EventKind {
    match k {
        KernelEventKind::SendReset => EventKind::SendReset,
        KernelEventKind::ReceiveReset => EventKind::ReceiveReset,
        KernelEventKind::SockError => EventKind::SockError,
        KernelEventKind::StateChange => EventKind::StateChange,
        KernelEventKind::SynRetransmit => EventKind::SynRetransmit,
        KernelEventKind::Signal => EventKind::Signal,
        KernelEventKind::Exit => EventKind::Exit,
        KernelEventKind::OomVictim => EventKind::OomVictim,
        KernelEventKind::HttpResponse => EventKind::HttpResponse,
    }
}

/// Where a kind's totals live in the kernel's per-kind counter arrays (and
/// in the agent's `received` counts, which sit beside them in reports).
pub fn counter_index(k: KernelEventKind) -> usize {
    abi_kind(k) as usize
}

/// The schema kind of a counter index of the kernel side.
pub fn kind_for_index(i: usize) -> Option<KernelEventKind> {
    u8::try_from(i)
        .ok()
        .and_then(EventKind::from_u8)
        .map(core_kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_kind_lists_map_one_to_one() {
        assert_eq!(EventKind::ALL.len(), KernelEventKind::ALL.len());
        assert_eq!(EventKind::ALL.len(), tracer_ebpf::KIND_COUNT);
        for k in EventKind::ALL {
            assert_eq!(abi_kind(core_kind(k)), k, "{k:?}");
        }
        for k in KernelEventKind::ALL {
            assert_eq!(core_kind(abi_kind(k)), k, "{k:?}");
        }
    }

    #[test]
    fn counter_indexes_follow_the_abi_tags() {
        let mut seen = [false; tracer_ebpf::KIND_COUNT];
        for k in KernelEventKind::ALL {
            let i = counter_index(k);
            assert_eq!(i, abi_kind(k) as u8 as usize);
            assert!(!seen[i], "two kinds share counter {i}");
            seen[i] = true;
            assert_eq!(kind_for_index(i), Some(k));
        }
        assert!(seen.iter().all(|s| *s), "a counter index has no kind");
        assert_eq!(kind_for_index(tracer_ebpf::KIND_COUNT), None);
    }

    #[test]
    fn abi_tags_are_their_counter_positions() {
        for (i, k) in EventKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "EventKind::ALL is in tag order");
            assert_eq!(EventKind::from_u8(i as u8), Some(*k));
        }
    }
}
