//! The agent as an attachment of a scenario: `fivexx-agent trace -o json`
//! runs beside the lab and its events are saved next to the ground truth.

use crate::{io_err, Error, Result};
use fivexx_core::event::{KernelEvent, KernelEventKind};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running `fivexx-agent trace`.
pub struct AgentRun {
    child: Child,
    pub events_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl AgentRun {
    /// Starts the agent and waits until it demonstrably sees events: it
    /// SIGTERMs a `sleep` of its own until the agent reports that signal.
    pub async fn start(bin: &Path, out_dir: &Path) -> Result<AgentRun> {
        let events_path = out_dir.join("agent.jsonl");
        let stderr_path = out_dir.join("agent.stderr");
        let out = std::fs::File::create(&events_path).map_err(io_err("creating agent.jsonl"))?;
        let err = std::fs::File::create(&stderr_path).map_err(io_err("creating agent.stderr"))?;
        let child = Command::new(bin)
            .args(["trace", "-o", "json", "--node", "lab-node-1"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(io_err(format!("starting {}", bin.display())))?;
        let mut run = AgentRun {
            child,
            events_path,
            stderr_path,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = run.child.try_wait() {
                let msg = std::fs::read_to_string(&run.stderr_path).unwrap_or_default();
                return Err(Error::Lab(format!(
                    "fivexx-agent exited at start ({status}): {}",
                    msg.trim()
                )));
            }
            let mut probe = Command::new("sleep")
                .arg("30")
                .kill_on_drop(true)
                .spawn()
                .map_err(io_err("spawning sleep"))?;
            let pid = probe.id().unwrap_or(0) as i32;
            tokio::time::sleep(Duration::from_millis(30)).await;
            // SAFETY: plain kill(2) to our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let _ = probe.wait().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let seen = read_events(&run.events_path).iter().any(|e| {
                e.kind == KernelEventKind::Signal && e.target.as_ref().is_some_and(|t| t.pid == pid)
            });
            if seen {
                return Ok(run);
            }
            if tokio::time::Instant::now() > deadline {
                run.stop().await;
                return Err(Error::Lab(
                    "fivexx-agent reported no event within 20 s".into(),
                ));
            }
        }
    }

    /// SIGTERM (the agent detaches and exits 0), then its events.
    pub async fn stop(&mut self) -> Vec<KernelEvent> {
        if let Some(pid) = self.child.id() {
            // SAFETY: plain kill(2) to our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        read_events(&self.events_path)
    }
}

/// Parses JSON lines of `KernelEvent`, skipping lines that are not events.
pub fn read_events(path: &Path) -> Vec<KernelEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Events whose 4-tuple touches one of `ips` (either end).
pub fn events_for_ips<'a>(events: &'a [KernelEvent], ips: &[String]) -> Vec<&'a KernelEvent> {
    events
        .iter()
        .filter(|e| {
            e.tuple.is_some_and(|t| {
                ips.iter()
                    .any(|ip| t.daddr.to_string() == *ip || t.saddr.to_string() == *ip)
            })
        })
        .collect()
}
