//! Requests waiting on one connection attempt: Envoy's connection pool
//! queues requests on a connection it is still opening (its circuit
//! breakers cap connections and pending requests apart), and when that
//! connect fails it fails every request waiting on it, each with its own
//! 503 `UF`, within a millisecond or so. One failed connect then fails
//! several requests: after the first has claimed it, the others share it.
//! nginx and HAProxy open one connection per request try, so for them a
//! claimed failure stays the first answer's alone. Also: which pod a
//! proxy's server-slot name stands for, when one died right then.

use crate::explain::verdict::Verdict;
use foldhash::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;

/// A pool fails its waiting requests this soon after the connect failed.
pub(super) const PURGE_NS: i64 = 100_000_000;

/// The claimed failed connect of proxy `proxy` on `node` that an answer at
/// `t` shares: the latest one from `PURGE_NS` before it up to 1 ms after.
pub(super) fn shared_connect(
    recent: &HashMap<String, VecDeque<(Verdict, bool)>>,
    node: &str,
    proxy: IpAddr,
    t: i64,
) -> Option<(String, usize)> {
    let q = recent.get(node)?;
    let i = q.iter().rposition(|(u, claimed)| {
        *claimed
            && u.at_ns() >= t - PURGE_NS
            && u.at_ns() <= t + 1_000_000
            && u.failure
                .connection()
                .is_some_and(|c| c.tuple.saddr == proxy && c.kind.is_new_connection())
    })?;
    Some((node.to_string(), i))
}

/// The address of the one pod whose process was killed (OOM, or a
/// lifecycle SIGKILL) within `window` before `t` (up to `skew` after);
/// `None` when none or several were: HAProxy's log names a server slot,
/// not an address, so only an unambiguous death can stand for it.
pub(super) fn only_pod_killed_near(
    tl: &crate::model::timeline::ClusterTimeline,
    t: i64,
    window: i64,
    skew: i64,
) -> Option<IpAddr> {
    let near = |at: i64| at >= t - window && at <= t + skew;
    let mut found = None;
    for p in tl.pods() {
        let died = p.oom.as_ref().is_some_and(|(at, _)| near(*at))
            || p.sigkills
                .iter()
                .any(|k| near(k.at_ns) && k.from_lifecycle());
        if died {
            if found.is_some() {
                return None;
            }
            found = p.ips.last().map(|(_, ip)| *ip);
        }
    }
    found
}
