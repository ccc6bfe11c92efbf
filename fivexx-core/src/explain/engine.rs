//! The streaming engine: the event-time watermark, the failures waiting
//! for their lookahead, and the order verdicts come out in. The joins and
//! the assembly it drives live in their own modules.

use super::answers::{AnswerJoin, Context};
use super::assemble::Assembler;
use super::burst::BurstTracker;
use super::config::{ExplainConfig, MAX_SANE_NS, SECOND};
use super::connections::{idle_close_of, FailureJoiner};
use super::next::next_step;
use super::stats::{EngineStats, Measurements};
use super::track::{PodTrack, MAX_TRACKS};
use super::verdict::{FailedConnection, Failure, FailureKind, HttpAnswer, Verdict};
use crate::event::KernelEventKind;
use crate::model::{ClusterTimeline, Fact};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;

/// A failure waiting for its lookahead, ordered by time then tuple so that
/// verdicts come out in a deterministic order. Boxed: the heap moves only
/// the key and a pointer when it sifts.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    /// Time, then connections before the 5xx they caused, then the tuple
    /// (a logged answer knows its client at most).
    key: (
        i64,
        bool,
        Option<IpAddr>,
        Option<u16>,
        Option<IpAddr>,
        Option<u16>,
    ),
    failure: Box<Failure>,
}

impl Pending {
    fn new(f: Failure) -> Pending {
        let t = match &f {
            Failure::Connection(c) => Some(c.tuple),
            Failure::Answer(a) => a.tuple,
        };
        let client = match &f {
            Failure::Answer(a) => a.client,
            Failure::Connection(_) => None,
        };
        Pending {
            key: (
                f.at_ns(),
                f.kind() == FailureKind::Http5xx,
                t.map(|t| t.saddr),
                t.map(|t| t.sport),
                t.map(|t| t.daddr).or(client),
                t.map(|t| t.dport),
            ),
            failure: Box::new(f),
        }
    }
}

impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// The streaming engine. Feed facts with [`push`](Self::push), collect
/// verdicts from the callback, and call [`finish`](Self::finish) at the end.
pub struct Explainer {
    cfg: ExplainConfig,
    tl: ClusterTimeline,
    joiner: FailureJoiner,
    answers: AnswerJoin,
    assembler: Assembler,
    pending: BinaryHeap<Reverse<Pending>>,
    /// Connections that became final since the last turn.
    done: Vec<FailedConnection>,
    /// An answer arrived since the last turn (then ripe failures are
    /// emitted now, as for a connection that became final).
    new_answer: bool,
    max_seen: i64,
    last_expire: i64,
    last_prune: i64,
    stats: EngineStats,
    tracks: Vec<PodTrack>,
    bursts: BurstTracker,
}

impl Explainer {
    pub fn new(cfg: ExplainConfig) -> Explainer {
        let cfg = cfg.clamped();
        let mut tl = ClusterTimeline::default();
        for ip in &cfg.peeked_proxies {
            tl.note_proxy(*ip);
        }
        Explainer {
            answers: AnswerJoin::new(&cfg.peeked_proxies),
            cfg,
            tl,
            joiner: FailureJoiner::default(),
            assembler: Assembler::default(),
            pending: BinaryHeap::new(),
            done: Vec::new(),
            new_answer: false,
            max_seen: i64::MIN,
            last_expire: i64::MIN,
            last_prune: i64::MIN,
            stats: EngineStats::default(),
            tracks: Vec::new(),
            bursts: BurstTracker::default(),
        }
    }

    pub fn config(&self) -> &ExplainConfig {
        &self.cfg
    }

    /// The cluster as known so far.
    pub fn timeline(&self) -> &ClusterTimeline {
        &self.tl
    }

