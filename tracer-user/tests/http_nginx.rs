//! The HTTP peek on a real nginx (Debian's): it answers 200, 404, 502 and
//! 504, both through `return` and through dead upstreams (a closed port and
//! a port whose SYNs are dropped). Exactly the 5xx become events, with the
//! right status; the other classes are only counted. nginx writes its
//! responses with writev (iov[0] starts with the status line).

mod peek;

use std::path::Path;
use std::process::{Command, Stdio};

use peek::{free_port, observe, skip_reason, wait_listening, PeekCgroup, Upstreams};

const NGINX: &str = "/usr/sbin/nginx";

fn conf(dir: &Path, port: u16, up: &Upstreams) -> String {
    let d = dir.display();
    let (closed, full) = (up.closed, up.blackhole);
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

#[test]
fn peek_reports_exactly_the_5xx_of_a_real_nginx() {
    if let Some(why) = skip_reason("nginx", Path::new(NGINX)) {
        eprintln!("SKIP http peek on nginx: {why}");
        return;
    }
    let cg = PeekCgroup::new("nginx");
    let port = free_port();
    let up = Upstreams::new();
    std::fs::write(cg.dir.join("nginx.conf"), conf(&cg.dir, port, &up)).unwrap();
    let mut session = cg.session();

    let mut cmd = Command::new(NGINX);
    cmd.args([
        "-p",
        &cg.dir.display().to_string(),
        "-c",
        &cg.dir.join("nginx.conf").display().to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    let mut nginx = cg.spawn(cmd);
    wait_listening(port, "nginx");
    let seen = observe(
        &mut session,
        port,
        &["/ok", "/missing", "/bad", "/slow", "/dead", "/blackhole"],
    );
    // SAFETY: kill(2) takes plain integers; the pid is our own child's, not
    // yet reaped, so it cannot name another process.
    unsafe { libc::kill(nginx.id() as i32, libc::SIGQUIT) };
    let _ = nginx.wait();

    seen.assert_exactly_the_5xx("nginx", &[200, 404, 502, 504, 502, 504], |c| c == "nginx");
}
