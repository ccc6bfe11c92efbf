//! HAProxy's `option httplog`, as documented for HAProxy 2.6 ("HTTP log
//! format") and checked against Debian's 2.6.12:
//!
//! ```text
//! %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
//!     %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r
//! ```
//!
//! - `%b/%s`: backend and server; `<NOSRV>` when no server was chosen (none
//!   in the backend, all down or in maintenance).
//! - `%tsc`: the termination state. Its first two characters say who ended
//!   the session and in which phase: `S` the server aborted, `s` the server
//!   timed out; `C` connect, `H` headers, `D` data. `----` is a normal end.
//! - `%rc`: the retries; a `+` in front means the request was redispatched
//!   to another server (`option redispatch`).
//! - `%Ta`: the total active time (ms); `-1` for a timer not reached.
//!
//! HAProxy logs server names, not addresses: the upstream is named by its
//! backend and server, never by IP.
//!
//! Time: HAProxy writes the line when the request ends, so the runtime's
//! stamp, when there is one, is the answer's time. Without it, the answer
//! is the request date `%tr` plus `Ta`; `%tr` is local time without a
//! zone, taken as UTC (the zone of containers, unless set otherwise).
//!
//! The line may come raw (`log stdout format raw`) or after an RFC 3164
//! syslog header (`<134>Dec  2 05:50:43 haproxy[8]: `), which is skipped.

use crate::proxylog::{
    parse_status, parse_u64, Cursor, FormatSpec, LogFormat, ProxyAccount, ProxyKind, ProxyLogError,
    ProxyWords, UpstreamOutcome,
};
use std::net::IpAddr;

/// HAProxy writes the line when the request ends, from its own event
/// loop: as nginx, within a few ms of the answer's write.
const WRITE_LAG_NS: i64 = 50_000_000;

pub static HTTPLOG_SPEC: FormatSpec = FormatSpec {
    id: 5,
    key: "haproxy_httplog",
    name: "haproxy httplog",
    proxy: ProxyKind::Haproxy,
    write_lag_ns: WRITE_LAG_NS,
    read: Some(read),
};

/// HAProxy's `option httplog`.
pub const HTTPLOG: LogFormat = LogFormat::of(&HTTPLOG_SPEC);

/// `option httplog` lines (raw or after a syslog header), and HAProxy's
/// own notices (skipped).
fn read(line: &str, stamp: Option<i64>) -> Option<Result<ProxyAccount, ProxyLogError>> {
    if let Some(body) = strip_syslog(line).filter(|b| looks_like_httplog(b)) {
        Some(parse(body, stamp))
    } else if is_own_log(line) {
        Some(Err(ProxyLogError::NotAccessLog))
    } else {
        None
    }
}

/// HAProxy's termination state (`%tsc`, e.g. `SC--`): who ended the
/// session (S server, s server timeout) and in which phase (C connect,
/// H headers, D data). `<NOSRV>` is no server chosen.
pub fn outcome(state: &str, server: Option<&str>) -> UpstreamOutcome {
    if server.is_none_or(|s| s == "<NOSRV>") {
        return UpstreamOutcome::NoUpstream;
    }
    let mut c = state.chars();
    match (c.next(), c.next()) {
        (Some('S'), Some('C')) | (Some('s'), Some('C')) => UpstreamOutcome::ConnectFailed,
        (Some('S'), Some('H' | 'D')) => UpstreamOutcome::Closed,
        (Some('s'), Some('H' | 'D')) => UpstreamOutcome::Timeout,
        (Some('-'), _) => UpstreamOutcome::Answered,
        _ => UpstreamOutcome::Other,
    }
}

/// HAProxy's words: the outcome its termination state names (`<NOSRV>`:
/// no upstream), and `%rc` as the earlier tries, exactly.
pub(crate) fn words(
    state: &str,
    server: Option<String>,
    retries: u32,
    redispatched: bool,
) -> ProxyWords {
    ProxyWords {
        outcome: outcome(state, server.as_deref()),
        flags: state.to_string(),
        earlier_tries: retries,
        server,
        retries: Some(retries),
        redispatched,
    }
}

