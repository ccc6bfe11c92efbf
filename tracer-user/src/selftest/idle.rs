//! The idle keep-alive close: a server closes a keep-alive connection
//! after a set idle time, the client (a proxy's pooled upstream
//! connection) then sends its next request on it and draws a RST. The
//! close's record must carry the idle time the kernel read from the
//! socket (`idle_us`), within 10% + 5 ms of the set time, and the RST
//! must come on the same 4-tuple.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use fivexx_core::{KernelEvent, KernelEventKind as K, TcpState};

use super::harness::{ensure, tuple_is, CaseError, Outcome, SelftestTracer};
use super::Status;

/// Two idle timeouts, so that a reading fitted to one value fails the
/// other (Gunicorn's 2 s default is too long for a self-test).
const IDLE_SET_MS: [u64; 2] = [700, 1500];

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: selftest\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";

fn step(what: &'static str) -> impl FnOnce(io::Error) -> CaseError {
    CaseError::step(what)
}

fn is_close_after_idle(e: &KernelEvent, server_port: u16, client_port: u16) -> bool {
    e.kind == K::StateChange
        && tuple_is(e, server_port, client_port)
        && e.tcp_state == Some(TcpState::Established)
        && e.new_state == Some(TcpState::FinWait1)
}

pub(super) fn idle_close(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::StateChange, K::ReceiveReset])?;
    // The idle read sits on every state change's path: a verifier refusing
    // the cheap tp_btf form over it (and the silent classic fallback) is a
    // regression, not a degradation.
    let refused = s
        .tracer
        .report
        .hook("sock:inet_sock_set_state")
        .and_then(|h| {
            h.notes
                .iter()
                .find(|n| n.contains("tp_btf refused"))
                .cloned()
        });
    if let Some(why) = refused {
        return Err(CaseError::Check(format!("inet_sock_set_state: {why}")));
    }
    if !s.tracer.facts.layout.config.idle.known() {
        return degraded(s);
    }
    let hz = s.tracer.facts.layout.config.idle.hz;
    let mut seen = Vec::new();
    for set_ms in IDLE_SET_MS {
        seen.push(one_idle_close(s, Duration::from_millis(set_ms))?);
    }
    let quick = quick_close(s)?;
    Ok((
        Status::Pass,
        format!("HZ {hz}; {}; {quick}", seen.join("; ")),
    ))
}

/// Where the kernel gives no idle time: the capability report must say so,
/// and no close is reported as an idle one.
fn degraded(s: &mut SelftestTracer) -> Outcome {
    let hook = s.tracer.report.hook("sock:inet_sock_set_state");
    let note = hook
        .and_then(|h| h.notes.iter().find(|n| n.contains("idle time")))
        .cloned();
    let Some(note) = note else {
        return Err(CaseError::Check(
            "no idle time on this kernel, and the capability report does not say so".into(),
        ));
    };
    let (server_port, client_port) = serve_then_close(Duration::from_millis(200))?;
    s.expect_none(
        "ESTABLISHED->FIN_WAIT1 record without an idle time",
        Duration::from_millis(300),
        |e| is_close_after_idle(e, server_port, client_port),
    )?;
    Ok((Status::Degraded, format!("not read here: {note}")))
}

/// A server answering one request and closing after `idle` of quiet.
/// Returns the ports once the server has closed.
fn serve_then_close(idle: Duration) -> Result<(u16, u16), CaseError> {
    let (client, server_port, server) = start(idle)?;
    let client_port = client.local_addr().map_err(step("client address"))?.port();
    server
        .join()
        .map_err(|_| CaseError::Check("server thread panicked".into()))?
        .map_err(step("server"))?;
    drop(client);
    Ok((server_port, client_port))
}

type Server = std::thread::JoinHandle<io::Result<Duration>>;

