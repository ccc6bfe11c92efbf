//! The load generator. It sends requests at a fixed rate (open loop: a slow
//! answer does not delay the next request) through the ingress and records
//! every one of them, answered or not: the ground truth that explanations are
//! scored against.

use crate::clock::Stamp;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Request rate and length.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    /// A client-side balancer instead of `target`: requests go round the
    /// addresses it holds at the time of sending (the scenario changes
    /// them, as DNS or a client's endpoint list would).
    pub targets: Option<tokio::sync::watch::Receiver<Vec<SocketAddr>>>,
    /// Requests per second (1..=2000).
    pub rate: u32,
    pub duration: Duration,
    /// A request still unanswered after this is recorded as a client timeout.
    pub timeout: Duration,
    /// Instead of `rate`: this many requests at once, every period. The
    /// proxy's pooled connections then sit idle for about the period
    /// between bursts, which is how a backend's idle timeout is raced.
    pub burst: Option<(u32, Duration)>,
}

/// How a request ended without an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestError {
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    Reset,
    /// The connection closed before a status line.
    Eof,
    Timeout,
}

/// One request of the ground truth.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub sent: Stamp,
    pub done: Stamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RequestError>,
    /// The pod that answered (`X-Pod`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The upstream the proxy tried (`X-Upstream-Addr`: nginx's
    /// `$upstream_addr`, Envoy's `%UPSTREAM_REMOTE_ADDRESS%`, HAProxy's
    /// `%si:%sp`), even for a 5xx; none when the proxy picked no server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<String>,
    /// The upstream tries Envoy made for this request
    /// (`x-envoy-attempt-count`; 1: no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The scenario step in flight when the request was sent.
    pub step: String,
    /// The client's local port: with the ingress address it names the
    /// connection the proxy answered on, which is how a kernel-seen 5xx is
    /// matched to this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Where the request was sent, when the client balanced between
    /// several ingress replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<SocketAddr>,
}

impl RequestRecord {
    pub fn is_5xx(&self) -> bool {
        self.status.is_some_and(|s| (500..600).contains(&s))
    }

    /// The pod IP of the upstream nginx used last, if any.
    pub fn upstream_ip(&self) -> Option<String> {
        let last = self.upstream.as_deref()?.rsplit(',').next()?.trim();
        let (ip, _) = last.rsplit_once(':')?;
        Some(ip.to_string())
    }
}

/// Sends `rate` requests per second for `duration`; returns every record,
/// in send order, each stamped with the value `step` held when it was sent
/// (the scenario step in flight: whoever drives the load names its steps,
/// the generator only reads them).
pub async fn run(
    cfg: LoadConfig,
    step: tokio::sync::watch::Receiver<String>,
) -> Vec<RequestRecord> {
    let rate = cfg.rate.clamp(1, 2000);
    let (total, period, per_tick) = match cfg.burst {
        Some((n, every)) => {
            let n = u64::from(n.clamp(1, 2000));
            let every = every.max(Duration::from_millis(1));
            let ticks = (cfg.duration.as_nanos() / every.as_nanos()).max(1) as u64;
            (ticks * n, every, n)
        }
        None => (
            (rate as u64 * cfg.duration.as_millis() as u64 / 1000).max(1),
            Duration::from_nanos(1_000_000_000 / rate as u64),
            1,
        ),
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut set = tokio::task::JoinSet::new();
    for seq in 0..total {
        if seq % per_tick == 0 {
            ticker.tick().await;
        }
        let step_now = step.borrow().clone();
        let picked = cfg.targets.as_ref().and_then(|t| {
            let t = t.borrow();
            (!t.is_empty()).then(|| t[(seq % t.len() as u64) as usize])
        });
        let target = picked.unwrap_or(cfg.target);
        let timeout = cfg.timeout;
        set.spawn(async move {
            let mut r = one_request(seq, target, timeout, step_now).await;
            r.target = picked;
            r
        });
    }
    let mut records = Vec::with_capacity(total as usize);
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            records.push(r);
        }
    }
    records.sort_by_key(|r| r.seq);
    records
}

async fn one_request(
    seq: u64,
    target: SocketAddr,
    timeout: Duration,
    step: String,
) -> RequestRecord {
    let sent = Stamp::now();
    let mut rec = RequestRecord {
        seq,
        sent,
        done: sent,
        status: None,
        error: None,
        pod: None,
        upstream: None,
        upstream_status: None,
        attempts: None,
        step,
        local_port: None,
        target: None,
    };
    match tokio::time::timeout(timeout, exchange(seq, target, &mut rec.local_port)).await {
        Ok(Ok(resp)) => parse_response(&resp, &mut rec),
        Ok(Err(e)) => rec.error = Some(e),
        Err(_) => rec.error = Some(RequestError::Timeout),
    }
    rec.done = Stamp::now();
    rec
}

