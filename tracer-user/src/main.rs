//! `fivexx-agent`: the node side of kubectl-fivexx.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fivexx_core::{KernelEvent, KernelEventKind};
use tokio::io::unix::AsyncFd;
use tracer_user::decode::Decoder;
use tracer_user::enrich::Enricher;
use tracer_user::selftest::{self, children};
use tracer_user::tracer::{self, KernelFacts, Tracer, TracerOptions, DEFAULT_RING_BYTES};
use tracer_user::{output, Error};

#[derive(Parser)]
#[command(
    name = "fivexx-agent",
    version,
    about = "Traces TCP resets, refused and timed-out connects, and pod-killing signals with eBPF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report what this kernel supports: hooks, layouts, BTF, ring buffer.
    #[command(after_help = "Examples:\n  fivexx-agent check\n  fivexx-agent check -o json")]
    Check {
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
        /// Load and attach the programs to prove they work (needs root); without
        /// it, only layouts are read.
        #[arg(long)]
        load: bool,
    },
    /// Stream kernel events on this node, without any API server.
    #[command(
        after_help = "Examples:\n  sudo fivexx-agent trace\n  sudo fivexx-agent trace -o json --kinds signal,exit\n  sudo fivexx-agent trace --port 8080 --stats-interval 10"
    )]
    Trace(TraceArgs),
    /// Run the kernel self-tests: real programs, real sockets and signals.
    Selftest {
        /// Run only this case.
        #[arg(long)]
        only: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum TraceFormat {
    Table,
    Json,
}

#[derive(clap::Args)]
struct TraceArgs {
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
    /// Ring buffer size in bytes (power of two, at least a page).
    #[arg(long, default_value_t = DEFAULT_RING_BYTES)]
    ring_bytes: u32,
    /// Node name stamped on events.
    #[arg(long, env = "NODE_NAME", default_value = "")]
    node: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(children::CHILD_ARG) {
        children::run(&args[2..]);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIVEXX_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { output, load } => check(output, load),
        Command::Trace(t) => trace(t),
        Command::Selftest { only } => run_selftest(only),
    };
    if let Err(e) = result {
        let code = match e.downcast_ref::<Error>() {
            Some(Error::Privilege(_)) => 2,
            _ => 1,
        };
        eprintln!("fivexx-agent: {e:#}");
        std::process::exit(code);
    }
}

fn check(format: ReportFormat, load: bool) -> anyhow::Result<()> {
    let report = if load {
        Tracer::load(&TracerOptions::default())?.report
    } else {
        let may_mount = tracer_user::privilege::check_can_trace().is_ok();
        KernelFacts::discover(may_mount)?.report(DEFAULT_RING_BYTES, "")
    };
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string(&report)?),
        ReportFormat::Text => print!("{}", output::report_text(&report)),
    }
    Ok(())
}

