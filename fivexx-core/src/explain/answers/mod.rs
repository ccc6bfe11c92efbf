//! The HTTP-answer join: a proxy's 5xx (peeked in the kernel or read from
//! its access log) takes the cause of the failed upstream connection
//! behind it; upstream failures no 5xx claimed were retried by the proxy.
//!
//! It owns its state: the recent upstream verdicts per proxy node (and
//! whether an answer claimed each), the proxies whose answers are seen and
//! since when, and the recent answers and log lines that let one answer
//! seen both ways count once.
//!
//! This file is longer than 600 lines because the join's state and its
//! entry per fact kind read best together; its helpers (claims, the
//! fallbacks, log lines, words, pending requests) are submodules.

mod claims;
mod fallback;
mod logged;
mod make;
mod pending;
mod words;

use super::assemble::{sort_evidence, Assembler};
use super::classify::{classify_closed_by_death, classify_on_lost_node};
use super::config::{ExplainConfig, SECOND};
use super::stats::HttpTotals;
use super::verdict::{
    Cause, Confidence, Failure, FailureKind, HttpAnswer, Involved, ProxyRef, UpstreamConn, Verdict,
};
use crate::event::KernelEvent;
use crate::model::timeline::ClusterTimeline;
use crate::model::{HttpPeekFact, ProxyLogFact};
use crate::proxylog::{ProxyKind, UpstreamOutcome};
use claims::{
    claim_counted_retries, claim_logged_tries, claim_retry_chain, count_hidden, same_answer,
    RETRY_SPAN_NS,
};
use fallback::{no_endpoints, placed_answer, unanswered};
use foldhash::HashMap;
use logged::{LoggedLine, LoggedLines};
use make::{last_failed_upstream, logged_answer, peeked_answer};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use words::{with_words_note, Words};

/// A 5xx the peek saw, kept briefly so that the same answer in the access
/// log is recognised.
#[derive(Debug)]
struct SeenAnswer {
    client: Option<IpAddr>,
    client_port: Option<u16>,
    status: u16,
    at_ns: i64,
    logged: bool,
}

/// What the join needs of the rest of the engine to explain an answer.
pub(crate) struct Context<'a> {
    pub tl: &'a ClusterTimeline,
    pub cfg: &'a ExplainConfig,
    pub assembler: &'a mut Assembler,
    pub http: &'a mut HttpTotals,
}

/// See the module's doc.
pub(crate) struct AnswerJoin {
    /// Whether the stream has HTTP answers (then recent upstream verdicts
    /// are kept per proxy node to explain them).
    saw_http: bool,
    /// Per proxy node: recent upstream verdicts, and whether a 5xx has
    /// claimed each one yet.
    recent_upstream: HashMap<String, VecDeque<(Verdict, bool)>>,
    /// Proxy addresses whose answers are peeked, and since when (`i64::MIN`:
    /// from the start, or proven by a 5xx): an upstream failure of theirs
    /// after that time that no 5xx followed was retried.
    peeked_proxies: HashMap<IpAddr, i64>,
    recent_answers: VecDeque<SeenAnswer>,
    logged: LoggedLines,
    /// Failed tries of requests answered below 500, from access logs.
    retry_notes: VecDeque<RetryNote>,
    /// Proxies (by address) whose pool fails every request waiting on a
    /// failed connect: Envoy's (see [`pending`]).
    pooled: foldhash::HashSet<IpAddr>,
}

/// Upstream verdicts held per node at most: beyond it the oldest are
/// released early (their answers, if any, come as unexplained).
const MAX_HELD: usize = 16_384;

/// A request's failed tries that the proxy retried into a non-5xx answer.
struct RetryNote {
    /// The logged time plus its widest slack: its tries failed before.
    to_ns: i64,
    tries: Vec<SocketAddr>,
    /// Failed tries the line counts without naming their upstream
    /// (HAProxy's `%rc`), of a proxy on `node`, failed since `from_ns`.
    anonymous: u32,
    node: Option<String>,
    from_ns: i64,
}

