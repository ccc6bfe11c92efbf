//! Bursts: the failures of one workload, pod, cause and proxy that came
//! close together. A person reads an incident as a few bursts ("pod
//! web-1 refused 74 requests through the ingress over 1.2 s"), not as
//! hundreds of verdicts; the live view shows one line per burst, and each
//! verdict carries its burst's id so a JSON consumer can group the same
//! way. Ids are assigned in the order verdicts come out, which is the same
//! for a live session and the replay of its capture.

use super::verdict::{Cause, Verdict};
use foldhash::HashMap;

/// Failures of one key further apart than this are two bursts.
pub const BURST_GAP_NS: i64 = 5_000_000_000;

/// What makes two failures part of one burst.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BurstKey {
    workload: Option<String>,
    pod: Option<String>,
    cause: Cause,
    /// The proxy: its node and address (or pod, from an access log).
    proxy: Option<(String, String)>,
}

impl BurstKey {
    fn of(v: &Verdict) -> BurstKey {
        let i = &v.involved;
        BurstKey {
            workload: i.workload_key.clone(),
            pod: i.pod.clone(),
            cause: v.cause,
            proxy: i.proxy.as_ref().map(|p| {
                let who = p
                    .address
                    .map(|a| a.to_string())
                    .or_else(|| p.pod.clone())
                    .unwrap_or_default();
                (p.node.clone(), who)
            }),
        }
    }
}

/// Assigns burst ids. Memory: the bursts open in the last gap.
#[derive(Debug, Default)]
pub(crate) struct BurstTracker {
    /// Per key: the open burst's id and its latest failure.
    open: HashMap<BurstKey, (u64, i64)>,
    next_id: u64,
    /// The latest failure time seen, to close idle bursts.
    latest: i64,
}

impl BurstTracker {
    /// The burst of `v`: the open one of its key, unless that one has been
    /// quiet for longer than the gap. Verdicts come out nearly in time
    /// order (held upstream failures a little late), so the gap is taken
    /// either way.
    pub fn assign(&mut self, v: &mut Verdict) {
        let t = v.at_ns();
        let key = BurstKey::of(v);
        let id = match self.open.get_mut(&key) {
            Some((id, last)) if (t - *last).abs() <= BURST_GAP_NS => {
                *last = (*last).max(t);
                *id
            }
            _ => {
                self.next_id += 1;
                self.open.insert(key, (self.next_id, t));
                self.next_id
            }
        };
        v.burst = Some(id);
        if t > self.latest + BURST_GAP_NS {
            self.latest = t;
            let cutoff = t - 2 * BURST_GAP_NS;
            self.open.retain(|_, (_, last)| *last >= cutoff);
        }
    }
}
