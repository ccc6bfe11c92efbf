//! The backend's SIGTERM behaviours, each checked on a real process on
//! loopback (no root needed): what a client sees before and after SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free port on a loopback address of the test's own (127.0.0.N), so
/// tests running in parallel can never share an address.
fn free_addr(n: u8) -> SocketAddr {
    TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, n), 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Backend {
    child: Child,
    addr: SocketAddr,
}

impl Backend {
    fn start(behaviour: &str, extra: &[&str]) -> Backend {
        let n = match behaviour {
            "graceful" => 21,
            "exit-now" => 22,
            "ignore-sigterm" => 23,
            "close-idle" => 24,
            _ => 25,
        };
        let addr = free_addr(n);
        let child = Command::new(env!("CARGO_BIN_EXE_fivexx-lab"))
            .args([
                "backend",
                "--pod",
                "t",
                "--behaviour",
                behaviour,
                "--listen",
            ])
            .arg(addr.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "backend did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        Backend { child, addr }
    }

    fn sigterm(&self) {
        // SAFETY: plain kill(2) to our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on `conn`; returns the response head.
fn request(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if text.contains("\r\n\r\npod=t\n") {
            return text.into_owned();
        }
    }
}

fn keepalive_conn(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

#[test]
fn graceful_stops_accepting_says_close_and_exits_0() {
    let mut b = Backend::start("graceful", &["--drain-ms", "3000"]);
    let mut pooled = keepalive_conn(b.addr);
    assert!(request(&mut pooled).starts_with("HTTP/1.1 200 OK"));
    b.sigterm();
    std::thread::sleep(Duration::from_millis(100));
    let refused = TcpStream::connect(b.addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The pooled connection still gets an answer, told not to come back.
    let head = request(&mut pooled);
    assert!(head.contains("Connection: close"), "{head}");
    let status = b
        .wait_exit(Duration::from_secs(2))
        .expect("graceful backend did not exit");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn exit_now_dies_by_sigterm() {
    let mut b = Backend::start("exit-now", &[]);
    b.sigterm();
    let status = b.wait_exit(Duration::from_secs(2)).expect("did not die");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn ignore_sigterm_keeps_serving() {
    let mut b = Backend::start("ignore-sigterm", &[]);
    b.sigterm();
    assert!(
        b.wait_exit(Duration::from_millis(500)).is_none(),
        "it exited on SIGTERM"
    );
    let mut c = keepalive_conn(b.addr);
    assert!(request(&mut c).starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn close_idle_drops_pooled_connections_silently_and_keeps_listening() {
    let mut b = Backend::start("close-idle", &["--drain-ms", "1500"]);
    let mut pooled = keepalive_conn(b.addr);
    let head = request(&mut pooled);
    assert!(!head.contains("Connection: close"));
    b.sigterm();
    // The idle pooled connection is closed under the client: EOF, no notice.
    let mut buf = [0u8; 16];
    assert_eq!(pooled.read(&mut buf).unwrap(), 0);
    // New connections still work, and are dropped after their response.
    let mut fresh = keepalive_conn(b.addr);
    let head = request(&mut fresh);
    assert!(!head.contains("Connection: close"), "{head}");
    assert_eq!(fresh.read(&mut buf).unwrap(), 0);
    let status = b
        .wait_exit(Duration::from_secs(3))
        .expect("did not exit after the drain");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn slow_delays_every_response() {
    let _b = Backend::start("slow", &["--delay-ms", "250"]);
    let mut c = keepalive_conn(_b.addr);
    let t = Instant::now();
    request(&mut c);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
}