async fn exchange(
    seq: u64,
    target: SocketAddr,
    local_port: &mut Option<u16>,
) -> Result<Vec<u8>, RequestError> {
    // Bound before the connect, so that a refused or timed-out connect
    // still has its port: the kernel's record of it names that port.
    let socket = match target {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|_| RequestError::ConnectFailed)?;
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    socket.bind(any).map_err(|_| RequestError::ConnectFailed)?;
    *local_port = socket.local_addr().ok().map(|a| a.port());
    let mut stream =
        match tokio::time::timeout(Duration::from_secs(3), socket.connect(target)).await {
            Err(_) => return Err(RequestError::ConnectTimeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(RequestError::ConnectRefused)
            }
            Ok(Err(_)) => return Err(RequestError::ConnectFailed),
            Ok(Ok(s)) => s,
        };
    let req = format!("GET /?seq={seq} HTTP/1.1\r\nHost: lab.fivexx\r\nUser-Agent: fivexx-lab\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.map_err(classify)?;
    let mut buf = Vec::with_capacity(512);
    stream.read_to_end(&mut buf).await.map_err(classify)?;
    if buf.is_empty() {
        return Err(RequestError::Eof);
    }
    Ok(buf)
}

fn classify(e: std::io::Error) -> RequestError {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => RequestError::Reset,
        _ => RequestError::Eof,
    }
}

fn parse_response(resp: &[u8], rec: &mut RequestRecord) {
    let text = String::from_utf8_lossy(resp);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok());
    let Some(status) = status else {
        rec.error = Some(RequestError::Eof);
        return;
    };
    rec.status = Some(status);
    for l in lines.take_while(|l| !l.is_empty()) {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "x-pod" => rec.pod = Some(v),
            "x-upstream-addr" if names_a_server(&v) => rec.upstream = Some(v),
            "x-envoy-attempt-count" => rec.attempts = v.parse().ok(),
            "x-upstream-status" if !v.is_empty() => rec.upstream_status = Some(v),
            _ => {}
        }
    }
}

/// Whether an `X-Upstream-Addr` value names a server: its first address
/// has a host, not a proxy's placeholder for none (Envoy's `-`, HAProxy's
/// `:` for `%si:%sp` with `<NOSRV>` (2.6), `-:-` or `<NOSRV>` parts).
fn names_a_server(v: &str) -> bool {
    let first = v.split(',').next().unwrap_or("").trim();
    first
        .rsplit_once(':')
        .is_some_and(|(host, _)| !host.is_empty() && host != "-" && !host.starts_with('<'))
}

/// Counts over a ground truth.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSummary {
    pub total: u64,
    pub ok: u64,
    pub s502: u64,
    pub s503: u64,
    pub s504: u64,
    pub other_5xx: u64,
    pub other_status: u64,
    pub client_errors: u64,
}

impl LoadSummary {
    pub fn of(records: &[RequestRecord]) -> LoadSummary {
        let mut s = LoadSummary::default();
        for r in records {
            s.total += 1;
            match r.status {
                Some(200..=299) => s.ok += 1,
                Some(502) => s.s502 += 1,
                Some(503) => s.s503 += 1,
                Some(504) => s.s504 += 1,
                Some(500..=599) => s.other_5xx += 1,
                Some(_) => s.other_status += 1,
                None => s.client_errors += 1,
            }
        }
        s
    }

    pub fn total_5xx(&self) -> u64 {
        self.s502 + self.s503 + self.s504 + self.other_5xx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_pod_and_upstream() {
        let mut rec = RequestRecord {
            seq: 0,
            sent: Stamp::now(),
            done: Stamp::now(),
            status: None,
            error: None,
            pod: None,
            upstream: None,
            upstream_status: None,
            attempts: None,
            step: "s".into(),
            local_port: None,
            target: None,
        };
        parse_response(
            b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nX-Upstream-Addr: 10.244.0.11:8080\r\nX-Upstream-Status: 502\r\n\r\n<html>",
            &mut rec,
        );
        assert_eq!(rec.status, Some(502));
        assert_eq!(rec.upstream_ip().as_deref(), Some("10.244.0.11"));
        assert!(rec.is_5xx());
        assert_eq!(LoadSummary::of(&[rec.clone()]).s502, 1);
        let mut envoy = RequestRecord {
            upstream: None,
            ..rec.clone()
        };
        parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nx-envoy-attempt-count: 3\r\nX-Upstream-Addr: 10.244.0.12:8080\r\n\r\n",
            &mut envoy,
        );
        assert_eq!((envoy.status, envoy.attempts), (Some(503), Some(3)));
        assert_eq!(envoy.upstream_ip().as_deref(), Some("10.244.0.12"));
        let mut nosrv = RequestRecord {
            upstream: None,
            ..rec
        };
        parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nX-Upstream-Addr: -:-\r\n\r\n",
            &mut nosrv,
        );
        assert_eq!(nosrv.upstream, None);
        // HAProxy 2.6's `%si:%sp` with `<NOSRV>`, as a real one sent it.
        parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nx-upstream-addr: :\r\n\r\n",
            &mut nosrv,
        );
        assert_eq!(nosrv.upstream, None);
    }
}
