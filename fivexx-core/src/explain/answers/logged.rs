//! The proxies' logged 5xx, kept briefly: a peeked 5xx learns from its
//! line (its twin) the tries and the proxy's words the kernel cannot see,
//! and a logged answer finds its own words again when its verdict is made.

use super::claims::same_answer;
use super::words::Words;
use super::SeenAnswer;
use crate::explain::config::SECOND;
use crate::explain::verdict::HttpAnswer;
use crate::model::Evidence;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// Lines kept at most: a line is kept from its intake until its answer's
/// verdict, a lookahead (30 s by default) later, so this holds about 1000
/// logged 5xx per second.
const MAX_LINES: usize = 32_768;

/// How long after its logged time a proxy may still be writing the
/// answer. Envoy logs a request when it is done with it, but the write of
/// its 503 waits for the worker's event loop to flush the connection:
/// when a failed connect fails every request pending on it, a busy worker
/// writes them out over tens of ms (up to 43 ms in the lab on two CPUs,
/// 76 ms with both also busy). A line whose write came later than its
/// slack allowed was no twin of its own answer, which took a later
/// answer's line instead, and so on down the burst, until its last
/// answers had none (issue 15).
pub(super) const WRITE_LAG_NS: i64 = 250_000_000;

/// One logged 5xx.
#[derive(Clone, Debug)]
pub(super) struct LoggedLine {
    pub client: Option<IpAddr>,
    pub client_port: Option<u16>,
    pub status: u16,
    /// The logged time, and the end of its slack.
    pub from_ns: i64,
    pub to_ns: i64,
    /// The upstream it tried last among the failed ones, with its status.
    pub upstream: Option<SocketAddr>,
    pub upstream_status: Option<u16>,
    /// Every try the line lists as failed, in order.
    pub failed_tries: Vec<SocketAddr>,
    /// How long the proxy took over the request, when logged: when it
    /// began is the logged time less this.
    pub request_ms: Option<u64>,
    pub evidence: Evidence,
    pub words: Option<Words>,
    /// A peeked answer took it as its twin.
    taken: bool,
}

impl LoggedLine {
    pub fn new(
        a: &HttpAnswer,
        client: Option<IpAddr>,
        upstream: Option<(SocketAddr, Option<u16>)>,
        words: Option<Words>,
    ) -> Option<LoggedLine> {
        Some(LoggedLine {
            client,
            client_port: a.client_port,
            status: a.http_status,
            from_ns: a.first_ns,
            to_ns: a.at_ns,
            upstream: upstream.map(|(u, _)| u),
            upstream_status: upstream.and_then(|(_, s)| s),
            failed_tries: a.failed_tries.clone(),
            request_ms: None,
            evidence: a.evidence.first()?.clone(),
            words,
            taken: false,
        })
    }
}

impl LoggedLine {
    /// The latest time of a peeked answer this line may be the twin of.
    fn twin_until(&self) -> i64 {
        self.to_ns.max(self.from_ns.saturating_add(WRITE_LAG_NS))
    }

    /// When the request began: the logged time less its duration.
    pub fn began_ns(&self) -> i64 {
        self.from_ns
            - self
                .request_ms
                .map_or(0, |ms| (ms as i64).saturating_mul(1_000_000))
    }
}

/// See the module's doc.
#[derive(Default)]
pub(super) struct LoggedLines(VecDeque<LoggedLine>);

impl LoggedLines {
    pub fn push(&mut self, l: LoggedLine) {
        if self.0.len() >= MAX_LINES {
            self.0.pop_front();
        }
        self.0.push_back(l);
    }

