//! The node lab: a real node on one machine that reproduces rollout and drain
//! 5xx, with ground truth.
//!
//! Everything on the data path is real: network namespaces on a bridge are
//! pods, a Debian nginx is the ingress, our own backend answers, and the
//! kubelet simulator sends real signals with kubelet's timing. Only the
//! control plane is simulated (see `cluster` and `apiserver`). All lab objects
//! carry the [`naming::PREFIX`] so that [`clean::clean`] finds them after a
//! crash.

pub mod agent;
pub mod apiserver;
pub mod backend;
pub mod cgroup;
pub mod clean;
pub mod clock;
pub mod cluster;
pub mod harness;
pub mod ingress;
pub mod k8s;
pub mod kubeconfig;
pub mod kubelet;
pub mod load;
pub mod naming;
pub mod netns;
pub mod report;
pub mod scenario;
pub mod timeline;

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
