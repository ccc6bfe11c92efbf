//! Envoy's access-log formats: Envoy's default text format, Istio's
//! default text format and Envoy Gateway's default JSON format.
//!
//! As documented by Envoy ("Default format string", unchanged in 1.40 and
//! checked against the 1.40.0 binary's output), by Istio (`meshConfig`'s
//! default `accessLogFormat`) and by Envoy Gateway
//! (`internal/xds/translator/accesslog.go`, `EnvoyJSONLogFields`):
//!
//! ```text
//! envoy:  [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//!         %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//!         %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//!         "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
//! istio:  [%START_TIME%] "..." %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%
//!         %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
//!         %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
//!         "XFF" "UA" "REQUEST-ID" "AUTHORITY" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER%
//!         %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//!         %REQUESTED_SERVER_NAME% %ROUTE_NAME%
//! json:   {"start_time", "response_code", "response_flags", "duration",
//!          "x-envoy-upstream-service-time", "x-forwarded-for", "upstream_host",
//!          "upstream_cluster", "upstream_local_address", "downstream_remote_address", ...}
//! ```
//!
//! Time: `%START_TIME%` is when the request started (ms, UTC); the answer
//! is `%DURATION%` ms later (it counts to the last byte sent). That is the
//! entry's time even when the line has the runtime's stamp: Envoy writes
//! its access log through a buffer that a flush thread empties (on a timer
//! or when full), so the stamp is when the runtime read the line, after
//! that (25 ms for a lone line from the 1.40 binary here; a busy proxy
//! batches more), while Envoy's own clock dates the answer itself.
//!
//! Client: the Istio and JSON formats log `%DOWNSTREAM_REMOTE_ADDRESS%`,
//! the peer the kernel sees. The default format has only
//! `X-Forwarded-For`; with `use_remote_address` (as gateways set it) Envoy
//! appends its peer's address, so its last entry is taken.
//!
//! Upstream: `%UPSTREAM_HOST%` is the host of the last attempt. Its status
//! is the answer's own when the flags name no upstream failure (`-`), and
//! unknown (`None`: the try failed) when they do. Envoy logs neither the
//! attempts nor their hosts: a retried request shows only as `URX`.

use crate::proxylog::{
    parse_u64, Cursor, FormatSpec, LogFormat, ProxyAccount, ProxyKind, ProxyLogError, ProxyWords,
    UpstreamOutcome, UpstreamTry,
};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// How long after its logged time Envoy may still be writing an answer.
/// Envoy logs a request when it is done with it, but the write of its 503
/// waits for the worker's event loop to flush the connection: when a
/// failed connect fails every request pending on it, a busy worker writes
/// them out over tens of ms (up to 43 ms in the lab on two CPUs, 76 ms
/// with both also busy; issue 15). With margin: 250 ms.
pub const WRITE_LAG_NS: i64 = 250_000_000;

/// Envoy's connection pool queues requests on a connection it is still
/// opening, and when that connect fails it fails every request waiting on
/// it, each with its own 503 `UF`, within a millisecond or so: one failed
/// connect, several failed requests.
pub const FAILS_PENDING_REQUESTS: bool = true;

/// Envoy logs no retry count, and its default format no attempts: `URX`
/// says the retry budget was used up. Istio's default retry policy and
/// Envoy Gateway's retry default (`numRetries`) both allow 2 retries, so a
/// `URX` answer stands for 2 earlier failed tries.
pub const URX_RETRIES: u32 = 2;

pub static GATEWAY_JSON_SPEC: FormatSpec = FormatSpec {
    id: 4,
    key: "envoy_gateway_json",
    name: "envoy gateway json",
    proxy: ProxyKind::Envoy,
    write_lag_ns: WRITE_LAG_NS,
    read: Some(read_json),
};

pub static TEXT_SPEC: FormatSpec = FormatSpec {
    id: 2,
    key: "envoy_text",
    name: "envoy default",
    proxy: ProxyKind::Envoy,
    write_lag_ns: WRITE_LAG_NS,
    read: Some(read_text),
};

