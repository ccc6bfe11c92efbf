//! Proxy access-log lines, each read into the proxy's own account of one
//! answer ([`ProxyAccount`]): the few fields the explain engine joins with
//! kernel facts, and the proxy's own words, already typed.
//!
//! Why: the kernel peek sees the status line of plain HTTP/1.x only, and
//! never the proxy's reason. A TLS or HTTP/2 client connection cannot be
//! peeked, but every proxy logs each answer with its status, the upstream
//! it used and, for Envoy and HAProxy, its own word for what went wrong
//! (Envoy's response flags, HAProxy's termination state). The plugin reads
//! those logs through the API (`pods/log`).
//!
//! One module per format family holds all of that family's knowledge: how
//! to read its lines, what its words mean (outcome, earlier tries), and how
//! far its clock may be from the answer's write. [`formats`] is the
//! registry: it lists the formats in the order lines are tried, and the
//! gateway products that ship them. Adding a format is its module and a
//! registry row there.
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
//! (nanoseconds). Which clock an account's time comes from is each
//! format's call, documented on its parser: nginx and HAProxy write a line
//! when the answer is done, so the stamp is the answer's time; Envoy writes
//! its access log through a buffer a flush thread empties, so its own
//! `%START_TIME%` plus `%DURATION%` (milliseconds) is used instead.

mod format;
pub mod formats;
mod text;

pub use format::{FormatSpec, LogFormat, ReadLine};
pub use formats::{envoy, haproxy, nginx};
pub(crate) use text::{parse_ms, parse_status, parse_u64, Cursor};

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Which proxy wrote a line: the engine a gateway product runs.
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

    /// The proxy whose worker thread is named `comm` (the writer of a
    /// peeked answer), if any.
    pub fn of_thread(comm: &str) -> Option<ProxyKind> {
        if envoy::is_worker_thread(comm) {
            Some(ProxyKind::Envoy)
        } else if comm == "nginx" {
            Some(ProxyKind::Nginx)
        } else if comm == "haproxy" {
            Some(ProxyKind::Haproxy)
        } else {
            None
        }
    }

    /// Whether one failed connect fails every request waiting on it
    /// (Envoy's connection pool, see [`envoy::FAILS_PENDING_REQUESTS`]),
    /// rather than one request try per connection.
    pub fn fails_pending_requests(self) -> bool {
        match self {
            ProxyKind::Envoy => envoy::FAILS_PENDING_REQUESTS,
            ProxyKind::Nginx | ProxyKind::Haproxy => false,
        }
    }
}

/// One try of an upstream, as the line lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTry {
    pub addr: SocketAddr,
    /// The upstream's own status (`None`: it gave none, the try failed).
    pub status: Option<u16>,
    /// How long the proxy waited on it, in ms, when logged.
    pub response_ms: Option<u64>,
}

impl UpstreamTry {
    /// A try that failed: no status of the upstream's own, or a 5xx.
    pub fn failed(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }
}

/// What the proxy's own words say happened to the upstream side of a
/// request: the phase its flags or termination state name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// The proxy's own words about one answer, read by its format's module:
/// what they say happened upstream, and how many earlier tries they
/// account for. nginx's formats have none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyWords {
    pub outcome: UpstreamOutcome,
    /// The flags or termination state as logged (`URX,UF`, `SC--`).
    pub flags: String,
    /// Earlier failed tries of the request the words account for (besides
    /// the last one): HAProxy's `%rc` exactly, Envoy's `URX` as its retry
    /// budget.
    pub earlier_tries: u32,
    /// HAProxy's server (`SRV_1`; `<NOSRV>` when none was chosen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The retries the proxy logged (HAProxy's `%rc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// HAProxy's `+` on `%rc`: the request was redispatched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redispatched: bool,
}

impl ProxyWords {
    /// The words of `proxy`'s flags or termination state as logged (with
    /// HAProxy's server and `%rc`), read by that proxy's module: for a
    /// record kept raw, as a fresh line's would be.
    pub(crate) fn read(
        proxy: ProxyKind,
        flags: &str,
        server: Option<String>,
        retries: Option<u32>,
        redispatched: bool,
    ) -> Option<ProxyWords> {
        match proxy {
            ProxyKind::Nginx => None,
            ProxyKind::Envoy => Some(envoy::words(flags)),
            ProxyKind::Haproxy => Some(haproxy::words(
                flags,
                server,
                retries.unwrap_or(0),
                redispatched,
            )),
        }
    }
}

/// A proxy's own account of one answer: what one access-log line says,
/// typed by its format's module. The fact holds it by value, the capture
/// stores it, the answer join reads it.
///
/// Times are whole milliseconds: every format logs its durations with
/// millisecond resolution, and integers keep facts comparable (`Eq`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyAccount {
    pub format: LogFormat,
    /// When the proxy answered (Unix ns): see the module's doc for which
    /// clock each format's time comes from.
    pub at_ns: i64,
    /// `at_ns` is good to a few ms (the runtime's stamp, or a proxy clock
    /// with milliseconds), rather than to the second (`$time_local`).
    pub precise_time: bool,
    /// The proxy's client, when the format logs it (Envoy's default text
    /// format has only `X-Forwarded-For`, often `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_time_ms: Option<u64>,
    /// ingress-nginx's `$proxy_upstream_name` (`namespace-service-port`),
    /// Envoy's `%UPSTREAM_CLUSTER%` or HAProxy's backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_name: Option<String>,
    /// The upstream tries in order (nginx `$upstream_addr` with its
    /// statuses and times, Envoy `%UPSTREAM_HOST%`; HAProxy logs server
    /// names, not addresses). Entries that are not IP:port are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tries: Vec<UpstreamTry>,
    /// The proxy's own end of the upstream connection (Envoy's
    /// `%UPSTREAM_LOCAL_ADDRESS%`, in the Istio and Envoy Gateway formats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_local: Option<SocketAddr>,
    /// The proxy's own words, where its format has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<ProxyWords>,
}