impl AnswerJoin {
    pub fn new(peeked_from_start: &[IpAddr]) -> AnswerJoin {
        let peeked: HashMap<_, _> = peeked_from_start.iter().map(|ip| (*ip, i64::MIN)).collect();
        AnswerJoin {
            // Peeked from the start: failures long before the first 5xx
            // must be kept too, to count the retried ones.
            saw_http: !peeked.is_empty(),
            recent_upstream: HashMap::default(),
            peeked_proxies: peeked,
            recent_answers: VecDeque::new(),
            logged: LoggedLines::default(),
            retry_notes: VecDeque::new(),
            pooled: foldhash::HashSet::default(),
        }
    }

    /// The failed tries of a request a proxy answered below 500, kept
    /// until the upstream failures they name are released.
    fn note_retried(&mut self, l: &ProxyLogFact, anonymous: u32) {
        let tries: Vec<SocketAddr> = if anonymous > 0 {
            Vec::new()
        } else {
            l.account.failed_tries().map(|t| t.addr).collect()
        };
        if self.retry_notes.len() >= 8192 {
            self.retry_notes.pop_front();
        }
        // The retried tries ran within the request's active time.
        let active = l.account.request_time_ms.unwrap_or(0) as i64 * 1_000_000;
        let at = l.at_ns();
        self.retry_notes.push_back(RetryNote {
            to_ns: at.saturating_add(SECOND),
            tries,
            anonymous,
            node: l.node.clone(),
            from_ns: at.saturating_sub(active + SECOND),
        });
    }

    /// A proxy is peeked from `p.at_ns` on.
    pub fn peeked(&mut self, p: &HttpPeekFact) {
        self.saw_http = true;
        let since = self.peeked_proxies.entry(p.proxy_ip).or_insert(p.at_ns);
        *since = (*since).min(p.at_ns);
    }

    /// A status line the peek saw: a 5xx becomes an answer to explain.
    pub fn kernel_answer(&mut self, e: &KernelEvent) -> Option<HttpAnswer> {
        let (status, tuple) = (e.http_status?, e.tuple?);
        if status < 500 {
            return None;
        }
        self.saw_http = true;
        if e.task
            .as_ref()
            .and_then(|t| ProxyKind::of_thread(&t.comm))
            .is_some_and(ProxyKind::fails_pending_requests)
        {
            self.pooled.insert(tuple.saddr);
        }
        Some(peeked_answer(e, status, tuple))
    }

    /// An access-log line: a 5xx becomes an answer to explain (and is kept
    /// as the twin of a peeked one); the failed tries of an answered
    /// request count as retried, by the proxy's own account.
    pub fn log_line(&mut self, l: &ProxyLogFact, http: &mut HttpTotals) -> Option<HttpAnswer> {
        let account = &l.account;
        let words = Words::of(account);
        if account.status < 500 {
            // nginx lists its tries; HAProxy counts them (`%rc`) without
            // naming them; Envoy's default format logs neither (a retried
            // success shows only in the kernel, as an upstream failure no
            // answer claims).
            let (failed_tries, anonymous) = match &account.words {
                Some(w) => w.retries.map_or((0, 0), |n| (n as usize, n)),
                None => (account.failed_tries().count(), 0),
            };
            http.retried_in_log += failed_tries as u64;
            if failed_tries > 0 {
                self.note_retried(l, anonymous);
            }
            return None;
        }
        self.saw_http = true;
        let last = last_failed_upstream(l);
        let a = logged_answer(l, last.map(|(a, _)| a));
        if let Some(mut line) = LoggedLine::new(&a, account.client, last, words) {
            line.request_ms = account.request_time_ms;
            self.logged.push(line);
        }
        Some(a)
    }

    /// Holds a connection's verdict while an answer may still claim it
    /// (see [`AnswerJoin::release`]); with no HTTP answer in the stream
    /// at all it is a failure of its own at once.
    pub fn upstream_verdict(&mut self, v: Verdict) -> Option<Verdict> {
        if !self.saw_http {
            return Some(v);
        }
        self.recent_upstream
            .entry(v.failure.node().to_string())
            .or_default()
            .push_back((v, false));
        None
    }

    /// How long after an upstream failure an answer may still claim it:
    /// the join's window, the widest access-log slack, and the 1 ms an
    /// answer may precede its upstream's last event.
    pub fn claim_window(&self, cfg: &ExplainConfig) -> i64 {
        cfg.http_match_ns + SECOND + 1_000_000
    }

