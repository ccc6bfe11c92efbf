//! Can this process load eBPF? Checked up front so that the failure is one
//! line naming the missing privilege, not an EPERM from deep inside a load.

use crate::Error;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities of this process, from /proc/self/status.
pub fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Ok when we hold CAP_BPF and CAP_PERFMON (5.8+), or CAP_SYS_ADMIN (which
/// older kernels require instead).
pub fn check_can_trace() -> Result<(), Error> {
    let caps = effective_caps().unwrap_or(0);
    if has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(c, _)| !has(caps, *c))
        .map(|(_, n)| n)
        .collect();
    Err(Error::Privilege {
        missing: missing.join(" and "),
    })
}

/// True when the eBPF kernel tests can run here; otherwise the reason to print.
pub fn kernel_tests_possible() -> Result<(), Error> {
    check_can_trace()?;
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        // Not required, but say so: exit codes and reset states come from BTF.
        eprintln!("note: no /sys/kernel/btf/vmlinux; exit codes and reset states will be missing");
    }
    Ok(())
}
