//! Failed new connections from outside the cluster, per (source, pod
//! address): an external load balancer sends both its clients' traffic and
//! its health checks from the same addresses, and only the traffic failed
//! requests.
//!
//! A health check comes alone: one connection per target every interval
//! (1 s at the least on GKE, 5 s on AWS, 2 s by HAProxy's default), while
//! traffic failing during a deregistration lag comes many times a second.
//! So a failure with no other from the same source to the same address
//! within [`PROBE_GAP_NS`] either side is read as a health check: no
//! client saw it. The price: a load balancer sending a pod less than about
//! one request a second has its failures read as health checks too.

use foldhash::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;

/// Failures closer than this to another from the same source and to the
/// same address are traffic; a failure further from every other is alone.
pub(crate) const PROBE_GAP_NS: i64 = 900_000_000;

/// Attempts kept per (source, address), at most: the oldest go first.
const MAX_PER_PAIR: usize = 8192;

/// See the module's doc.
#[derive(Debug, Default)]
pub(crate) struct OutsideAttempts {
    /// Attempt times, sorted, per (source outside, pod address).
    by_pair: HashMap<(IpAddr, IpAddr), VecDeque<i64>>,
}

impl OutsideAttempts {
    /// One failed new connection from `from` to `to`, begun at `at`.
    pub fn add(&mut self, from: IpAddr, to: IpAddr, at: i64) {
        let q = self.by_pair.entry((from, to)).or_default();
        if q.len() >= MAX_PER_PAIR {
            q.pop_front();
        }
        // Failures become final nearly in order: search from the back.
        let pos = q.iter().rposition(|t| *t <= at).map_or(0, |i| i + 1);
        q.insert(pos, at);
    }

    /// No other failure from `from` to `to` within [`PROBE_GAP_NS`] of `at`.
    pub fn is_alone(&self, from: IpAddr, to: IpAddr, at: i64) -> bool {
        self.by_pair
            .get(&(from, to))
            .is_none_or(|q| Self::alone_in(q, at))
    }

    fn alone_in(q: &VecDeque<i64>, at: i64) -> bool {
        let near = q.partition_point(|t| *t <= at + PROBE_GAP_NS)
            - q.partition_point(|t| *t < at - PROBE_GAP_NS);
        // `at` itself is in the list once it was added.
        near <= 1
    }

    /// The latest failure to `to` at or before `horizon` that was traffic
    /// (not alone), and its source.
    pub fn latest_traffic_to(&self, to: IpAddr, horizon: i64) -> Option<(i64, IpAddr)> {
        self.by_pair
            .iter()
            .filter(|((_, addr), _)| *addr == to)
            .filter_map(|((from, _), q)| {
                q.iter()
                    .rev()
                    .filter(|t| **t <= horizon)
                    .find(|t| !Self::alone_in(q, **t))
                    .map(|t| (*t, *from))
            })
            .max_by_key(|(t, _)| *t)
    }

    /// Forgets attempts older than `before`.
    pub fn forget_before(&mut self, before: i64) {
        self.by_pair.retain(|_, q| {
            while q.front().is_some_and(|t| *t < before) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn health_checks_are_alone_and_traffic_is_not() {
        let (lb, pod) = (ip("172.31.0.10"), ip("10.244.0.12"));
        let mut o = OutsideAttempts::default();
        // Health checks every 2 s, then a burst of traffic failures.
        for i in 0..5 {
            o.add(lb, pod, i * 2000 * MS);
        }
        for i in 0..20 {
            o.add(lb, pod, 20_000 * MS + i * 15 * MS);
        }
        assert!(o.is_alone(lb, pod, 4000 * MS));
        assert!(!o.is_alone(lb, pod, 20_000 * MS));
        assert!(!o.is_alone(lb, pod, 20_285 * MS));
        // Another source's checks are its own.
        assert!(o.is_alone(ip("172.31.0.11"), pod, 20_000 * MS));
        // A lone check after the traffic does not extend it.
        o.add(lb, pod, 26_000 * MS);
        assert_eq!(o.latest_traffic_to(pod, i64::MAX), Some((20_285 * MS, lb)));
        assert_eq!(
            o.latest_traffic_to(pod, 20_100 * MS),
            Some((20_090 * MS, lb))
        );
        o.forget_before(20_000 * MS);
        assert!(o.is_alone(lb, pod, 8000 * MS));
    }

    #[test]
    fn out_of_order_attempts_stay_sorted() {
        let (lb, pod) = (ip("172.31.0.10"), ip("10.244.0.12"));
        let mut o = OutsideAttempts::default();
        for t in [30, 10, 20, 5, 40] {
            o.add(lb, pod, t * MS);
        }
        let q: Vec<i64> = o.by_pair[&(lb, pod)].iter().map(|t| t / MS).collect();
        assert_eq!(q, vec![5, 10, 20, 30, 40]);
    }
}