    /// The held upstream verdicts older than `until` (or beyond the
    /// memory bound), which no answer can claim any more. One an answer
    /// claimed is part of that answer's failed request, already out; one
    /// no answer claimed was retried (a peeked proxy would have shown its
    /// 5xx; or the proxy's access log lists it as a failed try of a
    /// request it answered), or else it is a failed request of its own
    /// whose answer was not seen (no peek, TLS, an external load balancer)
    /// and goes to `out`, in time order across nodes.
    pub fn release(&mut self, until: i64, http: &mut HttpTotals, out: &mut dyn FnMut(Verdict)) {
        let mut ripe: Vec<(Verdict, bool)> = Vec::new();
        for q in self.recent_upstream.values_mut() {
            while q
                .front()
                .is_some_and(|(o, _)| o.at_ns() < until || q.len() > MAX_HELD)
            {
                ripe.extend(q.pop_front());
            }
        }
        if ripe.is_empty() {
            return;
        }
        ripe.sort_by_key(|(v, _)| {
            let c = v.failure.connection().map(|c| c.tuple);
            (v.at_ns(), c.map(|t| (t.saddr, t.sport, t.daddr, t.dport)))
        });
        for (v, claimed) in ripe {
            if claimed {
                continue;
            }
            if count_hidden(&self.peeked_proxies, http, &v) {
                continue;
            }
            if self.retried_in_log(&v) {
                *http.hidden_by_retry.entry(v.cause).or_default() += 1;
                continue;
            }
            out(v);
        }
    }

    /// Whether an access log listed this failed connection as a failed
    /// try of a request the proxy then answered below 500 (the try is used
    /// up: one try, one connection).
    fn retried_in_log(&mut self, v: &Verdict) -> bool {
        let Some(c) = v.failure.connection() else {
            return false;
        };
        let at = c.at_ns;
        while self
            .retry_notes
            .front()
            .is_some_and(|n| n.to_ns < at - RETRY_SPAN_NS)
        {
            self.retry_notes.pop_front();
        }
        for n in self.retry_notes.iter_mut() {
            if at < n.to_ns - RETRY_SPAN_NS || at > n.to_ns {
                continue;
            }
            if let Some(i) = n
                .tries
                .iter()
                .position(|a| a.ip() == c.tuple.daddr && a.port() == c.tuple.dport)
            {
                n.tries.swap_remove(i);
                return true;
            }
        }
        // Counted tries name no upstream: any failure of the proxy's node
        // within the request's active time.
        let node = v.failure.node();
        for n in self.retry_notes.iter_mut() {
            if n.anonymous > 0
                && n.node.as_deref() == Some(node)
                && (n.from_ns..=n.to_ns).contains(&at)
            {
                n.anonymous -= 1;
                return true;
            }
        }
        false
    }

    /// The verdict of an answer whose lookahead has passed; `None` for a
    /// logged answer the peek already explained (counted once).
    pub fn verdict(&mut self, a: HttpAnswer, cx: &mut Context, horizon: i64) -> Option<Verdict> {
        let v = match a.kind {
            FailureKind::Http5xxLogged => self.logged_verdict(a, cx)?,
            _ => self.peeked_verdict(a, cx, horizon),
        };
        *cx.http.sent_5xx.entry(v.cause).or_default() += 1;
        // The earlier tries the answer claimed were retried too: hidden
        // behind the last one, though the request still failed.
        let earlier = v
            .failure
            .answer()
            .map_or(0, |a| a.upstream_failures.saturating_sub(1));
        if earlier > 0 {
            *cx.http.hidden_by_retry.entry(v.cause).or_default() += u64::from(earlier);
        }
        Some(v)
    }

