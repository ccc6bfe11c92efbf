//! Which upstream failures an answer claims: those its log line lists, or
//! (no log) the immediate retry chain before it. Failures no answer claims
//! were retried: hidden by retry.

use super::SeenAnswer;
use crate::explain::config::SECOND;
use crate::explain::stats::HttpTotals;
use crate::explain::verdict::{FailedConnection, FailureKind, Verdict};
use foldhash::HashMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// How long before its answer a request's earlier tries may have failed
/// (a timed-out try takes the proxy's connect or read timeout each).
pub(super) const RETRY_SPAN_NS: i64 = 60 * SECOND;

/// The proxy logged which tries of this request failed (`$upstream_addr`,
/// `$upstream_status`): the answer claims, besides the failure it joined
/// (`last`), the latest unclaimed failure to each other failed address,
/// and nothing else, whatever the number of tries and upstreams.
pub(super) fn claim_logged_tries(
    q: &mut VecDeque<(Verdict, bool)>,
    last: usize,
    tries: &[SocketAddr],
    since: i64,
) -> u32 {
    let mut rest: Vec<SocketAddr> = tries.to_vec();
    let joined = q[last].0.failure.connection().map(|c| c.tuple);
    if let Some(pos) = joined.and_then(|t| {
        rest.iter()
            .rposition(|a| a.ip() == t.daddr && a.port() == t.dport)
    }) {
        rest.remove(pos);
    }
    let proxy = joined.map(|t| t.saddr);
    let mut claimed = 0;
    for addr in rest {
        let pos = q.range(..last).rposition(|(u, claimed)| {
            !*claimed
                && u.at_ns() >= since
                && u.failure.connection().is_some_and(|c| {
                    c.tuple.daddr == addr.ip()
                        && c.tuple.dport == addr.port()
                        && proxy.is_none_or(|p| p == c.tuple.saddr)
                })
        });
        if let Some(j) = pos {
            q[j].1 = true;
            claimed += 1;
        }
    }
    claimed
}

/// Before answering 5xx, a proxy that retries (`proxy_next_upstream`)
/// tried other upstreams, each failing at once: the 5xx claims those too,
/// or they would be counted as hidden by retry. A try belongs to the chain
/// when the same proxy (and worker, when the kernel named it) failed it to
/// another upstream within `CHAIN_GAP_NS` before the next try began. Only
/// immediate failures chain: a timed-out try's start is not known.
pub(super) fn claim_retry_chain(q: &mut VecDeque<(Verdict, bool)>, last: usize) -> u32 {
    const CHAIN_GAP_NS: i64 = 20_000_000;
    fn immediate(v: &Verdict) -> Option<&FailedConnection> {
        v.failure.connection().filter(|c| {
            matches!(
                c.kind,
                FailureKind::Refused | FailureKind::Reset | FailureKind::Unreachable
            )
        })
    }
    let Some(lastc) = immediate(&q[last].0) else {
        return 0;
    };
    let mut chained = 0;
    let proxy = lastc.tuple.saddr;
    let pid = lastc.proxy_pid;
    let mut next_start = lastc.attempt_ns();
    let mut tried = vec![lastc.tuple.daddr];
    for j in (0..last).rev() {
        let (u, claimed) = &q[j];
        let gap = next_start - u.at_ns();
        if gap > CHAIN_GAP_NS {
            break;
        }
        let Some(f) = immediate(u) else { continue };
        let same_worker = match (pid, f.proxy_pid) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if *claimed
            || gap < -1_000_000
            || f.tuple.saddr != proxy
            || !same_worker
            || tried.contains(&f.tuple.daddr)
        {
            continue;
        }
        tried.push(f.tuple.daddr);
        next_start = f.attempt_ns();
        q[j].1 = true;
        chained += 1;
    }
    chained
}

/// Whether a logged answer (to `client`, with `status`, logged between
/// `from` and `to`) is the peeked answer `a`: the one rule that joins the
/// two views of a 5xx, both to count it once and to learn its upstream.
/// A line that names no client (Envoy's default format) matches any; one
/// that names the client's port (HAProxy, Envoy's JSON) only the answer
/// on that very connection.
pub(super) fn same_answer(
    a: &SeenAnswer,
    (client, port): (Option<IpAddr>, Option<u16>),
    status: u16,
    from: i64,
    to: i64,
) -> bool {
    client.is_none_or(|c| Some(c) == a.client)
        && port.is_none_or(|p| a.client_port.is_none_or(|q| q == p))
        && a.status == status
        && a.at_ns >= from
        && a.at_ns <= to
}

/// The proxy logged how many earlier tries the request used (HAProxy's
/// `%rc`, Envoy's `URX`) but not to where: the answer claims, besides the
/// failure it joined (`last`), up to `n` earlier unclaimed failures of the
/// same proxy address, each failed before the next try began by at most
/// `RETRY_GAP_NS` (HAProxy waits a turn-around of at most 1 s before
/// retrying a server, Envoy backs off at most 250 ms by default), to any
/// upstream (a retry may go to another host, or be redispatched).
pub(super) fn claim_counted_retries(
    q: &mut VecDeque<(Verdict, bool)>,
    last: usize,
    n: u32,
    since: i64,
) -> u32 {
    const RETRY_GAP_NS: i64 = 1_500_000_000;
    let Some(lastc) = q[last].0.failure.connection() else {
        return 0;
    };
    let proxy = lastc.tuple.saddr;
    let mut next_start = lastc.attempt_ns();
    let mut claimed = 0;
    for j in (0..last).rev() {
        if claimed >= n {
            break;
        }
        let (u, taken) = &q[j];
        if u.at_ns() < since || next_start - u.at_ns() > RETRY_GAP_NS {
            break;
        }
        let Some(f) = u.failure.connection() else {
            continue;
        };
        if *taken || f.tuple.saddr != proxy || u.at_ns() > next_start + 1_000_000 {
            continue;
        }
        next_start = f.attempt_ns();
        q[j].1 = true;
        claimed += 1;
    }
    claimed
}

/// An unclaimed upstream failure of a peeked proxy was retried: no 5xx
/// followed it. Counts it, and says whether it was.
pub(super) fn count_hidden(
    peeked: &HashMap<IpAddr, i64>,
    http: &mut HttpTotals,
    v: &Verdict,
) -> bool {
    let Some(c) = v.failure.connection() else {
        return false;
    };
    let seen = peeked
        .get(&c.tuple.saddr)
        .is_some_and(|since| c.at_ns >= *since);
    if seen {
        *http.hidden_by_retry.entry(v.cause).or_default() += 1;
    }
    seen
}
