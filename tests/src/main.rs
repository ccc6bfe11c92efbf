//! `fivexx-lab`: the node lab's command line. Each scenario is a subcommand;
//! `backend` is what runs inside every pod; `clean` removes every lab object.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fivexx_lab::node::backend::{self, BackendConfig, Behaviour};
use fivexx_lab::node::clean;
use fivexx_lab::node::proxy::envoy::EnvoyLogFormat;
use fivexx_lab::node::proxy::haproxy::HttpReuse;
use fivexx_lab::node::proxy::ProxyKind;
use fivexx_lab::sim::scenario::{self, RunOptions, ScenarioKind, ScenarioParams};
use std::path::PathBuf;

mod apiserve;

#[derive(Parser)]
#[command(
    name = "fivexx-lab",
    version,
    about = "A real node on one machine that reproduces rollout and drain 5xx, with ground truth (run as root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run any scenario by name: `run --scenario ip-gone --proxy envoy`.
    Run {
        #[arg(long, value_enum)]
        scenario: ScenarioKind,
        #[command(flatten)]
        flags: ScenarioFlags,
    },
    /// Rolling update, endpoint removal lags SIGTERM: refused connects and 502s.
    RolloutNoPrestop(ScenarioFlags),
    /// The backend ignores SIGTERM: SIGKILL at grace expiry causes 502s.
    IgnoreSigterm(ScenarioFlags),
    /// The backend closes pooled keep-alive connections on SIGTERM: 502s from resets.
    KeepaliveRace(ScenarioFlags),
    /// The same rollout with a preStop sleep longer than the lag: zero 5xx.
    PrestopFixed(ScenarioFlags),
    /// A node drain across several pods: cordon, evict one by one.
    Drain(ScenarioFlags),
    /// Endpoints still list a pod whose netns is gone: connect timeouts and 504s.
    IpGone(ScenarioFlags),
    /// An OOM kill mid-request under a cgroup memory limit.
    Oom(ScenarioFlags),
    /// A healthy backend closes idle keep-alive connections before the
    /// proxy does: 502s from resets on pooled connections, no rollout.
    KeepaliveIdle(ScenarioFlags),
    /// The lab's HTTP backend (runs inside each pod).
    Backend(BackendConfig),
    /// Print what a run showed: 5xx from the ground truth, what Kubernetes
    /// did, and the agent's events for the failing pods.
    Report {
        /// The run's output directory (`--out` of a scenario).
        dir: PathBuf,
        /// How many network events to list.
        #[arg(long, default_value_t = 12)]
        max_events: usize,
    },
    /// Remove every lab namespace, veth, bridge, cgroup and process (idempotent).
    Clean,
    /// List lab objects still on this machine; exit 1 if there are any.
    Leftovers,
    /// Serve only the fake API server (one node, no scenario) whose agent
    /// DaemonSet pod port-forwards to a real `fivexx-agent serve`; writes a
    /// kubeconfig, prints one ready line and runs until SIGTERM or SIGINT.
    Api(apiserve::ApiFlags),
}

