//! nginx's access-log formats: nginx's default `combined` and
//! ingress-nginx's default `upstreaminfo`.
//!
//! The formats, as documented by nginx (`log_format combined`) and by
//! ingress-nginx (`log-format-upstream`, "Log format" page):
//!
//! ```text
//! combined:      $remote_addr - $remote_user [$time_local] "$request" $status
//!                $body_bytes_sent "$http_referer" "$http_user_agent"
//! upstreaminfo:  <combined> $request_length $request_time [$proxy_upstream_name]
//!                [$proxy_alternative_upstream_name] $upstream_addr
//!                $upstream_response_length $upstream_response_time
//!                $upstream_status $req_id
//! ```
//!
//! The runtime's stamp, when the line has one, is the entry's time, since
//! `$time_local` has a resolution of one second.

use crate::proxylog::{
    bad, parse_ms, parse_status, Cursor, FormatSpec, LogFormat, ProxyAccount, ProxyKind,
    ProxyLogError, UpstreamTry,
};
use std::net::{IpAddr, SocketAddr};

/// nginx stamps `$msec` from the time it cached at the start of its
/// event-loop turn, a few ms before the kernel sees the same turn's failed
/// connect and 5xx write.
const WRITE_LAG_NS: i64 = 50_000_000;

pub static COMBINED_SPEC: FormatSpec = FormatSpec {
    id: 0,
    key: "combined",
    name: "combined",
    proxy: ProxyKind::Nginx,
    write_lag_ns: WRITE_LAG_NS,
    read: Some(read),
};

pub static UPSTREAMINFO_SPEC: FormatSpec = FormatSpec {
    id: 1,
    key: "upstreaminfo",
    name: "upstreaminfo",
    proxy: ProxyKind::Nginx,
    write_lag_ns: WRITE_LAG_NS,
    read: None,
};

/// nginx's default `combined`: no upstream fields.
pub const COMBINED: LogFormat = LogFormat::of(&COMBINED_SPEC);
/// ingress-nginx's default `upstreaminfo`.
pub const UPSTREAMINFO: LogFormat = LogFormat::of(&UPSTREAMINFO_SPEC);

/// The last reader tried: it takes any line, and says which field of
/// `combined` or `upstreaminfo` a line in neither gets wrong.
fn read(line: &str, stamp: Option<i64>) -> Option<Result<ProxyAccount, ProxyLogError>> {
    Some(parse(line, stamp))
}

/// The fields of `combined` once read, and the rest of the line: the
/// formats built on it (`upstreaminfo`, F5's `main`) go on from there.
pub(crate) struct Combined<'a> {
    pub account: ProxyAccount,
    pub rest: Cursor<'a>,
}

/// Parses one nginx line, after the runtime's stamp (`stamp`, Unix ns),
/// which is the entry's time when there is one: `$time_local` has a
/// resolution of one second.
pub(crate) fn parse(line: &str, stamp: Option<i64>) -> Result<ProxyAccount, ProxyLogError> {
    let Combined {
        mut account,
        rest: mut cur,
    } = combined(line, stamp)?;
    if cur.rest.trim().is_empty() {
        return Ok(account);
    }
    upstreaminfo(&mut cur, &mut account)?;
    Ok(account)
}

