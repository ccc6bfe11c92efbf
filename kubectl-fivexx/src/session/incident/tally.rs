//! The live view's unit: a burst, the failed requests of one workload,
//! pod, cause and proxy that came close together. The engine numbers
//! bursts (`fivexx_core::explain::burst`); this is the view's tally of
//! each: verdicts are folded into their burst here; a burst closes once
//! the session has explained everything up to well past its last
//! failure, and is then printed once, with its fix and its next command.
//! Pure: no terminal, no clock (the drawing is the parent module's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use fivexx_core::explain::burst::BURST_GAP_NS;
use fivexx_core::explain::{Cause, Failure, Fix, NextStep, ProxyRef, Verdict};
use fivexx_core::model::workload_label;
use fivexx_core::report::{clock, format_duration};

/// How long past the burst gap a burst stays open: the engine holds an
/// upstream failure while a proxy's answer may still claim it (its HTTP
/// join window plus a second, about 2 s), so such a verdict can come out
/// a little after later ones.
pub const CLOSE_MARGIN_NS: i64 = 3_000_000_000;

/// Addresses a line names, at most.
const MAX_ADDRESSES: usize = 3;

/// The columns of a burst's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Span,
    Count,
    Outcomes,
    Cause,
    Who,
    Via,
}

/// The parts of a line, two spaces apart.
pub fn join(parts: impl IntoIterator<Item = String>) -> String {
    parts.into_iter().collect::<Vec<_>>().join("  ")
}

/// One burst: what its verdicts have in common, and what they add up to.
#[derive(Clone, Debug, PartialEq)]
pub struct Burst {
    /// The engine's burst id (the `burst` of each verdict in the JSON).
    pub id: u64,
    /// Failed requests.
    pub count: u64,
    pub first_ns: i64,
    pub last_ns: i64,
    /// Per outcome: the HTTP status the client got (`502`), or, when no
    /// answer was seen, how the upstream connection failed (`refused`).
    pub outcomes: BTreeMap<String, u64>,
    pub cause: Cause,
    /// `namespace/kind/name`.
    pub workload_key: Option<String>,
    /// `namespace/name`.
    pub pod: Option<String>,
    /// The addresses the failed requests were sent to (the pod's).
    pub addresses: BTreeSet<IpAddr>,
    pub proxy: Option<ProxyRef>,
    /// The latest verdict's fix.
    pub fix: Option<Arc<Fix>>,
    pub next: Option<Arc<NextStep>>,
}

/// What one verdict's failure counts as: its status, or its kind.
fn outcome(f: &Failure) -> String {
    match f.http_status() {
        Some(s) => s.to_string(),
        None => f.kind().name().to_string(),
    }
}

/// The address the proxy sent the failed request to.
fn server(f: &Failure) -> Option<IpAddr> {
    match f {
        Failure::Connection(c) => Some(c.tuple.daddr),
        Failure::Answer(a) => a.upstream.map(|u| u.remote.ip()),
    }
}

impl Burst {
    fn start(id: u64, v: &Verdict) -> Burst {
        let t = v.at_ns();
        let mut b = Burst {
            id,
            count: 0,
            first_ns: t,
            last_ns: t,
            outcomes: BTreeMap::new(),
            cause: v.cause,
            workload_key: v.involved.workload_key.clone(),
            pod: v.involved.pod.clone(),
            addresses: BTreeSet::new(),
            proxy: v.involved.proxy.clone(),
            fix: None,
            next: None,
        };
        b.add(v);
        b
    }

    fn add(&mut self, v: &Verdict) {
        let t = v.at_ns();
        self.count += 1;
        self.first_ns = self.first_ns.min(t);
        if t >= self.last_ns {
            self.last_ns = t;
            if v.fix.is_some() {
                self.fix.clone_from(&v.fix);
            }
        }
        if self.fix.is_none() {
            self.fix.clone_from(&v.fix);
        }
        if v.next.is_some() {
            self.next.clone_from(&v.next);
        }
        *self.outcomes.entry(outcome(&v.failure)).or_default() += 1;
        if let Some(a) = server(&v.failure) {
            if self.addresses.len() < MAX_ADDRESSES {
                self.addresses.insert(a);
            }
        }
        if self.proxy.as_ref().is_some_and(|p| p.pod.is_none()) {
            if let Some(p) = &v.involved.proxy {
                self.proxy = Some(p.clone());
            }
        }
    }

