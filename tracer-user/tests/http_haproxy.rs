//! The HTTP peek on a real HAProxy (Debian's 2.6): it answers 200 and 404
//! directly, 502 and 503 directly (`http-request return`), 503 SC through
//! a refused server, 503 sC through a black-holed one (connect timeout),
//! 504 sH through a server that never answers (server timeout), 503
//! `<NOSRV>` through a backend with no server, and an application's own
//! 503 passed through. HAProxy writes with send() (sendto). Exactly the
//! 5xx become events with the right status; the other classes are only
//! counted. Its log (status, termination state, backend/server, retries
//! only) shows what it adds.

mod peek;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use peek::{free_port, observe, skip_reason, wait_listening, PeekCgroup, Upstreams};

const HAPROXY: &str = "/usr/sbin/haproxy";

fn conf(port: u16, up: &Upstreams, app: u16) -> String {
    format!(
        "global\n  log stdout format raw local0\n\
         defaults\n  mode http\n  log global\n  log-format \"%ST %tsc %b/%s retries=%rc\"\n\
           option http-ignore-probes\n  timeout client 5s\n  timeout connect 1s\n  timeout server 1s\n  retries 1\n\
         frontend lab\n  bind 127.0.0.1:{port}\n\
           http-request return status 200 content-type text/plain string ok if {{ path /ok }}\n\
           http-request return status 404 if {{ path /missing }}\n\
           http-request return status 502 if {{ path /bad }}\n\
           http-request return status 503 if {{ path /unavailable }}\n\
           use_backend dead if {{ path /dead }}\n\
           use_backend blackhole if {{ path /blackhole }}\n\
           use_backend slow if {{ path /slow }}\n\
           use_backend app if {{ path /app }}\n\
           default_backend empty\n\
         backend dead\n  server s1 127.0.0.1:{closed}\n\
         backend blackhole\n  server s1 127.0.0.1:{blackhole}\n\
         backend slow\n  server s1 127.0.0.1:{silent}\n\
         backend app\n  server s1 127.0.0.1:{app}\n\
         backend empty\n",
        closed = up.closed,
        blackhole = up.blackhole,
        silent = up.silent,
    )
}

/// An application that answers every request with its own 503.
fn app_answering_503() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n",
            );
        }
    });
    port
}

#[test]
fn peek_reports_exactly_the_5xx_of_a_real_haproxy() {
    if let Some(why) = skip_reason("haproxy", Path::new(HAPROXY)) {
        eprintln!("SKIP http peek on haproxy: {why}");
        return;
    }
    let cg = PeekCgroup::new("haproxy");
    let port = free_port();
    let up = Upstreams::new();
    let app = app_answering_503();
    let conf_path = cg.dir.join("haproxy.cfg");
    std::fs::write(&conf_path, conf(port, &up, app)).unwrap();
    let mut session = cg.session();

    let mut cmd = Command::new(HAPROXY);
    cmd.args(["-db", "-f", &conf_path.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut proxy = cg.spawn(cmd);
    let (tx, rx) = mpsc::channel();
    let out = proxy.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    wait_listening(port, "haproxy");
    let paths = [
        "/ok",
        "/missing",
        "/bad",
        "/unavailable",
        "/dead",
        "/blackhole",
        "/slow",
        "/empty",
        "/app",
    ];
    let seen = observe(&mut session, port, &paths);
    let mut log = Vec::new();
    while log.len() < paths.len() {
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(l) => log.push(l),
            Err(_) => break,
        }
    }
    // SAFETY: kill(2) takes plain integers; the pid is our own child's, not
    // yet reaped, so it cannot name another process.
    unsafe { libc::kill(proxy.id() as i32, libc::SIGTERM) };
    let _ = proxy.wait();

    eprintln!(
        "haproxy log (status termination backend/server retries):\n{}",
        log.join("\n")
    );
    seen.assert_exactly_the_5xx(
        "haproxy",
        &[200, 404, 502, 503, 503, 503, 504, 503, 503],
        |c| c == "haproxy",
    );
    // What only the log says: where each failure ended (C connect,
    // H headers; S the server aborted, s a server timeout) and on which
    // server, after how many retries.
    let fields: Vec<(&str, &str)> = log
        .iter()
        .map(|l| {
            let mut f = l.split(' ');
            let _status = f.next();
            (
                f.next().map_or("", |t| t.get(..2).unwrap_or(t)),
                f.next().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("LR", "lab/<NOSRV>"),
            ("LR", "lab/<NOSRV>"),
            ("LR", "lab/<NOSRV>"),
            ("LR", "lab/<NOSRV>"),
            ("SC", "dead/s1"),
            ("sC", "blackhole/s1"),
            ("sH", "slow/s1"),
            ("SC", "empty/<NOSRV>"),
            ("--", "app/s1"),
        ],
        "haproxy termination states and servers, in request order: {log:?}"
    );
    assert!(
        log[4].ends_with("retries=1"),
        "the refused connect was retried: {}",
        log[4]
    );
}