/// Starts the server thread and connects a client that sends one request
/// and reads the whole response. The server returns how long it waited
/// between its response and its close (its own clock).
fn start(idle: Duration) -> Result<(TcpStream, u16, Server), CaseError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(step("bind"))?;
    let server_port = listener.local_addr().map_err(step("local address"))?.port();
    let server = std::thread::spawn(move || -> io::Result<Duration> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = [0u8; 512];
        let mut got = 0;
        while !buf[..got].ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf[got..])?;
            if n == 0 {
                return Err(io::Error::other("client closed before its request"));
            }
            got += n;
        }
        conn.write_all(RESPONSE)?;
        let replied = Instant::now();
        if !idle.is_zero() {
            // The keep-alive idle timeout: wait for a next request that
            // does not come.
            conn.set_read_timeout(Some(idle))?;
            match conn.read(&mut buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                other => return Err(io::Error::other(format!("idle read gave {other:?}"))),
            }
        }
        let waited = replied.elapsed();
        drop(conn); // close(): ESTABLISHED -> FIN_WAIT1
        Ok(waited)
    });
    let mut client = TcpStream::connect(("127.0.0.1", server_port)).map_err(step("connect"))?;
    client.write_all(REQUEST).map_err(step("request"))?;
    let mut resp = vec![0u8; RESPONSE.len()];
    client.read_exact(&mut resp).map_err(step("response"))?;
    ensure(resp == RESPONSE, || "the response came back changed".into())?;
    Ok((client, server_port, server))
}

fn one_idle_close(s: &mut SelftestTracer, set: Duration) -> Result<String, CaseError> {
    let (mut client, server_port, server) = start(set)?;
    let client_port = client.local_addr().map_err(step("client address"))?.port();
    let waited = server
        .join()
        .map_err(|_| CaseError::Check("server thread panicked".into()))?
        .map_err(step("server"))?;
    let close = s.wait_for("ESTABLISHED->FIN_WAIT1 after the idle timeout", |e| {
        is_close_after_idle(e, server_port, client_port)
    })?;
    let idle_us = close.idle_us.ok_or_else(|| {
        CaseError::Check(format!("the idle close carries no idle time: {close:?}"))
    })?;
    let set_us = set.as_micros() as u64;
    let tolerance_us = set_us / 10 + 5_000;
    ensure(idle_us.abs_diff(set_us) <= tolerance_us, || {
        format!(
            "idle {:.1} ms at the close, set {} ms (the server waited {:.1} ms): off by more than 10% + 5 ms",
            idle_us as f64 / 1e3,
            set.as_millis(),
            waited.as_secs_f64() * 1e3
        )
    })?;
    // The proxy reuses the pooled connection: the request reaches a socket
    // the server has closed, and the server's kernel answers with a RST.
    let reused = Instant::now();
    client
        .write_all(REQUEST)
        .map_err(step("request on the closed connection"))?;
    let rr = s.wait_for("RST at the client after reuse", |e| {
        e.kind == K::ReceiveReset && tuple_is(e, client_port, server_port)
    })?;
    ensure(rr.tcp_state == Some(TcpState::CloseWait), || {
        format!(
            "the reused connection's RST came in {:?}, want CLOSE_WAIT",
            rr.tcp_state
        )
    })?;
    let rst_after_ms = reused.elapsed().as_secs_f64() * 1e3;
    let sent = s.attached("tcp:tcp_send_reset")
        && s.count_after(Duration::from_millis(50), |e| {
            e.kind == K::SendReset && tuple_is(e, server_port, client_port)
        }) > 0;
    Ok(format!(
        "set {} ms: idle {:.1} ms at the close (server waited {:.1} ms), RST received in CLOSE_WAIT on the same 4-tuple{} within {rst_after_ms:.1} ms of the reuse",
        set.as_millis(),
        idle_us as f64 / 1e3,
        waited.as_secs_f64() * 1e3,
        if sent { " (and its send seen)" } else { "" },
    ))
}

/// The near-miss: a close right after the response (idle ~0) is only
/// counted, never a record.
fn quick_close(s: &mut SelftestTracer) -> Result<String, CaseError> {
    let (server_port, client_port) = serve_then_close(Duration::ZERO)?;
    s.expect_none(
        "record of a close right after the response",
        Duration::from_millis(300),
        |e| is_close_after_idle(e, server_port, client_port),
    )?;
    Ok("a close right after its response gives no record".into())
}
