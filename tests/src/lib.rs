//! The node lab: a real node on one machine that reproduces rollout and drain
//! 5xx, with ground truth.
//!
//! Everything on the data path is real: network namespaces on a bridge are
//! pods, a Debian nginx is the ingress, our own backend answers, and the
//! kubelet simulator sends real signals with kubelet's timing. Only the
//! control plane is simulated (see [`control`] and [`sim`]). All lab objects
//! carry the [`node::naming::PREFIX`] so that [`node::clean::clean`] finds
//! them after a crash.
//!
//! The modules follow the planes of a real cluster:
//! - [`node`]: what runs on the node: pods as network namespaces in kubelet's
//!   cgroups, the backends, the proxies (one module per proxy), the load
//!   generator, the agent beside a scenario, and the cleanup of it all;
//! - [`control`]: the control plane: the cluster store (etcd and the
//!   garbage/DaemonSet controllers whose effects the plugin sees), the fake
//!   API server that serves it over real HTTP, and the kubeconfig for it;
//! - [`sim`]: what drives the two: the kubelet simulator, the controllers a
//!   node's pods depend on (endpoints, deployment, drain), the scenarios,
//!   their timeline and report;
//! - [`harness`]: what tests of the real binaries share: one binary finder,
//!   one root check, a real agent behind the port-forward, and the
//!   plugin-during-a-scenario runner.
//!
//! [`clock`] is shared by all of them.

pub mod clock;
pub mod control;
pub mod harness;
pub mod node;
pub mod sim;

/// Errors of the lab library. Binaries and tests wrap them with anyhow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system command (`ip`, `nginx`) failed.
    #[error("`{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The lab was asked for something it cannot do.
    #[error("{0}")]
    Lab(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an io::Error with what we were doing.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// True when running as root: the lab needs it for namespaces and cgroups.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
