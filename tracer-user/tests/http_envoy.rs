//! The HTTP peek on a real Envoy (the pinned official binary,
//! `scripts/envoy.sh`): it answers 200 and 404 directly, 502 and 503
//! directly, 503 UF through a refused upstream and a black-holed one
//! (connect timeout), 504 UT through an upstream that never answers
//! (route timeout), 503 UH through a cluster with no endpoints, and an
//! application's own 503 passed through. Exactly the 5xx become events
//! with the right status; the other classes are only counted. The access
//! log (status, response flags, upstream host only) shows what it adds.

mod peek;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use peek::{free_port, observe, skip_reason, wait_listening, PeekCgroup, Upstreams};

fn envoy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/envoy/bin/envoy")
}

fn cluster(name: &str, port: Option<u16>) -> String {
    let endpoints = match port {
        Some(p) => format!(
            "[{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}}}]}}]"
        ),
        None => "[]".to_string(),
    };
    format!(
        "  - {{name: {name}, connect_timeout: 1s, type: STATIC, load_assignment: {{cluster_name: {name}, endpoints: {endpoints}}}}}\n"
    )
}

fn conf(dir: &Path, port: u16, up: &Upstreams, app: u16) -> String {
    let log = dir.join("access.log");
    let mut s = format!(
        r#"static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: HTTP1
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log}
              log_format: {{text_format: "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST%\n"}}
          route_config:
            virtual_hosts:
            - name: lab
              domains: ["*"]
              routes:
              - {{match: {{path: /ok}}, direct_response: {{status: 200, body: {{inline_string: "ok\n"}}}}}}
              - {{match: {{path: /missing}}, direct_response: {{status: 404}}}}
              - {{match: {{path: /bad}}, direct_response: {{status: 502}}}}
              - {{match: {{path: /unavailable}}, direct_response: {{status: 503}}}}
              - {{match: {{path: /dead}}, route: {{cluster: dead}}}}
              - {{match: {{path: /blackhole}}, route: {{cluster: blackhole}}}}
              - {{match: {{path: /slow}}, route: {{cluster: slow, timeout: 1s}}}}
              - {{match: {{path: /empty}}, route: {{cluster: empty}}}}
              - {{match: {{path: /app}}, route: {{cluster: app}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
"#,
        log = log.display()
    );
    s += &cluster("dead", Some(up.closed));
    s += &cluster("blackhole", Some(up.blackhole));
    s += &cluster("slow", Some(up.silent));
    s += &cluster("empty", None);
    s += &cluster("app", Some(app));
    s
}

/// An application that answers every request with its own 503 (an
/// overloaded backend), which Envoy passes through.
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
fn peek_reports_exactly_the_5xx_of_a_real_envoy() {
    let bin = envoy();
    if let Some(why) = skip_reason("envoy", &bin) {
        eprintln!("SKIP http peek on envoy: {why}");
        return;
    }
    let cg = PeekCgroup::new("envoy");
    let port = free_port();
    let up = Upstreams::new();
    let app = app_answering_503();
    let conf_path = cg.dir.join("envoy.yaml");
    std::fs::write(&conf_path, conf(&cg.dir, port, &up, app)).unwrap();
    let mut session = cg.session();

    let mut cmd = Command::new(&bin);
    cmd.args(["-c", &conf_path.display().to_string()])
        .args(["--disable-hot-restart", "--concurrency", "1", "-l", "error"])
        // The access log is flushed every 10 s by default.
        .args(["--file-flush-interval-msec", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut proxy = cg.spawn(cmd);
    wait_listening(port, "envoy");
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
    let log = std::fs::read_to_string(cg.dir.join("access.log")).unwrap_or_default();
    // SAFETY: kill(2) takes plain integers; the pid is our own child's, not
    // yet reaped, so it cannot name another process.
    unsafe { libc::kill(proxy.id() as i32, libc::SIGTERM) };
    let _ = proxy.wait();

    eprintln!("envoy access log (status flags upstream):\n{log}");
    eprintln!("envoy writers: {:?}", seen.comms);
    seen.assert_exactly_the_5xx(
        "envoy",
        &[200, 404, 502, 503, 503, 503, 504, 503, 503],
        |c| c == "envoy" || c.starts_with("wrk:"),
    );
    // What only the access log says: why each 5xx happened.
    let lines: Vec<&str> = log.lines().collect();
    let flags: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        flags,
        ["-", "-", "-", "-", "UF", "UF", "UT", "UH", "-"],
        "envoy response flags, in request order: {lines:?}"
    );
    let dead = format!("127.0.0.1:{}", up.closed);
    assert!(
        lines[4].ends_with(&dead),
        "UF names its upstream: {}",
        lines[4]
    );
}
