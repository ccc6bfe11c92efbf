//! `fivexx-agent trace`: this node's events as a table or JSON lines,
//! without any API server, optionally recorded to a capture.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use fivexx_core::capture::{CaptureHeader, CaptureWriter, WriteOptions};
use fivexx_core::KernelEventKind;
use tracer_user::clock;
use tracer_user::output;
use tracer_user::pump::{LoopOptions, Pump, PumpError};
use tracer_user::sink::{Filter, LineFormat, Printer};
use tracer_user::tracer::Tracer;

use super::{decoder_for, print_hook_notes, runtime, TracerArgs};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TraceFormat {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct TraceArgs {
    #[arg(short, long, value_enum, default_value_t = TraceFormat::Table)]
    output: TraceFormat,
    /// Only events whose sender, target or task is this process (repeatable).
    #[arg(long)]
    pid: Vec<i32>,
    /// Only process events (signals, exits, OOM) of processes in this cgroup
    /// subtree, e.g. /kubepods.slice/... (relative to the cgroup v2 mount).
    #[arg(long)]
    cgroup: Option<String>,
    /// Only network events with this local or remote port (repeatable).
    #[arg(long)]
    port: Vec<u16>,
    /// Only these kinds: send_reset, receive_reset, sock_error, state_change,
    /// syn_retransmit, signal, exit, oom_victim (comma-separated).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Print per-kind counters (generated, received, dropped) this often, in seconds.
    #[arg(long)]
    stats_interval: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Also record the events shown to this capture file (for `kubectl
    /// fivexx explain FILE` later). Refuses to overwrite an existing file.
    #[arg(long)]
    capture: Option<std::path::PathBuf>,
    #[command(flatten)]
    tracer: TracerArgs,
}

pub fn run(args: TraceArgs) -> anyhow::Result<()> {
    let kinds = parse_kinds(&args.kinds)?;
    let opts = args.tracer.options(kinds.clone())?;
    let node = args.tracer.node.clone();
    let cgroup = args
        .cgroup
        .as_ref()
        .map(|c| format!("/{}", c.trim_start_matches('/').trim_end_matches('/')));
    // Create the capture before loading: a bad path fails fast.
    let capture_file = match &args.capture {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("cannot create capture {}", path.display()))?,
        ),
        None => None,
    };
    let mut tracer = Tracer::load(&opts)?;
    print_hook_notes(&tracer);
    let capture = match capture_file {
        Some(file) => Some(capture_writer(file, &tracer, &node)?),
        None => None,
    };
    let ring = tracer.take_ring()?;
    let mut pump = Pump::new(decoder_for(&tracer, &node));
    let stats_every = args.stats_interval.map(Duration::from_secs);
    let format = match args.output {
        TraceFormat::Table => LineFormat::Table,
        TraceFormat::Json => LineFormat::Json,
    };
    let filter = Filter {
        pids: args.pid,
        ports: args.port,
        kinds,
        cgroup,
    };
    let out = std::io::BufWriter::new(std::io::stdout());
    let mut printer = Printer::new(filter, format, out, capture, stats_every);
    if format == LineFormat::Table {
        println!("{}", output::TABLE_HEADER);
    }
    let loop_opts = LoopOptions {
        tick: if printer.capture.is_some() {
            Some(Duration::from_secs(1))
        } else {
            stats_every
        },
        duration: args.duration.map(Duration::from_secs),
    };
    let result = runtime()?.block_on(pump.run(ring, &mut tracer, &mut printer, loop_opts));
    let counts = tracer.ring_counts(pump.received)?;
    if let Some(facts) = printer.finish_capture(&counts, &node)? {
        eprintln!("fivexx-agent: {facts} events recorded");
    }
    eprint!("{}", output::counters_table(&counts));
    match result {
        Err(PumpError::Sink(e)) if e.is_broken_pipe() => Ok(()),
        other => Ok(other?),
    }
}

/// `--kinds`: None (every kind) when empty.
fn parse_kinds(names: &[String]) -> anyhow::Result<Option<BTreeSet<KernelEventKind>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for k in names {
        set.insert(
            KernelEventKind::parse(k).with_context(|| format!("unknown kind {k:?} in --kinds"))?,
        );
    }
    Ok(Some(set))
}

/// A capture of this node: its header names the node and carries the
/// capability report of the programs as loaded.
fn capture_writer(
    file: std::fs::File,
    tracer: &Tracer,
    node: &str,
) -> anyhow::Result<CaptureWriter<std::fs::File>> {
    let header = CaptureHeader {
        tool_version: format!("fivexx-agent {}", env!("CARGO_PKG_VERSION")),
        context: None,
        nodes: vec![node.to_string()],
        capabilities: vec![serde_json::to_value(&tracer.report)?],
        start_ns: clock::wall_clock_offset_ns() + clock::monotonic_ns() as i64,
        end_ns: None,
        http_peek_proxies: Vec::new(),
        engine: None,
    };
    Ok(CaptureWriter::new(file, &header, WriteOptions::default())?)
}