/// Every parameter of a scenario; unset ones take the scenario's defaults.
#[derive(Args, Clone, Debug)]
struct ScenarioFlags {
    /// Directory for ground-truth.jsonl, timeline.jsonl, agent.jsonl, summary.json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Attach the real agent (`fivexx-agent trace -o json`).
    #[arg(long)]
    agent: bool,
    /// The agent binary (default: $FIVEXX_AGENT or next to this binary).
    #[arg(long, requires = "agent")]
    agent_bin: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Serve the lab's cluster state with the fake API server on this
    /// address (127.0.0.1:0 picks a port) during the run; OUT/kubeconfig
    /// points at it.
    #[arg(long)]
    api_addr: Option<std::net::SocketAddr>,
    #[arg(long)]
    replicas: Option<u32>,
    /// Requests per second.
    #[arg(long)]
    rate: Option<u32>,
    /// How long the load runs.
    #[arg(long)]
    load_ms: Option<u64>,
    /// Load before the rollout, drain or OOM starts.
    #[arg(long)]
    warmup_ms: Option<u64>,
    /// terminationGracePeriod.
    #[arg(long)]
    grace_ms: Option<u64>,
    /// Time for an endpoint change to reach the ingress.
    #[arg(long)]
    endpoint_lag_ms: Option<u64>,
    /// preStop sleep (0: none).
    #[arg(long)]
    prestop_ms: Option<u64>,
    /// An exec preStop hook, e.g. "sleep 5" (run with the container's PATH).
    #[arg(long, value_name = "COMMAND")]
    prestop_exec: Option<String>,
    /// The image has no coreutils: exec hooks find no `sleep`.
    #[arg(long)]
    distroless: bool,
    /// Time from container exit to netns removal.
    #[arg(long)]
    sandbox_teardown_ms: Option<u64>,
    /// Time from container start to the first readiness probe.
    #[arg(long)]
    readiness_delay_ms: Option<u64>,
    /// Backend shutdown behaviour.
    #[arg(long, value_enum)]
    behaviour: Option<Behaviour>,
    /// Backend delay before every response.
    #[arg(long)]
    delay_ms: Option<u64>,
    /// Longest backend drain after SIGTERM.
    #[arg(long)]
    drain_ms: Option<u64>,
    /// Backend closes keep-alive connections idle this long (0: never).
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    /// Requests sent at once every burst period, instead of a steady rate.
    #[arg(long)]
    burst: Option<u32>,
    /// The period between bursts (default: the backend's idle timeout).
    #[arg(long)]
    burst_period_ms: Option<u64>,
    #[arg(long)]
    max_surge: Option<u32>,
    #[arg(long)]
    max_unavailable: Option<u32>,
    /// drain: a PodDisruptionBudget with this minAvailable.
    #[arg(long)]
    pdb_min_available: Option<u32>,
    /// drain: pause between evictions without a PDB.
    #[arg(long)]
    evict_interval_ms: Option<u64>,
    /// oom: the hog's memory limit.
    #[arg(long)]
    memory_limit_mib: Option<u64>,
    /// node-lost: from the node vanishing to the Node turning NotReady
    /// (the node lifecycle controller's node-monitor grace period).
    #[arg(long)]
    node_monitor_grace_ms: Option<u64>,
    /// node-lost: the replicas on the node that vanishes (besides
    /// --replicas on the lab's node).
    #[arg(long)]
    lost_replicas: Option<u32>,
    /// lb-deregistration-lag: from a pod's endpoint removal to the
    /// external load balancer's deregistration of it.
    #[arg(long)]
    lb_deregistration_ms: Option<u64>,
    /// lb-deregistration-lag: the load balancer's health-check interval
    /// (HAProxy; 0: no checks).
    #[arg(long)]
    lb_health_check_ms: Option<u64>,
    /// proxy-terminated: the ingress replicas the clients balance over.
    #[arg(long)]
    proxy_replicas: Option<u32>,
    /// proxy-terminated: how long after a proxy pod's deletion the
    /// clients still send to it.
    #[arg(long)]
    client_lag_ms: Option<u64>,
    /// oom: when the hog starts allocating, after its start.
    #[arg(long)]
    oom_after_ms: Option<u64>,
    /// The ingress proxy: nginx (ingress-nginx), envoy (Envoy Gateway's
    /// data plane) or haproxy (the HAProxy Kubernetes Ingress Controller).
    #[arg(long, value_enum)]
    proxy: Option<ProxyKind>,
    /// envoy: Istio's default retry policy (2 retries on connect-failure,
    /// refused-stream, unavailable, cancelled, retriable-status-codes);
    /// without it, Envoy Gateway's default: none.
    #[arg(long)]
    envoy_istio_retries: bool,
    /// envoy: the access log format (text: Envoy's default; json: Envoy
    /// Gateway's default).
    #[arg(long, value_enum)]
    envoy_log_format: Option<EnvoyLogFormat>,
    /// haproxy: `retries` (0: none).
    #[arg(long)]
    haproxy_retries: Option<u32>,
    /// haproxy: `option redispatch`.
    #[arg(long)]
    haproxy_redispatch: bool,
    /// haproxy: `http-reuse`.
    #[arg(long, value_enum)]
    haproxy_http_reuse: Option<HttpReuse>,
    /// Every proxy: idle upstream keep-alive connections (nginx: per
    /// worker; 0 turns upstream keep-alive off for every proxy).
    #[arg(long)]
    upstream_keepalive: Option<u32>,
    /// Every proxy: how long an idle upstream connection is kept.
    #[arg(long)]
    upstream_keepalive_timeout_ms: Option<u64>,
    /// Every proxy: the upstream connect timeout.
    #[arg(long)]
    proxy_connect_timeout_ms: Option<u64>,
    /// Every proxy: the upstream response timeout (nginx
    /// proxy_read_timeout, Envoy's route timeout, HAProxy timeout server).
    #[arg(long)]
    proxy_read_timeout_ms: Option<u64>,
    /// nginx: proxy_next_upstream_tries (1: no retries).
    #[arg(long)]
    next_upstream_tries: Option<u32>,
}

