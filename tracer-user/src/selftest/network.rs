//! Network cases: a refused connect, a peer's reset, a connect timeout.
//! Each provokes the failure on loopback and asserts every record it
//! produces by its 4-tuple.

use std::time::{Duration, Instant};

use fivexx_core::capability::HookState;
use fivexx_core::event::{Errno, ResetReason};
use fivexx_core::{KernelEventKind as K, TcpState};

use super::harness::{ensure, tuple_is, CaseError, Outcome, SelftestTracer};
use super::net::Socket;
use super::Status;

/// A connect to a closed port: the client sees a RST in SYN_SENT and error
/// 111. The pod side sees the RST sent with reason NO_SOCKET, from
/// `tcp_send_reset` on 6.10+ and from `kfree_skb`'s NO_SOCKET drop of the
/// SYN on 5.17 to 6.9: exactly one such fact per refused SYN either way.
pub(super) fn refused_connect(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::ReceiveReset, K::StateChange])?;
    let closed = Socket::bound()?;
    let server_port = closed.port()?;
    drop(closed); // nothing listens there now
    let client = Socket::bound()?;
    let client_port = client.port()?;
    let err = client
        .connect(server_port)
        .expect_err("connect to a closed port succeeded");
    ensure(err.raw_os_error() == Some(libc::ECONNREFUSED), || {
        format!("connect failed with {err}, not ECONNREFUSED")
    })?;
    let mut missing = client_side(s, client_port, server_port)?;
    let pod_side = pod_side(s, client_port, server_port)?;
    let status = match pod_side {
        Some(_) if missing.is_empty() => Status::Pass,
        Some(_) => Status::Degraded,
        None => {
            missing.push(
                "the pod side (no socket-less RST or NO_SOCKET drop on this kernel; reported)",
            );
            Status::Degraded
        }
    };
    let seen = match pod_side {
        Some(via) => {
            let v6 = pod_side_v6(s)?;
            format!("RST sent NO_SOCKET once (via {via}; {v6}), ")
        }
        None => String::new(),
    };
    let lacks = if missing.is_empty() {
        String::new()
    } else {
        format!("; not seen here: {}", missing.join(", "))
    };
    Ok((
        status,
        format!("127.0.0.1:{client_port} -> :{server_port}: {seen}RST received in SYN_SENT, SYN_SENT->CLOSE{lacks}"),
    ))
}

/// The client's side of a refusal: the RST in SYN_SENT, error 111 (where
/// `inet_sk_error_report` exists, 5.13+), SYN_SENT -> CLOSE. Returns what
/// this kernel cannot show.
fn client_side(
    s: &mut SelftestTracer,
    client_port: u16,
    server_port: u16,
) -> Result<Vec<&'static str>, CaseError> {
    let mut missing = Vec::new();
    let rr = s.wait_for("tcp_receive_reset", |e| {
        e.kind == K::ReceiveReset && tuple_is(e, client_port, server_port)
    })?;
    ensure(rr.tcp_state == Some(TcpState::SynSent), || {
        format!("receive_reset state {:?}, want SYN_SENT", rr.tcp_state)
    })?;
    ensure(rr.errno == Some(Errno::ECONNREFUSED), || {
        format!("receive_reset errno {:?}, want ECONNREFUSED", rr.errno)
    })?;
    if s.attached("sock:inet_sk_error_report") {
        let se = s.wait_for("inet_sk_error_report 111", |e| {
            e.kind == K::SockError && tuple_is(e, client_port, server_port)
        })?;
        ensure(se.errno == Some(Errno::ECONNREFUSED), || {
            format!("sock_error errno {:?}, want ECONNREFUSED", se.errno)
        })?;
    } else {
        missing.push("error 111 (no sock:inet_sk_error_report)");
    }
    let sc = s.wait_for("SYN_SENT->CLOSE", |e| {
        e.kind == K::StateChange && tuple_is(e, client_port, server_port)
    })?;
    ensure(
        sc.tcp_state == Some(TcpState::SynSent) && sc.new_state == Some(TcpState::Close),
        || format!("state change {:?}->{:?}", sc.tcp_state, sc.new_state),
    )?;
    Ok(missing)
}