    /// A proxy's 5xx (peeked in the kernel) takes the cause of the failed
    /// upstream connection behind it; without one it stays unexplained.
    fn peeked_verdict(&mut self, a: HttpAnswer, cx: &mut Context, horizon: i64) -> Verdict {
        let t = a.at_ns;
        let proxy_ip = a.tuple.map(|t| t.saddr);
        // A 5xx proves the proxy's answers are seen, but not since when:
        // its recent failures count (as before any peek fact).
        if let Some(ip) = proxy_ip {
            self.peeked_proxies.insert(ip, i64::MIN);
        }
        let q = &mut self.recent_answers;
        while q
            .front()
            .is_some_and(|x| x.at_ns < t - 2 * SECOND || q.len() >= 4096)
        {
            q.pop_front();
        }
        q.push_back(SeenAnswer {
            client: a.client,
            client_port: a.client_port,
            status: a.http_status,
            at_ns: t,
            logged: false,
        });
        // The proxy's own account of the request, when its access log is
        // followed: its tries (the 5xx joins the failure of its last failed
        // try and claims the failures of the others, nothing else) and its
        // words (Envoy's flags, HAProxy's termination state), which the
        // verdict's evidence carries.
        let mut a = a;
        let twin = self.logged.take_twin(&a, cx.cfg.http_match_ns);
        let words = twin.as_ref().and_then(|l| l.words.clone());
        if let Some(l) = &twin {
            if !l.failed_tries.is_empty() {
                a.failed_tries.clone_from(&l.failed_tries);
            }
            if words.is_some() {
                a.evidence.push(l.evidence.clone());
            }
        }
        let last_try = a.failed_tries.last().copied();
        // The failure behind a 5xx is the latest one of the same proxy
        // (its address made the upstream connection) that no other 5xx
        // claimed; failing that, the latest of the proxy's node.
        let node = a.node.clone();
        let from = t - cx.cfg.http_match_ns;
        let v = self.join(
            a,
            &node,
            from,
            t + 1_000_000,
            cx.cfg,
            words.as_ref(),
            &|u| {
                u.failure.connection().is_some_and(|c| {
                    Some(c.tuple.saddr) == proxy_ip
                        && last_try
                            .is_none_or(|l| l.ip() == c.tuple.daddr && l.port() == c.tuple.dport)
                })
            },
        );
        if v.cause != Cause::Unexplained {
            return v;
        }
        self.closed_by_death(&v, twin.as_ref(), cx, horizon)
            .or_else(|| on_lost_node(&v, twin.as_ref(), cx, horizon))
            .or_else(|| {
                words
                    .as_ref()
                    .is_none_or(Words::allows_no_endpoints)
                    .then(|| no_endpoints(&v, cx, horizon))
                    .flatten()
            })
            .unwrap_or_else(|| with_words_note(v, words.as_ref()))
    }

    /// A 5xx with no failed upstream connection behind it: the upstream
    /// may have closed the connection with a FIN, not a RST, because its
    /// process was killed after reading the whole request (an OOM kill, a
    /// SIGKILL at grace expiry). The kernel then sees no failed connection,
    /// but the proxy's access log (`twin`) names the upstream: a 502 or
    /// 504, or Envoy's 503 whose flags say the upstream connection closed
    /// (`UC`, `UR`). When that upstream's pod was OOM-killed or SIGKILLed
    /// right then, the 5xx takes that cause at medium confidence; otherwise
    /// it stays unexplained (an app's own 5xx is never blamed on a later
    /// kill).
    fn closed_by_death(
        &mut self,
        v: &Verdict,
        twin: Option<&LoggedLine>,
        cx: &mut Context,
        horizon: i64,
    ) -> Option<Verdict> {
        let a = v.failure.answer()?;
        let (t, status) = (a.at_ns, a.http_status);
        let twin = twin?;
        let closed = twin
            .words
            .as_ref()
            .is_some_and(|w| w.outcome == UpstreamOutcome::Closed);
        if !(matches!(status, 502 | 504) || (status == 503 && closed)) {
            return None;
        }
        if twin
            .words
            .as_ref()
            .is_some_and(|w| !w.fits(FailureKind::Reset))
        {
            return None;
        }
        if !twin.upstream_status.is_none_or(|s| s == 502 || s == 504) {
            return None;
        }
        // HAProxy logs a server name, not an address: then the one pod
        // that died right then, if exactly one did.
        let up = match twin.upstream {
            Some(u) => u.ip(),
            None => pending::only_pod_killed_near(
                cx.tl,
                t,
                cx.cfg.kill_window_ns.max(cx.cfg.oom_window_ns),
                cx.cfg.skew_ns,
            )?,
        };
        let mut c = classify_closed_by_death(up, t, cx.tl, cx.cfg, horizon)?;
        c.evidence.push(twin.evidence.clone());
        let confidence = c.confidence.min(Confidence::Medium);
        let named = if twin.upstream.is_some() {
            format!("the access log names upstream {up}")
        } else {
            format!(
                "the proxy logged its server aborting, and {up}'s pod was the one that died then"
            )
        };
        let note = Some(format!(
            "no failed connection seen: {named}, whose process died then; it closed the connection without a reset, mid-request"
        ));
        Some(placed_answer(v, c, confidence, note, cx, horizon))
    }

