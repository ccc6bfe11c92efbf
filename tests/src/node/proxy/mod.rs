//! The ingress proxies, one module per proxy, each run as its Kubernetes
//! controller runs it and given endpoint changes the way that controller
//! applies them: [`nginx`] (ingress-nginx: rewrite and reload), [`envoy`]
//! (Envoy Gateway's data plane: EDS, here from a watched file) and
//! [`haproxy`] (the HAProxy Kubernetes Ingress Controller: server slots set
//! through the Runtime API, no reload).
//!
//! [`IngressProxy`] is what the endpoint controller drives; [`start`] picks
//! the proxy a scenario asked for. Every proxy runs in the ingress netns and
//! a kubelet-style cgroup, and every one reports, in a response header
//! (`X-Upstream-Addr`), the upstream it used, which the load generator keeps
//! as ground truth.

pub mod envoy;
pub mod haproxy;
pub mod nginx;
pub mod runtime_log;

use crate::node::naming;
use crate::node::netns::PodNetwork;
use crate::{io_err, Error, Result};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Which proxy is the lab's ingress.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyKind {
    /// ingress-nginx's nginx (Debian's nginx).
    #[default]
    Nginx,
    /// Envoy Gateway's data plane (the pinned official Envoy).
    Envoy,
    /// The HAProxy Kubernetes Ingress Controller's HAProxy (Debian's).
    Haproxy,
}

/// How the ingress pod looks in the API: what its controller names and
/// labels it, so the plugin finds it as it would on a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodIdentity {
    pub namespace: &'static str,
    /// The pod name without its random suffix.
    pub name_prefix: &'static str,
    pub labels: &'static [(&'static str, &'static str)],
    pub container: &'static str,
    pub image: &'static str,
}

impl ProxyKind {
    pub const ALL: [ProxyKind; 3] = [ProxyKind::Nginx, ProxyKind::Envoy, ProxyKind::Haproxy];

    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Envoy => "envoy",
            ProxyKind::Haproxy => "haproxy",
        }
    }

    /// The ingress pod as each controller makes it: ingress-nginx's
    /// controller; Envoy Gateway's proxy for Gateway `shop/eg`; the
    /// haproxytech Helm chart's controller (which runs HAProxy itself).
    pub fn pod_identity(self) -> PodIdentity {
        match self {
            ProxyKind::Nginx => PodIdentity {
                namespace: "ingress-nginx",
                name_prefix: "ingress-nginx-controller",
                // As the lab has always made it (the plugin's nginx
                // discovery is tested against this pod).
                labels: &[("app", "ingress-nginx")],
                container: "ingress-nginx",
                image: "registry.k8s.io/ingress-nginx/controller:v1.13.0",
            },
            ProxyKind::Envoy => PodIdentity {
                namespace: "envoy-gateway-system",
                name_prefix: "envoy-shop-eg-5b3c1d2a",
                labels: &[
                    ("app.kubernetes.io/name", "envoy"),
                    ("app.kubernetes.io/component", "proxy"),
                    ("app.kubernetes.io/managed-by", "envoy-gateway"),
                    ("gateway.envoyproxy.io/owning-gateway-name", "eg"),
                    ("gateway.envoyproxy.io/owning-gateway-namespace", "shop"),
                ],
                container: "envoy",
                image: "docker.io/envoyproxy/envoy:distroless-v1.40.0",
            },
            ProxyKind::Haproxy => PodIdentity {
                namespace: "haproxy-controller",
                name_prefix: "haproxy-kubernetes-ingress",
                labels: &[
                    ("app.kubernetes.io/name", "kubernetes-ingress"),
                    ("app.kubernetes.io/instance", "haproxy-kubernetes-ingress"),
                ],
                container: "kubernetes-ingress-controller",
                image: "docker.io/haproxytech/kubernetes-ingress:3.1",
            },
        }
    }

    /// The file the ingress pod's container log is in (what the fake API
    /// server serves as its `pods/log`).
    pub fn container_log_path(self) -> PathBuf {
        self.container_log_in(&ingress_dir())
    }

    /// The same for a proxy replica keeping its files in `dir`.
    pub fn container_log_in(self, dir: &Path) -> PathBuf {
        match self {
            ProxyKind::Nginx => dir.join(nginx::CONTAINER_LOG),
            ProxyKind::Envoy | ProxyKind::Haproxy => dir.join(runtime_log::FILE),
        }
    }
}

/// The directory the ingress proxy keeps its config, sockets and logs in
/// (its first replica's; see [`replica_dir`]).
pub fn ingress_dir() -> PathBuf {
    replica_dir(0)
}

/// The directory of ingress replica `k` (proxy-terminated runs several).
pub fn replica_dir(k: usize) -> PathBuf {
    let name = if k == 0 {
        "ingress".to_string()
    } else {
        format!("ingress-{k}")
    };
    PathBuf::from(naming::RUN_DIR).join(name)
}

/// The retries a proxy itself counted: its own ground truth of failed
/// upstream tries that the client never saw as such.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryStats {
    /// Retried attempts (Envoy `upstream_rq_retry`; HAProxy `wretr`).
    pub retried: u64,
    /// Retries sent to another server (HAProxy `wredis`; Envoy: 0).
    pub redispatched: u64,
}

