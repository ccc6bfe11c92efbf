//! `fivexx-lab clean`: removes every lab object, idempotently, also after a
//! crash: processes in lab namespaces and cgroups, the ingress nginx, lab
//! network namespaces, veths, the bridge and the lab's pod cgroups. Objects
//! are found by the lab's prefixes, never by broad process names.
//!
//! A lock file serialises labs on one machine: a lab holds it while it runs,
//! so `clean` at the next start never pulls the rug from a live lab.

use crate::node::naming::{self, BRIDGE, RUN_DIR, VETH_PREFIX};
use crate::node::{cgroup, netns};
use crate::{io_err, Error, Result};
use serde::Serialize;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// What `clean` removed.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct CleanReport {
    pub processes_killed: usize,
    pub namespaces_removed: usize,
    pub links_removed: usize,
    pub cgroups_removed: usize,
}

impl CleanReport {
    pub fn is_empty(&self) -> bool {
        *self == CleanReport::default()
    }
}

/// Exclusive use of the lab on this machine (flock on /run/fxlab/lock).
pub struct LabLock {
    _file: std::fs::File,
}

impl LabLock {
    /// Waits up to `timeout` for another lab to finish.
    pub fn acquire(timeout: Duration) -> Result<LabLock> {
        std::fs::create_dir_all(RUN_DIR).map_err(io_err(format!("creating {RUN_DIR}")))?;
        let path = format!("{RUN_DIR}/lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {path}")))?;
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(LabLock { _file: file });
            }
            if Instant::now() > deadline {
                return Err(Error::Lab(format!(
                    "another lab holds {path} (still running after {timeout:?})"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Removes everything the lab may have left. Safe to run any number of times.
pub fn clean() -> CleanReport {
    let mut report = CleanReport::default();
    // 1. Processes: in lab namespaces, in lab cgroups, the ingress master.
    let mut pids: Vec<i32> = Vec::new();
    for ns in netns::lab_namespaces() {
        pids.extend(netns::netns_pids(&ns));
    }
    for dir in cgroup::lab_pod_dirs() {
        pids.extend(pids_below(&dir));
    }
    if let Ok(s) = std::fs::read_to_string(format!("{RUN_DIR}/ingress/nginx.pid")) {
        if let Ok(pid) = s.trim().parse::<i32>() {
            if is_lab_nginx(pid) {
                pids.push(pid);
            }
        }
    }
    pids.extend(lab_processes());
    pids.sort_unstable();
    pids.dedup();
    let me = std::process::id() as i32;
    for pid in pids.into_iter().filter(|p| *p != me && *p > 1) {
        // SAFETY: plain kill(2).
        if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
            report.processes_killed += 1;
        }
    }
    // 2. Cgroups (waits for the killed processes to leave them).
    for dir in cgroup::lab_pod_dirs() {
        cgroup::remove_pod_dir(&dir);
        report.cgroups_removed += 1;
    }
    // 3. Namespaces (their veth ends go with them), then host links.
    for ns in netns::lab_namespaces() {
        if netns::ip(&["netns", "del", &ns]).is_ok() {
            report.namespaces_removed += 1;
        }
    }
    for link in lab_links() {
        if netns::ip(&["link", "del", &link]).is_ok() {
            report.links_removed += 1;
        }
    }
    let _ = std::fs::remove_dir_all(format!("{RUN_DIR}/ingress"));
    let _ = std::fs::remove_dir_all(format!("{RUN_DIR}/pods"));
    report
}

/// Lab objects that exist now, one line each; empty when the machine is clean.
pub fn leftovers() -> Vec<String> {
    let mut left = Vec::new();
    for ns in netns::lab_namespaces() {
        left.push(format!("netns {ns}"));
    }
    for l in lab_links() {
        left.push(format!("link {l}"));
    }
    for d in cgroup::lab_pod_dirs() {
        left.push(format!("cgroup {}", d.display()));
        for pid in pids_below(&d) {
            left.push(format!("process {pid} in {}", d.display()));
        }
    }
    for pid in lab_processes() {
        left.push(format!("process {pid} (lab backend or ingress nginx)"));
    }
    left
}

/// Lab backends and lab nginx processes anywhere on the machine, by their
/// command lines (`fivexx-lab backend --pod`, nginx with the lab prefix).
pub fn lab_processes() -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let is = |i: usize, s: &str| args.get(i).is_some_and(|a| *a == s.as_bytes());
            let backend = args.first().is_some_and(|a| a.ends_with(b"fivexx-lab"))
                && is(1, "backend")
                && is(2, "--pod");
            backend || (is_lab_nginx(*pid) && args.first().is_some_and(|a| a.starts_with(b"nginx")))
        })
        .collect()
}

fn lab_links() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == BRIDGE || n.starts_with(VETH_PREFIX))
        .collect()
}

fn pids_below(dir: &std::path::Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            stack.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    pids
}

/// Only an nginx whose command line names the lab's prefix.
fn is_lab_nginx(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(naming::RUN_DIR))
        .unwrap_or(false)
}
