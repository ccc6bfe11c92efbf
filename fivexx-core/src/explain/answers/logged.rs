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

/// One logged 5xx.
#[derive(Clone, Debug)]
pub(super) struct LoggedLine {
    pub client: Option<IpAddr>,
    pub client_port: Option<u16>,
    pub status: u16,
    /// `namespace/name` of the proxy pod.
    pub pod: Option<String>,
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
            pod: a.proxy_pod.clone(),
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

    /// The line of peeked answer `a` (`client`, `status` at `at_ns`): the
    /// earliest unused one in its window to the same client (and port,
    /// where the line names it) with the same status. It is used up; older
    /// lines are forgotten.
    ///
    /// Earliest, not nearest: answers come here in time order, and a line
    /// is stamped a millisecond or two off its answer (Envoy's start time
    /// plus duration, truncated to ms), so in a burst the nearest line is
    /// often the next answer's. Taking it shifts every later pair by one
    /// and leaves the burst's last answer without a line; pairing in order
    /// gives each answer its own.
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
                        l.to_ns,
                    )
            })
            .min_by_key(|(_, l)| l.from_ns)
            .map(|(i, _)| i)?;
        let twin = &mut self.0[best];
        twin.taken = true;
        Some(twin.clone())
    }

    /// The words of logged answer `a`'s own line.
    pub fn words_of(&self, a: &HttpAnswer) -> Option<Words> {
        let evidence = a.evidence.first()?;
        self.0
            .iter()
            .rev()
            .find(|l| {
                l.from_ns == a.first_ns
                    && l.status == a.http_status
                    && l.pod == a.proxy_pod
                    && l.evidence == *evidence
            })?
            .words
            .clone()
    }
}
