//! fivexx-agent: loads the kernel programs, reads tracepoint layouts, decodes
//! and enriches events, and serves them. Linux only.

pub mod btf;
pub mod decode;
pub mod enrich;
pub mod layout;
pub mod output;
pub mod privilege;
pub mod pump;
pub mod selftest;
pub mod serve;
pub mod tracefs;
pub mod tracer;

/// Errors of the agent library. Each says what failed and, where there is
/// one, what to do about it: they end up as the one-line cause a user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tracefs is not mounted (looked in /sys/kernel/tracing and /sys/kernel/debug/tracing); mount it with: mount -t tracefs nodev /sys/kernel/tracing")]
    NoTracefs,
    #[error("malformed tracepoint format file {file}: {detail}")]
    MalformedFormat { file: String, detail: String },
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unreadable kernel BTF: {0}")]
    Btf(String),
    #[error("{0}")]
    Privilege(String),
    #[error("loading the eBPF object failed: {0}")]
    Load(String),
    #[error("kernel map {0} missing from the eBPF object")]
    MissingMap(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