/// The pod's side: one NO_SOCKET RST from the closed port, and no second
/// fact for the same SYN. None where the kernel shows neither (then the
/// report must say so, and nothing may claim it).
fn pod_side(
    s: &mut SelftestTracer,
    client_port: u16,
    server_port: u16,
) -> Result<Option<&'static str>, CaseError> {
    let socketless = s.tracer.facts.layout.config.send_reset.reason.present()
        && s.hook_state(K::SendReset) == Some(HookState::Attached);
    let via = if socketless {
        "tcp_send_reset"
    } else if s.attached("skb:kfree_skb") {
        "kfree_skb"
    } else {
        let hook = s.tracer.report.hook("tcp:tcp_send_reset");
        ensure(
            hook.is_some_and(|h| {
                h.notes.iter().any(|n| n.contains("socket-less")) || h.state == HookState::Missing
            }),
            || {
                "send_reset lacks reason but the capability report does not say socket-less RSTs are missed".to_string()
            },
        )?;
        s.expect_none(
            "send_reset for a socket-less RST",
            Duration::from_millis(200),
            |e| e.kind == K::SendReset && tuple_is(e, server_port, client_port),
        )?;
        return Ok(None);
    };
    // The reply comes from the server side: source is the closed port.
    let sr = s.wait_for("RST sent NO_SOCKET", |e| {
        e.kind == K::SendReset && tuple_is(e, server_port, client_port)
    })?;
    ensure(sr.reset_reason == Some(ResetReason::NoSocket), || {
        format!("reset reason {:?}, want NO_SOCKET", sr.reset_reason)
    })?;
    // Exactly one: neither the other hook nor a retransmitted SYN may
    // add a second refusal fact for this connect.
    let n = s.count_after(Duration::from_millis(300), |e| {
        e.kind == K::SendReset && tuple_is(e, server_port, client_port)
    });
    ensure(n == 1, || {
        format!("{n} NO_SOCKET RST facts for one refused SYN, want exactly 1")
    })?;
    // A UDP datagram to the same closed port is dropped with the same
    // reason (NO_SOCKET): it is no refused connect, and must stay silent.
    let lo4 = std::net::Ipv4Addr::LOCALHOST;
    let udp = std::net::UdpSocket::bind((lo4, 0)).map_err(CaseError::step("UDP socket"))?;
    let udp_port = udp
        .local_addr()
        .map_err(CaseError::step("UDP port"))?
        .port();
    udp.send_to(b"fivexx", (lo4, server_port))
        .map_err(CaseError::step("UDP send"))?;
    s.expect_none(
        "a refusal fact for a UDP datagram to a closed port",
        Duration::from_millis(200),
        |e| e.kind == K::SendReset && tuple_is(e, server_port, udp_port),
    )?;
    Ok(Some(via))
}

/// The pod side over IPv6 (the packet parse differs): a connect to a
/// closed port on ::1 gives exactly one NO_SOCKET RST from that port.
fn pod_side_v6(s: &mut SelftestTracer) -> Result<String, CaseError> {
    let v6_lo = std::net::Ipv6Addr::LOCALHOST;
    let Ok(closed) = std::net::TcpListener::bind((v6_lo, 0)) else {
        return Ok("no IPv6 loopback here, IPv6 not checked".to_string());
    };
    let port = closed
        .local_addr()
        .map_err(CaseError::step("IPv6 port"))?
        .port();
    drop(closed);
    let err = std::net::TcpStream::connect((v6_lo, port))
        .expect_err("connect to a closed IPv6 port succeeded");
    ensure(err.raw_os_error() == Some(libc::ECONNREFUSED), || {
        format!("IPv6 connect failed with {err}, not ECONNREFUSED")
    })?;
    let from_port = |e: &fivexx_core::KernelEvent| {
        e.kind == K::SendReset
            && e.tuple
                .is_some_and(|t| t.saddr == std::net::IpAddr::V6(v6_lo) && t.sport == port)
    };
    let sr = s.wait_for("IPv6 RST sent NO_SOCKET", from_port)?;
    ensure(sr.reset_reason == Some(ResetReason::NoSocket), || {
        format!("IPv6 reset reason {:?}, want NO_SOCKET", sr.reset_reason)
    })?;
    let n = s.count_after(Duration::from_millis(200), from_port);
    ensure(n == 1, || {
        format!("{n} IPv6 NO_SOCKET facts for one refused SYN, want 1")
    })?;
    let client = sr.tuple.map_or(0, |t| t.dport);
    Ok(format!("IPv6 [::1]:{client} -> :{port} too"))
}

/// An established connection aborted by the peer with SO_LINGER 0.
pub(super) fn peer_reset(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::SendReset, K::ReceiveReset])?;
    let listener = Socket::bound()?;
    let server_port = listener.port()?;
    listener.listen(16)?;
    let client = Socket::bound()?;
    let client_port = client.port()?;
    client.connect(server_port)?;
    let conn = listener.accept()?;
    conn.set_linger_zero()?;
    drop(conn); // abortive close: RST
    let read = client.read_byte();
    ensure(
        read.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::ECONNRESET),
        || format!("client read gave {read:?}, want ECONNRESET"),
    )?;

    let sr = s.wait_for("tcp_send_reset from the aborting side", |e| {
        e.kind == K::SendReset && tuple_is(e, server_port, client_port)
    })?;
    let rr = s.wait_for("tcp_receive_reset at the client", |e| {
        e.kind == K::ReceiveReset && tuple_is(e, client_port, server_port)
    })?;
    ensure(rr.tcp_state == Some(TcpState::Established), || {
        format!("receive_reset state {:?}, want ESTABLISHED", rr.tcp_state)
    })?;
    ensure(rr.errno == Some(Errno::ECONNRESET), || {
        format!("receive_reset errno {:?}, want ECONNRESET", rr.errno)
    })?;
    let errors = sock_error(s, client_port, server_port, Errno::ECONNRESET)?;
    ensure(
        sr.task
            .as_ref()
            .is_some_and(|t| t.pid == std::process::id() as i32),
        || {
            format!(
                "send_reset from close() should run in our process context, got {:?}",
                sr.task
            )
        },
    )?;
    Ok((
        errors.status(),
        format!(
            "RST sent (reason {}), received in ESTABLISHED, {}",
            sr.reset_reason
                .as_ref()
                .map_or("n/a on this kernel", ResetReason::as_str),
            errors.said(Errno::ECONNRESET)
        ),
    ))
}

