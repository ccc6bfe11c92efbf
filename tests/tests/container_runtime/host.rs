//! The node around the pod: its network namespace (as the pod sandbox has
//! one), a kubelet-style cgroup for a host process, and a client that
//! subscribes from inside the pod's netns, as the kubelet's port-forward
//! connects.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fivexx_core::capability::CapabilityReport;
use fivexx_core::protocol::{self, AgentMessage, ClientMessage, StreamFilter};
use fivexx_core::{KernelEvent, KernelEventKind};

use super::runtime::run;

/// A pod network namespace with loopback and an eth0 on a veth, removed
/// on drop.
pub struct PodNetns {
    pub name: String,
    pub path: PathBuf,
    host_veth: String,
}

impl PodNetns {
    pub fn create(tag: &str) -> Result<PodNetns> {
        let name = format!("fivexx-ct-{tag}");
        let host_veth = format!("fxct{tag}");
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &host_veth])
            .status();
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = PodNetns {
            path: PathBuf::from("/var/run/netns").join(&name),
            name,
            host_veth,
        };
        let n = ns.name.as_str();
        let v = ns.host_veth.as_str();
        run(Command::new("ip").args(["-n", n, "link", "set", "lo", "up"]))?;
        run(Command::new("ip").args([
            "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", n,
        ]))?;
        run(Command::new("ip").args(["-n", n, "addr", "add", "10.250.19.2/30", "dev", "eth0"]))?;
        run(Command::new("ip").args(["-n", n, "link", "set", "eth0", "up"]))?;
        run(Command::new("ip").args(["addr", "add", "10.250.19.1/30", "dev", v]))?;
        run(Command::new("ip").args(["link", "set", v, "up"]))?;
        Ok(ns)
    }

    /// Listening TCP and UDP sockets inside the pod's netns, as `ss` prints them.
    pub fn listeners(&self) -> Result<Vec<String>> {
        let out = run(Command::new("ip").args(["netns", "exec", &self.name, "ss", "-Hltnu"]))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect())
    }
}

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A host process in a kubelet-style (cgroupfs driver) container cgroup.
pub struct PodProcess {
    pub child: Child,
    cgroup: PathBuf,
}

impl PodProcess {
    /// Starts `cmd` and moves it into the container cgroup of `pod_uid`.
    pub fn spawn(
        cgroup2_root: &Path,
        pod_uid: &str,
        container_id: &str,
        cmd: &mut Command,
    ) -> Result<PodProcess> {
        let cgroup = cgroup2_root
            .join("kubepods/besteffort")
            .join(format!("pod{pod_uid}"))
            .join(container_id);
        std::fs::create_dir_all(&cgroup)
            .with_context(|| format!("creating {}", cgroup.display()))?;
        let child = cmd.spawn()?;
        std::fs::write(cgroup.join("cgroup.procs"), child.id().to_string())?;
        Ok(PodProcess { child, cgroup })
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut dir = self.cgroup.clone();
        for _ in 0..3 {
            let _ = std::fs::remove_dir(&dir);
            dir.pop();
        }
    }
}

/// The unified (cgroup v2) hierarchy of the host: /sys/fs/cgroup or, on a
/// hybrid layout, /sys/fs/cgroup/unified.
pub fn cgroup2_root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .context("no cgroup2 mount on the host")
}

/// A subscriber connected from inside a network namespace.
pub struct Subscriber {
    stream: TcpStream,
    /// The capability report of the agent's hello (what `status` shows).
    pub hello: CapabilityReport,
}

