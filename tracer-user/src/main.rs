//! `fivexx-agent`: the node side of kubectl-fivexx.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fivexx_core::capture::{CaptureHeader, CaptureWriter, DropCounters, WriteOptions};
use fivexx_core::{Fact, KernelEvent, KernelEventKind};
use tracer_user::decode::Decoder;
use tracer_user::enrich::Enricher;
use tracer_user::pump::{LoopOptions, Pump, Sink};
use tracer_user::selftest::{self, children};
use tracer_user::serve;
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
    let mut printer = Printer {
        filter: Filter {
            pids: args.pid,
            ports: args.port,
            kinds,
            cgroup,
        },
        format: args.output,
        out: std::io::BufWriter::new(std::io::stdout()),
        capture,
        stats_every,
        last_stats: std::time::Instant::now(),
    };
    if printer.format == TraceFormat::Table {
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
    printer.finish_capture(&tracer, &node)?;
    let counters = tracer.counters()?;
    eprint!("{}", output::counters_table(&counters, &pump.received));
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Prints what passes the filter, as a table or JSON lines.
struct Printer {
    filter: Filter,
    format: TraceFormat,
    out: std::io::BufWriter<std::io::Stdout>,
    capture: Option<CaptureWriter<std::fs::File>>,
    stats_every: Option<Duration>,
    last_stats: std::time::Instant,
}

impl Printer {
    /// Writes the drop counters and the end record; what was recorded so
    /// far is already on disk (flushed every second).
    fn finish_capture(&mut self, tracer: &Tracer, node: &str) -> anyhow::Result<()> {
        let Some(mut cap) = self.capture.take() else {
            return Ok(());
        };
        let now = tracer::wall_clock_offset_ns() + tracer::monotonic_ns() as i64;
        let dropped = tracer
            .counters()?
            .by_kind()
            .into_iter()
            .map(|(k, _, d)| (k.name().to_string(), d))
            .collect();
        cap.write_drops(&DropCounters {
            at_ns: now,
            node: node.to_string(),
            dropped,
        })?;
        let facts = cap.facts();
        cap.finish(now)?;
        eprintln!("fivexx-agent: {facts} events recorded");
        Ok(())
    }
}

impl Sink for Printer {
    fn event(&mut self, ev: KernelEvent, enricher: &mut Enricher) -> anyhow::Result<()> {
        if !self.filter.keep(&ev, enricher) {
            return Ok(());
        }
        if let Some(cap) = self.capture.as_mut() {
            cap.write_fact(&Fact::Kernel(ev.clone()))?;
        }
        match self.format {
            TraceFormat::Json => serde_json::to_writer(&mut self.out, &ev)?,
            TraceFormat::Table => self.out.write_all(output::table_line(&ev).as_bytes())?,
        }
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn batch_done(&mut self) -> anyhow::Result<()> {
        Ok(self.out.flush()?)
    }

    fn tick(&mut self, tracer: &mut Tracer, received: &[u64]) -> anyhow::Result<()> {
        if let Some(cap) = self.capture.as_mut() {
            cap.flush()?; // a crash loses at most the last second
        }
        if self
            .stats_every
            .is_some_and(|every| self.last_stats.elapsed() >= every)
        {
            self.last_stats = std::time::Instant::now();
            eprint!("{}", output::counters_table(&tracer.counters()?, received));
        }
        Ok(())
    }
}

/// Publishes every event to the connected clients.
struct Publisher {
    hub: std::sync::Arc<serve::Hub>,
    /// `--http-cgroup` ids, peeked whatever the clients ask.
    static_http: std::collections::BTreeSet<u64>,
    /// The proxy pods clients asked to peek at, as last applied.
    http_pods: std::collections::BTreeSet<String>,
    cgroup_root: Option<std::path::PathBuf>,
    pod_cgroups: tracer_user::enrich::PodCgroups,
}

impl Publisher {
    /// Peeks at the proxy pods the clients name now (their containers are
    /// listed again every tick: a restarted container has a new cgroup).
    fn sync_http_peek(&mut self, tracer: &mut Tracer) {
        let pods = self.hub.http_pods();
        if pods.is_empty() && self.http_pods.is_empty() {
            return;
        }
        let mut ids = self.static_http.clone();
        if let Some(root) = &self.cgroup_root {
            ids.extend(self.pod_cgroups.ids(root, &pods));
        }
        match tracer.set_http_cgroups(&ids) {
            Ok(on) if pods != self.http_pods => {
                tracing::info!(
                    "HTTP peek {} for {} proxy pod(s), {} cgroup(s)",
                    if on { "on" } else { "off" },
                    pods.len(),
                    ids.len()
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("HTTP peek: {e}"),
        }
        self.http_pods = pods;
    }
}

impl Sink for Publisher {
    fn event(&mut self, ev: KernelEvent, _: &mut Enricher) -> anyhow::Result<()> {
        self.hub.publish(ev);
        Ok(())
    }

    fn tick(&mut self, tracer: &mut Tracer, _received: &[u64]) -> anyhow::Result<()> {
        self.sync_http_peek(tracer);
        let c = tracer.counters()?;
        let mut k = self.hub.kernel.lock().expect("lock");
        for (kind, generated, dropped) in c.by_kind() {
            k.0.insert(kind, generated);
            k.1.insert(kind, dropped);
        }
        Ok(())
    }
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
    let mut publisher = Publisher {
        hub: hub.clone(),
        static_http: tracer.http_set().clone(),
        http_pods: Default::default(),
        cgroup_root: tracer_user::enrich::cgroup2_root(),
        pod_cgroups: Default::default(),
    };
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
