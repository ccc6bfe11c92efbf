//! Bursts: the failures of one workload, pod, cause and proxy that came
//! close together. A person reads an incident as a few bursts ("pod
//! web-1 refused 74 requests through the ingress over 1.2 s"), not as
//! hundreds of verdicts; the live view shows one line per burst, and each
//! verdict carries its burst's id so a JSON consumer can group the same
//! way. Ids are assigned in the order verdicts come out, which is the same
//! for a live session and the replay of its capture.

use super::verdict::{Cause, NextStep, Verdict};
use foldhash::HashMap;
use std::sync::Arc;

/// Failures of one key further apart than this are two bursts.
pub const BURST_GAP_NS: i64 = 5_000_000_000;

/// What makes two failures part of one burst, hashed: a verdict's key is
/// looked up once per verdict, and hashing the names costs less than
/// cloning them (a collision would only merge two bursts' ids). The
/// status and upstream join the key for unexplained answers, whose next
/// command names them.
fn burst_key(v: &Verdict) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5f5f_7878).build_hasher();
    let i = &v.involved;
    i.workload_key.hash(&mut h);
    i.pod.hash(&mut h);
    v.cause.hash(&mut h);
    if let Some(p) = &i.proxy {
        p.node.hash(&mut h);
        p.address.hash(&mut h);
        p.pod.hash(&mut h);
    }
    if v.cause == Cause::Unexplained {
        // Its next command names the status and the upstream it came from.
        v.failure.http_status().hash(&mut h);
        if let Some(a) = v.failure.answer() {
            a.upstream.map(|u| u.remote).hash(&mut h);
            a.failed_tries.last().hash(&mut h);
        }
    }
    h.finish()
}

/// An open burst: its id, latest failure, and the next command its
/// verdicts share.
#[derive(Debug)]
struct OpenBurst {
    id: u64,
    last: i64,
    next: Option<Arc<NextStep>>,
}

/// Assigns burst ids. Memory: the bursts open in the last gap.
#[derive(Debug, Default)]
pub(crate) struct BurstTracker {
    open: HashMap<u64, OpenBurst>,
    next_id: u64,
    /// The latest failure time seen, to close idle bursts.
    latest: i64,
}

impl BurstTracker {
    /// The burst of `v`: the open one of its key, unless that one has been
    /// quiet for longer than the gap. Verdicts come out nearly in time
    /// order (held upstream failures a little late), so the gap is taken
    /// either way. A new burst's next command is made by `next`; the
    /// burst's later verdicts share it.
    pub fn assign(&mut self, v: &mut Verdict, next: impl FnOnce(&Verdict) -> Option<NextStep>) {
        let t = v.at_ns();
        let key = burst_key(v);
        match self.open.get_mut(&key) {
            Some(b) if (t - b.last).abs() <= BURST_GAP_NS => {
                b.last = b.last.max(t);
                v.burst = Some(b.id);
                v.next.clone_from(&b.next);
            }
            _ => {
                self.next_id += 1;
                let step = next(v).map(Arc::new);
                v.burst = Some(self.next_id);
                v.next.clone_from(&step);
                self.open.insert(
                    key,
                    OpenBurst {
                        id: self.next_id,
                        last: t,
                        next: step,
                    },
                );
            }
        }
        if t > self.latest + BURST_GAP_NS {
            self.latest = t;
            let cutoff = t - 2 * BURST_GAP_NS;
            self.open.retain(|_, b| b.last >= cutoff);
        }
    }
}
