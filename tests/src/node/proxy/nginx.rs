//! The ingress: a real Debian nginx in its own network namespace, run with our
//! own prefix, config and pid file (never the system service). Its upstream
//! is the set of ready pod IPs; an endpoint change rewrites the upstream and
//! reloads nginx (SIGHUP), the way ingress-nginx does for changes its Lua
//! balancer cannot take. Upstream connections are kept alive.

use crate::node::naming;
use crate::node::netns::PodNetwork;
use crate::{io_err, Error, Result};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ingress container's log (`upstreaminfo` lines after a `$msec`
/// stamp), in the ingress directory.
pub const CONTAINER_LOG: &str = "controller.log";

/// Where the lab's ingress writes its container log: route the ingress
/// pod's `pods/log` here with
/// [`ClusterStore::map_pod_log`](crate::control::store::ClusterStore::map_pod_log).
pub fn container_log_path() -> PathBuf {
    PathBuf::from(naming::RUN_DIR)
        .join("ingress")
        .join(CONTAINER_LOG)
}

/// nginx settings the scenarios vary.
#[derive(Clone, Debug, clap::Args)]
pub struct IngressConfig {
    /// Idle upstream keep-alive connections cached per worker (0: no keep-alive).
    #[arg(long, default_value_t = 32)]
    pub upstream_keepalive: u32,
    /// How long nginx keeps an idle upstream connection (keepalive_timeout).
    #[arg(long, default_value_t = 60_000)]
    pub upstream_keepalive_timeout_ms: u64,
    /// proxy_connect_timeout: a connect that takes longer is a 504.
    #[arg(long, default_value_t = 1000)]
    pub proxy_connect_timeout_ms: u64,
    /// proxy_read_timeout.
    #[arg(long, default_value_t = 5000)]
    pub proxy_read_timeout_ms: u64,
    /// proxy_next_upstream_tries; 1 turns retries off so that every upstream
    /// failure reaches the client (ingress-nginx retries by default, which
    /// hides some failures).
    #[arg(long, default_value_t = 1)]
    pub next_upstream_tries: u32,
    /// nginx worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            upstream_keepalive: 32,
            upstream_keepalive_timeout_ms: 60_000,
            proxy_connect_timeout_ms: 1000,
            proxy_read_timeout_ms: 5000,
            next_upstream_tries: 1,
            workers: 2,
        }
    }
}

/// A running ingress nginx.
pub struct Ingress {
    pub cfg: IngressConfig,
    pub net: PodNetwork,
    pub dir: PathBuf,
    child: Child,
    endpoints: Vec<Ipv4Addr>,
}