impl ProxyAccount {
    /// An account of `format` with nothing but its time and status.
    pub(crate) fn new(format: LogFormat, at_ns: i64, status: u16) -> ProxyAccount {
        ProxyAccount {
            format,
            at_ns,
            precise_time: true,
            client: None,
            client_port: None,
            status,
            request_time_ms: None,
            upstream_name: None,
            tries: Vec::new(),
            upstream_local: None,
            words: None,
        }
    }

    /// Which proxy wrote the line.
    pub fn proxy(&self) -> ProxyKind {
        self.format.proxy()
    }

    /// How much later than its logged time the answer may really have
    /// been written: the format's write lag for a precise stamp, just
    /// under a second for `$time_local`.
    pub fn slack_ns(&self) -> i64 {
        if self.precise_time {
            self.format.write_lag_ns()
        } else {
            999_999_999
        }
    }

    /// The upstream tried last (the one whose answer or failure the
    /// client got), if any.
    pub fn last_upstream(&self) -> Option<SocketAddr> {
        self.tries.last().map(|t| t.addr)
    }

    /// The proxy's own account of the answer, as evidence shows it:
    /// `Envoy: 503 UF upstream 10.244.0.12:8080`, `HAProxy: 503 SC--
    /// server shop-web-8080/SRV_1 after 2 retries`; `None` for formats
    /// without words (nginx's).
    pub fn words_text(&self) -> Option<String> {
        let words = self.words.as_ref()?;
        match self.proxy() {
            ProxyKind::Nginx => None,
            ProxyKind::Envoy => Some(envoy::say(self, words)),
            ProxyKind::Haproxy => Some(haproxy::say(self, words)),
        }
    }

    /// The tries that failed, in order.
    pub fn failed_tries(&self) -> impl Iterator<Item = &UpstreamTry> {
        self.tries.iter().filter(|t| t.failed())
    }
}

#[cfg(test)]
impl ProxyAccount {
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.tries.iter().map(|t| t.addr).collect()
    }

    pub(crate) fn statuses(&self) -> Vec<Option<u16>> {
        self.tries.iter().map(|t| t.status).collect()
    }

    pub(crate) fn times(&self) -> Vec<Option<u64>> {
        self.tries.iter().map(|t| t.response_ms).collect()
    }
}

/// The widest write lag of any format: how long after a line's logged
/// time a peeked answer may still be that line's.
pub fn max_write_lag_ns() -> i64 {
    formats::FORMATS
        .iter()
        .map(|f| f.write_lag_ns)
        .max()
        .unwrap_or(0)
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
    #[error("in none of the formats read ({0})")]
    Unknown(String),
}

pub(crate) fn bad(field: &'static str, problem: &'static str) -> ProxyLogError {
    ProxyLogError::Field { field, problem }
}

/// Parses one access-log line (with or without the runtime's timestamp
/// prefix) in whichever registered format it is: each format's reader, in
/// the registry's order, claims the line or passes. Never panics,
/// whatever the input.
pub fn parse_line(line: &str) -> Result<ProxyAccount, ProxyLogError> {
    let line = line.trim_matches(|c: char| c == '\n' || c == '\r' || c == ' ');
    if line.is_empty() {
        return Err(ProxyLogError::Empty);
    }
    let (stamp, rest) = text::split_stamp(line);
    for spec in formats::FORMATS {
        if let Some(read) = spec.read {
            if let Some(result) = read(rest, stamp) {
                return result;
            }
        }
    }
    let names: Vec<&str> = formats::FORMATS.iter().map(|f| f.name).collect();
    Err(ProxyLogError::Unknown(names.join(", ")))
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
            (envoy::tests::DEFAULT, envoy::TEXT),
            (envoy::tests::ISTIO, envoy::ISTIO),
            (envoy::tests::GATEWAY_JSON, envoy::GATEWAY_JSON),
            (haproxy::tests::HTTPLOG, haproxy::HTTPLOG),
        ] {
            for line in text.lines() {
                assert_eq!(parse_line(line).unwrap().format, format, "{line}");
                let stamped = format!("2026-12-02T05:49:50.123456789Z {line}");
                assert_eq!(parse_line(&stamped).unwrap().format, format, "{line}");
            }
        }
    }

    #[test]
    fn every_format_has_its_own_capture_id_and_key() {
        let mut ids: Vec<u8> = formats::FORMATS.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), formats::FORMATS.len());
        for f in formats::FORMATS {
            let format = LogFormat::from_id(f.id).unwrap();
            assert_eq!(LogFormat::from_key(f.key), Some(format));
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(serde_json::from_str::<LogFormat>(&json).unwrap(), format);
        }
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