    /// Applies one fact; verdicts that became final are passed to `out`.
    pub fn push(&mut self, fact: &Fact, out: &mut impl FnMut(Verdict)) {
        self.stats.facts += 1;
        // Every window the engine adds to a time stays far below i64::MAX
        // for times in this range, so its arithmetic cannot overflow.
        if !(0..=MAX_SANE_NS).contains(&fact.at_ns()) {
            self.stats.rejected_facts += 1;
            return;
        }
        self.apply(fact);
        let at = fact.at_ns();
        if at > self.max_seen {
            self.max_seen = at;
        }
        let wm = self.max_seen.saturating_sub(self.cfg.skew_ns);
        if wm.saturating_sub(self.last_expire) >= 50_000_000
            || !self.done.is_empty()
            || self.new_answer
        {
            self.last_expire = wm;
            self.new_answer = false;
            self.joiner.expire(
                wm.saturating_sub(self.cfg.join_ns),
                wm.saturating_sub(self.cfg.syn_timeout_ns),
                &mut self.done,
            );
            self.enqueue_done();
            self.emit_ripe(wm.saturating_sub(self.cfg.lookahead_ns), out);
        }
        if wm.saturating_sub(self.last_prune) >= 10 * SECOND {
            self.last_prune = wm;
            self.prune(wm);
        }
    }

    /// Hands a fact to the part of the engine it informs.
    fn apply(&mut self, fact: &Fact) {
        match fact {
            Fact::Kernel(e) => {
                self.stats.kernel_facts += 1;
                if e.kind == KernelEventKind::HttpResponse {
                    if let Some(t) = e.tuple {
                        self.tl.note_proxy(t.saddr);
                    }
                    if let Some(a) = self.answers.kernel_answer(e) {
                        self.enqueue_answer(a);
                    }
                } else {
                    self.tl.apply_kernel_process(e);
                    if let Some(c) = idle_close_of(e) {
                        self.assembler.idle_close(e, c, &self.tl);
                    }
                    self.joiner.push(e, &mut self.done);
                }
                return;
            }
            Fact::Pod(p) => self.tl.apply_pod(p),
            Fact::Endpoint(e) => self.tl.apply_endpoint(e),
            Fact::Service(s) => self.tl.apply_service(s),
            Fact::Node(n) => self.tl.apply_node(n),
            Fact::Event(e) => self.tl.apply_event(e),
            Fact::HttpPeek(p) => {
                self.tl.note_proxy(p.proxy_ip);
                self.answers.peeked(p);
            }
            Fact::AgentGone(g) => self.tl.apply_agent_gone(g),
            Fact::ProxyLog(l) => {
                if let Some(a) = self.answers.log_line(l, &mut self.stats.http) {
                    self.enqueue_answer(a);
                }
            }
        }
        self.stats.api_facts += 1;
    }

    fn enqueue_answer(&mut self, a: HttpAnswer) {
        self.stats.failures += 1;
        self.new_answer = true;
        self.pending.push(Reverse(Pending::new(Failure::Answer(a))));
    }

    fn enqueue_done(&mut self) {
        for f in self.done.drain(..) {
            self.stats.failures += 1;
            self.assembler.note(&f, &self.tl, &self.cfg);
            self.pending
                .push(Reverse(Pending::new(Failure::Connection(f))));
        }
    }

