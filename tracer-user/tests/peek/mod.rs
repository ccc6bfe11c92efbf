// Each test binary (http_nginx, http_envoy, http_haproxy) compiles this
// module on its own and uses only part of it.
#![allow(dead_code)]

//! What the HTTP-peek tests of real proxies share (http_nginx.rs,
//! http_envoy.rs, http_haproxy.rs): the dead upstreams, the peeked cgroup,
//! starting the proxy inside it, asking it for each path, and the one
//! assertion they all make: exactly the 5xx become events, with the
//! statuses the proxy answered, and every class is counted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fivexx_core::KernelEventKind as K;
use tracer_user::selftest::net::Socket;
use tracer_user::selftest::{make_dirs, SelftestTracer};
use tracer_user::tracer::TracerOptions;

/// Why a peek test cannot run here, if it cannot (printed as SKIP by the
/// caller). A missing proxy binary fails under CI: `make setup` installs it.
pub fn skip_reason(proxy: &str, binary: &Path) -> Option<String> {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        return Some(why.to_string());
    }
    if !binary.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} missing in CI: run make setup",
            binary.display()
        );
        return Some(format!(
            "{proxy}: {} not installed (make setup installs it)",
            binary.display()
        ));
    }
    None
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `GET` with `Connection: close`; the status the proxy answered (0 if
/// none).
pub fn get(port: u16, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The upstreams a proxy fails on, each a real kernel behaviour:
/// `closed` refuses (a port nobody listens on: RST to the SYN),
/// `blackhole` drops SYNs (backlog 0 with a queued connection: connect
/// timeout), `silent` accepts the connection but never answers (the
/// kernel completes the handshake; nobody reads: response timeout).
pub struct Upstreams {
    pub closed: u16,
    pub blackhole: u16,
    pub silent: u16,
    _full: Socket,
    _filler: Socket,
    _silent: Socket,
}

impl Upstreams {
    pub fn new() -> Upstreams {
        let closed = free_port();
        let full = Socket::bound().unwrap();
        let blackhole = full.port().unwrap();
        full.listen(0).unwrap();
        let filler = Socket::bound().unwrap();
        filler.connect(blackhole).unwrap();
        let silent_sock = Socket::bound().unwrap();
        let silent = silent_sock.port().unwrap();
        silent_sock.listen(64).unwrap();
        Upstreams {
            closed,
            blackhole,
            silent,
            _full: full,
            _filler: filler,
            _silent: silent_sock,
        }
    }
}

/// A cgroup for the proxy (the peeked set) and a scratch directory, both
/// removed on drop.
pub struct PeekCgroup {
    pub rel: String,
    pub procs: PathBuf,
    pub dir: PathBuf,
    made: Vec<PathBuf>,
}

impl PeekCgroup {
    pub fn new(proxy: &str) -> PeekCgroup {
        let root = tracer_user::enrich::cgroup2_root().expect("cgroup v2 mount");
        let rel = format!("fivexx-test-{proxy}-{}", std::process::id());
        let made = make_dirs(&root, &rel).unwrap();
        let dir = std::env::temp_dir().join(&rel);
        std::fs::create_dir_all(&dir).unwrap();
        PeekCgroup {
            procs: root.join(&rel).join("cgroup.procs"),
            rel,
            dir,
            made,
        }
    }

    /// A tracer session peeking this cgroup only.
    pub fn session(&self) -> SelftestTracer {
        let opts = TracerOptions {
            kinds: Some([K::HttpResponse].into_iter().collect()),
            http_cgroups: vec![self.rel.clone()],
            ..Default::default()
        };
        SelftestTracer::with_options(&PathBuf::from(env!("CARGO_BIN_EXE_fivexx-agent")), &opts)
            .unwrap()
    }

    /// Spawns `cmd` inside the cgroup (it joins before exec, so every
    /// process and thread it starts is in it).
    pub fn spawn(&self, mut cmd: Command) -> Child {
        let procs = self.procs.clone();
        // SAFETY: the hook runs in the forked child between fork and exec
        // and only writes our pid to one cgroup file. It allocates (the
        // pid's text), which POSIX does not promise is safe after fork in a
        // threaded process; glibc's malloc resets its locks in the child
        // (atfork), which is what these tests rely on.
        unsafe {
            cmd.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
        }
        cmd.spawn().expect("start the proxy")
    }
}

impl Drop for PeekCgroup {
    fn drop(&mut self) {
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the peek reported while the proxy answered.
pub struct Observed {
    pub answers: Vec<(String, u16)>,
    pub statuses: Vec<u16>,
    pub counts: [u64; 5],
    pub pids: Vec<i32>,
    pub comms: Vec<String>,
}

/// Asks the proxy for each path, then collects the 5xx events (waiting
/// for as many as it answered, then a little more, so that an extra one
/// would show). A 5xx written by a process outside the set is written
/// too, and must never be read.
pub fn observe(session: &mut SelftestTracer, port: u16, paths: &[&str]) -> Observed {
    let answers: Vec<(String, u16)> = paths
        .iter()
        .map(|p| (p.to_string(), get(port, p)))
        .collect();
    // (to a listener of our own: written to the proxy it would earn a 400.)
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut outsider = TcpStream::connect(sink.local_addr().unwrap()).unwrap();
    outsider
        .write_all(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        .unwrap();
    drop(outsider);
    let want = answers.iter().filter(|(_, s)| *s >= 500).count();
    let fivexx = |s: &SelftestTracer| -> Vec<u16> {
        s.seen
            .iter()
            .filter(|e| e.kind == K::HttpResponse)
            .filter_map(|e| e.http_status)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while fivexx(session).len() < want && Instant::now() < deadline {
        session.drain();
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    session.drain();
    let mut statuses = fivexx(session);
    statuses.sort_unstable();
    Observed {
        answers,
        statuses,
        counts: session.tracer.http_counts().unwrap(),
        pids: session
            .seen
            .iter()
            .filter_map(|e| e.task.as_ref().map(|t| t.pid))
            .collect(),
        comms: session
            .seen
            .iter()
            .filter_map(|e| e.task.as_ref().map(|t| t.comm.clone()))
            .collect(),
    }
}

impl Observed {
    /// The proxy answered `want` (path by path); the peek reported exactly
    /// its 5xx, counted every class, and only from the proxy's threads.
    pub fn assert_exactly_the_5xx(
        &self,
        proxy: &str,
        want: &[u16],
        comm_ok: impl Fn(&str) -> bool,
    ) {
        let got: Vec<u16> = self.answers.iter().map(|(_, s)| *s).collect();
        assert_eq!(got, want, "{proxy} answered {:?}", self.answers);
        let mut want_5xx: Vec<u16> = want.iter().copied().filter(|s| *s >= 500).collect();
        want_5xx.sort_unstable();
        assert_eq!(self.statuses, want_5xx, "{proxy}: 5xx events seen");
        let mut classes = [0u64; 5];
        for s in want {
            classes[usize::from(s / 100 - 1)] += 1;
        }
        assert_eq!(
            self.counts, classes,
            "{proxy}: status classes counted [1xx..5xx]"
        );
        assert!(
            self.pids.iter().all(|p| *p != std::process::id() as i32),
            "{proxy}: an event came from outside the set"
        );
        assert!(
            self.comms.iter().all(|c| comm_ok(c)),
            "{proxy}: events from {:?}",
            self.comms
        );
    }
}
