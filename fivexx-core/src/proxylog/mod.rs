//! Proxy access-log lines, parsed into the few fields the explain engine
//! joins with kernel facts: one parser per proxy format, one entry type,
//! and the format detected per line (a pod's log may change format across
//! a controller upgrade, and a session follows several kinds of proxy).
//!
//! Why: the kernel peek sees the status line of plain HTTP/1.x only, and
//! never the proxy's reason. A TLS or HTTP/2 client connection cannot be
//! peeked, but every proxy logs each answer with its status, the upstream
//! it used and, for Envoy and HAProxy, its own word for what went wrong
//! (Envoy's response flags, HAProxy's termination state). The plugin reads
//! those logs through the API (`pods/log`).
//!
//! The formats, each in its module:
//! - [`nginx`]: nginx's `combined` and ingress-nginx's `upstreaminfo`.
//! - [`envoy`]: Envoy's default text format, Istio's default text format
//!   (the default plus `%RESPONSE_CODE_DETAILS%` and the addresses), and
//!   Envoy Gateway's default JSON format.
//! - [`haproxy`]: HAProxy's `option httplog`.
//!
//! Privacy: the request line (path, query string), referer, user agent,
//! request id and authority are parsed past and never kept, nor echoed in
//! errors. What is kept is what a join needs: times, addresses, status,
//! the upstream(s) and their statuses, the proxy's flags, retries and
//! upstream or server names.
//!
//! A line read with `kubectl logs --timestamps` (the API's
//! `timestamps=true`) starts with the container runtime's RFC 3339 stamp
//! (nanoseconds). Which clock an entry's time comes from is each format's
//! call, documented on its parser: nginx and HAProxy write a line when the
//! answer is done, so the stamp is the answer's time; Envoy writes its
//! access log through a buffer a flush thread empties, so its own
//! `%START_TIME%` plus `%DURATION%` (milliseconds) is used instead.

pub mod envoy;
pub mod haproxy;
pub mod nginx;

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Which proxy wrote a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    Nginx,
    Envoy,
    Haproxy,
}

impl ProxyKind {
    /// The proxy's name as its users write it.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Envoy => "Envoy",
            ProxyKind::Haproxy => "HAProxy",
        }
    }
}

/// Which documented format a line was in. New variants go at the end:
/// captures store the variant's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// nginx's default `combined`: no upstream fields.
    Combined,
    /// ingress-nginx's default `upstreaminfo`.
    Upstreaminfo,
    /// Envoy's default text format (no client address).
    EnvoyText,
    /// Istio's default text format (Envoy's, plus details and addresses).
    IstioText,
    /// Envoy Gateway's default JSON format.
    EnvoyGatewayJson,
    /// HAProxy's `option httplog`.
    HaproxyHttplog,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Combined => "combined",
            LogFormat::Upstreaminfo => "upstreaminfo",
            LogFormat::EnvoyText => "envoy default",
            LogFormat::IstioText => "istio default",
            LogFormat::EnvoyGatewayJson => "envoy gateway json",
            LogFormat::HaproxyHttplog => "haproxy httplog",
        }
    }

    /// The proxy that writes this format.
    pub fn proxy(self) -> ProxyKind {
        match self {
            LogFormat::Combined | LogFormat::Upstreaminfo => ProxyKind::Nginx,
            LogFormat::EnvoyText | LogFormat::IstioText | LogFormat::EnvoyGatewayJson => {
                ProxyKind::Envoy
            }
            LogFormat::HaproxyHttplog => ProxyKind::Haproxy,
        }
    }

    /// Every format, for the "not parsed" warning.
    pub const ALL: [LogFormat; 6] = [
        LogFormat::Combined,
        LogFormat::Upstreaminfo,
        LogFormat::EnvoyText,
        LogFormat::IstioText,
        LogFormat::EnvoyGatewayJson,
        LogFormat::HaproxyHttplog,
    ];
}

