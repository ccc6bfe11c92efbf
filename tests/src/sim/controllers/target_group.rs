//! The external load balancer's target group (lb-deregistration-lag): it
//! targets the pods' IPs directly, as an ALB/NLB target group in IP mode
//! or a GKE NEG does, registering a pod when its endpoint turns ready and
//! deregistering it only `delay` after its endpoint left: the Load
//! Balancer Controller's reconcile, the cloud API call and the load
//! balancer's own propagation, during which it goes on sending new
//! connections to a pod that is shutting down.

use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::time::Instant;

/// See the module's doc.
#[derive(Debug, Default)]
pub(crate) struct TargetGroup {
    /// The ready endpoints the controller last saw.
    registered: Vec<Ipv4Addr>,
    /// Addresses whose endpoint left, and when their deregistration ends.
    draining: Vec<(Ipv4Addr, Instant)>,
}

impl TargetGroup {
    /// The targets the load balancer sends to from `now`, given the
    /// endpoints' ready set then: a removed address stays `delay` longer.
    pub fn targets(&mut self, ready: &[Ipv4Addr], now: Instant, delay: Duration) -> Vec<Ipv4Addr> {
        for ip in &self.registered {
            if !ready.contains(ip) && !self.draining.iter().any(|(d, _)| d == ip) {
                self.draining.push((*ip, now + delay));
            }
        }
        self.draining
            .retain(|(ip, until)| *until > now && !ready.contains(ip));
        self.registered = ready.to_vec();
        let mut v = ready.to_vec();
        v.extend(self.draining.iter().map(|(ip, _)| *ip));
        v.sort();
        v.dedup();
        v
    }

    /// The targets at `now` with the same ready set (a deregistration
    /// that ended since).
    pub fn refresh(&mut self, now: Instant, delay: Duration) -> Vec<Ipv4Addr> {
        let ready = self.registered.clone();
        self.targets(&ready, now, delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_target_stays_for_the_delay() {
        let (a, b, c) = (
            Ipv4Addr::new(10, 244, 0, 10),
            Ipv4Addr::new(10, 244, 0, 11),
            Ipv4Addr::new(10, 244, 0, 12),
        );
        let d = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut g = TargetGroup::default();
        assert_eq!(g.targets(&[a, b], t0, d), vec![a, b]);
        // b leaves the endpoints, c joins: c at once, b for 3 s more.
        assert_eq!(
            g.targets(&[a, c], t0 + Duration::from_secs(1), d),
            vec![a, b, c]
        );
        assert_eq!(
            g.refresh(t0 + Duration::from_millis(3900), d),
            vec![a, b, c]
        );
        assert_eq!(g.refresh(t0 + Duration::from_secs(4), d), vec![a, c]);
        // Back in the endpoints before it was gone: registered again.
        g.targets(&[c], t0 + Duration::from_secs(5), d);
        assert_eq!(
            g.targets(&[a, c], t0 + Duration::from_secs(6), d),
            vec![a, c]
        );
    }
}