/// A connect whose SYNs are silently dropped (the listener's accept queue is
/// full): SYN retransmits, then ETIMEDOUT and SYN_SENT->CLOSE.
pub(super) fn connect_timeout(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::SynRetransmit, K::StateChange])?;
    let listener = Socket::bound()?;
    let server_port = listener.port()?;
    listener.listen(0)?;
    // With backlog 0 one established connection fills the accept queue; we
    // never accept it, so the kernel drops every further SYN.
    let filler = Socket::bound()?;
    filler
        .connect(server_port)
        .map_err(CaseError::step("filler connect"))?;
    std::thread::sleep(Duration::from_millis(50));
    let client = Socket::bound()?;
    let client_port = client.port()?;
    client.set_syn_count(1)?;
    let started = Instant::now();
    let err = client
        .connect(server_port)
        .expect_err("connect into a full accept queue succeeded");
    let took = started.elapsed();
    ensure(err.raw_os_error() == Some(libc::ETIMEDOUT), || {
        format!("connect failed with {err}, want ETIMEDOUT")
    })?;

    let rt = s.wait_for("SYN retransmit", |e| {
        e.kind == K::SynRetransmit && tuple_is(e, client_port, server_port)
    })?;
    ensure(rt.tcp_state == Some(TcpState::SynSent), || {
        format!("retransmit state {:?}", rt.tcp_state)
    })?;
    let errors = sock_error(s, client_port, server_port, Errno::ETIMEDOUT)?;
    let sc = s.wait_for("SYN_SENT->CLOSE", |e| {
        e.kind == K::StateChange && tuple_is(e, client_port, server_port)
    })?;
    ensure(sc.tcp_state == Some(TcpState::SynSent), || {
        format!("state change from {:?}", sc.tcp_state)
    })?;
    // The record says when the SYN left: the whole wait lies between it
    // and the close (connect() returned `took` after it began).
    let waited = sc.syn_sent_ns.map(|syn| sc.wall_ns - syn);
    ensure(
        waited.is_some_and(|w| (w - took.as_nanos() as i64).abs() < 300_000_000),
        || {
            format!(
                "SYN_SENT->CLOSE: SYN time {waited:?} ns before the close, connect took {took:?}"
            )
        },
    )?;
    let retransmits = s
        .seen
        .iter()
        .filter(|e| e.kind == K::SynRetransmit && tuple_is(e, client_port, server_port))
        .count();
    drop(filler);
    Ok((
        errors.status(),
        format!(
            "{retransmits} SYN retransmit(s), ETIMEDOUT after {:.1} s, SYN_SENT->CLOSE {:.1} s after its SYN, {}",
            took.as_secs_f64(),
            waited.unwrap_or(0) as f64 / 1e9,
            errors.said(Errno::ETIMEDOUT)
        ),
    ))
}

/// Whether the socket error was seen, or cannot be on this kernel.
enum SockErrorSeen {
    Seen,
    /// No `sock:inet_sk_error_report` (before 5.13).
    NoHook,
}

impl SockErrorSeen {
    fn status(&self) -> Status {
        match self {
            SockErrorSeen::Seen => Status::Pass,
            SockErrorSeen::NoHook => Status::Degraded,
        }
    }

    fn said(&self, errno: Errno) -> String {
        match self {
            SockErrorSeen::Seen => format!("errno {errno}"),
            SockErrorSeen::NoHook => {
                format!("errno {errno} not seen here (no sock:inet_sk_error_report)")
            }
        }
    }
}

/// The socket error `errno` on the client's socket, where the kernel has
/// the tracepoint for it.
fn sock_error(
    s: &mut SelftestTracer,
    client_port: u16,
    server_port: u16,
    errno: Errno,
) -> Result<SockErrorSeen, CaseError> {
    if !s.attached("sock:inet_sk_error_report") {
        return Ok(SockErrorSeen::NoHook);
    }
    let se = s.wait_for(&format!("inet_sk_error_report {errno}"), |e| {
        e.kind == K::SockError && tuple_is(e, client_port, server_port)
    })?;
    ensure(se.errno == Some(errno), || {
        format!("sock_error errno {:?}, want {errno}", se.errno)
    })?;
    Ok(SockErrorSeen::Seen)
}