/// HAProxy's words as evidence: `HAProxy: 503 SC-- server
/// shop-web-8080/SRV_1 after 2 retries`.
pub(crate) fn say(a: &ProxyAccount, w: &ProxyWords) -> String {
    let retries = match (w.retries.unwrap_or(0), w.redispatched) {
        (0, _) => String::new(),
        (1, false) => " after 1 retry".to_string(),
        (n, false) => format!(" after {n} retries"),
        (1, true) => " after 1 retry, redispatched".to_string(),
        (n, true) => format!(" after {n} retries, redispatched"),
    };
    format!(
        "HAProxy: {} {} server {}/{}{retries}",
        a.status,
        w.flags,
        a.upstream_name.as_deref().unwrap_or("-"),
        w.server.as_deref().unwrap_or("-"),
    )
}

fn bad(field: &'static str, problem: &'static str) -> ProxyLogError {
    ProxyLogError::InFormat {
        format: HTTPLOG_SPEC.name,
        field,
        problem,
    }
}

/// The message after an RFC 3164 syslog header, or the line as it is.
fn strip_syslog(line: &str) -> Option<&str> {
    let Some(after) = line.strip_prefix('<') else {
        return Some(line);
    };
    let (pri, _) = after.split_once('>')?;
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    line.split_once("]: ").map(|(_, msg)| msg)
}

/// Whether a line starts as `option httplog` does: `IP:port [dd/Mon/`.
fn looks_like_httplog(line: &str) -> bool {
    let Some((first, rest)) = line.split_once(' ') else {
        return false;
    };
    client(first).is_some()
        && rest.len() > 8
        && rest.as_bytes()[0] == b'['
        && rest.as_bytes()[1..3].iter().all(u8::is_ascii_digit)
        && rest.as_bytes()[3] == b'/'
}

/// Whether a line is HAProxy's own message (`[NOTICE]   (1) : ...`,
/// `[WARNING]`, `[ALERT]`), not an access log.
fn is_own_log(line: &str) -> bool {
    ["[NOTICE]", "[WARNING]", "[ALERT]"]
        .iter()
        .any(|p| line.starts_with(p))
}

/// `%ci:%cp`: the address before the last `:` (IPv6 is not bracketed).
fn client(s: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = s.rsplit_once(':')?;
    let port = u16::try_from(parse_u64(port)?).ok()?;
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some((ip, port))
}

/// `%tr`: `02/Dec/2026:05:50:43.814`, as UTC (Unix ns).
fn request_date(s: &str) -> Option<i64> {
    let (secs, ms) = s.split_once('.')?;
    let ms = parse_u64(ms).filter(|_| ms.len() == 3)?;
    let dt = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S", secs)
        .ok()?
        .to_datetime()
        .ok()?;
    let t = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    i64::try_from(t.as_nanosecond())
        .ok()?
        .checked_add(i64::try_from(ms).ok()? * 1_000_000)
}

/// A timer: `-1` (not reached) or ms, `+` in front with `option logasap`.
fn timer(s: &str) -> Result<Option<u64>, ()> {
    match s.trim_start_matches('+') {
        "-1" => Ok(None),
        t => parse_u64(t).map(Some).ok_or(()),
    }
}

