//! The ingress as the HAProxy Kubernetes Ingress Controller runs it:
//! Debian's HAProxy with a backend of pre-allocated server slots
//! (`server-template SRV_ 1-42 ... disabled`, the controller's default 42
//! slots), and endpoint changes applied through the Runtime API on the
//! stats socket with no reload: a new endpoint takes a free slot (`set
//! server BE/SRV_k addr IP port 8080`, then `state ready`), a removed one
//! goes to `state maint`. With no ready server HAProxy answers 503
//! `<NOSRV>` itself.
//!
//! HAProxy logs each request (`option httplog`) to its stdout (`log stdout
//! format raw`), which the lab reads as the container runtime would
//! ([`super::runtime_log`]).

use super::{runtime_log, IngressProxy, ProxyKind, RetryStats};
use crate::node::naming;
use crate::node::netns::PodNetwork;
use crate::{io_err, Error, Result};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The controller's name for Service `shop/web` port `http`.
pub const BACKEND: &str = "shop_svc_web_http";
/// Server slots per backend (the controller's `server-slots` default).
pub const SLOTS: usize = 42;

/// `http-reuse`: which idle server connections a request may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HttpReuse {
    /// HAProxy's default: a client connection's first request gets its own
    /// server connection (a fresh client per request never reuses one).
    #[default]
    Safe,
    /// Any idle server connection, first requests too.
    Always,
    Never,
}

impl HttpReuse {
    fn keyword(self) -> &'static str {
        match self {
            HttpReuse::Safe => "safe",
            HttpReuse::Always => "always",
            HttpReuse::Never => "never",
        }
    }
}

/// HAProxy settings the scenarios vary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HaproxyConfig {
    /// `retries`: connection retries after a failed connect (0: none).
    pub retries: u32,
    /// `option redispatch`: the last retry may go to another server.
    pub redispatch: bool,
    pub http_reuse: HttpReuse,
    /// `timeout connect`.
    pub connect_timeout_ms: u64,
    /// `timeout server`.
    pub server_timeout_ms: u64,
    /// `timeout http-keep-alive` (client side).
    pub keep_alive_timeout_ms: u64,
    /// How long idle server connections are kept (`pool-purge-delay`).
    pub pool_purge_delay_ms: u64,
    pub threads: u32,
    /// Active health checks (`option httpchk GET /healthz`, `check inter
    /// N fall F rise 1`), as a cloud load balancer's target group runs
    /// them: (interval ms, failures before a server is down). `None`: no
    /// checks, the ingress controller's default.
    pub health_check: Option<(u64, u32)>,
}

impl Default for HaproxyConfig {
    fn default() -> Self {
        HaproxyConfig {
            retries: 0,
            redispatch: false,
            http_reuse: HttpReuse::Safe,
            connect_timeout_ms: 1000,
            server_timeout_ms: 5000,
            keep_alive_timeout_ms: 60_000,
            pool_purge_delay_ms: 60_000,
            threads: 2,
            health_check: None,
        }
    }
}

/// A running HAProxy.
pub struct Haproxy {
    pub cfg: HaproxyConfig,
    net: PodNetwork,
    dir: PathBuf,
    child: Child,
    slots: Vec<Option<Ipv4Addr>>,
    endpoints: Vec<Ipv4Addr>,
}