    /// Whether the session's explained time `clock_ns` is past the burst
    /// gap (and the engine's hold) after its last failure.
    pub fn is_over(&self, clock_ns: i64) -> bool {
        clock_ns > self.last_ns.saturating_add(BURST_GAP_NS + CLOSE_MARGIN_NS)
    }

    /// `502×73 504×1`.
    pub fn outcomes_text(&self) -> String {
        let mut s = String::new();
        for (o, n) in &self.outcomes {
            if !s.is_empty() {
                s.push(' ');
            }
            let _ = write!(s, "{o}×{n}");
        }
        s
    }

    /// `10:04:12.301–10:04:13.512 (1.2s)`, UTC.
    pub fn span_text(&self) -> String {
        if self.last_ns == self.first_ns {
            return clock(self.first_ns);
        }
        format!(
            "{}–{} ({})",
            clock(self.first_ns),
            clock(self.last_ns),
            format_duration(self.last_ns - self.first_ns)
        )
    }

    /// `deployment shop/web  pod shop/web-29qx 10.244.1.5`: who failed.
    pub fn who_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(k) = &self.workload_key {
            parts.push(workload_label(k));
        }
        let addrs: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        match (&self.pod, addrs.is_empty()) {
            (Some(p), true) => parts.push(format!("pod {p}")),
            (Some(p), false) => parts.push(format!("pod {p} {}", addrs.join(","))),
            (None, false) => parts.push(format!("to {}", addrs.join(","))),
            (None, true) => {}
        }
        parts.join("  ")
    }

    /// `via ingress-nginx/ingress-nginx-controller-abc (lab-node-1)`.
    pub fn via_text(&self) -> Option<String> {
        let p = self.proxy.as_ref()?;
        let who = p
            .pod
            .clone()
            .or_else(|| p.address.map(|a| a.to_string()))
            .unwrap_or_else(|| "a proxy".into());
        Some(if p.node.is_empty() {
            format!("via {who}")
        } else {
            format!("via {who} ({})", p.node)
        })
    }

    /// `74 failed` (the count column).
    pub fn count_text(&self) -> String {
        format!("{} failed", self.count)
    }

    /// The burst's line in parts, for a terminal to colour each: span,
    /// count, outcomes, cause, who, proxy (the last two when known).
    pub fn parts(&self) -> Vec<(Part, String)> {
        let mut parts = vec![
            (Part::Span, self.span_text()),
            (Part::Count, self.count_text()),
            (Part::Outcomes, self.outcomes_text()),
            (Part::Cause, self.cause.label().to_string()),
        ];
        let who = self.who_text();
        if !who.is_empty() {
            parts.push((Part::Who, who));
        }
        if let Some(via) = self.via_text() {
            parts.push((Part::Via, via));
        }
        parts
    }

    /// The burst's line, uncoloured (what the view prints with colour off).
    #[cfg(test)]
    pub fn line(&self) -> String {
        join(self.parts().into_iter().map(|(_, s)| s))
    }

    /// `fix: preStop sleep >= 2 s — because ...`.
    pub fn fix_line(&self) -> Option<String> {
        let f = self.fix.as_ref()?;
        Some(format!("fix: {} — because {}", f.action, f.because))
    }

    /// `next: kubectl get endpointslices ...` (the why is the summary's).
    pub fn next_line(&self) -> Option<String> {
        Some(format!("next: {}", self.next.as_ref()?.command))
    }

    /// Names the proxy from `names` when the verdicts gave only its
    /// address (a proxy outside the traced namespace).
    pub fn name_proxy(&mut self, names: &HashMap<IpAddr, String>) {
        if let Some(p) = self.proxy.as_mut().filter(|p| p.pod.is_none()) {
            p.pod = p.address.and_then(|a| names.get(&a).cloned());
        }
    }
}

/// The open bursts of a session.
#[derive(Debug, Default)]
pub struct Bursts {
    open: BTreeMap<u64, Burst>,
    /// Ids for verdicts the engine gave none (counting down from the top,
    /// clear of the engine's).
    unnumbered: u64,
    /// The latest failure time folded in.
    latest_ns: i64,
}

impl Bursts {
    /// Folds `v` into its burst; returns that burst's id.
    pub fn add(&mut self, v: &Verdict) -> u64 {
        let id = v.burst.unwrap_or_else(|| {
            self.unnumbered += 1;
            u64::MAX - self.unnumbered
        });
        self.latest_ns = self.latest_ns.max(v.at_ns());
        match self.open.get_mut(&id) {
            Some(b) => b.add(v),
            None => {
                self.open.insert(id, Burst::start(id, v));
            }
        }
        id
    }

