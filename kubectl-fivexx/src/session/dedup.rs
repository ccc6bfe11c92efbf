//! The same kernel event through two streams counts once. One agent per
//! node sends each event on one stream, but two agents can serve one
//! kernel: the old and the new agent pod of a node while the DaemonSet
//! itself rolls, or a lab whose nodes share one machine. An event is the
//! same when its node, monotonic time, kind and endpoints are.

use std::collections::{HashSet, VecDeque};

use fivexx_core::{FourTuple, KernelEvent, KernelEventKind};

/// Events remembered; far more than arrive within one agent's delay.
const REMEMBERED: usize = 65_536;

type Key = (String, u64, KernelEventKind, Option<FourTuple>, Option<i32>);

#[derive(Default)]
pub struct Dedup {
    seen: HashSet<Key>,
    order: VecDeque<Key>,
}

impl Dedup {
    /// Whether `ev` is new (then it is remembered).
    pub fn first(&mut self, ev: &KernelEvent) -> bool {
        let key = (
            ev.node.clone(),
            ev.mono_ns,
            ev.kind,
            ev.tuple,
            ev.target.as_ref().map(|t| t.pid),
        );
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_twice_counts_once_and_others_pass() {
        let mut d = Dedup::default();
        let mut ev = KernelEvent::new(KernelEventKind::ReceiveReset, 7, 7);
        ev.node = "node-1".into();
        assert!(d.first(&ev));
        assert!(!d.first(&ev.clone()));
        let mut other = ev.clone();
        other.mono_ns = 8;
        assert!(d.first(&other));
        let mut elsewhere = ev.clone();
        elsewhere.node = "node-2".into();
        assert!(d.first(&elsewhere));
    }
}
