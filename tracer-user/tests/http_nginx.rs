//! The HTTP peek on a real nginx (Debian's): it answers 200, 404, 502 and
//! 504, both through `return` and through dead upstreams (a closed port and
//! a port whose SYNs are dropped). Exactly the 5xx become events, with the
//! right status; the other classes are only counted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fivexx_core::KernelEventKind as K;
use tracer_user::selftest::net::Socket;
use tracer_user::selftest::{make_dirs, SelftestTracer};
use tracer_user::tracer::TracerOptions;

const NGINX: &str = "/usr/sbin/nginx";

fn get(port: u16, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
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

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn conf(dir: &Path, port: u16, closed: u16, full: u16) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           server {{\n    listen 127.0.0.1:{port};\n\
             location = /ok {{ return 200 \"ok\\n\"; }}\n\
             location = /missing {{ return 404; }}\n\
             location = /bad {{ return 502; }}\n\
             location = /slow {{ return 504; }}\n\
             location = /dead {{ proxy_pass http://127.0.0.1:{closed}; }}\n\
             location = /blackhole {{ proxy_connect_timeout 1s; proxy_pass http://127.0.0.1:{full}; }}\n\
           }}\n}}\n"
    )
}

/// Starts nginx with `dir`'s configuration, master and workers in the
/// cgroup whose `cgroup.procs` is `procs`.
fn start_nginx(dir: &Path, procs: PathBuf) -> std::process::Child {
    let mut cmd = Command::new(NGINX);
    cmd.args([
        "-p",
        &dir.display().to_string(),
        "-c",
        &dir.join("nginx.conf").display().to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    // Join the peeked cgroup before exec, so master and workers are in it.
    // SAFETY: the hook runs in the forked child between fork and exec and
    // only writes our pid to one cgroup file. It allocates (the pid's text),
    // which POSIX does not promise is safe after fork in a threaded
    // process; glibc's malloc resets its locks in the child (atfork), which
    // is what this test relies on.
    unsafe {
        cmd.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
    }
    cmd.spawn().expect("start nginx")
}

#[test]
fn peek_reports_exactly_the_5xx_of_a_real_nginx() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP http peek on nginx: {why}");
        return;
    }
    if !Path::new(NGINX).exists() {
        // setup installs nginx-light; without it this test cannot prove anything.
        assert!(
            std::env::var_os("CI").is_none(),
            "{NGINX} missing in CI: run make setup"
        );
        eprintln!(
            "SKIP http peek on nginx: {NGINX} not installed (make setup installs nginx-light)"
        );
        return;
    }
    let root = tracer_user::enrich::cgroup2_root().expect("cgroup v2 mount");
    let rel = format!("fivexx-test-nginx-{}", std::process::id());
    let made = make_dirs(&root, &rel).unwrap();
    let dir = std::env::temp_dir().join(&rel);
    std::fs::create_dir_all(&dir).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // An upstream whose SYNs are dropped: backlog 0 and a queued connection.
    let full = Socket::bound().unwrap();
    let full_port = full.port().unwrap();
    full.listen(0).unwrap();
    let filler = Socket::bound().unwrap();
    filler.connect(full_port).unwrap();
    std::fs::write(dir.join("nginx.conf"), conf(&dir, port, closed, full_port)).unwrap();

    let opts = TracerOptions {
        kinds: Some([K::HttpResponse].into_iter().collect()),
        http_cgroups: vec![rel.clone()],
        ..Default::default()
    };
    let mut session =
        SelftestTracer::with_options(&PathBuf::from(env!("CARGO_BIN_EXE_fivexx-agent")), &opts)
            .unwrap();

    let mut nginx = start_nginx(&dir, root.join(&rel).join("cgroup.procs"));
    wait_listening(port);

    let answers: Vec<(String, u16)> = ["/ok", "/missing", "/bad", "/slow", "/dead", "/blackhole"]
        .iter()
        .map(|p| (p.to_string(), get(port, p)))
        .collect();
    // A 5xx written by a process outside the set is never read.
    // (to a listener of our own: written to nginx it would earn a 400.)
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut outsider = TcpStream::connect(sink.local_addr().unwrap()).unwrap();
    outsider
        .write_all(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        .unwrap();
    drop(outsider);

    let want: Vec<u16> = vec![200, 404, 502, 504, 502, 504];
    let got: Vec<u16> = answers.iter().map(|(_, s)| *s).collect();
    let mut failure = None;
    if got != want {
        failure = Some(format!("nginx answered {answers:?}, want {want:?}"));
    }
    let mut statuses = Vec::new();
    if failure.is_none() {
        let fivexx = |s: &SelftestTracer| -> Vec<u16> {
            s.seen
                .iter()
                .filter(|e| e.kind == K::HttpResponse)
                .filter_map(|e| e.http_status)
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while fivexx(&session).len() < 4 && Instant::now() < deadline {
            session.drain();
            std::thread::sleep(Duration::from_millis(20));
        }
        // Then make sure nothing more arrives.
        std::thread::sleep(Duration::from_millis(200));
        session.drain();
        statuses = fivexx(&session);
    }
    let counts = session.tracer.http_counts().unwrap();
    let nginx_pids: Vec<i32> = session
        .seen
        .iter()
        .filter_map(|e| e.task.as_ref().map(|t| t.pid))
        .collect();
    let comms: Vec<String> = session
        .seen
        .iter()
        .filter_map(|e| e.task.as_ref().map(|t| t.comm.clone()))
        .collect();

    // SAFETY: kill(2) takes plain integers; the pid is our own child's, not
    // yet reaped, so it cannot name another process.
    unsafe { libc::kill(nginx.id() as i32, libc::SIGQUIT) };
    let _ = nginx.wait();
    drop(filler);
    for d in made.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    let _ = std::fs::remove_dir_all(&dir);

    if let Some(f) = failure {
        panic!("{f}");
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![502, 502, 504, 504], "5xx events seen");
    assert_eq!(counts, [0, 1, 0, 1, 4], "status classes counted [1xx..5xx]");
    assert!(
        nginx_pids.iter().all(|p| *p != std::process::id() as i32),
        "an event came from outside the set"
    );
    assert!(comms.iter().all(|c| c == "nginx"), "events from {comms:?}");
}