pub static ISTIO_SPEC: FormatSpec = FormatSpec {
    id: 3,
    key: "istio_text",
    name: "istio default",
    proxy: ProxyKind::Envoy,
    write_lag_ns: WRITE_LAG_NS,
    read: None,
};

/// Envoy's default text format (no client address).
pub const TEXT: LogFormat = LogFormat::of(&TEXT_SPEC);
/// Istio's default text format (Envoy's, plus details and addresses).
pub const ISTIO: LogFormat = LogFormat::of(&ISTIO_SPEC);
/// Envoy Gateway's default JSON format.
pub const GATEWAY_JSON: LogFormat = LogFormat::of(&GATEWAY_JSON_SPEC);

/// Whether a thread that wrote an answer is Envoy's: its main thread
/// `envoy`, its workers `wrk:worker_N`.
pub fn is_worker_thread(comm: &str) -> bool {
    comm == "envoy" || comm.starts_with("wrk:worker")
}

/// Envoy's response flags that say why a request failed on the upstream
/// side, from the most telling (the first found decides).
pub fn outcome(flags: &str) -> UpstreamOutcome {
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

/// Envoy's words: the outcome its flags name, and `URX` as the retry
/// budget used up.
pub(crate) fn words(flags: &str) -> ProxyWords {
    ProxyWords {
        outcome: outcome(flags),
        flags: flags.to_string(),
        earlier_tries: if flags.split(',').any(|f| f == "URX") {
            URX_RETRIES
        } else {
            0
        },
        server: None,
        retries: None,
        redispatched: false,
    }
}

/// Envoy's words as evidence: `Envoy: 503 UF upstream 10.244.0.12:8080`.
pub(crate) fn say(a: &ProxyAccount, w: &ProxyWords) -> String {
    match a.last_upstream() {
        Some(u) => format!("Envoy: {} {} upstream {u}", a.status, w.flags),
        None => format!("Envoy: {} {} no upstream host", a.status, w.flags),
    }
}

/// Envoy Gateway's JSON lines.
fn read_json(line: &str, _stamp: Option<i64>) -> Option<Result<ProxyAccount, ProxyLogError>> {
    line.starts_with('{').then(|| parse_json(line))
}

/// Envoy's and Istio's text lines, and Envoy's own log (skipped).
fn read_text(line: &str, _stamp: Option<i64>) -> Option<Result<ProxyAccount, ProxyLogError>> {
    if looks_like_text(line) {
        Some(parse_text(line))
    } else if is_own_log(line) {
        Some(Err(ProxyLogError::NotAccessLog))
    } else {
        None
    }
}

fn bad(format: LogFormat, field: &'static str, problem: &'static str) -> ProxyLogError {
    ProxyLogError::InFormat {
        format: format.name(),
        field,
        problem,
    }
}

/// Whether a line starts as Envoy's text formats do: `[2026-12-02T...`.
/// (Envoy's own log, `[2026-12-02 05:48:38.036][tid][level]`, does not.)
pub(crate) fn looks_like_text(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 12
        && b[0] == b'['
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b'-'
        && b[11] == b'T'
}

/// Whether a line is Envoy's own log (not an access log), which shares the
/// proxy container's output: `[2026-12-02 05:48:38.036][20811][warning]`.
pub(crate) fn is_own_log(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 25
        && b[0] == b'['
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[11] == b' '
        && line[1..].contains("][")
}

/// `%START_TIME%` in Envoy's default form (`2026-12-02T05:49:44.677Z`).
fn start_ns(s: &str, format: LogFormat) -> Result<i64, ProxyLogError> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| i64::try_from(t.as_nanosecond()).ok())
        .ok_or_else(|| bad(format, "start_time", "not an RFC 3339 time"))
}