/// One access-log line, reduced to what the explain engine joins on.
///
/// Times are whole milliseconds: every format logs its durations with
/// millisecond resolution, and integers keep facts comparable (`Eq`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyLogEntry {
    /// When the proxy answered (Unix ns): see the module's doc for which
    /// clock each format's time comes from.
    pub at_ns: i64,
    /// `at_ns` is good to a few ms (the runtime's stamp, or a proxy clock
    /// with milliseconds), rather than to the second (`$time_local`).
    pub precise_time: bool,
    /// The proxy's client, when the format logs it (Envoy's default text
    /// format has only `X-Forwarded-For`, often `-`).
    pub client: Option<IpAddr>,
    /// The client's port, where the format logs it (HAProxy's `%cp`,
    /// Envoy's `%DOWNSTREAM_REMOTE_ADDRESS%` in the Istio and Envoy
    /// Gateway formats): it pairs the line with the one connection the
    /// peek saw the answer on, even among answers a millisecond apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// The status the proxy sent to the client (0: none was sent).
    pub status: u16,
    /// How long the proxy took over the request (nginx `$request_time`,
    /// Envoy `%DURATION%`, HAProxy `Ta`).
    pub request_time_ms: Option<u64>,
    /// ingress-nginx's `$proxy_upstream_name` (`namespace-service-port`),
    /// Envoy's `%UPSTREAM_CLUSTER%` or HAProxy's backend.
    pub upstream_name: Option<String>,
    /// The upstream addresses in the order tried (nginx `$upstream_addr`,
    /// Envoy `%UPSTREAM_HOST%`; HAProxy logs server names, not addresses).
    /// Entries that are not IP:port are left out, with their status and
    /// time.
    pub upstream_addrs: Vec<SocketAddr>,
    /// The upstream's status per address (`None`: it gave none, the try
    /// failed).
    pub upstream_statuses: Vec<Option<u16>>,
    /// The upstream's response time per address (`None` for `-`).
    pub upstream_response_times_ms: Vec<Option<u64>>,
    pub format: LogFormat,
    /// The proxy's own word for the outcome: Envoy's `%RESPONSE_FLAGS%`
    /// (`UF`, `URX,UF`; `-` for none) or HAProxy's termination state
    /// (`SC--`, `----`).
    pub flags: Option<String>,
    /// HAProxy's server name (`SRV_1`; `<NOSRV>` when none was chosen).
    pub server: Option<String>,
    /// Retries the proxy logged for this request (HAProxy's `%rc`).
    pub retries: Option<u32>,
    /// HAProxy's `+` on `%rc`: the request was redispatched to another
    /// server.
    pub redispatched: bool,
    /// The proxy's own end of the upstream connection (Envoy's
    /// `%UPSTREAM_LOCAL_ADDRESS%`, in the Istio and Envoy Gateway formats).
    pub upstream_local: Option<SocketAddr>,
}

impl ProxyLogEntry {
    /// An entry of `format` with nothing but its time and status.
    pub(crate) fn new(format: LogFormat, at_ns: i64, status: u16) -> ProxyLogEntry {
        ProxyLogEntry {
            at_ns,
            precise_time: true,
            client: None,
            client_port: None,
            status,
            request_time_ms: None,
            upstream_name: None,
            upstream_addrs: Vec::new(),
            upstream_statuses: Vec::new(),
            upstream_response_times_ms: Vec::new(),
            format,
            flags: None,
            server: None,
            retries: None,
            redispatched: false,
            upstream_local: None,
        }
    }
}

/// Why a line is not one of the supported formats. Messages name the
/// field, never the line's content (it may hold paths and queries).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyLogError {
    #[error("empty line")]
    Empty,
    #[error("field {field}: {problem}")]
    Field {
        field: &'static str,
        problem: &'static str,
    },
    #[error("{0} unexpected field(s) after the upstreaminfo fields (a custom log format?)")]
    Trailing(usize),
    /// The proxy's own log (Envoy's, HAProxy's), which shares the
    /// container's output with the access log: skipped, not a problem.
    #[error("the proxy's own log, not an access log")]
    NotAccessLog,
    #[error("{format}: field {field}: {problem}")]
    InFormat {
        format: &'static str,
        field: &'static str,
        problem: &'static str,
    },
}

pub(crate) fn bad(field: &'static str, problem: &'static str) -> ProxyLogError {
    ProxyLogError::Field { field, problem }
}