/// Parses one `option httplog` line (after the runtime's stamp `stamp`
/// and any syslog header).
fn parse(line: &str, stamp: Option<i64>) -> Result<ProxyAccount, ProxyLogError> {
    let mut cur = Cursor { rest: line };
    let client = cur
        .word()
        .and_then(client)
        .ok_or_else(|| bad("client", "not IP:port"))?;
    let date = cur
        .bracketed("request_date")
        .ok()
        .and_then(request_date)
        .ok_or_else(|| bad("request_date", "not a date like 02/Dec/2026:05:50:43.814"))?;
    cur.word().ok_or_else(|| bad("frontend", "missing"))?;
    let (backend, server) = cur
        .word()
        .and_then(|w| w.rsplit_once('/'))
        .ok_or_else(|| bad("backend/server", "not backend/server"))?;
    let timers: Vec<&str> = cur
        .word()
        .map(|w| w.split('/').collect())
        .unwrap_or_default();
    if timers.len() != 5 {
        return Err(bad("timers", "not TR/Tw/Tc/Tr/Ta"));
    }
    let mut parsed = [None; 5];
    for (slot, t) in parsed.iter_mut().zip(&timers) {
        *slot = timer(t).map_err(|_| bad("timers", "not TR/Tw/Tc/Tr/Ta"))?;
    }
    let status = match cur.word() {
        Some("-1") => 0,
        w => w
            .and_then(parse_status)
            .ok_or_else(|| bad("status", "not an HTTP status"))?,
    };
    cur.word()
        .and_then(|w| parse_u64(w.trim_start_matches('+')))
        .ok_or_else(|| bad("bytes_read", "not a number"))?;
    cur.word()
        .ok_or_else(|| bad("captured_cookie", "missing"))?;
    cur.word()
        .ok_or_else(|| bad("captured_cookie", "missing"))?;
    let state = cur
        .word()
        .filter(|w| w.len() == 4 && w.is_ascii())
        .ok_or_else(|| bad("termination_state", "not 4 characters"))?;
    let counters: Vec<&str> = cur
        .word()
        .map(|w| w.split('/').collect())
        .unwrap_or_default();
    let rc = counters
        .get(4)
        .filter(|_| counters.len() == 5)
        .ok_or_else(|| bad("retries", "not actconn/feconn/beconn/srv_conn/retries"))?;
    let redispatched = rc.starts_with('+');
    let retries = parse_u64(rc.trim_start_matches('+'))
        .and_then(|r| u32::try_from(r).ok())
        .ok_or_else(|| bad("retries", "not a number"))?;
    let ta = parsed[4];
    let at_ns = match stamp {
        Some(ns) => ns,
        None => {
            let active = ta.unwrap_or_else(|| parsed.iter().flatten().sum());
            date.saturating_add(i64::try_from(active).unwrap_or(0).saturating_mul(1_000_000))
        }
    };
    let mut e = ProxyAccount::new(HTTPLOG, at_ns, status);
    e.client = Some(client.0);
    e.client_port = Some(client.1);
    e.request_time_ms = ta;
    e.upstream_name = Some(backend.to_string()).filter(|b| !b.is_empty());
    e.words = Some(words(
        state,
        Some(server.to_string()),
        retries,
        redispatched,
    ));
    Ok(e)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proxylog::{parse_line, UpstreamOutcome};

    /// Lines Debian's HAProxy 2.6.12 wrote (`log stdout format raw`,
    /// `option httplog`) in front of a real backend on 127.0.0.1: 200, a
    /// slow server 504 sH, killed mid-request 502 SH, refused 503 SC, an
    /// empty backend and one in maintenance 503 `<NOSRV>`, `retries 2`
    /// against a refusing server 503 SC with `%rc` 2, `option redispatch`
    /// 200 `+1`, the app's own 503, a body cut short 200 SD, a connect
    /// timeout 503 sC.
    pub(crate) const HTTPLOG: &str = include_str!("testdata/haproxy-httplog.log");

    type Want = (u16, &'static str, &'static str, &'static str, u32, bool);

    #[test]
    fn real_lines() {
        let want: [Want; 13] = [
            (200, "----", "shop-web-8080", "SRV_1", 0, false),
            (504, "sH--", "shop-slow-8080", "SRV_1", 0, false),
            (502, "SH--", "shop-close-8080", "SRV_1", 0, false),
            (503, "SC--", "shop-refused-8080", "SRV_1", 0, false),
            (503, "SC--", "shop-empty-8080", "<NOSRV>", 0, false),
            (503, "SC--", "shop-maint-8080", "<NOSRV>", 0, false),
            (503, "SC--", "shop-retry-8080", "SRV_1", 2, false),
            (200, "----", "shop-redisp-8080", "SRV_2", 1, true),
            (200, "----", "shop-redisp-8080", "SRV_2", 1, true),
            (200, "----", "shop-redisp-8080", "SRV_2", 1, true),
            (503, "----", "shop-app-8080", "SRV_1", 0, false),
            (200, "SD--", "shop-partial-8080", "SRV_1", 0, false),
            (503, "sC--", "shop-bh-8080", "SRV_1", 0, false),
        ];
        let lines: Vec<&str> = HTTPLOG.lines().collect();
        assert_eq!(lines.len(), want.len());
        for (line, (status, state, backend, server, rc, plus)) in lines.iter().zip(want) {
            let e = parse_line(line).unwrap();
            assert_eq!(e.format, super::HTTPLOG);
            assert_eq!(e.status, status, "{line}");
            let w = e.words.clone().unwrap();
            assert_eq!(w.flags, state);
            assert_eq!(e.upstream_name.as_deref(), Some(backend));
            assert_eq!(w.server.as_deref(), Some(server));
            assert_eq!((w.retries, w.redispatched), (Some(rc), plus));
            assert_eq!(e.client, Some("127.0.0.1".parse().unwrap()));
            assert!(e.addrs().is_empty(), "HAProxy names servers");
            assert!(!format!("{e:?}").contains("secret"));
        }
        let outcome = |i: usize| {
            let e = parse_line(lines[i]).unwrap();
            e.words.unwrap().outcome
        };
        assert_eq!(outcome(3), UpstreamOutcome::ConnectFailed);
        assert_eq!(outcome(4), UpstreamOutcome::NoUpstream);
        assert_eq!(outcome(2), UpstreamOutcome::Closed);
        assert_eq!(outcome(1), UpstreamOutcome::Timeout);
        assert_eq!(outcome(10), UpstreamOutcome::Answered);
    }

    #[test]
    fn outcomes_of_termination_states() {
        use UpstreamOutcome::*;
        assert_eq!(super::outcome("SC--", Some("<NOSRV>")), NoUpstream);
        assert_eq!(super::outcome("SC--", Some("SRV_1")), ConnectFailed);
        assert_eq!(super::outcome("sC--", Some("SRV_1")), ConnectFailed);
        assert_eq!(super::outcome("SH--", Some("SRV_1")), Closed);
        assert_eq!(super::outcome("SD--", Some("SRV_1")), Closed);
        assert_eq!(super::outcome("sH--", Some("SRV_1")), Timeout);
        assert_eq!(super::outcome("----", Some("SRV_1")), Answered);
        assert_eq!(super::outcome("CD--", Some("SRV_1")), Other);
    }

    /// Without a stamp the answer is `%tr` + Ta: the retried request's
    /// 503 came 2002 ms after it was received (two 1 s turn-arounds).
    /// With a stamp, the stamp.
    #[test]
    fn answer_time() {
        let line = HTTPLOG.lines().nth(6).unwrap();
        let e = parse_line(line).unwrap();
        let tr: jiff::Timestamp = "2026-12-02T05:51:38.388Z".parse().unwrap();
        let tr = i64::try_from(tr.as_nanosecond()).unwrap();
        assert_eq!(e.at_ns, tr + 2_002_000_000);
        assert_eq!(e.request_time_ms, Some(2002));
        let stamped = parse_line(&format!("2026-12-02T05:51:40.390123456Z {line}")).unwrap();
        assert_eq!(stamped.at_ns, tr + 2_002_123_456);
    }

    #[test]
    fn syslog_header_ipv6_and_logasap() {
        let e = parse_line(
            r#"<134>Dec  2 05:51:38 haproxy[8]: 2001:db8::7:51000 [02/Dec/2026:05:51:38.363] http~ shop-web-8080/SRV_3 0/0/-1/-1/+0 503 +217 - - SC-- 3/3/0/0/+3 0/0 {host.secret} "GET /secret HTTP/1.1""#,
        )
        .unwrap();
        assert_eq!(e.client, Some("2001:db8::7".parse().unwrap()));
        assert_eq!(e.client_port, Some(51000));
        let w = e.words.clone().unwrap();
        assert_eq!((w.retries, w.redispatched), (Some(3), true));
        assert_eq!(e.status, 503);
        assert!(!format!("{e:?}").contains("secret"));
    }

    #[test]
    fn broken_lines_name_the_field() {
        for (line, field) in [
            (
                r#"127.0.0.1:1 [02/Dec/2026:05:51:38.363] http b/s 0/0/-1 503 217 - - SC-- 1/1/0/0/0 0/0 "GET /secret""#,
                "timers",
            ),
            (
                r#"127.0.0.1:1 [02/Dec/2026:05:51:38.363] http b/s 0/0/-1/-1/0 503 217 - - SC 1/1/0/0/0 0/0 "GET /secret""#,
                "termination_state",
            ),
            (
                r#"127.0.0.1:1 [02/Dec/2026:05:51:38.363] http b/s 0/0/-1/-1/0 503 217 - - SC-- 1/1/0/0/x 0/0 "GET /secret""#,
                "retries",
            ),
            (
                r#"127.0.0.1:1 [02/Dec/2026:25:51:38.363] http b/s 0/0/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET /secret""#,
                "request_date",
            ),
        ] {
            let msg = parse_line(line).unwrap_err().to_string();
            assert!(msg.contains(field), "{line}: {msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
        assert!(is_own_log("[NOTICE]   (1) : New worker (8) forked"));
    }
}