impl Haproxy {
    /// Starts HAProxy in `net` with every slot disabled.
    pub fn start(
        cfg: HaproxyConfig,
        net: PodNetwork,
        procs_fds: Vec<OwnedFd>,
        dir: &Path,
    ) -> Result<Haproxy> {
        let bin = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                Error::Lab("haproxy not found: run `make setup` (Debian's haproxy)".into())
            })?;
        let dir = super::fresh_dir(dir)?;
        let conf = dir.join("haproxy.cfg");
        fs::write(&conf, render_cfg(&cfg, &dir, net.ip)).map_err(io_err("writing haproxy.cfg"))?;
        let stderr_path = dir.join("haproxy-stderr.log");
        let stderr = fs::File::create(&stderr_path).map_err(io_err("creating haproxy's log"))?;
        let mut cmd = Command::new(bin);
        // -db: stay in the foreground, as in a container.
        cmd.arg("-db")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = super::spawn_in_pod(&mut cmd, &net, procs_fds, "haproxy")?;
        if let Some(out) = child.stdout.take() {
            runtime_log::follow(out, "stdout", dir.join(runtime_log::FILE))
                .map_err(io_err("following haproxy's stdout"))?;
        }
        let mut h = Haproxy {
            cfg,
            net,
            dir,
            child,
            slots: vec![None; SLOTS],
            endpoints: Vec::new(),
        };
        let addr = h.address();
        if let Err(e) = super::wait_listening(&mut h.child, addr, "haproxy", &stderr_path) {
            h.stop();
            return Err(e);
        }
        Ok(h)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("haproxy.sock")
    }

    /// One Runtime API exchange (`;`-separated commands).
    pub fn runtime(&self, commands: &str) -> Result<String> {
        super::unix_exchange(&self.socket(), format!("{commands}\n").as_bytes())
    }

    /// The servers that take traffic now: (slot name, address) of every
    /// slot not in maintenance, from `show servers state`.
    pub fn ready_servers(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        Ok(parse_servers_state(
            &self.runtime(&format!("show servers state {BACKEND}"))?,
        ))
    }
}

impl IngressProxy for Haproxy {
    fn kind(&self) -> ProxyKind {
        ProxyKind::Haproxy
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::new(self.net.ip.into(), 80)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn network(&self) -> &PodNetwork {
        &self.net
    }

    fn endpoints(&self) -> &[Ipv4Addr] {
        &self.endpoints
    }

    /// The Runtime API commands for the change, then a check that exactly
    /// the wanted addresses are ready.
    fn set_endpoints(&mut self, endpoints: &[Ipv4Addr]) -> Result<()> {
        let mut slots = self.slots.clone();
        let mut commands = plan_slots(&mut slots, endpoints)?;
        if self.cfg.health_check.is_some() {
            // A server leaving maintenance is one failed check from DOWN;
            // a target group's new target is healthy once registered (its
            // pod was ready), so its health starts full: `fall` failed
            // checks take it down, as configured.
            let up: Vec<String> = commands
                .iter()
                .filter_map(|c| c.strip_suffix(" state ready"))
                .map(|srv| format!("{srv} health up"))
                .collect();
            commands.extend(up);
        }
        if !commands.is_empty() {
            let out = self.runtime(&commands.join("; "))?;
            if let Some(bad) = out
                .lines()
                .find(|l| l.contains("No such") || l.contains("Unknown") || l.contains("Require"))
            {
                return Err(Error::Lab(format!("haproxy runtime API: {bad}")));
            }
        }
        self.slots = slots;
        self.endpoints = endpoints.to_vec();
        let mut want = endpoints.to_vec();
        want.sort();
        want.dedup();
        let mut have: Vec<Ipv4Addr> = self.ready_servers()?.into_iter().map(|s| s.1).collect();
        have.sort();
        if have != want {
            return Err(Error::Lab(format!(
                "haproxy servers after the runtime API change: {have:?}, want {want:?}"
            )));
        }
        Ok(())
    }

    fn retry_stats(&self) -> Result<Option<RetryStats>> {
        let csv = self.runtime("show stat")?;
        parse_backend_retries(&csv, BACKEND)
            .map(Some)
            .ok_or_else(|| Error::Lab(format!("haproxy show stat: no {BACKEND} line")))
    }

    fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn stop(&mut self) {
        super::stop_child(&mut self.child);
    }
}

/// The Runtime API commands that bring `slots` to `want`, as the ingress
/// controller does: removed addresses' slots go to maintenance, new
/// addresses take the first free slot. Updates `slots`. Pure, unit-tested.
pub fn plan_slots(slots: &mut [Option<Ipv4Addr>], want: &[Ipv4Addr]) -> Result<Vec<String>> {
    let mut cmds = Vec::new();
    for (i, slot) in slots.iter_mut().enumerate() {
        if let Some(ip) = *slot {
            if !want.contains(&ip) {
                cmds.push(format!("set server {BACKEND}/SRV_{} state maint", i + 1));
                *slot = None;
            }
        }
    }
    for ip in want {
        if slots.contains(&Some(*ip)) {
            continue;
        }
        let Some(i) = slots.iter().position(Option::is_none) else {
            return Err(Error::Lab(format!(
                "haproxy: all {} server slots are taken",
                slots.len()
            )));
        };
        slots[i] = Some(*ip);
        cmds.push(format!(
            "set server {BACKEND}/SRV_{} addr {ip} port {}",
            i + 1,
            naming::BACKEND_PORT
        ));
        cmds.push(format!("set server {BACKEND}/SRV_{} state ready", i + 1));
    }
    Ok(cmds)
}

/// Servers not in maintenance, from `show servers state BACKEND`
/// (`be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...`).
pub fn parse_servers_state(text: &str) -> Vec<(String, Ipv4Addr)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 7 {
                return None;
            }
            let op: u32 = f[5].parse().ok()?;
            let admin: u32 = f[6].parse().ok()?;
            // Running (op state 2, or 1 starting) and in no maintenance
            // set at run time: forced 0x1, inherited 0x2, from a resolver
            // 0x20, from a hostname 0x40. The config's `disabled` (0x4)
            // stays set after `state ready`, as HAProxy 2.6 reports it.
            let in_maint = op == 0 || admin & 0x63 != 0;
            (!in_maint).then(|| Some((f[3].to_string(), f[4].parse().ok()?)))?
        })
        .collect()
}

