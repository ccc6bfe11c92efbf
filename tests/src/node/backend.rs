//! The lab's backend: a small HTTP/1.1 server, our own, whose SIGTERM
//! behaviour is chosen by flag. It runs as `fivexx-lab backend` inside a pod's
//! network namespace and cgroup. Each behaviour is one way real services
//! shut down, and each produces its own kernel signature.

use crate::{io_err, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the backend does on SIGTERM (and, for `oom` and `slow`, before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Stop accepting, answer in-flight and pooled requests with
    /// `Connection: close`, exit when drained (or at the drain timeout).
    Graceful,
    /// No handler: the default action kills the process at once.
    ExitNow,
    /// SIGTERM set to SIG_IGN, like a PID 1 without a handler: only SIGKILL
    /// at the grace period ends it.
    IgnoreSigterm,
    /// On SIGTERM, closes every keep-alive connection once it is idle (at
    /// once for idle ones; one reaper tick after the response for busy
    /// ones, without reading what arrived meanwhile) and never announces it
    /// (no `Connection: close`); keeps listening, exits after the drain
    /// time. A proxy that reuses the pooled connection in that window gets
    /// a RST: the keep-alive race.
    CloseIdle,
    /// Every response takes `--delay-ms`; graceful on SIGTERM.
    Slow,
    /// After `--oom-after-ms` it allocates memory until the cgroup limit
    /// OOM-kills it, with requests in flight.
    Oom,
}

impl Behaviour {
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Graceful => "graceful",
            Behaviour::ExitNow => "exit-now",
            Behaviour::IgnoreSigterm => "ignore-sigterm",
            Behaviour::CloseIdle => "close-idle",
            Behaviour::Slow => "slow",
            Behaviour::Oom => "oom",
        }
    }
}

/// Settings of one backend process.
#[derive(Clone, Debug, clap::Args)]
pub struct BackendConfig {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Pod name, returned in the `X-Pod` header.
    #[arg(long, default_value = "backend")]
    pub pod: String,
    #[arg(long, value_enum, default_value = "graceful")]
    pub behaviour: Behaviour,
    /// Delay before every response (slow responses; `slow` defaults to 300).
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// How long a draining backend keeps going after SIGTERM at most.
    #[arg(long, default_value_t = 5000)]
    pub drain_ms: u64,
    /// Close keep-alive connections idle this long (0: never).
    #[arg(long, default_value_t = 0)]
    pub idle_timeout_ms: u64,
    /// `close-idle`: the idle reaper's tick after SIGTERM.
    #[arg(long, default_value_t = 20)]
    pub reap_tick_ms: u64,
    /// `oom`: when the memory hog starts, after start-up.
    #[arg(long, default_value_t = 3000)]
    pub oom_after_ms: u64,
    /// `oom`: MiB allocated (and touched) every 20 ms.
    #[arg(long, default_value_t = 8)]
    pub oom_step_mib: usize,
}

impl BackendConfig {
    fn delay(&self) -> Duration {
        let ms = self.delay_ms.unwrap_or(match self.behaviour {
            Behaviour::Slow => 300,
            _ => 0,
        });
        Duration::from_millis(ms)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Serving,
    /// SIGTERM seen.
    Terminating,
}

struct Shared {
    cfg: BackendConfig,
    phase: watch::Receiver<Phase>,
    open: AtomicUsize,
}

/// Runs the backend until its behaviour says to exit.
pub fn run(cfg: BackendConfig) -> Result<()> {
    match cfg.behaviour {
        // SAFETY: setting a disposition before any thread exists.
        Behaviour::IgnoreSigterm => unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
        },
        // SAFETY: as above: no thread exists yet to race the disposition.
        Behaviour::ExitNow => unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        },
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the runtime"))?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: BackendConfig) -> Result<()> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(io_err(format!("binding {}", cfg.listen)))?;
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        phase: phase_rx,
        open: AtomicUsize::new(0),
    });
    if cfg.behaviour == Behaviour::Oom {
        tokio::spawn(memory_hog(
            Duration::from_millis(cfg.oom_after_ms),
            cfg.oom_step_mib,
        ));
    }
    let handles_sigterm = !matches!(cfg.behaviour, Behaviour::ExitNow | Behaviour::IgnoreSigterm);
    let mut sigterm = if handles_sigterm {
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(io_err("installing the SIGTERM handler"))?,
        )
    } else {
        None
    };
    // Accept until SIGTERM.
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    spawn_conn(&shared, stream);
                }
            }
            _ = async { sigterm.as_mut().unwrap().recv().await }, if sigterm.is_some() => break,
        }
    }
    let _ = phase_tx.send(Phase::Terminating);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(cfg.drain_ms);
    if cfg.behaviour == Behaviour::CloseIdle {
        // Keeps serving new connections until the drain time is over.
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted { spawn_conn(&shared, stream); }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    } else {
        // Stop accepting: the kernel now refuses new connections.
        drop(listener);
        while shared.open.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    std::process::exit(0);
}

