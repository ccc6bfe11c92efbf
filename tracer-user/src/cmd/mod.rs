//! The commands of `fivexx-agent`, one file each: its flags, then one call
//! into the library. These modules belong to the binary (main.rs declares
//! them), not to the library beside them; like main.rs they may use anyhow.

pub mod check;
pub mod probe;
pub mod selftest;
pub mod serve;
pub mod trace;

use std::collections::BTreeSet;

use fivexx_core::KernelEventKind;
use tracer_user::clock;
use tracer_user::decode::Decoder;
use tracer_user::tracer::{Tracer, TracerOptions, DEFAULT_RING_BYTES};

/// Where `serve` listens and `probe` knocks by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7450";

/// What loading the programs needs, shared by `trace` and `serve`.
#[derive(clap::Args)]
pub struct TracerArgs {
    /// Ring buffer size in bytes (power of two, at least a page).
    #[arg(long, default_value_t = DEFAULT_RING_BYTES)]
    pub ring_bytes: u32,
    /// Node name stamped on events (the DaemonSet passes spec.nodeName).
    #[arg(long, env = "NODE_NAME", default_value = "")]
    pub node: String,
    /// Peek at HTTP status lines written by processes in this cgroup (a
    /// proxy pod; repeatable). Reads at most 16 bytes of each write.
    #[arg(long)]
    pub http_cgroup: Vec<String>,
    /// Attach every hook as a classic tracepoint, even where the kernel
    /// offers the cheaper BTF form (tp_btf); for comparing the two.
    #[arg(long)]
    pub classic_tracepoints: bool,
    /// Attach skb:kfree_skb even where tcp_send_reset already reports
    /// NO_SOCKET (6.10+), duplicating refusals: for measuring its cost.
    #[arg(long, hide = true)]
    pub force_kfree_skb: bool,
    /// Do not read the idle time of closing connections (no idle
    /// keep-alive close records): for measuring its cost.
    #[arg(long, hide = true)]
    pub no_idle_time: bool,
}

impl TracerArgs {
    pub fn options(
        &self,
        kinds: Option<BTreeSet<KernelEventKind>>,
    ) -> anyhow::Result<TracerOptions> {
        anyhow::ensure!(
            self.ring_bytes.is_power_of_two() && self.ring_bytes >= 4096,
            "--ring-bytes must be a power of two of at least 4096, got {}",
            self.ring_bytes
        );
        Ok(TracerOptions {
            ring_bytes: self.ring_bytes,
            kinds,
            node: self.node.clone(),
            http_cgroups: self.http_cgroup.clone(),
            classic_tracepoints: self.classic_tracepoints,
            force_kfree_skb: self.force_kfree_skb,
            no_idle_time: self.no_idle_time,
        })
    }
}

pub fn print_hook_notes(tracer: &Tracer) {
    for h in tracer.report.hooks.iter().filter(|h| h.reason.is_some()) {
        eprintln!(
            "note: {} {:?}: {}",
            h.tracepoint,
            h.state,
            h.reason.as_deref().unwrap_or("")
        );
    }
}

pub fn decoder_for(tracer: &Tracer, node: &str) -> Decoder {
    let mut d = Decoder::new(
        clock::wall_clock_offset_ns(),
        tracer.facts.layout.reset_reasons.clone(),
        node.to_string(),
    );
    d.hz = tracer.facts.layout.config.idle.hz;
    d
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