    #[cfg(test)]
    pub fn get(&self, id: u64) -> Option<&Burst> {
        self.open.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Burst> {
        self.open.get_mut(&id)
    }

    /// The latest failure time seen: verdicts come out nearly in time
    /// order, so this is how far the session has explained.
    pub fn latest_ns(&self) -> i64 {
        self.latest_ns
    }

    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Closes the bursts that are over at `clock_ns`, earliest first.
    pub fn close_over(&mut self, clock_ns: i64) -> Vec<Burst> {
        let ids: Vec<u64> = self
            .open
            .values()
            .filter(|b| b.is_over(clock_ns))
            .map(|b| b.id)
            .collect();
        let closed = ids.iter().filter_map(|id| self.open.remove(id)).collect();
        by_time(closed)
    }

    /// Closes every burst (the end of the session), earliest first.
    pub fn close_all(&mut self) -> Vec<Burst> {
        by_time(std::mem::take(&mut self.open).into_values().collect())
    }
}

fn by_time(mut v: Vec<Burst>) -> Vec<Burst> {
    v.sort_by_key(|b| (b.first_ns, b.id));
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fivexx_core::event::FourTuple;
    use fivexx_core::explain::{
        Confidence, FailedConnection, FailureKind, HttpAnswer, Involved, Verdict,
    };

    pub(crate) const S: i64 = 1_000_000_000;
    /// 2026-12-02T10:04:12Z.
    pub(crate) const T0: i64 = 1_796_205_852 * S;

    fn tuple() -> FourTuple {
        FourTuple {
            saddr: "10.0.0.9".parse().unwrap(),
            sport: 40_000,
            daddr: "10.244.1.5".parse().unwrap(),
            dport: 8080,
        }
    }

    fn involved() -> Involved {
        Involved {
            namespace: Some("shop".into()),
            workload_key: Some("shop/deployment/web".into()),
            pod: Some("shop/web-29qx".into()),
            proxy: Some(ProxyRef {
                node: "lab-node-1".into(),
                address: Some("10.0.0.9".parse().unwrap()),
                pod: Some("ingress-nginx/ingress-nginx-controller-abc".into()),
            }),
            ..Involved::default()
        }
    }

    fn verdict(burst: Option<u64>, failure: Failure) -> Verdict {
        Verdict {
            failure,
            cause: Cause::EndpointLagNetnsAlive,
            confidence: Confidence::High,
            evidence: Vec::new(),
            involved: involved(),
            episode: None,
            fix: None,
            note: None,
            next: None,
            burst,
        }
    }

    pub(crate) fn answer(burst: u64, at_ns: i64, status: u16) -> Verdict {
        verdict(
            Some(burst),
            Failure::Answer(HttpAnswer {
                at_ns,
                first_ns: at_ns,
                kind: FailureKind::Http5xx,
                http_status: status,
                client: "10.1.0.7".parse().ok(),
                client_port: None,
                tuple: None,
                node: "lab-node-1".into(),
                proxy_pid: None,
                proxy_pod: None,
                upstream: Some(fivexx_core::explain::verdict::UpstreamConn::of(tuple())),
                account: None,
                failed_tries: Vec::new(),
                upstream_kind: Some(FailureKind::Refused),
                upstream_failures: 1,
                evidence: Vec::new(),
            }),
        )
    }

    fn refused(burst: Option<u64>, at_ns: i64) -> Verdict {
        verdict(
            burst,
            Failure::Connection(FailedConnection {
                at_ns,
                first_ns: at_ns,
                kind: FailureKind::Refused,
                tuple: tuple(),
                client_node: "lab-node-1".into(),
                proxy_pid: None,
                rst: true,
                errno: Some(fivexx_core::event::Errno::ECONNREFUSED),
                syn_retransmits: 0,
                server_reset: None,
                syn_sent_ns: None,
                idle_close: None,
                evidence: Vec::new(),
            }),
        )
    }

    pub(crate) fn fix(action: &str) -> Option<Arc<Fix>> {
        Some(Arc::new(Fix {
            action: action.into(),
            because: "endpoint-removal lag p99 1.1 s over 3 terminations".into(),
            params: BTreeMap::new(),
        }))
    }

    #[test]
    fn verdicts_of_one_burst_add_up_to_one_line() {
        let mut bs = Bursts::default();
        bs.add(&answer(1, T0 + 301_000_000, 502));
        let mut late = answer(1, T0 + S + 512_000_000, 502);
        late.fix = fix("preStop sleep >= 2 s");
        late.next = Some(Arc::new(NextStep {
            command: "kubectl get endpointslices -n shop -l kubernetes.io/service-name=web -w"
                .into(),
            why: "watch the endpoint removal lag".into(),
        }));
        bs.add(&late);
        bs.add(&answer(1, T0 + S, 504));
        bs.add(&refused(Some(1), T0 + S));
        assert_eq!(bs.open_count(), 1);
        let b = bs.get(1).unwrap();
        assert_eq!(b.count, 4);
        assert_eq!(
            b.line(),
            "10:04:12.301–10:04:13.512 (1.2s)  4 failed  502×2 504×1 refused×1  endpoint lag (pod still up)  deployment shop/web  pod shop/web-29qx 10.244.1.5  via ingress-nginx/ingress-nginx-controller-abc (lab-node-1)"
        );
        assert_eq!(
            b.fix_line().unwrap(),
            "fix: preStop sleep >= 2 s — because endpoint-removal lag p99 1.1 s over 3 terminations"
        );
        assert_eq!(
            b.next_line().unwrap(),
            "next: kubectl get endpointslices -n shop -l kubernetes.io/service-name=web -w"
        );
    }

    #[test]
    fn the_fix_is_the_latest_verdicts() {
        let mut bs = Bursts::default();
        let mut a = answer(1, T0, 502);
        a.fix = fix("preStop sleep >= 2 s");
        let mut b = answer(1, T0 + S, 502);
        b.fix = fix("preStop sleep >= 3 s");
        let mut earlier = answer(1, T0 + S / 2, 502);
        earlier.fix = fix("preStop sleep >= 1 s");
        for v in [&a, &b, &earlier] {
            bs.add(v);
        }
        assert_eq!(bs.get(1).unwrap().fix, b.fix);
    }

    #[test]
    fn a_burst_closes_past_the_gap_and_the_hold() {
        let mut bs = Bursts::default();
        bs.add(&answer(1, T0, 502));
        bs.add(&answer(2, T0 + 2 * S, 502));
        let edge = T0 + BURST_GAP_NS + CLOSE_MARGIN_NS;
        assert!(bs.close_over(edge).is_empty());
        let closed = bs.close_over(edge + 1);
        assert_eq!(closed.iter().map(|b| b.id).collect::<Vec<_>>(), [1]);
        assert_eq!(bs.open_count(), 1);
        let rest = bs.close_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(bs.open_count(), 0);
    }

    #[test]
    fn close_all_orders_by_first_failure_and_loses_no_count() {
        let mut bs = Bursts::default();
        let times = [(3, 5), (1, 9), (2, 1), (3, 6), (1, 2)];
        for (id, t) in times {
            bs.add(&answer(id, T0 + t * S, 502));
        }
        bs.add(&refused(None, T0 + 7 * S));
        bs.add(&refused(None, T0 + 8 * S));
        assert_eq!(bs.latest_ns(), T0 + 9 * S);
        let all = bs.close_all();
        let order: Vec<i64> = all.iter().map(|b| (b.first_ns - T0) / S).collect();
        assert_eq!(order, [1, 2, 5, 7, 8]);
        // Each unnumbered verdict is a burst of its own.
        assert_eq!(all.iter().map(|b| b.count).sum::<u64>(), 7);
    }

    #[test]
    fn a_single_failure_shows_one_time_and_a_bare_address() {
        let mut v = refused(Some(4), T0);
        v.involved = Involved::default();
        let mut bs = Bursts::default();
        bs.add(&v);
        let b = bs.get(4).unwrap();
        assert_eq!(
            b.line(),
            "10:04:12.000  1 failed  refused×1  endpoint lag (pod still up)  to 10.244.1.5"
        );
        assert_eq!((b.fix_line(), b.next_line()), (None, None));
    }

    #[test]
    fn a_proxy_known_by_address_only_is_named_from_the_session() {
        let mut v = answer(1, T0, 502);
        v.involved.proxy.as_mut().unwrap().pod = None;
        let mut bs = Bursts::default();
        bs.add(&v);
        let b = bs.get_mut(1).unwrap();
        assert_eq!(b.via_text().unwrap(), "via 10.0.0.9 (lab-node-1)");
        let names = [("10.0.0.9".parse().unwrap(), "ingress-nginx/c-1".to_string())].into();
        b.name_proxy(&names);
        assert_eq!(b.via_text().unwrap(), "via ingress-nginx/c-1 (lab-node-1)");
    }
}