/// `%RESPONSE_CODE%`: 0 when no response was sent.
fn code(s: &str) -> Option<u16> {
    let v = parse_u64(s)?;
    u16::try_from(v)
        .ok()
        .filter(|v| *v == 0 || (100..=599).contains(v))
}

/// A number or `-`.
fn opt_number(s: &str) -> Result<Option<u64>, ()> {
    if s == "-" {
        return Ok(None);
    }
    parse_u64(s).map(Some).ok_or(())
}

fn socket(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// The last address of an `X-Forwarded-For` list.
fn last_forwarded(xff: &str) -> Option<IpAddr> {
    xff.rsplit(',').next().and_then(|a| a.trim().parse().ok())
}

/// The fields all three formats share, once read.
struct Common<'a> {
    start_ns: i64,
    status: u16,
    flags: &'a str,
    duration_ms: Option<u64>,
    upstream_service_ms: Option<u64>,
    upstream_host: Option<&'a str>,
    /// The client's address; its port only where the format logs the
    /// downstream peer (not `X-Forwarded-For`).
    client: Option<(IpAddr, Option<u16>)>,
    cluster: Option<&'a str>,
    upstream_local: Option<SocketAddr>,
}

fn entry(format: LogFormat, c: Common<'_>) -> ProxyAccount {
    let at_ns = c.start_ns.saturating_add(
        c.duration_ms
            .map_or(0, |ms| ms as i64)
            .saturating_mul(1_000_000),
    );
    let mut e = ProxyAccount::new(format, at_ns, c.status);
    e.client = c.client.map(|(ip, _)| ip);
    e.client_port = c.client.and_then(|(_, port)| port);
    e.request_time_ms = c.duration_ms;
    let words = words(c.flags);
    e.upstream_name = c
        .cluster
        .filter(|s| !s.is_empty() && *s != "-")
        .map(str::to_string);
    e.upstream_local = c.upstream_local;
    if let Some(addr) = c.upstream_host.and_then(socket) {
        let answered = words.outcome == UpstreamOutcome::Answered && c.status != 0;
        e.tries.push(UpstreamTry {
            addr,
            status: answered.then_some(c.status),
            response_ms: c.upstream_service_ms,
        });
    }
    e.words = Some(words);
    e
}