impl Subscriber {
    /// Connects from a thread that joined `netns` (the socket belongs to
    /// the namespace it was created in, so it stays there).
    pub fn connect(netns: &Path, port: u16, filter: StreamFilter) -> Result<Subscriber> {
        let netns = netns.to_path_buf();
        let stream = std::thread::spawn(move || -> Result<TcpStream> {
            let f = std::fs::File::open(&netns)?;
            // SAFETY: setns on a valid namespace fd; it changes only this
            // short-lived thread's network namespace.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            ensure!(r == 0, "setns: {}", std::io::Error::last_os_error());
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            Ok(TcpStream::connect_timeout(&addr, Duration::from_secs(3))?)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the connecting thread panicked"))??;
        let hello = ClientMessage::Subscribe {
            protocol: protocol::PROTOCOL_VERSION,
            filter,
        };
        let mut stream = stream;
        send_frame(&mut stream, &protocol::encode(&hello))?;
        match read_frame(&mut stream, Duration::from_secs(5))? {
            AgentMessage::Hello { capabilities, .. } => Ok(Subscriber {
                stream,
                hello: capabilities,
            }),
            other => bail!("first message is not a hello: {other:?}"),
        }
    }

    pub fn next(&mut self, limit: Duration) -> Result<AgentMessage> {
        read_frame(&mut self.stream, limit)
    }

    /// Waits for an event matching `want`, up to `limit`; on failure the
    /// error lists the last events that did not match.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        want: impl Fn(&KernelEvent) -> bool,
    ) -> Result<KernelEvent> {
        let deadline = Instant::now() + limit;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = if left.is_zero() {
                Err(anyhow::anyhow!("timed out"))
            } else {
                self.next(left)
            };
            match msg {
                Ok(AgentMessage::Event { event }) if want(&event) => return Ok(event),
                Ok(AgentMessage::Event { event }) => {
                    seen.push(format!(
                        "{:?} sig {:?} target {:?} pod {:?}",
                        event.kind, event.signal, event.target, event.pod_uid
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    let last = &seen[seen.len().saturating_sub(5)..];
                    bail!(
                        "no {what} within {limit:?} ({e:#}); {} other events, the last: {last:?}",
                        seen.len()
                    )
                }
            }
        }
    }
}

fn send_frame(stream: &mut TcpStream, body: &[u8]) -> Result<()> {
    let len = u32::try_from(body.len())?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(body)?;
    Ok(())
}

/// The next frame (LengthDelimitedCodec's 4-byte big-endian length).
fn read_frame(stream: &mut TcpStream, limit: Duration) -> Result<AgentMessage> {
    stream.set_read_timeout(Some(limit))?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body)?;
    Ok(protocol::decode_agent(&body)?)
}

/// A connect on the host to a port nothing listens on; returns that port.
pub fn refused_connect() -> Result<u16> {
    let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = probe.local_addr()?.port();
    drop(probe);
    let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .err()
        .context("a connect to a closed port succeeded")?;
    ensure!(
        err.kind() == std::io::ErrorKind::ConnectionRefused,
        "connect failed with {err}"
    );
    Ok(port)
}

/// The node's tracefs, mounted where a fresh machine has none: the pod's
/// tracefs volume binds the host's /sys/kernel/tracing, which is an empty
/// directory until something mounts it (systemd does on most nodes).
pub fn mount_tracefs() -> Result<()> {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        return Ok(());
    }
    run(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))?;
    Ok(())
}

/// A loopback connection that sends a byte, stays idle for `idle`, then
/// is closed by its client: ESTABLISHED -> FIN_WAIT1 after `idle`, which
/// the agent reports with its idle time. Returns the client's port.
pub fn idle_close(idle: Duration) -> Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (_server, _) = listener.accept()?;
    client.write_all(b"x")?;
    let port = client.local_addr()?.port();
    std::thread::sleep(idle);
    drop(client);
    Ok(port)
}

/// The kinds the event case subscribes to.
pub fn event_filter(pod_uid: &str) -> StreamFilter {
    StreamFilter {
        kinds: vec![KernelEventKind::SockError, KernelEventKind::Signal],
        pod_uids: vec![pod_uid.to_string()],
        ips: vec![Ipv4Addr::LOCALHOST.into()],
        ..Default::default()
    }
}