fn spawn_conn(shared: &Arc<Shared>, stream: TcpStream) {
    let shared = shared.clone();
    shared.open.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let _ = connection(&shared, stream).await;
        shared.open.fetch_sub(1, Ordering::SeqCst);
    });
}

async fn connection(shared: &Shared, mut stream: TcpStream) -> std::io::Result<()> {
    let cfg = &shared.cfg;
    let mut phase = shared.phase.clone();
    let closes_idle = cfg.behaviour == Behaviour::CloseIdle;
    let idle_timeout =
        (cfg.idle_timeout_ms > 0).then(|| Duration::from_millis(cfg.idle_timeout_ms));
    let mut buf = Vec::with_capacity(1024);
    let mut served = 0u64;
    loop {
        // Idle: no byte of the next request read yet. A new connection is
        // not idle until it has carried a request.
        let closes_idle = closes_idle && served > 0;
        if closes_idle && buf.is_empty() && *phase.borrow() == Phase::Terminating {
            // The idle reaper runs on a tick and judges "idle" by the app's
            // state, not the socket: a request the proxy sent on this pooled
            // connection meanwhile is never read, and closing a socket with
            // unread data sends a RST.
            tokio::time::sleep(Duration::from_millis(cfg.reap_tick_ms)).await;
            return Ok(());
        }
        if buf.is_empty() {
            let mut chunk = [0u8; 2048];
            let n = tokio::select! {
                r = stream.read(&mut chunk) => r?,
                _ = wait_terminating(&mut phase), if closes_idle => return Ok(()),
                _ = tokio::time::sleep(idle_timeout.unwrap_or_default()), if idle_timeout.is_some() => return Ok(()),
            };
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        // Active: read the whole head (and body, if any).
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return Ok(());
            }
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let body_len = header(&head, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            let mut chunk = [0u8; 2048];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let client_closes = header(&head, "connection").is_some_and(|v| v == "close");
        buf.drain(..head_end + body_len);

        let delay = cfg.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let terminating = *phase.borrow() == Phase::Terminating;
        // A graceful server tells the client not to reuse the connection.
        let close = client_closes || (terminating && cfg.behaviour != Behaviour::CloseIdle);
        let body = format!("pod={}\n", cfg.pod);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Pod: {}\r\n{}\r\n{}",
            body.len(),
            cfg.pod,
            if close { "Connection: close\r\n" } else { "" },
            body
        );
        stream.write_all(resp.as_bytes()).await?;
        served += 1;
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

async fn wait_terminating(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Terminating).await;
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Value of a header in a lower-cased request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// Allocates and touches memory until the kernel kills us.
async fn memory_hog(after: Duration, step_mib: usize) {
    tokio::time::sleep(after).await;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; step_mib.max(1) << 20];
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = 1;
        }
        hoard.push(chunk);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_exact() {
        let head = "get / http/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(header(head, "connection"), Some("close"));
        assert_eq!(header(head, "content-length"), Some("3"));
        assert_eq!(header(head, "x-pod"), None);
    }
}