/// Reads `combined`'s fields (see [`parse`] for the time), leaving the
/// rest of the line unread.
pub(crate) fn combined(line: &str, stamp: Option<i64>) -> Result<Combined<'_>, ProxyLogError> {
    let mut cur = Cursor { rest: line };
    let client = cur
        .word()
        .and_then(|w| w.parse::<IpAddr>().ok())
        .ok_or_else(|| bad("remote_addr", "not an IP address"))?;
    if cur.word() != Some("-") {
        return Err(bad("remote_addr", "not followed by ` - `"));
    }
    // $remote_user: up to the ` [` of $time_local (it is free text).
    let (_, after_user) = cur
        .rest
        .split_once(" [")
        .ok_or_else(|| bad("time_local", "missing `[`"))?;
    let (time_local, after_time) = after_user
        .split_once(']')
        .ok_or_else(|| bad("time_local", "missing `]`"))?;
    let local = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", time_local)
        .and_then(|t| t.to_timestamp())
        .map_err(|_| bad("time_local", "not a date like 10/Oct/2000:13:55:36 -0700"))?;
    cur.rest = after_time;
    cur.quoted("request")?;
    let status = cur
        .word()
        .and_then(parse_status)
        .ok_or_else(|| bad("status", "not an HTTP status"))?;
    cur.word()
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty())
        .ok_or_else(|| bad("body_bytes_sent", "not a number"))?;
    cur.quoted("http_referer")?;
    cur.quoted("http_user_agent")?;
    let (at_ns, precise_time) = match stamp {
        Some(t) => (t, true),
        None => (
            i64::try_from(local.as_nanosecond()).map_err(|_| bad("time", "out of range"))?,
            false,
        ),
    };
    let mut account = ProxyAccount::new(COMBINED, at_ns, status);
    account.precise_time = precise_time;
    account.client = Some(client);
    Ok(Combined { account, rest: cur })
}

/// The fields ingress-nginx appends to `combined`.
fn upstreaminfo(cur: &mut Cursor<'_>, entry: &mut ProxyAccount) -> Result<(), ProxyLogError> {
    entry.format = UPSTREAMINFO;
    cur.word()
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad("request_length", "not a number"))?;
    entry.request_time_ms = Some(
        cur.word()
            .and_then(parse_ms)
            .ok_or_else(|| bad("request_time", "not a time in seconds"))?,
    );
    let name = cur.bracketed("proxy_upstream_name")?;
    entry.upstream_name = (!name.is_empty() && name != "-").then(|| name.to_string());
    // Older ingress-nginx formats have no alternative upstream.
    if cur.rest.trim_start().starts_with('[') {
        cur.bracketed("proxy_alternative_upstream_name")?;
    }
    let groups = list_groups(cur.rest);
    if groups.len() < 4 {
        return Err(bad(
            "upstream_addr",
            "fewer than the 5 upstream fields of upstreaminfo",
        ));
    }
    if groups.len() > 5 {
        return Err(ProxyLogError::Trailing(groups.len() - 5));
    }
    let addrs: Vec<&str> = list_items(&groups[0]);
    let times: Vec<&str> = list_items(&groups[2]);
    let statuses: Vec<&str> = list_items(&groups[3]);
    let mut parsed_times = Vec::with_capacity(times.len());
    for t in &times {
        parsed_times.push(match *t {
            "-" => None,
            t => Some(
                parse_ms(t)
                    .ok_or_else(|| bad("upstream_response_time", "not a time in seconds"))?,
            ),
        });
    }
    let mut parsed_statuses = Vec::with_capacity(statuses.len());
    for s in &statuses {
        parsed_statuses.push(match *s {
            "-" => None,
            s => Some(parse_status(s).ok_or_else(|| bad("upstream_status", "not an HTTP status"))?),
        });
    }
    // The lists go together by position; a list cut short (nginx logs
    // what it has) leaves the rest unknown.
    for (i, a) in addrs.iter().enumerate() {
        // Not IP:port: `-` (no upstream), a unix socket or a group name.
        if let Ok(addr) = a.parse::<SocketAddr>() {
            entry.tries.push(UpstreamTry {
                addr,
                status: parsed_statuses.get(i).copied().flatten(),
                response_ms: parsed_times.get(i).copied().flatten(),
            });
        }
    }
    Ok(())
}

/// Splits the upstream part into fields: nginx joins list items with `, `
/// and upstream groups with ` : `, so a field goes on while a token ends
/// with `,` or the next token is `:`.
fn list_groups(rest: &str) -> Vec<String> {
    let toks: Vec<&str> = rest.split(' ').filter(|t| !t.is_empty()).collect();
    let mut groups: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let mut g = String::from(toks[i]);
        i += 1;
        loop {
            if g.ends_with(',') && i < toks.len() {
                g.push(' ');
                g.push_str(toks[i]);
                i += 1;
            } else if toks.get(i) == Some(&":") && i + 1 < toks.len() {
                g.push_str(" : ");
                g.push_str(toks[i + 1]);
                i += 2;
            } else {
                break;
            }
        }
        groups.push(g);
    }
    groups
}