/// What the endpoint controller needs from a running ingress proxy.
pub trait IngressProxy: Send {
    fn kind(&self) -> ProxyKind;
    /// The address clients send requests to.
    fn address(&self) -> SocketAddr;
    /// The proxy's main process.
    fn pid(&self) -> i32;
    /// The ingress pod's network (destroyed after [`IngressProxy::stop`]).
    fn network(&self) -> &PodNetwork;
    /// The endpoints the proxy routes to now.
    fn endpoints(&self) -> &[Ipv4Addr];
    /// Applies an endpoint set the proxy's own way and returns once the
    /// proxy routes by it.
    fn set_endpoints(&mut self, endpoints: &[Ipv4Addr]) -> Result<()>;
    /// The proxy's own retry counters (`None`: it keeps none; nginx lists
    /// its tries in `X-Upstream-Status` instead).
    fn retry_stats(&self) -> Result<Option<RetryStats>>;
    /// Stops the proxy (SIGTERM, then SIGKILL).
    fn stop(&mut self);
    /// The proxy's main process, to signal and reap.
    fn child(&mut self) -> &mut Child;
    /// Whether the main process has exited (reaped).
    fn exited(&mut self) -> bool {
        matches!(self.child().try_wait(), Ok(Some(_)))
    }
}

/// Every proxy's settings; the scenario fills in the shared timeouts.
#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    pub kind: ProxyKind,
    pub nginx: nginx::IngressConfig,
    pub envoy: envoy::EnvoyConfig,
    pub haproxy: haproxy::HaproxyConfig,
}

/// Starts the chosen proxy in `net`, its processes in the `procs_fds`
/// cgroups, with no endpoints yet.
pub fn start(
    cfg: &ProxyConfig,
    net: PodNetwork,
    procs_fds: Vec<OwnedFd>,
) -> Result<Box<dyn IngressProxy>> {
    start_in(cfg, net, procs_fds, &ingress_dir(), &[])
}

/// [`start`] with the proxy's files in `dir` (another replica's), routing
/// to `endpoints` before it takes its first request: nginx from its first
/// configuration (a reload would leave the first workers answering 503),
/// the others by their dynamic update once they listen.
pub fn start_in(
    cfg: &ProxyConfig,
    net: PodNetwork,
    procs_fds: Vec<OwnedFd>,
    dir: &Path,
    endpoints: &[Ipv4Addr],
) -> Result<Box<dyn IngressProxy>> {
    let mut proxy: Box<dyn IngressProxy> = match cfg.kind {
        ProxyKind::Nginx => Box::new(nginx::Ingress::start_in(
            cfg.nginx.clone(),
            net,
            procs_fds,
            endpoints,
            dir,
        )?),
        ProxyKind::Envoy => Box::new(envoy::Envoy::start(cfg.envoy.clone(), net, procs_fds, dir)?),
        ProxyKind::Haproxy => Box::new(haproxy::Haproxy::start(
            cfg.haproxy.clone(),
            net,
            procs_fds,
            dir,
        )?),
    };
    if !endpoints.is_empty() && proxy.endpoints() != endpoints {
        if let Err(e) = proxy.set_endpoints(endpoints) {
            proxy.stop();
            return Err(e);
        }
    }
    Ok(proxy)
}

/// A fresh proxy directory `dir` (a crashed run's files removed).
pub(crate) fn fresh_dir(dir: &Path) -> Result<PathBuf> {
    let dir = dir.to_path_buf();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp"))
        .map_err(io_err(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Spawns `cmd` inside the pod: its cgroups joined and its netns entered
/// between fork and exec, as a runtime starts a container's process.
pub(crate) fn spawn_in_pod(
    cmd: &mut Command,
    net: &PodNetwork,
    procs_fds: Vec<OwnedFd>,
    what: &str,
) -> Result<Child> {
    use std::os::fd::AsRawFd;
    let netns = std::fs::File::open(net.path()).map_err(io_err("opening the ingress netns"))?;
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
    let child = cmd.spawn().map_err(io_err(format!("starting {what}")))?;
    drop(netns);
    Ok(child)
}

/// Waits until `child` accepts connections on `addr`; its exit or 10 s
/// without listening is an error quoting `errlog`.
pub(crate) fn wait_listening(
    child: &mut Child,
    addr: SocketAddr,
    what: &str,
    errlog: &Path,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(errlog).unwrap_or_default();
            let tail: String = log.lines().rev().take(8).collect::<Vec<_>>().join(" | ");
            return Err(Error::Lab(format!(
                "{what} exited at start ({status}): {tail}"
            )));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Lab(format!(
                "{what} did not listen on {addr} within 10 s (see {})",
                errlog.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, up to 3 s for the exit, then SIGKILL.
pub(crate) fn stop_child(child: &mut Child) {
    // SAFETY: plain kill(2) to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One request/response over a Unix socket (Envoy's admin pipe, HAProxy's
/// stats socket): writes `request`, reads until the peer closes.
pub(crate) fn unix_exchange(path: &Path, request: &[u8]) -> Result<String> {
    use std::io::{Read, Write};
    let ctx = || format!("talking to {}", path.display());
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(io_err(ctx()))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(io_err(ctx()))?;
    s.write_all(request).map_err(io_err(ctx()))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(io_err(ctx()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_carry_their_controllers_labels() {
        let e = ProxyKind::Envoy.pod_identity();
        assert_eq!(e.namespace, "envoy-gateway-system");
        assert!(e
            .labels
            .contains(&("gateway.envoyproxy.io/owning-gateway-name", "eg")));
        assert_eq!(e.container, "envoy");
        let h = ProxyKind::Haproxy.pod_identity();
        assert_eq!(h.namespace, "haproxy-controller");
        assert!(h
            .labels
            .contains(&("app.kubernetes.io/name", "kubernetes-ingress")));
        assert_eq!(h.container, "kubernetes-ingress-controller");
        assert_eq!(ProxyKind::Nginx.pod_identity().namespace, "ingress-nginx");
    }
}