impl ScenarioFlags {
    fn params(&self, kind: ScenarioKind) -> ScenarioParams {
        let mut p = ScenarioParams::defaults(kind);
        macro_rules! set {
            ($($f:ident),*) => { $(if let Some(v) = self.$f { p.$f = v; })* };
        }
        set!(
            replicas,
            rate,
            load_ms,
            warmup_ms,
            grace_ms,
            endpoint_lag_ms,
            readiness_delay_ms,
            behaviour,
            drain_ms,
            idle_timeout_ms,
            burst,
            burst_period_ms,
            max_surge,
            max_unavailable,
            evict_interval_ms,
            memory_limit_mib,
            oom_after_ms,
            node_monitor_grace_ms,
            lost_replicas,
            lb_deregistration_ms,
            proxy_replicas,
            client_lag_ms,
            upstream_keepalive_timeout_ms,
            proxy_connect_timeout_ms
        );
        if let Some(v) = self.sandbox_teardown_ms {
            p.sandbox_teardown_delay_ms = v;
        }
        if let Some(v) = self.prestop_ms {
            p.prestop_ms = (v > 0).then_some(v);
        }
        if let Some(c) = &self.prestop_exec {
            let argv: Vec<String> = c.split_whitespace().map(str::to_string).collect();
            p.prestop_exec = (!argv.is_empty()).then_some(argv);
        }
        if self.distroless {
            p.distroless = true;
        }
        if self.delay_ms.is_some() {
            p.delay_ms = self.delay_ms;
        }
        if self.pdb_min_available.is_some() {
            p.pdb_min_available = self.pdb_min_available;
        }
        if let Some(v) = self.upstream_keepalive {
            p.ingress.upstream_keepalive = v;
        }
        if let Some(v) = self.proxy_read_timeout_ms {
            p.ingress.proxy_read_timeout_ms = v;
        }
        if let Some(v) = self.next_upstream_tries {
            p.ingress.next_upstream_tries = v;
        }
        if let Some(v) = self.proxy {
            p.proxy = v;
        }
        if self.envoy_istio_retries {
            p.envoy.istio_retries = true;
        }
        if let Some(v) = self.envoy_log_format {
            p.envoy.log_format = v;
        }
        if let Some(v) = self.haproxy_retries {
            p.haproxy.retries = v;
        }
        if self.haproxy_redispatch {
            p.haproxy.redispatch = true;
        }
        if let Some(v) = self.haproxy_http_reuse {
            p.haproxy.http_reuse = v;
        }
        if let Some(v) = self.lb_health_check_ms {
            let fall = p.haproxy.health_check.map_or(3, |(_, f)| f);
            p.haproxy.health_check = (v > 0).then_some((v, fall));
        }
        p
    }
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIVEXX_LAB_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fivexx-lab: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let (kind, flags) = match cli.command {
        Command::Backend(cfg) => {
            backend::run(cfg)?;
            return Ok(0);
        }
        Command::Clean => {
            anyhow::ensure!(fivexx_lab::is_root(), "clean needs root");
            let _lock = clean::LabLock::acquire(std::time::Duration::from_secs(30))?;
            let report = clean::clean();
            println!(
                "clean: {} processes killed, {} namespaces, {} links, {} pod cgroups removed",
                report.processes_killed,
                report.namespaces_removed,
                report.links_removed,
                report.cgroups_removed
            );
            return Ok(0);
        }
        Command::Report { dir, max_events } => {
            print!("{}", fivexx_lab::sim::report::render(&dir, max_events)?);
            return Ok(0);
        }
        Command::Api(flags) => return apiserve::run(flags),
        Command::Leftovers => {
            let left = clean::leftovers();
            for l in &left {
                println!("{l}");
            }
            return Ok(if left.is_empty() { 0 } else { 1 });
        }
        Command::Run { scenario, flags } => (scenario, flags),
        Command::RolloutNoPrestop(f) => (ScenarioKind::RolloutNoPrestop, f),
        Command::IgnoreSigterm(f) => (ScenarioKind::IgnoreSigterm, f),
        Command::KeepaliveRace(f) => (ScenarioKind::KeepaliveRace, f),
        Command::PrestopFixed(f) => (ScenarioKind::PrestopFixed, f),
        Command::Drain(f) => (ScenarioKind::Drain, f),
        Command::IpGone(f) => (ScenarioKind::IpGone, f),
        Command::Oom(f) => (ScenarioKind::Oom, f),
        Command::KeepaliveIdle(f) => (ScenarioKind::KeepaliveIdle, f),
    };
    anyhow::ensure!(
        fivexx_lab::is_root(),
        "scenarios need root (network namespaces, cgroups, the ingress proxy); try sudo"
    );
    if let Some(addr) = flags.api_addr {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "--api-addr must be a loopback address (the lab serves 127.0.0.1 only), got {addr}"
        );
    }
    let params = flags.params(kind);
    let agent_bin = if flags.agent {
        let bin = flags.agent_bin.clone().or_else(|| fivexx_lab::harness::find_binary("fivexx-agent")).context(
            "--agent: fivexx-agent not found; build it (cargo build -p tracer-user) or set FIVEXX_AGENT",
        )?;
        Some(bin)
    } else {
        None
    };
    let out_dir = flags.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "/tmp/fxlab-runs/{}-{}-{}",
            kind.name(),
            params.proxy.name(),
            fivexx_lab::clock::wall_ns() / 1_000_000_000
        ))
    });
    let opts = RunOptions {
        out_dir,
        lab_exe: std::env::current_exe().context("locating fivexx-lab itself")?,
        agent: agent_bin,
        store: None,
        api_addr: flags.api_addr,
        lock_held: false,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Ctrl-C or SIGTERM: stop every lab task first (so the kubelet cannot
    // restart what clean kills), then clean.
    let outcome = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = scenario::run(&params, &opts) => r.map(Some).map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Ok(None),
            _ = term.recv() => Ok(None),
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let Some(report) = outcome? else {
        clean::clean();
        anyhow::bail!("interrupted; the lab was cleaned up");
    };
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", scenario::render(&report));
    }
    Ok(0)
}
