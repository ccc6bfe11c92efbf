//! Pod cgroups laid out as kubelet lays them out with the systemd driver and
//! containerd: `kubepods.slice/kubepods-burstable.slice/
//! kubepods-burstable-pod<UID with _>.slice/cri-containerd-<ID>.scope` under
//! the cgroup v2 mount. The agent finds pods from exactly these paths.
//!
//! On a hybrid host the v2 mount has no controllers, so a memory limit (the
//! OOM scenario) goes in the v1 memory hierarchy at the same relative path,
//! which is what kubelet does on a cgroup v1 node.

use crate::node::naming::UID_PREFIX;
use crate::{io_err, Error, Result};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const QOS_SLICES: [&str; 2] = ["kubepods.slice", "kubepods-burstable.slice"];

/// Where cgroup v2 is mounted: `/sys/fs/cgroup/unified` on hybrid hosts,
/// `/sys/fs/cgroup` on unified ones.
pub fn v2_root() -> PathBuf {
    let hybrid = Path::new("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").exists() {
        hybrid.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// The v1 memory hierarchy, if this host has one.
pub fn v1_memory_root() -> Option<PathBuf> {
    let p = Path::new("/sys/fs/cgroup/memory");
    p.join("memory.limit_in_bytes")
        .exists()
        .then(|| p.to_path_buf())
}

/// The pod-level slice name for a UID.
pub fn pod_slice(uid: &str) -> String {
    format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_"))
}

/// The container scope for a container id.
pub fn container_scope(container_id: &str) -> String {
    format!("cri-containerd-{container_id}.scope")
}

/// The kubelet-style relative path of a container's cgroup.
pub fn container_rel_path(uid: &str, container_id: &str) -> PathBuf {
    let mut p = PathBuf::new();
    for s in QOS_SLICES {
        p.push(s);
    }
    p.push(pod_slice(uid));
    p.push(container_scope(container_id));
    p
}

/// One container's cgroup (v2, plus v1 memory when limited).
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    pub v2_dir: PathBuf,
    pub v1_memory_dir: Option<PathBuf>,
}

impl ContainerCgroup {
    /// Creates the directories; `memory_limit` (bytes) needs a memory
    /// controller: v2 if enabled there, else v1.
    pub fn create(uid: &str, container_id: &str, memory_limit: Option<u64>) -> Result<Self> {
        let rel = container_rel_path(uid, container_id);
        let v2_dir = v2_root().join(&rel);
        fs::create_dir_all(&v2_dir).map_err(io_err(format!("creating {}", v2_dir.display())))?;
        let mut cg = ContainerCgroup {
            v2_dir,
            v1_memory_dir: None,
        };
        if let Some(limit) = memory_limit {
            if cg.v2_dir.join("memory.max").exists() {
                write(&cg.v2_dir.join("memory.max"), &limit.to_string())?;
                write(&cg.v2_dir.join("memory.swap.max"), "0").ok();
            } else if let Some(root) = v1_memory_root() {
                let dir = root.join(&rel);
                fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
                cg.v1_memory_dir = Some(dir.clone());
                write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            } else {
                cg.remove();
                return Err(Error::Lab(
                    "no memory controller: neither cgroup v2 memory.max nor a v1 memory hierarchy"
                        .into(),
                ));
            }
        }
        Ok(cg)
    }

    /// `cgroup.procs` files a new process must join, opened now so that the
    /// child can join them between fork and exec.
    pub fn open_procs_files(&self) -> Result<Vec<OwnedFd>> {
        let mut dirs = vec![self.v2_dir.clone()];
        dirs.extend(self.v1_memory_dir.clone());
        dirs.iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map(OwnedFd::from)
                    .map_err(io_err(format!("opening {}", p.display())))
            })
            .collect()
    }

    /// The cgroup v2 id (inode of the directory), as the agent reports it.
    pub fn id(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&self.v2_dir).ok().map(|m| m.ino())
    }

    pub fn pids(&self) -> Vec<i32> {
        read_pids(&self.v2_dir)
    }

    /// Kills what is left and removes the container and pod directories.
    pub fn remove(&self) {
        for dir in std::iter::once(&self.v2_dir).chain(self.v1_memory_dir.iter()) {
            kill_and_rmdir(dir);
            if let Some(pod_dir) = dir.parent() {
                let _ = fs::remove_dir(pod_dir);
            }
        }
    }
}

/// The number of OOM kills the container's memory cgroup has seen.
pub fn oom_kills(cg: &ContainerCgroup) -> u64 {
    let file = match &cg.v1_memory_dir {
        Some(d) => d.join("memory.oom_control"),
        None => cg.v2_dir.join("memory.events"),
    };
    fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("oom_kill ").map(|v| v.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(io_err(format!("writing {value} to {}", path.display())))
}

fn read_pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILLs every process in `dir`, waits for it to empty, and removes it.
fn kill_and_rmdir(dir: &Path) {
    for _ in 0..50 {
        let pids = read_pids(dir);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = fs::remove_dir(dir);
}

/// Every lab pod slice directory (v2 and v1 memory), found by the lab's UID
/// prefix, for `clean`.
pub fn lab_pod_dirs() -> Vec<PathBuf> {
    let mut roots = vec![v2_root()];
    roots.extend(v1_memory_root());
    let want = format!("kubepods-burstable-pod{UID_PREFIX}");
    let mut found = Vec::new();
    for root in roots {
        let qos = QOS_SLICES.iter().fold(root, |p, s| p.join(s));
        if let Ok(rd) = fs::read_dir(&qos) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&want) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

/// Removes a lab pod slice with all its containers; then the QoS slices if
/// nothing else lives there.
pub fn remove_pod_dir(pod_dir: &Path) {
    if let Ok(rd) = fs::read_dir(pod_dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                kill_and_rmdir(&e.path());
            }
        }
    }
    kill_and_rmdir(pod_dir);
    if let Some(qos) = pod_dir.parent() {
        if fs::remove_dir(qos).is_ok() {
            if let Some(top) = qos.parent() {
                let _ = fs::remove_dir(top);
            }
        }
    }
}

/// Joins the cgroups whose `cgroup.procs` are open, from the child between
/// fork and exec. Only async-signal-safe calls.
pub fn join_in_child(procs_fds: &[OwnedFd]) -> std::io::Result<()> {
    for fd in procs_fds {
        // SAFETY: write(2) of a static buffer to an open fd.
        let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_systemd_layout() {
        let p = container_rel_path("f1ab0000-1111-4222-8333-444455556666", &"a".repeat(64));
        assert_eq!(
            p.to_string_lossy(),
            format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podf1ab0000_1111_4222_8333_444455556666.slice/cri-containerd-{}.scope",
                "a".repeat(64)
            )
        );
    }
}