/// The backend's `wretr` and `wredis` from `show stat` CSV.
pub fn parse_backend_retries(csv: &str, backend: &str) -> Option<RetryStats> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, wretr, wredis) = (
        col("pxname")?,
        col("svname")?,
        col("wretr")?,
        col("wredis")?,
    );
    lines.find_map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (f.get(px) == Some(&backend) && f.get(sv) == Some(&"BACKEND")).then(|| RetryStats {
            retried: f.get(wretr).and_then(|v| v.parse().ok()).unwrap_or(0),
            redispatched: f.get(wredis).and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    })
}

/// haproxy.cfg. Pure, unit-tested.
pub fn render_cfg(cfg: &HaproxyConfig, dir: &Path, listen: Ipv4Addr) -> String {
    let d = dir.display();
    let redispatch = if cfg.redispatch {
        "  option redispatch\n"
    } else {
        ""
    };
    let (httpchk, check) = match cfg.health_check {
        Some((inter, fall)) => (
            "  option httpchk GET /healthz\n".to_string(),
            format!(" check inter {inter}ms fall {} rise 1", fall.max(1)),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "# Written by fivexx-lab, once: servers change through the Runtime API.
global
  nbthread {threads}
  pidfile {d}/haproxy.pid
  stats socket {d}/haproxy.sock mode 600 level admin
  # As in the controller's container: the log goes to stdout.
  log stdout format raw local0
  hard-stop-after 3s

defaults
  mode http
  log global
  option httplog
  option dontlognull
  option http-keep-alive
  timeout connect {connect}ms
  timeout client 50s
  timeout server {server}ms
  timeout http-request 5s
  timeout http-keep-alive {ka}ms
  retries {retries}
{redispatch}
frontend http
  bind {listen}:80
  # The server HAProxy used (%si:%sp), on its own error answers too.
  http-after-response set-header X-Upstream-Addr \"%si:%sp\"
  default_backend {BACKEND}

backend {BACKEND}
  balance roundrobin
  http-reuse {reuse}
{httpchk}  default-server pool-purge-delay {purge}ms{check}
  server-template SRV_ 1-{SLOTS} 127.0.0.1:{port} disabled
",
        threads = cfg.threads.max(1),
        connect = cfg.connect_timeout_ms,
        server = cfg.server_timeout_ms,
        ka = cfg.keep_alive_timeout_ms,
        retries = cfg.retries,
        reuse = cfg.http_reuse.keyword(),
        purge = cfg.pool_purge_delay_ms,
        port = naming::BACKEND_PORT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfg_has_slots_socket_and_httplog() {
        let c = render_cfg(
            &HaproxyConfig::default(),
            Path::new("/run/x"),
            Ipv4Addr::new(10, 244, 0, 2),
        );
        assert!(c.contains("stats socket /run/x/haproxy.sock mode 600 level admin"));
        assert!(c.contains("log stdout format raw local0"));
        assert!(c.contains("option httplog"));
        assert!(c.contains("bind 10.244.0.2:80"));
        assert!(c.contains("server-template SRV_ 1-42 127.0.0.1:8080 disabled"));
        assert!(c.contains("retries 0"));
        assert!(!c.contains("option redispatch"));
        assert!(c.contains("http-reuse safe"));
        assert!(c.contains("timeout connect 1000ms"));
        assert!(c.contains("http-after-response set-header X-Upstream-Addr \"%si:%sp\""));
        assert!(!c.contains("check"));
        let checked = render_cfg(
            &HaproxyConfig {
                health_check: Some((2000, 5)),
                ..Default::default()
            },
            Path::new("/run/x"),
            Ipv4Addr::new(172, 31, 0, 10),
        );
        assert!(checked.contains("  option httpchk GET /healthz\n  default-server pool-purge-delay 60000ms check inter 2000ms fall 5 rise 1\n"), "{checked}");
        let r = render_cfg(
            &HaproxyConfig {
                retries: 3,
                redispatch: true,
                http_reuse: HttpReuse::Always,
                ..Default::default()
            },
            Path::new("/run/x"),
            Ipv4Addr::new(10, 244, 0, 2),
        );
        assert!(r.contains("retries 3") && r.contains("option redispatch"));
        assert!(r.contains("http-reuse always"));
    }

    #[test]
    fn slots_are_reused_and_removals_go_to_maint() {
        let a = Ipv4Addr::new(10, 244, 0, 10);
        let b = Ipv4Addr::new(10, 244, 0, 11);
        let c = Ipv4Addr::new(10, 244, 0, 12);
        let mut slots = vec![None; 3];
        let cmds = plan_slots(&mut slots, &[a, b]).unwrap();
        assert_eq!(
            cmds,
            [
                "set server shop_svc_web_http/SRV_1 addr 10.244.0.10 port 8080",
                "set server shop_svc_web_http/SRV_1 state ready",
                "set server shop_svc_web_http/SRV_2 addr 10.244.0.11 port 8080",
                "set server shop_svc_web_http/SRV_2 state ready",
            ]
        );
        let cmds = plan_slots(&mut slots, &[b, c]).unwrap();
        assert_eq!(
            cmds,
            [
                "set server shop_svc_web_http/SRV_1 state maint",
                "set server shop_svc_web_http/SRV_1 addr 10.244.0.12 port 8080",
                "set server shop_svc_web_http/SRV_1 state ready",
            ]
        );
        assert!(plan_slots(&mut slots, &[b, c]).unwrap().is_empty());
        assert_eq!(
            plan_slots(&mut slots, &[]).unwrap(),
            [
                "set server shop_svc_web_http/SRV_1 state maint",
                "set server shop_svc_web_http/SRV_2 state maint",
            ]
        );
        let mut full = vec![Some(a)];
        assert!(plan_slots(&mut full, &[a, b]).is_err());
    }

    #[test]
    fn runtime_answers_parse() {
        let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n\
3 shop_svc_web_http 1 SRV_1 10.244.0.10 2 4 1 1 5 1 0 2 0 0 0 0 - 8080 - 0 0 - - 0\n\
3 shop_svc_web_http 2 SRV_2 127.0.0.1 0 5 1 1 5 1 0 2 0 0 0 0 - 8080 - 0 0 - - 0\n";
        assert_eq!(
            parse_servers_state(state),
            vec![("SRV_1".to_string(), Ipv4Addr::new(10, 244, 0, 10))]
        );
        let csv = "# pxname,svname,qcur,wretr,wredis,status\nhttp,FRONTEND,,,,OPEN\nshop_svc_web_http,SRV_1,0,2,1,UP\nshop_svc_web_http,BACKEND,0,7,3,UP\n";
        assert_eq!(
            parse_backend_retries(csv, BACKEND),
            Some(RetryStats {
                retried: 7,
                redispatched: 3
            })
        );
    }
}
