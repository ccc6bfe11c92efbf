//! fivexx-agent: loads the kernel programs, reads tracepoint layouts, decodes
//! and enriches events, and serves them. Linux only.

pub mod btf;
pub mod clock;
pub mod counts;
pub mod decode;
pub mod enrich;
pub mod jiffies;
pub mod layout;
pub mod output;
pub mod pidns;
pub mod privilege;
pub mod pump;
pub mod selftest;
pub mod serve;
pub mod sink;
pub mod tracefs;
pub mod tracer;

/// Errors of the agent library. Each says what failed and, where there is
/// one, what to do about it: they end up as the one-line cause a user sees.
/// The cause of a cause is kept as its `source()`, never flattened into the
/// message: print them with `{:#}` through anyhow, or with [`chain`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tracefs is not mounted (looked in /sys/kernel/tracing and /sys/kernel/debug/tracing); mount it with: mount -t tracefs nodev /sys/kernel/tracing")]
    NoTracefs,
    #[error("malformed tracepoint format file {file}: {detail}")]
    MalformedFormat { file: String, detail: String },
    #[error("cannot read {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unreadable kernel BTF")]
    Btf(#[from] btf::BtfError),
    #[error("fivexx-agent needs {missing} (or root) to load eBPF programs; run it with sudo, or grant the capabilities")]
    Privilege { missing: String },
    #[error("loading the eBPF object failed")]
    Load(#[from] aya::EbpfError),
    #[error("kernel map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("kernel map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources on one line, `outer: inner: ...`, for the
/// places that keep a failure as text (a hook's reason in the capability
/// report, a self-test's detail).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