/// What the proxy's own words say happened to the upstream side of a
/// request: the phase its flags or termination state name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// No upstream was chosen: Envoy `UH` (no healthy upstream), HAProxy
    /// `<NOSRV>`. No upstream connection was made for this request.
    NoUpstream,
    /// The connect failed: Envoy `UF` (refused or timed out), HAProxy `SC`
    /// (refused) and `sC` (connect timeout).
    ConnectFailed,
    /// An established upstream connection closed or reset before or while
    /// answering: Envoy `UC` (connection termination, a pooled connection
    /// closed), `UR` (remote reset), HAProxy `SH`, `SD`.
    Closed,
    /// The upstream was too slow: Envoy `UT`, HAProxy `sH`, `sD`.
    Timeout,
    /// The upstream answered this status itself: Envoy's flags `-`,
    /// HAProxy's `--` termination with a server chosen.
    Answered,
    /// Something else (overflow, a client abort, a local reply).
    Other,
}

/// Envoy's response flags that say why a request failed on the upstream
/// side, from the most telling (the first found decides).
pub fn envoy_outcome(flags: &str) -> UpstreamOutcome {
    let has = |f: &str| flags.split(',').any(|x| x == f);
    if flags == "-" || flags.is_empty() {
        UpstreamOutcome::Answered
    } else if has("UH") {
        UpstreamOutcome::NoUpstream
    } else if has("UF") {
        UpstreamOutcome::ConnectFailed
    } else if has("UC") || has("UR") {
        UpstreamOutcome::Closed
    } else if has("UT") {
        UpstreamOutcome::Timeout
    } else {
        UpstreamOutcome::Other
    }
}

/// HAProxy's termination state (`%tsc`, e.g. `SC--`): who ended the
/// session (S server, s server timeout) and in which phase (C connect,
/// H headers, D data). `<NOSRV>` is no server chosen.
pub fn haproxy_outcome(state: &str, server: Option<&str>) -> UpstreamOutcome {
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

/// Parses one access-log line (with or without the runtime's timestamp
/// prefix) in whichever supported format it is. Never panics, whatever
/// the input.
pub fn parse_line(line: &str) -> Result<ProxyLogEntry, ProxyLogError> {
    let line = line.trim_matches(|c: char| c == '\n' || c == '\r' || c == ' ');
    if line.is_empty() {
        return Err(ProxyLogError::Empty);
    }
    let (stamp, rest) = split_stamp(line);
    if rest.starts_with('{') {
        return envoy::parse_json(rest);
    }
    if envoy::looks_like_text(rest) {
        return envoy::parse_text(rest);
    }
    if let Some(body) = haproxy::strip_syslog(rest).filter(|b| haproxy::looks_like_httplog(b)) {
        return haproxy::parse(body, stamp);
    }
    if envoy::is_own_log(rest) || haproxy::is_own_log(rest) {
        return Err(ProxyLogError::NotAccessLog);
    }
    nginx::parse(rest, stamp)
}

/// The runtime's RFC 3339 stamp (Unix ns) and the line after it, if the
/// first token is one.
fn split_stamp(line: &str) -> (Option<i64>, &str) {
    if let Some((first, after)) = line.split_once(' ') {
        if first.contains('T') {
            if let Ok(t) = first.parse::<jiff::Timestamp>() {
                if let Ok(ns) = i64::try_from(t.as_nanosecond()) {
                    return (Some(ns), after.trim_start_matches(' '));
                }
            }
        }
    }
    (None, line)
}

/// An HTTP status, `100..=599`.
pub(crate) fn parse_status(s: &str) -> Option<u16> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| (100..=599).contains(v))
}