impl Ingress {
    /// The address clients send requests to.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.net.ip.into(), 80)
    }

    pub fn master_pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Starts nginx in `net`, with its processes in `procs_fds` cgroups.
    pub fn start(
        cfg: IngressConfig,
        net: PodNetwork,
        procs_fds: Vec<std::os::fd::OwnedFd>,
        endpoints: &[Ipv4Addr],
    ) -> Result<Ingress> {
        Self::start_in(cfg, net, procs_fds, endpoints, &super::ingress_dir())
    }

    /// [`Ingress::start`] with its prefix, config and logs in `dir`.
    pub fn start_in(
        cfg: IngressConfig,
        net: PodNetwork,
        procs_fds: Vec<std::os::fd::OwnedFd>,
        endpoints: &[Ipv4Addr],
        dir: &std::path::Path,
    ) -> Result<Ingress> {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or_else(|| Error::Lab("nginx not found: run `make setup` (nginx-light)".into()))?;
        let dir = dir.to_path_buf();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("tmp"))
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let conf_path = dir.join("nginx.conf");
        fs::write(&conf_path, render_conf(&cfg, &dir, net.ip, endpoints))
            .map_err(io_err("writing nginx.conf"))?;
        let netns = fs::File::open(net.path()).map_err(io_err("opening the ingress netns"))?;
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        use std::os::fd::AsRawFd;
        let ns_fd = netns.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                crate::node::cgroup::join_in_child(&procs_fds)?;
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io_err("starting nginx"))?;
        let mut ing = Ingress {
            cfg,
            net,
            dir: dir.clone(),
            child,
            endpoints: endpoints.to_vec(),
        };
        // Ready when it accepts connections on its address.
        let addr = ing.address();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = ing.child.try_wait() {
                let log = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(Error::Lab(format!(
                    "nginx exited at start ({status}): {log}"
                )));
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                ing.stop();
                return Err(Error::Lab(format!(
                    "nginx did not listen on {addr} within 5 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(ing)
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }

    pub fn endpoints(&self) -> &[Ipv4Addr] {
        &self.endpoints
    }

    /// Rewrites the upstream and reloads nginx (SIGHUP). Returns at once;
    /// nginx starts new workers within milliseconds and old workers finish
    /// their requests.
    pub fn set_endpoints(&mut self, endpoints: &[Ipv4Addr]) -> Result<()> {
        self.endpoints = endpoints.to_vec();
        let tmp = self.dir.join("nginx.conf.new");
        fs::write(&tmp, self.render()).map_err(io_err("writing nginx.conf"))?;
        fs::rename(&tmp, self.conf_path()).map_err(io_err("replacing nginx.conf"))?;
        let before = children_of(self.master_pid());
        // SAFETY: plain kill(2) to our own child.
        if unsafe { libc::kill(self.master_pid(), libc::SIGHUP) } != 0 {
            return Err(Error::Io {
                context: "reloading nginx".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        // The reload has taken effect once the master runs a full set of new
        // workers (it tells the old ones to stop right after starting them).
        let want = self.cfg.workers.max(1) as usize;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let fresh = children_of(self.master_pid())
                .into_iter()
                .filter(|p| !before.contains(p))
                .count();
            if fresh >= want {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(Error::Lab(
            "nginx did not start new workers within 3 s of a reload".into(),
        ))
    }

    /// nginx's configuration for the current endpoints.
    pub fn render(&self) -> String {
        render_conf(&self.cfg, &self.dir, self.net.ip, &self.endpoints)
    }

    /// Fast shutdown (SIGTERM to the master), then SIGKILL if needed.
    pub fn stop(&mut self) {
        let pid = self.master_pid();
        // SAFETY: plain kill(2) to our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl super::IngressProxy for Ingress {
    fn kind(&self) -> super::ProxyKind {
        super::ProxyKind::Nginx
    }

    fn address(&self) -> SocketAddr {
        Ingress::address(self)
    }

    fn pid(&self) -> i32 {
        self.master_pid()
    }

    fn network(&self) -> &PodNetwork {
        &self.net
    }

    fn endpoints(&self) -> &[Ipv4Addr] {
        Ingress::endpoints(self)
    }

    fn set_endpoints(&mut self, endpoints: &[Ipv4Addr]) -> Result<()> {
        Ingress::set_endpoints(self, endpoints)
    }

    /// nginx keeps no retry counter: its tries are in `X-Upstream-Status`.
    fn retry_stats(&self) -> Result<Option<super::RetryStats>> {
        Ok(None)
    }

    fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn stop(&mut self) {
        Ingress::stop(self)
    }
}

/// Pids whose parent is `ppid` (from /proc/*/stat).
fn children_of(ppid: i32) -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // Fields after the ")" that ends comm: state, ppid, ...
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(ppid)
        })
        .collect()
}

/// Renders nginx.conf. Pure, so the config is unit-tested.
pub fn render_conf(
    cfg: &IngressConfig,
    dir: &std::path::Path,
    listen: Ipv4Addr,
    endpoints: &[Ipv4Addr],
) -> String {
    let d = dir.display();
    let tries = cfg.next_upstream_tries.max(1);
    let next_upstream = if tries > 1 { "error timeout" } else { "off" };
    let location = if endpoints.is_empty() {
        // ingress-nginx answers 503 when a Service has no ready endpoints.
        "            return 503;\n".to_string()
    } else {
        format!(
            "            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_connect_timeout {}ms;
            proxy_read_timeout {}ms;
            proxy_send_timeout {}ms;
            proxy_next_upstream {next_upstream};
            proxy_next_upstream_tries {tries};
",
            cfg.proxy_connect_timeout_ms, cfg.proxy_read_timeout_ms, cfg.proxy_read_timeout_ms
        )
    };
    let mut servers = String::new();
    for ip in endpoints {
        // max_fails=0: every request goes where the endpoints say, as with
        // ingress-nginx's Lua balancer (no passive health marking).
        servers.push_str(&format!(
            "        server {ip}:{} max_fails=0;\n",
            naming::BACKEND_PORT
        ));
    }
    let upstream = if endpoints.is_empty() {
        String::new()
    } else {
        let keepalive = if cfg.upstream_keepalive > 0 {
            format!(
                "        keepalive {};\n        keepalive_timeout {}ms;\n        keepalive_requests 10000;\n",
                cfg.upstream_keepalive, cfg.upstream_keepalive_timeout_ms
            )
        } else {
            String::new()
        };
        format!("    upstream backend {{\n{servers}{keepalive}    }}\n")
    };
    format!(
        "# Written by fivexx-lab; rewritten on every endpoint change.
daemon off;
user root;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format lab '$msec $status $upstream_addr $upstream_status $upstream_connect_time $upstream_response_time $request_uri';
    access_log {d}/access.log lab;
    # ingress-nginx's default `upstreaminfo` format, each line after $msec:
    # the file stands for the container log the runtime writes (stamp,
    # then the line), served by the fake API server as pods/log.
    log_format upstreaminfo '$msec $remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id';
    access_log {d}/{CONTAINER_LOG} upstreaminfo;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_timeout 75s;
{upstream}    server {{
        listen {listen}:80 default_server;
        # ingress-nginx's own variables: the upstream's `namespace-service-port`.
        set $proxy_upstream_name \"{upstream_name}\";
        set $proxy_alternative_upstream_name \"\";
        set $req_id $request_id;
        location / {{
            add_header X-Upstream-Addr $upstream_addr always;
            add_header X-Upstream-Status $upstream_status always;
{location}        }}
    }}
}}
",
        workers = cfg.workers.max(1),
        upstream_name = if endpoints.is_empty() {
            "upstream-default-backend".to_string()
        } else {
            format!("shop-{}-{}", naming::SERVICE, naming::BACKEND_PORT)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_lists_ready_endpoints_with_keepalive() {
        let cfg = IngressConfig::default();
        let eps = [Ipv4Addr::new(10, 244, 0, 10), Ipv4Addr::new(10, 244, 0, 11)];
        let c = render_conf(
            &cfg,
            std::path::Path::new("/run/x"),
            Ipv4Addr::new(10, 244, 0, 2),
            &eps,
        );
        assert!(c.contains("server 10.244.0.10:8080 max_fails=0;"));
        assert!(c.contains("server 10.244.0.11:8080 max_fails=0;"));
        assert!(c.contains("keepalive 32;"));
        assert!(c.contains("proxy_connect_timeout 1000ms;"));
        assert!(c.contains("proxy_next_upstream off;"));
        assert!(c.contains("access_log /run/x/controller.log upstreaminfo;"));
        assert!(c.contains("set $proxy_upstream_name \"shop-web-8080\";"));
        let empty = render_conf(
            &cfg,
            std::path::Path::new("/run/x"),
            Ipv4Addr::new(10, 244, 0, 2),
            &[],
        );
        assert!(empty.contains("return 503;"));
        assert!(!empty.contains("upstream backend"));
    }
}