fn run_selftest(only: Option<String>) -> anyhow::Result<()> {
    if let Some(o) = &only {
        anyhow::ensure!(
            selftest::CASES.iter().any(|(n, _)| n == o),
            "unknown case {o}; known: {}",
            selftest::CASES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let exe = std::env::current_exe().context("locating our own binary for child processes")?;
    let summary = selftest::run_all(&exe, only.as_deref());
    println!("FIVEXX-SELFTEST {}", serde_json::to_string(&summary)?);
    if summary.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// What `trace` keeps and what it drops.
struct Filter {
    pids: Vec<i32>,
    ports: Vec<u16>,
    kinds: Option<BTreeSet<KernelEventKind>>,
    cgroup: Option<String>,
}

impl Filter {
    fn keep(&self, ev: &KernelEvent, enricher: &mut Enricher) -> bool {
        if self.kinds.as_ref().is_some_and(|k| !k.contains(&ev.kind)) {
            return false;
        }
        if !self.pids.is_empty() {
            let pids = [
                ev.task.as_ref().map(|t| t.pid),
                ev.target.as_ref().map(|t| t.pid),
            ];
            if !pids.iter().flatten().any(|p| self.pids.contains(p)) {
                return false;
            }
        }
        if !self.ports.is_empty()
            && !ev
                .tuple
                .is_some_and(|t| self.ports.contains(&t.sport) || self.ports.contains(&t.dport))
        {
            return false;
        }
        if let Some(prefix) = &self.cgroup {
            let path = ev.cgroup_id.and_then(|id| enricher.cgroup_path(id));
            if !path.is_some_and(|p| p.starts_with(prefix.as_str())) {
                return false;
            }
        }
        true
    }
}

fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let kinds = if args.kinds.is_empty() {
        None
    } else {
        let mut set = BTreeSet::new();
        for k in &args.kinds {
            set.insert(
                KernelEventKind::parse(k)
                    .with_context(|| format!("unknown kind {k:?} in --kinds"))?,
            );
        }
        Some(set)
    };
    anyhow::ensure!(
        args.ring_bytes.is_power_of_two() && args.ring_bytes >= 4096,
        "--ring-bytes must be a power of two of at least 4096, got {}",
        args.ring_bytes
    );
    let cgroup = args
        .cgroup
        .as_ref()
        .map(|c| format!("/{}", c.trim_start_matches('/').trim_end_matches('/')));
    let opts = TracerOptions {
        ring_bytes: args.ring_bytes,
        kinds: kinds.clone(),
        node: args.node.clone(),
    };
    let mut tracer = Tracer::load(&opts)?;
    for h in tracer.report.hooks.iter().filter(|h| h.reason.is_some()) {
        eprintln!(
            "note: {} {:?}: {}",
            h.tracepoint,
            h.state,
            h.reason.as_deref().unwrap_or("")
        );
    }
    let ring = tracer.take_ring()?;
    let decoder = Decoder::new(
        tracer::wall_clock_offset_ns(),
        tracer.facts.layout.reset_reasons.clone(),
        args.node.clone(),
    );
    let filter = Filter {
        pids: args.pid,
        ports: args.port,
        kinds,
        cgroup,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut printer = Printer {
        decoder: &decoder,
        filter: &filter,
        format: args.output,
        enricher: Enricher::new(),
        received: vec![0u64; tracer_ebpf::KIND_COUNT],
    };
    rt.block_on(stream(
        ring,
        &mut printer,
        args.stats_interval,
        args.duration,
        &mut tracer,
    ))?;
    tracer.detach_all();
    let counters = tracer.counters()?;
    eprint!("{}", output::counters_table(&counters, &printer.received));
    Ok(())
}

/// Decodes, enriches, filters and prints records; counts what it received.
struct Printer<'a> {
    decoder: &'a Decoder,
    filter: &'a Filter,
    format: TraceFormat,
    enricher: Enricher,
    received: Vec<u64>,
}

impl Printer<'_> {
    /// Reads everything the ring holds now. Err when stdout is gone (`| head`).
    fn drain(&mut self, ring: &mut aya::maps::RingBuf<aya::maps::MapData>) -> anyhow::Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        while let Some(item) = ring.next() {
            let decoded = self.decoder.decode_bytes(&item);
            drop(item);
            let Ok(mut ev) = decoded else { continue };
            self.received[kind_index(ev.kind)] += 1;
            self.enricher.enrich(&mut ev);
            if !self.filter.keep(&ev, &mut self.enricher) {
                continue;
            }
            let line = match self.format {
                TraceFormat::Json => serde_json::to_string(&ev)?,
                TraceFormat::Table => output::table_line(&ev),
            };
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        Ok(())
    }
}

async fn stream(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    printer: &mut Printer<'_>,
    stats_interval: Option<u64>,
    duration: Option<u64>,
    tracer: &mut Tracer,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // SAFETY: the ring buffer owns its fd for as long as the AsyncFd lives,
    // and nothing else closes it.
    let mut fd = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    printer.enricher.refresh_processes();
    let mut refresh = tokio::time::interval(Duration::from_secs(2));
    let stats_every = Duration::from_secs(stats_interval.unwrap_or(3600 * 24 * 365).max(1));
    let mut stats =
        tokio::time::interval_at(tokio::time::Instant::now() + stats_every, stats_every);
    let deadline = duration.map(|d| tokio::time::Instant::now() + Duration::from_secs(d));
    if printer.format == TraceFormat::Table {
        println!("{}", output::TABLE_HEADER);
    }
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                if printer.drain(guard.get_inner_mut()).is_err() {
                    return Ok(()); // the reader went away
                }
                guard.clear_ready();
            }
            _ = refresh.tick() => printer.enricher.refresh_processes(),
            _ = stats.tick() => {
                let c = tracer.counters()?;
                eprint!("{}", output::counters_table(&c, &printer.received));
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
        }
    }
    // Detach first, then read what is still in the ring, so the final
    // counters balance: received + dropped = generated.
    tracer.detach_all();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = printer.drain(fd.get_mut());
    Ok(())
}

fn kind_index(kind: KernelEventKind) -> usize {
    KernelEventKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}