/// The items of one list field, across groups. Groups are joined with
/// ` : ` (spaces included, since `:` is also inside `IP:port`), items
/// with `,`.
fn list_items(field: &str) -> Vec<&str> {
    field
        .split(" : ")
        .flat_map(|g| g.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxylog::parse_line;
    use proptest::prelude::*;

    /// One upstream try: address, port, status, response time (ms).
    type Try = ([u8; 4], u16, u16, u64);

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The example of the Common/Combined Log Format documentation, as
    /// nginx's `combined` writes it.
    #[test]
    fn combined_documented_example() {
        let e = parse_line(
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
        )
        .unwrap();
        assert_eq!(e.format, COMBINED);
        assert_eq!(e.client, Some("127.0.0.1".parse::<IpAddr>().unwrap()));
        assert_eq!(e.status, 200);
        assert_eq!(e.at_ns, 971_211_336_000_000_000);
        assert!(!e.precise_time);
        assert!(e.addrs().is_empty());
        assert_eq!(e.request_time_ms, None);
    }

    #[test]
    fn combined_with_dashes_and_escaped_quotes() {
        let e = parse_line(
            r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET /a?\x22q\x22 HTTP/1.1" 502 157 "-" "curl/8.5.0""#,
        )
        .unwrap();
        assert_eq!(e.status, 502);
        assert_eq!(e.format, COMBINED);
    }

    /// ingress-nginx's `upstreaminfo`, a plain proxied request.
    #[test]
    fn upstreaminfo_single_upstream() {
        let e = parse_line(
            r#"192.168.49.1 - - [25/Nov/2026:07:19:14 +0000] "GET /api/items?id=7 HTTP/1.1" 502 150 "-" "Mozilla/5.0 (X11; Linux x86_64)" 489 0.002 [shop-web-80] [] 10.244.0.12:8080 0 0.001 502 7f3b1e4c1a0a4d6e8c1f0e2d3c4b5a69"#,
        )
        .unwrap();
        assert_eq!(e.format, UPSTREAMINFO);
        assert_eq!(e.status, 502);
        assert_eq!(e.request_time_ms, Some(2));
        assert_eq!(e.upstream_name.as_deref(), Some("shop-web-80"));
        assert_eq!(e.addrs(), vec![sa("10.244.0.12:8080")]);
        assert_eq!(e.statuses(), vec![Some(502)]);
        assert_eq!(e.times(), vec![Some(1)]);
        assert_eq!(e.at_ns, 1_795_591_154_000_000_000);
    }

    /// A line the lab's real nginx (1.22, Debian) wrote with the
    /// upstreaminfo format, `$msec` stripped: ingress-nginx's variables set
    /// in the config, a refused upstream.
    #[test]
    fn upstreaminfo_written_by_real_nginx() {
        let e = parse_line(
            r#"127.0.0.1 - - [25/Nov/2026:07:59:11 +0000] "GET /a/b?secret=1 HTTP/1.1" 502 157 "-" "ua test" 87 0.002 [shop-web-8080] [] 127.0.0.1:1 0 0.002 502 c6649d7971a2b8510cfe968f9718deea"#,
        )
        .unwrap();
        assert_eq!(e.status, 502);
        assert_eq!(e.addrs(), vec![sa("127.0.0.1:1")]);
        assert_eq!(e.statuses(), vec![Some(502)]);
        assert_eq!(e.upstream_name.as_deref(), Some("shop-web-8080"));
        assert!(!format!("{e:?}").contains("secret"), "no path kept");
    }

    /// Retries (`proxy_next_upstream`): addresses, times and statuses are
    /// comma lists in the order tried.
    #[test]
    fn upstreaminfo_retries() {
        let e = parse_line(
            r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "POST /x HTTP/1.1" 200 17 "-" "wrk" 120 1.013 [shop-web-80] [] 10.244.0.12:8080, 10.244.0.13:8080 0, 17 1.000, 0.013 504, 200 0123456789abcdef0123456789abcdef"#,
        )
        .unwrap();
        assert_eq!(e.status, 200);
        assert_eq!(e.request_time_ms, Some(1013));
        assert_eq!(
            e.addrs(),
            vec![sa("10.244.0.12:8080"), sa("10.244.0.13:8080")]
        );
        assert_eq!(e.statuses(), vec![Some(504), Some(200)]);
        assert_eq!(e.times(), vec![Some(1000), Some(13)]);
    }

    /// ` : ` separates upstream groups (an internal redirect, e.g. to a
    /// custom error backend).
    #[test]
    fn upstreaminfo_groups() {
        let e = parse_line(
            r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET / HTTP/1.1" 503 190 "-" "wrk" 75 0.004 [shop-web-80] [] 10.244.0.12:8080, 10.244.0.13:8080 : 10.244.9.2:8080 0, 0 : 190 0.001, 0.001 : 0.002 502, 502 : 503 abc"#,
        )
        .unwrap();
        assert_eq!(
            e.addrs(),
            vec![
                sa("10.244.0.12:8080"),
                sa("10.244.0.13:8080"),
                sa("10.244.9.2:8080")
            ]
        );
        assert_eq!(e.statuses(), vec![Some(502), Some(502), Some(503)]);
        assert_eq!(e.times(), vec![Some(1), Some(1), Some(2)]);
    }

    /// No upstream at all (`return 503`, default backend missing): every
    /// upstream field is `-` and the names are empty.
    #[test]
    fn upstreaminfo_dashes() {
        let e = parse_line(
            r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET / HTTP/1.1" 503 190 "-" "-" 75 0.000 [] [] - - - - 5a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d"#,
        )
        .unwrap();
        assert_eq!(e.format, UPSTREAMINFO);
        assert_eq!(e.upstream_name, None);
        assert!(e.addrs().is_empty());
        assert!(e.statuses().is_empty());
        assert!(e.times().is_empty());
    }

    /// A status `-` in a list (the connection failed before any answer)
    /// and an upstream group name nginx keeps when no server was selected.
    #[test]
    fn upstreaminfo_partial_lists() {
        let e = parse_line(
            r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET / HTTP/1.1" 502 150 "-" "wrk" 75 0.001 [shop-web-80] [shop-web-canary-80] 10.244.0.12:8080, upstream_balancer 0, - 0.000, - 502, 502 ab"#,
        )
        .unwrap();
        assert_eq!(e.addrs(), vec![sa("10.244.0.12:8080")]);
        assert_eq!(e.statuses(), vec![Some(502)]);
        assert_eq!(e.times(), vec![Some(0)]);
    }

    #[test]
    fn ipv6_client_and_upstream() {
        let e = parse_line(
            r#"2001:db8::1 - - [25/Nov/2026:07:19:14 +0100] "GET / HTTP/2.0" 502 150 "-" "h2load" 40 0.010 [shop-web-80] [] [fd00::12]:8080 0 0.010 502 ff"#,
        )
        .unwrap();
        assert_eq!(e.client, Some("2001:db8::1".parse::<IpAddr>().unwrap()));
        assert_eq!(e.addrs(), vec![sa("[fd00::12]:8080")]);
        assert_eq!(e.at_ns, 1_795_587_554_000_000_000);
    }

    /// `kubectl logs --timestamps`: the runtime's stamp is the time.
    #[test]
    fn kubernetes_timestamp_prefix() {
        let e = parse_line(
            r#"2026-11-25T07:19:14.313212345Z 10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET / HTTP/1.1" 502 150 "-" "wrk" 75 0.001 [shop-web-80] [] 10.244.0.12:8080 0 0.001 502 ab"#,
        )
        .unwrap();
        assert!(e.precise_time);
        assert_eq!(e.at_ns, 1_795_591_154_313_212_345);
        assert_eq!(e.status, 502);
    }

    #[test]
    fn garbage_is_an_error_naming_the_field_not_the_content() {
        for (line, field) in [
            ("", None),
            ("hello world", Some("remote_addr")),
            (
                r#"10.1.0.7 - - [yesterday] "GET /secret HTTP/1.1" 200 1 "-" "-""#,
                Some("time_local"),
            ),
            (
                r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET /secret HTTP/1.1 200 1"#,
                Some("request"),
            ),
            (
                r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET /secret HTTP/1.1" abc 1 "-" "-""#,
                Some("status"),
            ),
            (
                r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET /secret HTTP/1.1" 200 1 "-" "-" 75 0.001 [x] [] 1.2.3.4:80 0"#,
                Some("upstream_addr"),
            ),
            (
                r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET /secret HTTP/1.1" 200 1 "-" "-" 75 0.001 [x] [] 1.2.3.4:80 0 0.001 200 id extra /secret"#,
                None,
            ),
            // nginx's error log is not an access log.
            (
                "2026/11/25 07:19:14 [error] 31#31: *1 connect() failed (111: Connection refused) while connecting to upstream",
                Some("remote_addr"),
            ),
        ] {
            let err = parse_line(line).unwrap_err();
            let msg = err.to_string();
            assert!(!msg.contains("secret"), "{msg}");
            if let Some(f) = field {
                assert!(msg.contains(f), "{line}: {msg}");
            }
        }
    }

    #[test]
    fn seconds_to_ms() {
        use crate::proxylog::parse_ms;
        assert_eq!(parse_ms("0.000"), Some(0));
        assert_eq!(parse_ms("1.5"), Some(1500));
        assert_eq!(parse_ms("12"), Some(12_000));
        assert_eq!(parse_ms("0.0019"), Some(1));
        assert_eq!(parse_ms("-1"), None);
        assert_eq!(parse_ms(""), None);
        assert_eq!(parse_ms("."), None);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,300}") {
            let _ = parse_line(&s);
        }

        #[test]
        fn arbitrary_log_like_strings_never_panic(
            prefix in prop::sample::select(vec![
                "",
                "2026-11-25T07:19:14.313212345Z ",
                "10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] \"GET / HTTP/1.1\" 502 1 \"-\" \"-\" ",
            ]),
            s in "[0-9a-f\\[\\]\\-:., \"\\\\]{0,120}",
        ) {
            let _ = parse_line(&format!("{prefix}{s}"));
        }

        #[test]
        fn rendered_upstreaminfo_lines_parse_back(
            client in any::<[u8; 4]>(),
            status in 100u16..600,
            tries in prop::collection::vec((any::<[u8; 4]>(), 1u16.., 100u16..600, 0u64..100_000), 0..4),
            secs in 0i64..4_000_000_000,
        ) {
            let local = jiff::Timestamp::from_second(secs)
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%d/%b/%Y:%H:%M:%S %z")
                .to_string();
            let list = |f: &dyn Fn(&Try) -> String| {
                if tries.is_empty() { "-".to_string() } else {
                    tries.iter().map(f).collect::<Vec<_>>().join(", ")
                }
            };
            let addrs = list(&|(ip, port, _, _)| format!("{}:{port}", IpAddr::from(*ip)));
            let statuses = list(&|(_, _, s, _)| s.to_string());
            let times = list(&|(_, _, _, ms)| format!("{}.{:03}", ms / 1000, ms % 1000));
            let line = format!(
                "{} - - [{local}] \"GET /p HTTP/1.1\" {status} 0 \"-\" \"-\" 10 0.005 [ns-svc-80] [] {addrs} 0 {times} {statuses} id",
                IpAddr::from(client)
            );
            let e = parse_line(&line).unwrap();
            prop_assert_eq!(e.at_ns, secs * 1_000_000_000);
            prop_assert_eq!(e.status, status);
            prop_assert_eq!(e.client, Some(IpAddr::from(client)));
            let want_addrs: Vec<SocketAddr> = tries.iter().map(|(ip, p, _, _)| SocketAddr::new(IpAddr::from(*ip), *p)).collect();
            prop_assert_eq!(e.addrs(), want_addrs);
            let want_st: Vec<Option<u16>> = tries.iter().map(|t| Some(t.2)).collect();
            prop_assert_eq!(e.statuses(), want_st);
            let want_t: Vec<Option<u64>> = tries.iter().map(|t| Some(t.3)).collect();
            prop_assert_eq!(e.times(), want_t);
        }
    }
}