    /// A 5xx from a proxy's access log. One the kernel also saw (same
    /// client, status and second) is already explained and only counted;
    /// otherwise (TLS, HTTP/2, no peek) it takes the cause of the failed
    /// connection to the upstream the log names.
    fn logged_verdict(&mut self, a: HttpAnswer, cx: &mut Context) -> Option<Verdict> {
        // The logged time (first_ns) up to its slack (at_ns), plus a margin
        // for a log stamp taken after the write.
        let (lo, hi) = (a.first_ns - cx.cfg.http_match_ns, a.at_ns);
        if let Some(x) = self
            .recent_answers
            .iter_mut()
            .find(|x| !x.logged && same_answer(x, (a.client, a.client_port), a.http_status, lo, hi))
        {
            x.logged = true;
            cx.http.confirmed_by_log += 1;
            return None;
        }
        let words = a.account.as_deref().and_then(Words::of);
        let upstream = a.upstream;
        let node = a.node.clone();
        let v = self.join(a, &node, lo, hi, cx.cfg, words.as_ref(), &|u| {
            // Envoy logs its own end of the connection: then that one.
            upstream.is_some_and(|x| u.failure.connection().is_some_and(|c| x.is(&c.tuple)))
        });
        if v.cause != Cause::Unexplained {
            return Some(v);
        }
        // A logged answer is explained once its lookahead passed too.
        let horizon = v.at_ns().saturating_add(cx.cfg.lookahead_ns);
        if words.as_ref().is_some_and(|w| !w.allows_no_endpoints()) {
            return Some(with_words_note(v, words.as_ref()));
        }
        Some(no_endpoints(&v, cx, horizon).unwrap_or_else(|| with_words_note(v, words.as_ref())))
    }

