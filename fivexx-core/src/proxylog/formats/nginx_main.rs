//! nginx's `main`, the F5 NGINX Ingress Controller's default `log-format`
//! (its ConfigMap key; the controller's template writes nginx's stock
//! `main`): `combined` plus the `X-Forwarded-For` header, quoted.
//!
//! ```text
//! main:  $remote_addr - $remote_user [$time_local] "$request" $status
//!        $body_bytes_sent "$http_referer" "$http_user_agent"
//!        "$http_x_forwarded_for"
//! ```
//!
//! It names no upstream: the answer's upstream is the kernel's to find.
//! `$remote_addr` is the proxy's peer, the address the peek sees;
//! `X-Forwarded-For` (the client behind a load balancer) is read past and
//! not kept. Time and clock as `combined` ([`super::nginx`]).

use super::nginx::{combined, Combined};
use crate::proxylog::{FormatSpec, LogFormat, ProxyAccount, ProxyKind, ProxyLogError};

pub static MAIN_SPEC: FormatSpec = FormatSpec {
    id: 6,
    key: "nginx_main",
    name: "nginx main (F5 NGINX Ingress Controller)",
    proxy: ProxyKind::Nginx,
    write_lag_ns: super::nginx::COMBINED_SPEC.write_lag_ns,
    read: Some(read),
};

/// nginx's `main`.
pub const MAIN: LogFormat = LogFormat::of(&MAIN_SPEC);

/// A `combined` line followed by exactly one quoted field; any other
/// line is left to the formats after it.
fn read(line: &str, stamp: Option<i64>) -> Option<Result<ProxyAccount, ProxyLogError>> {
    let Combined { mut account, rest } = combined(line, stamp).ok()?;
    let mut rest = rest;
    rest.quoted("http_x_forwarded_for").ok()?;
    if !rest.rest.trim().is_empty() {
        return None;
    }
    account.format = MAIN;
    Some(Ok(account))
}

#[cfg(test)]
mod tests {
    use crate::proxylog::{nginx, parse_line};

    /// Lines as the controller writes them: through a load balancer (one
    /// forwarded address, then two), and straight from a client (`-`).
    #[test]
    fn the_controllers_default_lines() {
        for (line, status, client) in [
            (
                r#"10.244.0.1 - - [07/Dec/2026:21:04:17 +0000] "GET /api/items?id=7 HTTP/1.1" 502 157 "-" "curl/8.5.0" "203.0.113.9""#,
                502,
                "10.244.0.1",
            ),
            (
                r#"10.244.0.1 - - [07/Dec/2026:21:04:18 +0000] "GET /x HTTP/1.1" 504 167 "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64)" "203.0.113.9, 198.51.100.7""#,
                504,
                "10.244.0.1",
            ),
            (
                r#"192.168.49.1 - alice [07/Dec/2026:21:04:19 +0000] "POST /cart HTTP/2.0" 200 12 "-" "ua" "-""#,
                200,
                "192.168.49.1",
            ),
        ] {
            let a = parse_line(line).unwrap();
            assert_eq!(a.format, super::MAIN, "{line}");
            assert_eq!(a.status, status);
            assert_eq!(a.client, Some(client.parse().unwrap()));
            assert!(a.tries.is_empty() && a.words.is_none());
            assert!(!a.precise_time, "$time_local is whole seconds");
            let shown = format!("{a:?}");
            assert!(!shown.contains("203.0.113.9") && !shown.contains("items"));
            let stamped = parse_line(&format!("2026-12-07T21:04:17.123456789Z {line}")).unwrap();
            assert!(stamped.precise_time && stamped.format == super::MAIN);
        }
    }

    /// `combined` and `upstreaminfo` lines are still theirs, and a tail of
    /// two quoted fields is no `main`.
    #[test]
    fn neighbours_keep_their_lines() {
        let combined = r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/8.5.0""#;
        assert_eq!(parse_line(combined).unwrap().format, nginx::COMBINED);
        let upstreaminfo = r#"10.1.0.7 - - [25/Nov/2026:07:19:14 +0000] "GET / HTTP/1.1" 502 150 "-" "wrk" 75 0.001 [shop-web-80] [] 10.244.0.12:8080 0 0.001 502 ab"#;
        assert_eq!(
            parse_line(upstreaminfo).unwrap().format,
            nginx::UPSTREAMINFO
        );
        let two = format!("{combined} \"1.2.3.4\" \"host\"");
        assert!(parse_line(&two).is_err(), "neither main nor upstreaminfo");
    }
}