    fn emit_ripe(&mut self, before: i64, out: &mut impl FnMut(Verdict)) {
        while let Some(Reverse(p)) = self.pending.peek() {
            if p.key.0 >= before && before != i64::MAX {
                break;
            }
            let Some(Reverse(Pending { failure, .. })) = self.pending.pop() else {
                break;
            };
            let horizon = if before == i64::MAX {
                i64::MAX
            } else {
                failure.at_ns().saturating_add(self.cfg.lookahead_ns)
            };
            match *failure {
                Failure::Answer(a) => {
                    let mut cx = Context {
                        tl: &self.tl,
                        cfg: &self.cfg,
                        assembler: &mut self.assembler,
                        http: &mut self.stats.http,
                    };
                    if let Some(v) = self.answers.verdict(a, &mut cx, horizon) {
                        Self::finalise(v, &mut self.bursts, &self.tl, &self.cfg, out);
                    }
                }
                Failure::Connection(f) => {
                    let Some(v) = self
                        .assembler
                        .connection_verdict(f, &self.tl, &self.cfg, horizon)
                    else {
                        // A health check from outside: no client saw it.
                        self.stats.failures -= 1;
                        self.stats.health_checks += 1;
                        continue;
                    };
                    if let Some(v) = self.answers.upstream_verdict(v) {
                        Self::finalise(v, &mut self.bursts, &self.tl, &self.cfg, out);
                    }
                }
            }
        }
        // Upstream failures no answer can claim any more: each one no 5xx
        // claimed is a failed request of its own, or a retried try.
        let claimable_until = if before == i64::MAX {
            i64::MAX
        } else {
            before.saturating_sub(self.answers.claim_window(&self.cfg))
        };
        let (bursts, tl, cfg) = (&mut self.bursts, &self.tl, &self.cfg);
        self.answers
            .release(claimable_until, &mut self.stats.http, &mut |v| {
                Self::finalise(v, bursts, tl, cfg, out)
            });
    }

    /// The last touches of a verdict on its way out: its burst, the proxy
    /// pod behind the proxy's address, and the next command.
    fn finalise(
        mut v: Verdict,
        bursts: &mut BurstTracker,
        tl: &ClusterTimeline,
        cfg: &ExplainConfig,
        out: &mut impl FnMut(Verdict),
    ) {
        if let Some(p) = v.involved.proxy.as_mut() {
            if p.pod.is_none() {
                if let Some(ip) = p.address {
                    p.pod = tl
                        .owner_at(ip, v.failure.at_ns(), cfg.skew_ns)
                        .map(|o| o.display.to_string());
                }
            }
        }
        bursts.assign(&mut v, |v| next_step(v, tl, cfg.skew_ns));
        out(v);
    }

    /// Records a pod's measurements and its track, before it is forgotten.
    fn retire(&mut self, uid: &str) {
        let track = self.assembler.retire(&self.tl, uid, i64::MAX);
        // A pod the API never named (only kernel facts about it, outside
        // the session's scope) has no row a person could read.
        let named = |t: &PodTrack| t.workload_key.is_some();
        if let Some(t) = track.filter(|t| named(t) && self.tracks.len() < MAX_TRACKS) {
            self.tracks.push(t);
        }
    }

    /// Records the measurements of pods about to be forgotten, then forgets them.
    fn prune(&mut self, wm: i64) {
        let now = wm.saturating_sub(self.cfg.lookahead_ns);
        let old = self.tl.retire_candidates(now, self.cfg.prune_horizon_ns);
        for uid in &old {
            self.retire(uid);
        }
        self.stats.pods_forgotten += old.len() as u64;
        self.assembler
            .forget_before(now.saturating_sub(self.cfg.prune_horizon_ns));
        self.tl.remove_pods(&old);
    }

    /// Classifies everything still pending (end of the stream) and returns
    /// the measurements of the whole run.
    pub fn finish(mut self, out: &mut impl FnMut(Verdict)) -> Measurements {
        self.joiner.drain(&mut self.done);
        self.stats.late_events = self.joiner.stragglers;
        self.stats.own_aborts = self.joiner.own_aborts;
        self.enqueue_done();
        self.emit_ripe(i64::MAX, out);
        let mut uids: Vec<String> = self.tl.pods().map(|p| p.uid.clone()).collect();
        uids.sort();
        for uid in &uids {
            self.retire(uid);
        }
        self.tracks
            .sort_by(|a, b| a.pod.cmp(&b.pod).then(a.uid.cmp(&b.uid)));
        Measurements {
            workloads: self.assembler.workloads,
            stats: self.stats,
            tracks: self.tracks,
        }
    }
}