/// A whole number of at most 12 digits.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `1.234` (seconds, millisecond resolution) to 1234 ms.
pub(crate) fn parse_ms(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || int.len() > 12
        || frac.len() > 9
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut ms: u64 = int.parse::<u64>().ok()?.checked_mul(1000)?;
    let mut scale = 100;
    for b in frac.bytes().take(3) {
        ms += u64::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(ms)
}

/// A read position in a line.
pub(crate) struct Cursor<'a> {
    pub rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// The next space-separated word.
    pub fn word(&mut self) -> Option<&'a str> {
        let s = self.rest.trim_start_matches(' ');
        if s.is_empty() {
            return None;
        }
        let end = s.find(' ').unwrap_or(s.len());
        self.rest = &s[end..];
        Some(&s[..end])
    }

    /// One `"..."` field; returns its content. nginx escapes `"` as `\x22`
    /// (or `\"` with `escape=json`), so the field ends at the first
    /// unescaped quote.
    pub fn quoted(&mut self, field: &'static str) -> Result<&'a str, ProxyLogError> {
        let s = self.rest.trim_start_matches(' ');
        let Some(body) = s.strip_prefix('"') else {
            return Err(bad(field, "missing opening quote"));
        };
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    self.rest = &body[i + 1..];
                    return Ok(&body[..i]);
                }
                _ => {}
            }
        }
        Err(bad(field, "missing closing quote"))
    }

    /// One `[...]` field; returns its content.
    pub fn bracketed(&mut self, field: &'static str) -> Result<&'a str, ProxyLogError> {
        let s = self.rest.trim_start_matches(' ');
        let Some(body) = s.strip_prefix('[') else {
            return Err(bad(field, "missing `[`"));
        };
        let end = body.find(']').ok_or_else(|| bad(field, "missing `]`"))?;
        self.rest = &body[end + 1..];
        Ok(&body[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Each captured fixture's lines are detected as their format, with
    /// and without the runtime's stamp.
    #[test]
    fn every_fixture_line_is_detected_as_its_format() {
        for (text, format) in [
            (envoy::tests::DEFAULT, LogFormat::EnvoyText),
            (envoy::tests::ISTIO, LogFormat::IstioText),
            (envoy::tests::GATEWAY_JSON, LogFormat::EnvoyGatewayJson),
            (haproxy::tests::HTTPLOG, LogFormat::HaproxyHttplog),
        ] {
            for line in text.lines() {
                assert_eq!(parse_line(line).unwrap().format, format, "{line}");
                let stamped = format!("2026-12-02T05:49:50.123456789Z {line}");
                assert_eq!(parse_line(&stamped).unwrap().format, format, "{line}");
            }
        }
    }

    #[test]
    fn outcomes_of_the_proxies_words() {
        use UpstreamOutcome::*;
        assert_eq!(envoy_outcome("UH"), NoUpstream);
        assert_eq!(envoy_outcome("URX,UF"), ConnectFailed);
        assert_eq!(envoy_outcome("UC"), Closed);
        assert_eq!(envoy_outcome("UT"), Timeout);
        assert_eq!(envoy_outcome("-"), Answered);
        assert_eq!(envoy_outcome("UO"), Other);
        assert_eq!(envoy_outcome("UFX"), Other, "not UF");
        assert_eq!(haproxy_outcome("SC--", Some("<NOSRV>")), NoUpstream);
        assert_eq!(haproxy_outcome("SC--", Some("SRV_1")), ConnectFailed);
        assert_eq!(haproxy_outcome("sC--", Some("SRV_1")), ConnectFailed);
        assert_eq!(haproxy_outcome("SH--", Some("SRV_1")), Closed);
        assert_eq!(haproxy_outcome("SD--", Some("SRV_1")), Closed);
        assert_eq!(haproxy_outcome("sH--", Some("SRV_1")), Timeout);
        assert_eq!(haproxy_outcome("----", Some("SRV_1")), Answered);
        assert_eq!(haproxy_outcome("CD--", Some("SRV_1")), Other);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,300}") {
            let _ = parse_line(&s);
        }

        #[test]
        fn mangled_fixture_lines_never_panic(
            pick in 0usize..4,
            line in 0usize..12,
            cut in 0usize..600,
            junk in "[0-9a-zA-Z\\[\\]\\-:.,/{}\" \\\\<>+]{0,40}",
        ) {
            let text = [
                envoy::tests::DEFAULT,
                envoy::tests::ISTIO,
                envoy::tests::GATEWAY_JSON,
                haproxy::tests::HTTPLOG,
            ][pick];
            let l = text.lines().nth(line % text.lines().count()).unwrap();
            let mut at = cut.min(l.len());
            while !l.is_char_boundary(at) {
                at -= 1;
            }
            let _ = parse_line(&format!("{}{junk}{}", &l[..at], &l[at..]));
            let _ = parse_line(&format!("{}{junk}", &l[..at]));
        }
    }
}