/// Parses Envoy's default or Istio's default text format (after the
/// runtime's stamp, which is not used: see the module's doc).
pub(crate) fn parse_text(line: &str) -> Result<ProxyAccount, ProxyLogError> {
    let mut format = TEXT;
    let mut cur = Cursor { rest: line };
    let start = cur
        .bracketed("start_time")
        .map_err(|_| bad(format, "start_time", "missing `[...]`"))?;
    let start_ns = start_ns(start, format)?;
    cur.quoted("request")
        .map_err(|_| bad(format, "request", "not a quoted request line"))?;
    let status = cur
        .word()
        .and_then(code)
        .ok_or_else(|| bad(format, "response_code", "not an HTTP status"))?;
    let flags = cur
        .word()
        .ok_or_else(|| bad(format, "response_flags", "missing"))?;
    // The default format goes on with %BYTES_RECEIVED%; Istio's with
    // %RESPONSE_CODE_DETAILS% (a word, whitespace replaced by `_`).
    let mut next = cur
        .word()
        .ok_or_else(|| bad(format, "bytes_received", "missing"))?;
    if parse_u64(next).is_none() {
        format = ISTIO;
        cur.word()
            .ok_or_else(|| bad(format, "connection_termination_details", "missing"))?;
        cur.quoted("upstream_transport_failure_reason")
            .map_err(|_| bad(format, "upstream_transport_failure_reason", "not quoted"))?;
        next = cur
            .word()
            .ok_or_else(|| bad(format, "bytes_received", "missing"))?;
    }
    parse_u64(next).ok_or_else(|| bad(format, "bytes_received", "not a number"))?;
    cur.word()
        .and_then(parse_u64)
        .ok_or_else(|| bad(format, "bytes_sent", "not a number"))?;
    let duration_ms = cur
        .word()
        .and_then(|w| opt_number(w).ok())
        .ok_or_else(|| bad(format, "duration", "not a number"))?;
    let upstream_service_ms = cur
        .word()
        .and_then(|w| opt_number(w).ok())
        .ok_or_else(|| bad(format, "upstream_service_time", "not a number"))?;
    let xff = cur
        .quoted("x_forwarded_for")
        .map_err(|_| bad(format, "x_forwarded_for", "not quoted"))?;
    // The user agent is free text (it may hold quotes): the fields after
    // it are read from the end of the line.
    let mut tail = cur.rest.trim_end();
    let mut istio = [""; 6];
    if format == ISTIO {
        for slot in istio.iter_mut().rev() {
            let (before, word) = tail
                .rsplit_once(' ')
                .ok_or_else(|| bad(format, "route_name", "fewer fields than Istio's format"))?;
            *slot = word;
            tail = before.trim_end();
        }
    }
    let host = tail
        .strip_suffix('"')
        .and_then(|t| t.rsplit_once('"'))
        .map(|(_, h)| h)
        .filter(|h| !h.contains(' '))
        .ok_or_else(|| bad(format, "upstream_host", "not a quoted last field"))?;
    if !tail.trim_start().starts_with('"') {
        return Err(bad(format, "user_agent", "not quoted"));
    }
    let [cluster, upstream_local, _, downstream_remote, _, _] = istio;
    let client = if format == ISTIO {
        socket(downstream_remote).map(|a| (a.ip(), Some(a.port())))
    } else {
        last_forwarded(xff).map(|ip| (ip, None))
    };
    Ok(entry(
        format,
        Common {
            start_ns,
            status,
            flags,
            duration_ms,
            upstream_service_ms,
            upstream_host: Some(host),
            client,
            cluster: (format == ISTIO).then_some(cluster),
            upstream_local: socket(upstream_local),
        },
    ))
}

/// The fields of Envoy Gateway's JSON line that are kept; the others
/// (path, user agent, request id, authority...) are skipped unread.
/// Envoy writes numbers as JSON numbers and unset values as `null`.
#[derive(Deserialize)]
struct JsonLine {
    start_time: Option<serde_json::Value>,
    response_code: Option<serde_json::Value>,
    response_flags: Option<serde_json::Value>,
    duration: Option<serde_json::Value>,
    #[serde(rename = "x-envoy-upstream-service-time")]
    upstream_service_time: Option<serde_json::Value>,
    #[serde(rename = "x-forwarded-for")]
    forwarded_for: Option<serde_json::Value>,
    upstream_host: Option<serde_json::Value>,
    upstream_cluster: Option<serde_json::Value>,
    upstream_local_address: Option<serde_json::Value>,
    downstream_remote_address: Option<serde_json::Value>,
}

fn text(v: &Option<serde_json::Value>) -> Option<&str> {
    v.as_ref()?.as_str()
}

fn number(v: &Option<serde_json::Value>) -> Option<u64> {
    match v.as_ref()? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => parse_u64(s),
        _ => None,
    }
}