    /// The line of peeked answer `a` (`client`, `status` at `at_ns`): of
    /// the unused ones to the same client (and port, where the line names
    /// it) with the same status, logged from `window` after the answer to
    /// [`WRITE_LAG_NS`] before it (or the line's slack, if wider), the one
    /// whose window closes first. It is used up; older lines are
    /// forgotten.
    ///
    /// A line names no answer when it names no client port (Envoy's
    /// default format): which one is its own is a matter of time alone.
    /// Answers come here in time order, and each line fits an interval of
    /// answer times; giving each answer the fitting line whose interval
    /// ends first pairs as many answers as any pairing could. The nearest
    /// line would not: in a burst it is often the next answer's, and
    /// taking it leaves a line behind for every answer that does.
    pub fn take_twin(&mut self, a: &HttpAnswer, window: i64) -> Option<LoggedLine> {
        while self
            .0
            .front()
            .is_some_and(|l| l.to_ns < a.at_ns - 10 * SECOND)
        {
            self.0.pop_front();
        }
        let peeked = SeenAnswer {
            client: a.client,
            client_port: a.client_port,
            status: a.http_status,
            at_ns: a.at_ns,
            logged: false,
        };
        let best = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                !l.taken
                    && same_answer(
                        &peeked,
                        (l.client, l.client_port),
                        l.status,
                        l.from_ns - window,
                        l.twin_until(),
                    )
            })
            .min_by_key(|(_, l)| (l.twin_until(), l.from_ns))
            .map(|(i, _)| i)?;
        let twin = &mut self.0[best];
        twin.taken = true;
        Some(twin.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::make::{last_failed_upstream, logged_answer};
    use super::*;
    use crate::event::FourTuple;
    use crate::explain::verdict::FailureKind;
    use crate::model::ProxyLogFact;
    use crate::proxylog::parse_line;

    const MS: i64 = 1_000_000;

    /// An Envoy line in its default format (no client) logged `at_ms`
    /// after 05:51:00 (start time plus a duration of 0), with `flag`.
    fn envoy_line(at_ms: i64, flag: &str, upstream_port: u16) -> LoggedLine {
        let (s, ms) = (at_ms / 1000, at_ms % 1000);
        let (upstream, body) = match flag {
            "UH" => ("-".to_string(), 19),
            _ => (format!("10.244.0.12:{upstream_port}"), 91),
        };
        let text = format!(
            r#"[2026-12-02T05:51:{s:02}.{ms:03}Z] "GET /x HTTP/1.1" 503 {flag} 0 {body} 0 - "-" "ua" "id" "host" "{upstream}""#
        );
        let l = ProxyLogFact::new("gw", "envoy-1", Some("node-1"), parse_line(&text).unwrap());
        let last = last_failed_upstream(&l);
        let a = logged_answer(&l, last.map(|(u, _)| u));
        LoggedLine::new(&a, l.account.client, last, Words::of(&l.account)).unwrap()
    }

    /// 05:51:00 in the lines' clock.
    fn base_ns() -> i64 {
        envoy_line(0, "UH", 0).from_ns
    }

    /// A 503 the peek saw Envoy write at `at_ns` to client port `port`.
    fn peeked(at_ns: i64, port: u16) -> HttpAnswer {
        let tuple = FourTuple {
            saddr: IpAddr::from([10, 244, 0, 2]),
            sport: 80,
            daddr: IpAddr::from([10, 244, 0, 1]),
            dport: port,
        };
        HttpAnswer {
            at_ns,
            first_ns: at_ns,
            kind: FailureKind::Http5xx,
            http_status: 503,
            client: Some(tuple.daddr),
            client_port: Some(port),
            tuple: Some(tuple),
            node: "node-1".into(),
            proxy_pid: Some(7),
            proxy_pod: None,
            upstream: None,
            failed_tries: Vec::new(),
            upstream_kind: None,
            upstream_failures: 0,
            account: None,
            evidence: Vec::new(),
        }
    }

    /// Pairs `answers` (time, own line's index) in time order, as the join
    /// does: (answers left without a line, answers given another's line).
    fn pair(lines: &[LoggedLine], answers: &mut [(i64, usize)]) -> (usize, usize) {
        let mut logged = LoggedLines::default();
        for l in lines {
            logged.push(l.clone());
        }
        answers.sort();
        let (mut none, mut other) = (0, 0);
        for (i, (at, own)) in answers.iter().enumerate() {
            match logged.take_twin(&peeked(*at, 30_000 + i as u16), SECOND) {
                None => none += 1,
                Some(t) => {
                    let mine = &lines[*own];
                    if (t.from_ns, t.upstream) != (mine.from_ns, mine.upstream) {
                        other += 1;
                    }
                }
            }
        }
        (none, other)
    }

    /// The lab's `recreate` burst (issue 15): a failed connect fails the
    /// ~100 requests pending on it within 3 ms, all logged `UF` then, but
    /// their 503s leave the busy workers over the next tens of ms (one
    /// worker 10-20 ms later, one 28-43 ms, here one 55-80 ms), while
    /// another worker answers new requests `UH` within 1-2 ms of logging
    /// them. Every answer still gets a line, and every line an answer.
    #[test]
    fn a_burst_written_long_after_it_was_logged_pairs_every_answer() {
        let b = base_ns();
        let mut lines = Vec::new();
        let mut answers = Vec::new();
        // Deterministic jitter of up to ±1.5 ms around each group's lag.
        let jitter = |i: i64| ((i * 7919) % 31 - 15) * MS / 10;
        for (group, lag_ms) in [(0, 12), (1, 35), (2, 60)] {
            for k in 0..40 {
                let i = lines.len();
                let at_ms = 1000 + (k * 3) / 40;
                lines.push(envoy_line(at_ms, "UF", (group * 100 + k) as u16));
                let written = b + at_ms * MS + lag_ms * MS + k * MS / 2 + jitter(i as i64);
                answers.push((written, i));
            }
        }
        // The other worker's UH answers, during and after the stalled
        // writes.
        for k in 0..30 {
            let at_ms = 1005 + k * 3;
            lines.push(envoy_line(at_ms, "UH", 0));
            answers.push((b + at_ms * MS + MS - (k % 3) * MS / 4, lines.len() - 1));
        }
        let (none, _) = pair(&lines, &mut answers);
        assert_eq!(none, 0, "answers without a line");
    }

    /// A steady stream of 503s, each logged 1-2 ms before it is written and
    /// closer than that to the next: each answer gets its own line, not
    /// the next answer's.
    #[test]
    fn a_dense_stream_pairs_each_answer_with_its_own_line() {
        let b = base_ns();
        let mut lines = Vec::new();
        let mut answers = Vec::new();
        for k in 0..200 {
            let at_ms = 2000 + k / 2;
            lines.push(envoy_line(at_ms, "UF", k as u16));
            answers.push((b + at_ms * MS + MS + (k % 2) * MS / 3, k as usize));
        }
        assert_eq!(pair(&lines, &mut answers), (0, 0));
    }

    /// When two lines fit an answer, the one no later answer could still
    /// take goes first: a line stamped to the second (nginx's
    /// `$time_local`) fits answers for a whole second after it, a precise
    /// one for a shorter while.
    #[test]
    fn the_line_whose_window_closes_first_is_taken_first() {
        let b = base_ns();
        let mut coarse = envoy_line(0, "UF", 1);
        coarse.to_ns = coarse.from_ns + SECOND - 1;
        let precise = envoy_line(100, "UF", 2);
        let lines = [coarse, precise];
        let mut answers = [(b + 200 * MS, 1), (b + 600 * MS, 0)];
        assert_eq!(pair(&lines, &mut answers), (0, 0));
    }
}
