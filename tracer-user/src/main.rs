//! `fivexx-agent`: the node side of kubectl-fivexx.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fivexx_core::capture::{CaptureHeader, CaptureWriter, WriteOptions};
use fivexx_core::KernelEventKind;
use tracer_user::decode::Decoder;
use tracer_user::pump::{LoopOptions, Pump, PumpError, Sink};
use tracer_user::selftest::{self, children};
use tracer_user::serve;
use tracer_user::sink::{Filter, LineFormat, Printer, Publisher};
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
    /// Serve the event stream to clients (the plugin) on a loopback port.
    #[command(after_help = "Examples:\n  sudo fivexx-agent serve --listen 127.0.0.1:7450")]
    Serve(ServeArgs),
    /// Exit 0 when an agent answers on its port (liveness and readiness probes).
    Probe {
        #[arg(long, default_value = DEFAULT_LISTEN)]
        addr: SocketAddr,
    },
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
    /// Also record the events shown to this capture file (for `kubectl
    /// fivexx explain FILE` later). Refuses to overwrite an existing file.
    #[arg(long)]
    capture: Option<std::path::PathBuf>,
    #[command(flatten)]
    tracer: TracerArgs,
}

/// What loading the programs needs, shared by `trace` and `serve`.
#[derive(clap::Args)]
struct TracerArgs {
    /// Ring buffer size in bytes (power of two, at least a page).
    #[arg(long, default_value_t = DEFAULT_RING_BYTES)]
    ring_bytes: u32,
    /// Node name stamped on events (the DaemonSet passes spec.nodeName).
    #[arg(long, env = "NODE_NAME", default_value = "")]
    node: String,
    /// Peek at HTTP status lines written by processes in this cgroup (a
    /// proxy pod; repeatable). Reads at most 16 bytes of each write.
    #[arg(long)]
    http_cgroup: Vec<String>,
}

impl TracerArgs {
    fn options(&self, kinds: Option<BTreeSet<KernelEventKind>>) -> anyhow::Result<TracerOptions> {
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
        })
    }
}

const DEFAULT_LISTEN: &str = "127.0.0.1:7450";

#[derive(clap::Args)]
struct ServeArgs {
    /// Loopback address to serve on; remote clients come through pods/portforward.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    #[command(flatten)]
    tracer: TracerArgs,
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
        Command::Serve(s) => serve_cmd(s),
        Command::Probe { addr } => probe(addr),
    };
    if let Err(e) = result {
        let code = match e.downcast_ref::<Error>() {
            Some(Error::Privilege { .. }) => 2,
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
        Some(file) => {
            let header = CaptureHeader {
                tool_version: format!("fivexx-agent {}", env!("CARGO_PKG_VERSION")),
                context: None,
                nodes: vec![node.clone()],
                capabilities: vec![serde_json::to_value(&tracer.report)?],
                start_ns: tracer::wall_clock_offset_ns() + tracer::monotonic_ns() as i64,
                end_ns: None,
                http_peek_proxies: Vec::new(),
                engine: None,
            };
            Some(CaptureWriter::new(file, &header, WriteOptions::default())?)
        }
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
    if let Some(facts) = printer.finish_capture(&tracer, &node)? {
        eprintln!("fivexx-agent: {facts} events recorded");
    }
    let counters = tracer.counters()?;
    eprint!("{}", output::counters_table(&counters, &pump.received));
    match result {
        Err(PumpError::Sink(e)) if e.is_broken_pipe() => Ok(()),
        other => Ok(other?),
    }
}

fn print_hook_notes(tracer: &Tracer) {
    for h in tracer.report.hooks.iter().filter(|h| h.reason.is_some()) {
        eprintln!(
            "note: {} {:?}: {}",
            h.tracepoint,
            h.state,
            h.reason.as_deref().unwrap_or("")
        );
    }
}

fn decoder_for(tracer: &Tracer, node: &str) -> Decoder {
    Decoder::new(
        tracer::wall_clock_offset_ns(),
        tracer.facts.layout.reset_reasons.clone(),
        node.to_string(),
    )
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn serve_cmd(args: ServeArgs) -> anyhow::Result<()> {
    let opts = args.tracer.options(None)?;
    let node = args.tracer.node.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Bind before loading, so a taken port fails fast and loads nothing.
    let listener = rt.block_on(serve::bind(args.listen))?;
    let mut tracer = Tracer::load(&opts)?;
    print_hook_notes(&tracer);
    let ring = tracer.take_ring()?;
    let hub = serve::Hub::new(tracer.report.clone(), node.clone());
    let mut pump = Pump::new(decoder_for(&tracer, &node));
    let mut publisher = Publisher::new(hub.clone(), tracer.http_set().clone());
    eprintln!(
        "fivexx-agent: serving on {} (kernel {})",
        args.listen, tracer.report.kernel_release
    );
    rt.block_on(async {
        let accept = tokio::spawn(serve::accept_loop(listener, hub.clone()));
        let loop_opts = LoopOptions {
            tick: Some(Duration::from_secs(1)),
            duration: None,
        };
        let result = pump.run(ring, &mut tracer, &mut publisher, loop_opts).await;
        // Final counters, then tell clients we are leaving and let them read it.
        let _ = publisher.tick(&mut tracer, &pump.received);
        let _ = hub.shutdown.send("agent stopping (SIGTERM)".into());
        tokio::time::sleep(Duration::from_millis(200)).await;
        accept.abort();
        result
    })?;
    eprint!(
        "{}",
        output::counters_table(&tracer.counters()?, &pump.received)
    );
    Ok(())
}

fn probe(addr: SocketAddr) -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;
    runtime()?.block_on(async {
        let stream =
            tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| anyhow::anyhow!("no agent answered on {addr} within 3 s"))?
                .with_context(|| format!("no agent listening on {addr}"))?;
        let mut framed = Framed::new(stream, serve::codec());
        let sub = fivexx_core::protocol::ClientMessage::Subscribe {
            protocol: fivexx_core::protocol::PROTOCOL_VERSION,
            filter: fivexx_core::protocol::StreamFilter {
                kinds: vec![KernelEventKind::OomVictim],
                ..Default::default()
            },
        };
        framed
            .send(bytes::Bytes::from(fivexx_core::protocol::encode(&sub)))
            .await?;
        let frame = tokio::time::timeout(Duration::from_secs(3), framed.next())
            .await
            .map_err(|_| anyhow::anyhow!("agent on {addr} did not say hello within 3 s"))?
            .ok_or_else(|| anyhow::anyhow!("agent on {addr} closed the connection"))??;
        match fivexx_core::protocol::decode_agent(&frame)? {
            fivexx_core::protocol::AgentMessage::Hello { capabilities, .. } => {
                let attached = capabilities
                    .hooks
                    .iter()
                    .filter(|h| {
                        matches!(
                            h.state,
                            fivexx_core::capability::HookState::Attached
                                | fivexx_core::capability::HookState::Degraded
                        )
                    })
                    .count();
                anyhow::ensure!(attached > 0, "agent on {addr} has no hook attached");
                println!(
                    "ok: agent {} on {}, {attached}/{} hooks attached",
                    capabilities.agent_version,
                    capabilities.kernel_release,
                    capabilities.hooks.len()
                );
                Ok(())
            }
            other => anyhow::bail!("unexpected first message from {addr}: {other:?}"),
        }
    })
}