/// Parses Envoy Gateway's default JSON format.
pub(crate) fn parse_json(line: &str) -> Result<ProxyAccount, ProxyLogError> {
    let format = GATEWAY_JSON;
    let j: JsonLine = serde_json::from_str(line)
        .map_err(|_| bad(format, "line", "not a JSON object of Envoy's fields"))?;
    let start = text(&j.start_time).ok_or_else(|| bad(format, "start_time", "missing"))?;
    let start_ns = start_ns(start, format)?;
    let status = number(&j.response_code)
        .and_then(|c| code(&c.to_string()))
        .ok_or_else(|| bad(format, "response_code", "not an HTTP status"))?;
    Ok(entry(
        format,
        Common {
            start_ns,
            status,
            flags: text(&j.response_flags).unwrap_or("-"),
            duration_ms: number(&j.duration),
            upstream_service_ms: number(&j.upstream_service_time),
            upstream_host: text(&j.upstream_host),
            client: text(&j.downstream_remote_address)
                .and_then(socket)
                .map(|a| (a.ip(), Some(a.port())))
                .or_else(|| {
                    text(&j.forwarded_for)
                        .and_then(last_forwarded)
                        .map(|ip| (ip, None))
                }),
            cluster: text(&j.upstream_cluster),
            upstream_local: text(&j.upstream_local_address).and_then(socket),
        },
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proxylog::parse_line;

    /// Lines the real Envoy 1.40.0 wrote in front of a real backend on
    /// 127.0.0.1 (one request per case: 200, slow 504 UT, killed
    /// mid-request 503 UC, refused 503 UF, no endpoint 503 UH, Istio's
    /// retry policy 503 URX,UF, the app's own 503, a body cut short 200
    /// UPE, a connect timeout 503 UF, a forwarded client, keep-alive).
    pub(crate) const DEFAULT: &str = include_str!("testdata/envoy-default.log");
    pub(crate) const ISTIO: &str = include_str!("testdata/envoy-istio.log");
    pub(crate) const GATEWAY_JSON: &str = include_str!("testdata/envoy-gateway-json.log");

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The fixtures' lines, in order, parsed.
    fn all(text: &str) -> Vec<ProxyAccount> {
        text.lines().map(|l| parse_line(l).unwrap()).collect()
    }

    /// (status, flags, upstream host, upstream status) per fixture line:
    /// the same in the three formats, since one request made each.
    fn expected() -> Vec<(u16, &'static str, Option<&'static str>, Option<u16>)> {
        vec![
            (200, "-", Some("127.0.0.1:18081"), Some(200)),
            (504, "UT", Some("127.0.0.1:18082"), None),
            (503, "UC", Some("127.0.0.1:18083"), None),
            (503, "UF", Some("127.0.0.1:18084"), None),
            (503, "UH", None, None),
            (503, "URX,UF", Some("127.0.0.1:18084"), None),
            (503, "-", Some("127.0.0.1:18085"), Some(503)),
            (200, "UPE", Some("127.0.0.1:18086"), None),
            (503, "UF", Some("127.0.0.1:18087"), None),
            (503, "UF", Some("127.0.0.1:18084"), None),
            (200, "-", Some("127.0.0.1:18081"), Some(200)),
            (200, "-", Some("127.0.0.1:18081"), Some(200)),
        ]
    }

    #[test]
    fn real_lines_in_the_three_formats_agree() {
        for (text, format) in [
            (DEFAULT, super::TEXT),
            (ISTIO, super::ISTIO),
            (GATEWAY_JSON, super::GATEWAY_JSON),
        ] {
            let got = all(text);
            assert_eq!(got.len(), expected().len(), "{format:?}");
            for (e, (status, flags, host, up)) in got.iter().zip(expected()) {
                assert_eq!(e.format, format);
                assert_eq!(e.status, status, "{e:?}");
                assert_eq!(
                    e.words.as_ref().map(|w| w.flags.as_str()),
                    Some(flags),
                    "{e:?}"
                );
                assert_eq!(e.addrs(), host.map(sa).into_iter().collect::<Vec<_>>());
                if host.is_some() {
                    assert_eq!(e.statuses(), vec![up], "{e:?}");
                }
                assert!(e.precise_time);
                let w = e.words.as_ref().unwrap();
                assert_eq!((&w.server, w.retries), (&None, None));
                let shown = format!("{e:?}");
                for secret in ["secret", "token", "ua-secret", "curl", "18100\""] {
                    assert!(!shown.contains(secret), "{secret} kept: {shown}");
                }
            }
        }
    }

    /// The answer's time is the start plus the duration: the slow
    /// request's 504 came 998 ms after it started.
    #[test]
    fn the_answer_is_the_start_plus_the_duration() {
        let slow = parse_line(DEFAULT.lines().nth(1).unwrap()).unwrap();
        let start: jiff::Timestamp = "2026-12-02T05:51:12.609Z".parse().unwrap();
        assert_eq!(
            slow.at_ns,
            i64::try_from(start.as_nanosecond()).unwrap() + 998_000_000
        );
        assert_eq!(slow.request_time_ms, Some(998));
        // The runtime's stamp (later: Envoy's writes are buffered) does
        // not move it.
        let stamped = format!(
            "2026-12-02T05:51:40.000000000Z {}",
            DEFAULT.lines().nth(1).unwrap()
        );
        assert_eq!(parse_line(&stamped).unwrap().at_ns, slow.at_ns);
    }

    #[test]
    fn clients_and_local_addresses() {
        let d = all(DEFAULT);
        // Default format: the last X-Forwarded-For entry.
        assert_eq!(d[0].client, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(d[9].client, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(d[0].client_port, None, "X-Forwarded-For has no port");
        assert_eq!(d[0].upstream_name, None);
        assert_eq!(d[0].upstream_local, None);
        for text in [ISTIO, GATEWAY_JSON] {
            let e = all(text);
            assert_eq!(e[0].client, Some("127.0.0.1".parse().unwrap()));
            assert!(e[0].client_port.is_some_and(|p| p > 0), "{:?}", e[0]);
            assert!(e.iter().all(|l| l.client_port.is_some()));
            assert_eq!(e[0].upstream_name.as_deref(), Some("ok"));
            // A connection was made for UC, none for UF.
            assert!(e[2].upstream_local.is_some(), "{:?}", e[2]);
            assert_eq!(e[3].upstream_local, None);
            // Two requests on one kept-alive upstream connection.
            assert_eq!(e[10].upstream_local, e[11].upstream_local);
        }
    }

    #[test]
    fn outcomes_of_response_flags() {
        use UpstreamOutcome::*;
        assert_eq!(outcome("UH"), NoUpstream);
        assert_eq!(outcome("URX,UF"), ConnectFailed);
        assert_eq!(outcome("UC"), Closed);
        assert_eq!(outcome("UT"), Timeout);
        assert_eq!(outcome("-"), Answered);
        assert_eq!(outcome("UO"), Other);
        assert_eq!(outcome("UFX"), Other, "not UF");
        assert_eq!(words("URX,UF").earlier_tries, URX_RETRIES);
        assert_eq!(words("UF").earlier_tries, 0);
    }

    #[test]
    fn envoys_own_log_is_not_an_access_log() {
        let own = "[2026-12-02 05:48:38.036][20811][warning][main] [source/server/server.cc:1059] There is no configured limit";
        assert!(is_own_log(own));
        assert!(!looks_like_text(own));
        assert!(!is_own_log(DEFAULT.lines().next().unwrap()));
    }

    #[test]
    fn broken_lines_name_the_field() {
        for (line, field) in [
            (
                r#"[2026-12-02T05:51:12.609Z] "GET /secret HTTP/1.1" 5x3 UT 0 24 999 - "-" "-" "-" "-" "-""#,
                "response_code",
            ),
            (
                r#"[2026-12-02T05:51:12.609Z] "GET /secret HTTP/1.1" 504 UT 0 24 999 - "-" "-" "-" "-" -"#,
                "upstream_host",
            ),
            (
                r#"[2026-12-02T99:51:12.609Z] "GET /secret HTTP/1.1" 504 UT 0 24 999 - "-" "-" "-" "-" "-""#,
                "start_time",
            ),
            (r#"{"response_code":503,"path":"/secret"}"#, "start_time"),
            (
                r#"{"start_time":"2026-12-02T05:51:12.609Z","response_code":"x"}"#,
                "response_code",
            ),
            (r#"{"start_time": 12, "#, "line"),
        ] {
            let msg = parse_line(line).unwrap_err().to_string();
            assert!(msg.contains(field), "{line}: {msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
    }
}