    /// Joins a proxy's answer to the upstream failure behind it: among the
    /// recent upstream verdicts on `node` ("": any node) within
    /// `from..=to`, the latest unclaimed one that is `mine`, else (lower
    /// confidence) the latest unclaimed one on the node. The proxy's words,
    /// when logged, narrow the candidates to those they describe, or rule
    /// the join out (see [`words`]).
    #[expect(clippy::too_many_arguments, reason = "one join, read in one place")]
    fn join(
        &mut self,
        mut a: HttpAnswer,
        node: &str,
        from: i64,
        to: i64,
        cfg: &ExplainConfig,
        words: Option<&Words>,
        mine: &dyn Fn(&Verdict) -> bool,
    ) -> Verdict {
        let proxy = Some(ProxyRef {
            node: a.node.clone(),
            address: a.tuple.map(|t| t.saddr),
            pod: a.proxy_pod.clone(),
        });
        let fits = |u: &Verdict| {
            words.is_none_or(|w| u.failure.connection().is_some_and(|c| w.fits(c.kind)))
        };
        let mut disagree = None;
        let mut found = self.find_upstream(node, from, to, mine, &fits);
        if found.is_none() && words.is_some_and(Words::may_disagree) {
            found = self.find_upstream(node, from, to, mine, &|_| true);
            if let Some(f) = &found {
                let kind = self.recent_upstream[&f.0][f.1].0.failure.kind();
                disagree = words.map(|w| w.disagree_note(kind));
            }
        }
        let proxy_ip = a.tuple.map(|t| t.saddr);
        let pooled = proxy_ip.filter(|ip| {
            self.pooled.contains(ip) || words.is_some_and(|w| w.proxy == ProxyKind::Envoy)
        });
        if found.is_none() && words.is_none_or(|w| w.fits(FailureKind::ConnectFailed)) {
            found = pooled
                .and_then(|ip| pending::shared_connect(&self.recent_upstream, node, ip, a.at_ns))
                .map(|(n, i)| (n, i, true));
        }
        let Some(found) = found else {
            return unanswered(a, node, proxy, cfg.http_match_ns);
        };
        let (qn, qi, own) = found;
        let q = self.recent_upstream.get_mut(&qn).expect("found above");
        let first_claim = !q[qi].1;
        q[qi].1 = true;
        let since = from - RETRY_SPAN_NS;
        // A shared failed connect (requests pending on it) has had its
        // retries claimed by the answer that claimed it first.
        let earlier = if !first_claim {
            0
        } else if let Some(w) = words {
            claim_counted_retries(q, qi, w.earlier_tries, since)
        } else if !a.failed_tries.is_empty() {
            claim_logged_tries(q, qi, &a.failed_tries, since)
        } else if own {
            claim_retry_chain(q, qi)
        } else {
            0
        };
        let u = &q[qi].0;
        let gap = a.at_ns - u.at_ns();
        let up_tuple = u.failure.connection().map(|c| c.tuple);
        a.upstream = up_tuple.map(UpstreamConn::of);
        a.upstream_kind = Some(u.failure.kind());
        a.upstream_failures = u32::from(first_claim) + earlier;
        let mut evidence = Vec::with_capacity(u.evidence.len() + a.evidence.len());
        evidence.extend_from_slice(&u.evidence);
        evidence.extend_from_slice(&a.evidence);
        sort_evidence(&mut evidence);
        let confidence = if gap <= 100_000_000 && own && disagree.is_none() {
            u.confidence
        } else {
            u.confidence.min(Confidence::Medium)
        };
        let joined = format!(
            "upstream connection {} failed {:.1} ms before",
            up_tuple.map_or("?".to_string(), |t| t.to_string()),
            gap as f64 / 1e6
        );
        Verdict {
            cause: u.cause,
            confidence,
            evidence,
            involved: Involved {
                proxy,
                ..u.involved.clone()
            },
            episode: u.episode.clone(),
            fix: u.fix.clone(),
            // What the rule said of the connection (a lost node, the
            // SIGKILL's timing, the idle time) stays in the answer's note.
            note: Some(
                [Some(joined), u.note.clone(), disagree]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            next: None,
            burst: None,
            failure: Failure::Answer(a),
        }
    }

    /// (node, index in its queue, whether it is the proxy's own) of the
    /// upstream verdict an answer joins, among those that `fit` the
    /// proxy's words; see [`AnswerJoin::join`].
    fn find_upstream(
        &self,
        node: &str,
        from: i64,
        to: i64,
        mine: &dyn Fn(&Verdict) -> bool,
        fits: &dyn Fn(&Verdict) -> bool,
    ) -> Option<(String, usize, bool)> {
        let mut found: Option<(String, usize, bool)> = None;
        for (n, q) in self.recent_upstream.iter() {
            if !node.is_empty() && n != node {
                continue;
            }
            // One failed try fails one request: an upstream failure
            // another answer claimed is not this answer's (a proxy's own
            // 503 right after a burst of refusals would take their cause).
            for own in [true, false] {
                let pos = q.iter().rposition(|(u, claimed)| {
                    u.at_ns() >= from
                        && u.at_ns() <= to
                        && (!own || mine(u))
                        && fits(u)
                        && !*claimed
                });
                if let Some(i) = pos {
                    let better = found.as_ref().is_none_or(|(bn, bi, b_own)| {
                        let b_at = self.recent_upstream[bn][*bi].0.at_ns();
                        (own && !*b_own) || (own == *b_own && q[i].0.at_ns() > b_at)
                    });
                    if better {
                        found = Some((n.clone(), i, own));
                    }
                    break;
                }
            }
        }
        found
    }
}

/// A 5xx with no failed connection behind it whose log line names an
/// upstream on a node that had stopped answering when the request began:
/// it went out on a pooled connection into the vanished node, where
/// nothing answers and nothing resets, and the proxy gave up at its read
/// timeout.
fn on_lost_node(
    v: &Verdict,
    twin: Option<&LoggedLine>,
    cx: &mut Context,
    horizon: i64,
) -> Option<Verdict> {
    let a = v.failure.answer()?;
    let twin = twin?;
    let up = twin.upstream?.ip();
    let began = twin.began_ns();
    let mut c = classify_on_lost_node(up, began, a.at_ns, cx.tl, cx.cfg, horizon)?;
    c.evidence.push(twin.evidence.clone());
    let note = Some(format!(
        "no failed connection seen: the access log names upstream {up}, on a node that had stopped answering when the request began {:.1} s earlier; {}",
        (a.at_ns - began) as f64 / 1e9,
        c.note.take().unwrap_or_default()
    ));
    let confidence = c.confidence.min(Confidence::Medium);
    Some(placed_answer(v, c, confidence, note, cx, horizon))
}
