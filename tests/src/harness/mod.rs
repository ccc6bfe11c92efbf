//! What the tests of the lab and of the real binaries share: the one
//! finder of built binaries ([`find_binary`]), the one root check that says
//! why a test skips ([`skip_unless_root`]), and (in [`plugin`]) a real
//! `fivexx-agent serve` behind the agent pod's port-forward, the cluster
//! store the plugin can trace and the plugin-during-a-scenario runner.

use std::path::{Path, PathBuf};

pub mod plugin;

pub use plugin::{
    burst_lines, ended_cleanly, plugin_store, run_plugin_during, AgentServe, BurstLine, PluginRun,
    PLUGIN_TAIL,
};

/// A built binary of this workspace: `$FIVEXX_<NAME>` (e.g.
/// `FIVEXX_KUBECTL_FIVEXX`; for the agent also `$FIVEXX_AGENT`), else next
/// to the running executable or in a parent target directory
/// (`target/debug`, `target/release`), else the workspace's `target/debug`.
/// A variable that names no file finds nothing.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let var = format!("FIVEXX_{}", name.to_uppercase().replace('-', "_"));
    let from_env = std::env::var_os(&var).or_else(|| {
        (name == "fivexx-agent")
            .then(|| std::env::var_os("FIVEXX_AGENT"))
            .flatten()
    });
    if let Some(p) = from_env {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    let mut cands = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            cands.push(dir.join(name));
            cands.push(dir.join("debug").join(name));
            cands.push(dir.join("release").join(name));
        }
    }
    cands.push(ws.join("target/debug").join(name));
    cands.into_iter().find(|p| p.is_file())
}

/// The plugin and the agent, or a message saying how to build them.
pub fn plugin_and_agent() -> Result<(PathBuf, PathBuf), String> {
    match (find_binary("kubectl-fivexx"), find_binary("fivexx-agent")) {
        (Some(p), Some(a)) => Ok((p, a)),
        _ => Err("build kubectl-fivexx and fivexx-agent first (cargo build), or set FIVEXX_KUBECTL_FIVEXX / FIVEXX_FIVEXX_AGENT".into()),
    }
}

/// True (and a printed `SKIP` line naming the test and why) when not root:
/// the lab needs root for network namespaces, cgroups and nginx, and the
/// real eBPF agent for CAP_BPF and CAP_PERFMON. A test that needs either
/// returns at once when this is true, so it never passes silently.
pub fn skip_unless_root(test: &str) -> bool {
    if crate::is_root() {
        return false;
    }
    eprintln!(
        "SKIP {test}: needs root (the node lab: network namespaces, cgroups, nginx; the eBPF agent: CAP_BPF, CAP_PERFMON); run as root"
    );
    true
}
