//! Is the agent in the host's PID namespace? Signal, exit and OOM records
//! carry host pids (the kernel's `task->pid`); the agent maps them to pods
//! through `/proc/PID/cgroup`. In a container without `hostPID: true` its
//! `/proc` shows another namespace, those lookups miss or hit the wrong
//! process, and the records arrive without their pods: a half-working
//! agent unless the capability report says so.

/// The inode of the kernel's initial PID namespace (`PROC_PID_INIT_INO`,
/// include/linux/proc_ns.h): a fixed constant of the proc namespace code
/// since Linux 3.8, not a layout.
const HOST_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// The note for the process hooks when this process is not in the host's
/// PID namespace; `None` in it (or when it cannot be told).
pub fn outside_host_note() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    note_for(&link.to_string_lossy())
}

fn note_for(link: &str) -> Option<String> {
    let ino: u64 = link
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    (ino != HOST_PID_NS_INO).then(|| {
        format!(
            "not in the host PID namespace ({link}; the DaemonSet needs hostPID: true): \
             its pids cannot be mapped to pods"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_initial_namespace_is_the_host_s() {
        assert_eq!(note_for("pid:[4026531836]"), None);
        let n = note_for("pid:[4026532712]").unwrap();
        assert!(n.contains("hostPID: true"), "{n}");
        assert_eq!(note_for("garbage"), None);
    }
}
