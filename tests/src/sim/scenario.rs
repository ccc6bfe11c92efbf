//! The named scenarios: each one a real failure mode of rollouts and drains,
//! run under load, with every parameter adjustable. A run writes its ground
//! truth (`ground-truth.jsonl`), the lab's timeline (`timeline.jsonl`), the
//! agent's events (`agent.jsonl`, with `--agent`) and `summary.json`.
//!
//! This file is longer than 600 lines because every scenario's parameters,
//! for each of the three proxies, and the run that applies them are one
//! table that reads best in one place.

use crate::control::store::ClusterStore;
use crate::node::agent::{self, AgentRun};
use crate::node::backend::Behaviour;
use crate::node::clean::{self, LabLock};
use crate::node::load::{self, LoadConfig, LoadSummary, RequestRecord};
use crate::node::proxy::envoy::EnvoyConfig;
use crate::node::proxy::haproxy::{HaproxyConfig, HttpReuse};
use crate::node::proxy::nginx::IngressConfig;
use crate::node::proxy::{ProxyConfig, ProxyKind, RetryStats};
use crate::sim::kubelet::{Kubelet, KubeletConfig, PodTemplate};
use crate::sim::timeline::{LabEvent, LabEventKind, Timeline};
use crate::{io_err, Error, Result};
use fivexx_core::event::KernelEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lab's node; the drain scenario adds a second one.
pub const NODE: &str = "lab-node-1";
pub const NODE_2: &str = "lab-node-2";
/// Where the agent's DaemonSet pods run.
const AGENT_NAMESPACE: &str = "fivexx-system";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// A rolling update whose endpoint removal lags SIGTERM: refused connects, 502.
    RolloutNoPrestop,
    /// The backend ignores SIGTERM; SIGKILL at grace expiry while still routed: 502.
    IgnoreSigterm,
    /// The backend closes pooled keep-alive connections on SIGTERM: resets, 502.
    KeepaliveRace,
    /// The same rollout with a preStop sleep longer than the lag: zero 5xx.
    PrestopFixed,
    /// A node drain across several pods (cordon, evict one by one).
    Drain,
    /// Endpoints still list a pod whose netns is gone: connect timeouts, 504.
    IpGone,
    /// An OOM kill mid-request.
    Oom,
    /// The rollout with an exec preStop `[sleep 5]` in a distroless image
    /// that has no `sleep`: the hook fails, SIGTERM comes at once, 502.
    PrestopFailed,
    /// A rollout that takes every old pod before a new one is ready
    /// (maxUnavailable 100%, as Recreate does): the ingress answers 503
    /// while the Service has no ready endpoint.
    Recreate,
    /// No rollout: a healthy backend closes idle keep-alive connections
    /// sooner than the proxy does, and bursts of requests every idle
    /// timeout make the proxy reuse some as they close: 502 (Envoy 503).
    KeepaliveIdle,
    /// The second node vanishes without a drain: its pods' networks and
    /// processes go at once, nothing is reported, its agent's stream goes
    /// silent, and the endpoints keep its pods until the Node turns
    /// NotReady a node-monitor grace period later: connect timeouts, 504.
    NodeLost,
    /// A rollout with the proxy as an external load balancer outside the
    /// cluster (its own network, no pod) that targets the pods' IPs and
    /// deregisters a removed endpoint late, health-checking them: refused
    /// connects only the pods' node sees, 5xx only its clients do.
    LbDeregistrationLag,
    /// The proxy tier itself rolls: two ingress replicas behind the
    /// clients' own balancer, each replaced in turn; SIGTERM makes each
    /// proxy stop at once (none drains by default) while the clients
    /// still send to it: refused and reset client connections.
    ProxyTerminated,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 13] = [
        ScenarioKind::RolloutNoPrestop,
        ScenarioKind::IgnoreSigterm,
        ScenarioKind::KeepaliveRace,
        ScenarioKind::PrestopFixed,
        ScenarioKind::Drain,
        ScenarioKind::IpGone,
        ScenarioKind::Oom,
        ScenarioKind::PrestopFailed,
        ScenarioKind::Recreate,
        ScenarioKind::KeepaliveIdle,
        ScenarioKind::NodeLost,
        ScenarioKind::LbDeregistrationLag,
        ScenarioKind::ProxyTerminated,
    ];

    /// Why the scenario cannot run through `proxy`, if it cannot.
    pub fn unsupported_through(self, proxy: ProxyKind) -> Option<&'static str> {
        match (self, proxy) {
            // Outside the cluster nothing sees the load balancer's answers,
            // so its failed requests are counted by its failed connects:
            // Envoy fails every request pending on one failed connect (a
            // burst of 503 UF for one refusal), which only its own peek or
            // log could count.
            (ScenarioKind::LbDeregistrationLag, ProxyKind::Envoy) => Some(
                "as a load balancer outside the cluster Envoy answers several 503s for one failed connect (every request pending on it), which no kernel of the cluster can count; nginx and HAProxy (health checks) play it",
            ),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::RolloutNoPrestop => "rollout-no-prestop",
            ScenarioKind::IgnoreSigterm => "ignore-sigterm",
            ScenarioKind::KeepaliveRace => "keepalive-race",
            ScenarioKind::PrestopFixed => "prestop-fixed",
            ScenarioKind::Drain => "drain",
            ScenarioKind::IpGone => "ip-gone",
            ScenarioKind::Oom => "oom",
            ScenarioKind::PrestopFailed => "prestop-failed",
            ScenarioKind::Recreate => "recreate",
            ScenarioKind::KeepaliveIdle => "keepalive-idle",
            ScenarioKind::NodeLost => "node-lost",
            ScenarioKind::LbDeregistrationLag => "lb-deregistration-lag",
            ScenarioKind::ProxyTerminated => "proxy-terminated",
        }
    }
}

/// Every knob of a scenario, resolved (defaults per scenario, then flags).
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioParams {
    pub kind: ScenarioKind,
    pub replicas: u32,
    pub rate: u32,
    /// How long the load runs (from before the action to after it).
    pub load_ms: u64,
    /// Load before the action starts.
    pub warmup_ms: u64,
    pub grace_ms: u64,
    pub endpoint_lag_ms: u64,
    pub prestop_ms: Option<u64>,
    /// An exec preStop hook (`sleep 5`), run with the container's `PATH`.
    pub prestop_exec: Option<Vec<String>>,
    /// The image has no coreutils: exec hooks find no `sleep`.
    pub distroless: bool,
    pub sandbox_teardown_delay_ms: u64,
    pub readiness_delay_ms: u64,
    pub behaviour: Behaviour,
    pub delay_ms: Option<u64>,
    pub drain_ms: u64,
    pub idle_timeout_ms: u64,
    /// Requests sent together every `burst_period_ms` (0: a steady rate).
    pub burst: u32,
    /// The load's period between bursts (0: the backend's idle timeout).
    pub burst_period_ms: u64,
    pub max_surge: u32,
    pub max_unavailable: u32,
    pub pdb_min_available: Option<u32>,
    pub evict_interval_ms: u64,
    pub memory_limit_mib: u64,
    pub oom_after_ms: u64,
    /// The ingress proxy: nginx (default), Envoy or HAProxy.
    pub proxy: ProxyKind,
    /// nginx's own settings.
    #[serde(skip)]
    pub ingress: IngressConfig,
    /// Envoy's own settings (retries, log format).
    pub envoy: EnvoyConfig,
    /// HAProxy's own settings (retries, redispatch, http-reuse).
    pub haproxy: HaproxyConfig,
    /// Every proxy: how long an idle upstream connection is kept.
    pub upstream_keepalive_timeout_ms: u64,
    /// Every proxy: the upstream connect timeout.
    pub proxy_connect_timeout_ms: u64,
    /// Rollouts: the new revision's pods start on this node, added to the
    /// cluster with the lab's node but given none of the Deployment's pods
    /// before the rollout, e.g. [`NODE_2`]. `None`: they start on the
    /// lab's node.
    pub rollout_node: Option<String>,
    /// node-lost: how long after the node vanished the node lifecycle
    /// controller marks it NotReady (its node-monitor grace period,
    /// 40 s by default in Kubernetes, scaled down here).
    pub node_monitor_grace_ms: u64,
    /// node-lost: how many of the replicas run on the node that vanishes.
    pub lost_replicas: u32,
    /// lb-deregistration-lag: how long after a pod's endpoint left the
    /// external load balancer still sends it new connections.
    pub lb_deregistration_ms: u64,
    /// proxy-terminated: the ingress replicas the clients balance over.
    pub proxy_replicas: u32,
    /// proxy-terminated: how long after a proxy pod's deletion the
    /// clients' balancer still sends to it (DNS, an endpoint list).
    pub client_lag_ms: u64,
}

impl ScenarioParams {
    /// The scenario's defaults through `proxy`.
    pub fn with_proxy(kind: ScenarioKind, proxy: ProxyKind) -> ScenarioParams {
        ScenarioParams {
            proxy,
            ..ScenarioParams::defaults(kind)
        }
    }

    /// The proxy's settings, with the shared timeouts filled in.
    pub fn proxy_config(&self) -> ProxyConfig {
        let mut nginx = self.ingress.clone();
        nginx.upstream_keepalive_timeout_ms = self.upstream_keepalive_timeout_ms;
        nginx.proxy_connect_timeout_ms = self.proxy_connect_timeout_ms;
        let keepalive = nginx.upstream_keepalive > 0;
        let mut envoy = self.envoy.clone();
        envoy.connect_timeout_ms = self.proxy_connect_timeout_ms;
        envoy.upstream_idle_timeout_ms = if keepalive {
            self.upstream_keepalive_timeout_ms
        } else {
            0
        };
        envoy.route_timeout_ms = nginx.proxy_read_timeout_ms;
        let mut haproxy = self.haproxy.clone();
        haproxy.connect_timeout_ms = self.proxy_connect_timeout_ms;
        haproxy.server_timeout_ms = nginx.proxy_read_timeout_ms;
        haproxy.pool_purge_delay_ms = self.upstream_keepalive_timeout_ms;
        if !keepalive {
            haproxy.http_reuse = HttpReuse::Never;
        }
        ProxyConfig {
            kind: self.proxy,
            nginx,
            envoy,
            haproxy,
        }
    }

    /// The parameters that reproduce each scenario's signature here.
    pub fn defaults(kind: ScenarioKind) -> ScenarioParams {
        let mut p = ScenarioParams {
            kind,
            replicas: 3,
            rate: 200,
            load_ms: 8000,
            warmup_ms: 1500,
            grace_ms: 30_000,
            endpoint_lag_ms: 1000,
            prestop_ms: None,
            prestop_exec: None,
            distroless: false,
            sandbox_teardown_delay_ms: 2000,
            readiness_delay_ms: 300,
            behaviour: Behaviour::Graceful,
            delay_ms: None,
            drain_ms: 5000,
            idle_timeout_ms: 0,
            burst: 0,
            burst_period_ms: 0,
            max_surge: 1,
            max_unavailable: 0,
            pdb_min_available: None,
            evict_interval_ms: 1500,
            memory_limit_mib: 64,
            oom_after_ms: 3000,
            proxy: ProxyKind::Nginx,
            ingress: IngressConfig::default(),
            envoy: EnvoyConfig::default(),
            haproxy: HaproxyConfig::default(),
            upstream_keepalive_timeout_ms: 60_000,
            proxy_connect_timeout_ms: 1000,
            rollout_node: None,
            node_monitor_grace_ms: 4000,
            lost_replicas: 0,
            lb_deregistration_ms: 0,
            proxy_replicas: 1,
            client_lag_ms: 0,
        };
        match kind {
            ScenarioKind::RolloutNoPrestop => {}
            ScenarioKind::PrestopFixed => p.prestop_ms = Some(2500),
            ScenarioKind::PrestopFailed => {
                p.prestop_exec = Some(vec!["sleep".into(), "5".into()]);
                p.distroless = true;
            }
            ScenarioKind::Recreate => {
                p.max_surge = 0;
                p.max_unavailable = p.replicas;
                // The new pods take a while to be ready: the stretch with
                // no endpoint.
                p.readiness_delay_ms = 3000;
            }
            ScenarioKind::IgnoreSigterm => {
                p.behaviour = Behaviour::IgnoreSigterm;
                p.grace_ms = 2000;
                p.endpoint_lag_ms = 3000;
                p.delay_ms = Some(50);
                p.load_ms = 9000;
            }
            ScenarioKind::KeepaliveRace => {
                p.behaviour = Behaviour::CloseIdle;
                p.drain_ms = 3000;
                p.rate = 400;
                // HAProxy's default `http-reuse safe` never gives a
                // client's first request a pooled connection, and every
                // load request is a first: the race needs reuse.
                p.haproxy.http_reuse = HttpReuse::Always;
            }
            ScenarioKind::Drain => {
                p.load_ms = 10_000;
            }
            ScenarioKind::IpGone => {
                p.behaviour = Behaviour::ExitNow;
                p.endpoint_lag_ms = 3000;
                p.sandbox_teardown_delay_ms = 0;
                p.replicas = 3;
                p.max_surge = 1;
                p.load_ms = 9000;
            }
            ScenarioKind::Oom => {
                p.replicas = 2;
                p.load_ms = 9000;
                p.delay_ms = Some(50);
            }
            ScenarioKind::NodeLost => {
                // Two on the lab's node keep serving; two on the second.
                p.replicas = 2;
                p.lost_replicas = 2;
                p.load_ms = 10_000;
                p.warmup_ms = 2000;
            }
            ScenarioKind::LbDeregistrationLag => {
                // The Load Balancer Controller and the cloud take seconds;
                // every new connection in between goes to a closed port.
                p.lb_deregistration_ms = 2500;
                p.load_ms = 12_000;
                // A load balancer opens a connection per request here, as
                // an NLB does: no pooled connection to race.
                p.ingress.upstream_keepalive = 0;
                // Its health checks, slower to notice than the
                // deregistration (as a target group's 2 x 10 s are).
                p.haproxy.health_check = Some((5000, 3));
            }
            ScenarioKind::ProxyTerminated => {
                p.proxy_replicas = 2;
                p.client_lag_ms = 1500;
                p.load_ms = 12_000;
            }
            ScenarioKind::KeepaliveIdle => {
                // Gunicorn's 2 s, scaled down; every proxy keeps idle
                // upstream connections 60 s. Bursts one idle timeout
                // apart find their pooled connections idle just that long.
                p.idle_timeout_ms = 1500;
                p.burst = 40;
                p.load_ms = 16_000;
                p.warmup_ms = 0;
                p.replicas = 2;
                // HAProxy's default `http-reuse safe` never gives a
                // client's first request a pooled connection.
                p.haproxy.http_reuse = HttpReuse::Always;
            }
        }
        p
    }
}

/// What one run produced.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub params: ScenarioParams,
    pub summary: LoadSummary,
    pub duration_ms: u64,
    pub out_dir: PathBuf,
    /// 5xx count per upstream pod IP.
    pub failures_by_upstream: BTreeMap<String, u64>,
    /// SIGTERM to SIGKILL, per pod that got both (ms).
    pub sigterm_to_sigkill_ms: BTreeMap<String, f64>,
    pub agent_events: Option<usize>,
    /// The proxy's own retry counters at the end of the load (Envoy's
    /// `upstream_rq_retry`, HAProxy's `wretr`/`wredis`; nginx: none).
    pub proxy_retries: Option<RetryStats>,
    #[serde(skip)]
    pub records: Vec<RequestRecord>,
    #[serde(skip)]
    pub timeline: Vec<LabEvent>,
    #[serde(skip)]
    pub kernel_events: Vec<KernelEvent>,
}

impl ScenarioReport {
    /// Pod IPs that served a 5xx (the affected pods).
    pub fn affected_ips(&self) -> Vec<String> {
        self.failures_by_upstream.keys().cloned().collect()
    }

    /// Kernel events about the affected pods' IPs.
    pub fn agent_events_for_failures(&self) -> Vec<&KernelEvent> {
        agent::events_for_ips(&self.kernel_events, &self.affected_ips())
    }
}

/// Where the run happens and what it may use.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    /// `fivexx-lab` itself, for `fivexx-lab backend` in pods.
    pub lab_exe: PathBuf,
    /// Attach `fivexx-agent trace` (this binary).
    pub agent: Option<PathBuf>,
    /// The cluster state to drive, when the caller serves it too (the fake
    /// API server runs on the same store while the scenario runs). Its node
    /// should be [`NODE`]. `None`: a fresh store.
    pub store: Option<ClusterStore>,
    /// Serve the store with the fake API server on this address (port 0:
    /// any) for the whole run; the kubeconfig is `OUT/kubeconfig`, written
    /// before any pod starts, so a client can connect while it runs.
    pub api_addr: Option<std::net::SocketAddr>,
    /// The caller holds the machine's [`LabLock`] for longer than the
    /// scenario (a plugin that records past its end): the run takes it
    /// not again.
    pub lock_held: bool,
}

/// Runs one scenario from a clean machine to a clean machine.
pub async fn run(params: &ScenarioParams, opts: &RunOptions) -> Result<ScenarioReport> {
    if !crate::is_root() {
        return Err(Error::Lab(
            "the lab needs root (network namespaces, cgroups)".into(),
        ));
    }
    validate(params)?;
    let _lock = if opts.lock_held {
        None
    } else {
        Some(LabLock::acquire(Duration::from_secs(600))?)
    };
    clean::clean();
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(io_err(format!("creating {}", opts.out_dir.display())))?;
    let started = Instant::now();
    let mut agent_run = match &opts.agent {
        Some(bin) => Some(AgentRun::start(bin, &opts.out_dir).await?),
        None => None,
    };
    let timeline = Timeline::default();
    let store = opts
        .store
        .clone()
        .unwrap_or_else(|| ClusterStore::new(NODE));
    // The ingress pod's `pods/log` is its proxy's container log, as a
    // kubelet serves the file the runtime writes.
    store.map_pod_log(
        params.proxy.pod_identity().namespace,
        crate::control::store::ANY_POD,
        params.proxy.container_log_path(),
    );
    let api = match opts.api_addr {
        Some(addr) => Some(start_api(&store, addr, &opts.out_dir).await?),
        None => None,
    };
    let result = drive(params, opts, store.clone(), timeline.clone()).await;
    if let Some(api) = api {
        api.shutdown().await;
    }
    clean::clean();
    let kernel_events = match agent_run.as_mut() {
        Some(a) => a.stop().await,
        None => Vec::new(),
    };
    let (records, proxy_retries) = result?;
    let events = timeline.events();
    let mut report = build_report(
        params,
        opts,
        records,
        events,
        kernel_events,
        started,
        agent_run.is_some(),
    );
    report.proxy_retries = proxy_retries;
    write_outputs(&report, &store)?;
    Ok(report)
}

/// The fake API server on the scenario's store, and its kubeconfig.
async fn start_api(
    store: &ClusterStore,
    addr: std::net::SocketAddr,
    out_dir: &Path,
) -> Result<crate::control::apiserver::ApiServer> {
    let config = crate::control::apiserver::ApiServerConfig {
        // The kubelet simulator finishes deletions, as on a real node.
        graceful_pod_delete: true,
        ..Default::default()
    };
    let api = crate::control::apiserver::ApiServer::start_on(store.clone(), config, addr)
        .await
        .map_err(|e| Error::Lab(format!("fake API server: {e}")))?;
    api.write_kubeconfig(&out_dir.join("kubeconfig"))
        .map_err(|e| Error::Lab(format!("writing the kubeconfig: {e}")))?;
    tracing::info!(url = %api.url(), "fake API server for this run");
    Ok(api)
}

fn validate(p: &ScenarioParams) -> Result<()> {
    let bad = |m: &str| Err(Error::Lab(m.into()));
    if p.replicas == 0 || p.replicas > 20 {
        return bad("--replicas must be 1..=20");
    }
    if p.rate == 0 || p.rate > 2000 {
        return bad("--rate must be 1..=2000 requests per second");
    }
    if p.load_ms < 1000 || p.load_ms > 300_000 {
        return bad("--load-ms must be 1000..=300000");
    }
    if p.max_surge == 0 && p.max_unavailable == 0 {
        return bad("--max-surge and --max-unavailable cannot both be 0");
    }
    if p.memory_limit_mib < 16 {
        return bad("--memory-limit-mib must be at least 16");
    }
    if let Some(why) = p.kind.unsupported_through(p.proxy) {
        return Err(Error::Lab(format!(
            "{} cannot run through {}: {why}",
            p.kind.name(),
            p.proxy.name()
        )));
    }
    if p.kind == ScenarioKind::ProxyTerminated
        && !(2..=crate::sim::controllers::ingress::MAX_REPLICAS as u32 / 2)
            .contains(&p.proxy_replicas)
    {
        return bad("--proxy-replicas must be 2..=4 (each is replaced by a new one)");
    }
    if p.kind == ScenarioKind::NodeLost {
        if p.lost_replicas == 0 || p.replicas + p.lost_replicas > 20 {
            return bad("--lost-replicas must be 1..=20 with --replicas");
        }
        if p.warmup_ms + p.node_monitor_grace_ms + 1000 > p.load_ms {
            return bad("node-lost: --load-ms must cover the warm-up, --node-monitor-grace-ms and 1 s after it");
        }
    }
    Ok(())
}

fn template(p: &ScenarioParams) -> PodTemplate {
    let mut t = PodTemplate::new("web", p.behaviour);
    t.grace = Duration::from_millis(p.grace_ms);
    t.prestop = p.prestop_ms.map(Duration::from_millis);
    t.prestop_exec.clone_from(&p.prestop_exec);
    // A distroless image's PATH names directories with nothing in them.
    t.exec_path = p
        .distroless
        .then(|| "/fivexx-lab/distroless/usr/local/bin:/fivexx-lab/distroless/usr/bin".into());
    t.readiness_delay = Duration::from_millis(p.readiness_delay_ms);
    t.delay_ms = p.delay_ms;
    t.drain_ms = p.drain_ms;
    t.idle_timeout_ms = p.idle_timeout_ms;
    t.oom_after_ms = p.oom_after_ms;
    t
}

async fn drive(
    p: &ScenarioParams,
    opts: &RunOptions,
    store: ClusterStore,
    timeline: Timeline,
) -> Result<(Vec<RequestRecord>, Option<RetryStats>)> {
    let cfg = KubeletConfig {
        lab_exe: opts.lab_exe.clone(),
        endpoint_lag: Duration::from_millis(p.endpoint_lag_ms),
        sandbox_teardown_delay: Duration::from_millis(p.sandbox_teardown_delay_ms),
        probe_period: Duration::from_millis(100),
        proxy: p.proxy_config(),
        external_lb: (p.kind == ScenarioKind::LbDeregistrationLag)
            .then(|| Duration::from_millis(p.lb_deregistration_ms)),
    };
    let kubelet = Kubelet::start(cfg, store, timeline.clone()).await?;
    if let Some(node) = &p.rollout_node {
        // With the lab's node, before any pod of the Deployment: the
        // node's agent pod exists from the start, its first scoped pod
        // comes with the rollout.
        kubelet.add_node(node);
    }
    let outcome = async {
        let base = template(p);
        let steady = match p.kind {
            // The OOM pod joins a healthy Deployment during the run.
            ScenarioKind::Oom => PodTemplate {
                behaviour: Behaviour::Graceful,
                delay_ms: p.delay_ms,
                ..base.clone()
            },
            _ => base.clone(),
        };
        timeline.step("setup: deployment");
        kubelet.create_deployment(&steady, p.replicas).await?;
        if p.kind == ScenarioKind::Drain {
            kubelet.add_node(NODE_2);
        }
        if p.kind == ScenarioKind::NodeLost {
            timeline.step("setup: pods on the second node");
            kubelet.add_node(NODE_2);
            kubelet
                .scale_onto(
                    &steady,
                    NODE_2,
                    p.lost_replicas,
                    p.replicas + p.lost_replicas,
                )
                .await?;
        }
        // The proxy routes by the first endpoints once the call above
        // returns, but nginx's old workers (from the configuration with
        // none, which answers 503) still finish what they had accepted:
        // the load starts after them, or its first requests are the
        // proxy's own 503s (17 of them in an OOM run, seq 0 to 16).
        tokio::time::sleep(Duration::from_millis(500)).await;
        timeline.step("steady");
        // The clients' own balancer over the ingress replicas.
        let (clients, targets) = if p.kind == ScenarioKind::ProxyTerminated {
            for _ in 1..p.proxy_replicas {
                kubelet.add_ingress_replica(crate::sim::controllers::ingress::FIRST_REVISION)?;
            }
            let addrs: Vec<SocketAddr> = kubelet
                .ingress_replicas()
                .into_iter()
                .map(|r| r.1)
                .collect();
            let (tx, rx) = tokio::sync::watch::channel(addrs);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let load_cfg = LoadConfig {
            targets,
            target: kubelet.ingress_address(),
            rate: p.rate,
            duration: Duration::from_millis(p.load_ms),
            timeout: Duration::from_secs(10),
            burst: (p.burst > 0).then(|| {
                let period = if p.burst_period_ms > 0 {
                    p.burst_period_ms
                } else {
                    p.idle_timeout_ms.max(1)
                };
                (p.burst, Duration::from_millis(period))
            }),
        };
        let load = tokio::spawn(load::run(load_cfg, timeline.current_step()));
        tokio::time::sleep(Duration::from_millis(p.warmup_ms)).await;
        match &clients {
            Some(clients) => roll_proxies(p, &kubelet, clients).await?,
            None => action(p, &kubelet, &steady).await?,
        }
        timeline.step("settle");
        load.await
            .map_err(|e| Error::Lab(format!("load generator failed: {e}")))
    }
    .await;
    // The proxy's own account of its retries, while it still runs.
    let retries = kubelet.ingress_retry_stats();
    kubelet.shutdown().await;
    // The proxy's own account of each failure, kept next to the ground
    // truth (after the stop: the container log is complete).
    let ingress_dir = crate::node::proxy::ingress_dir();
    for (from, to) in [
        ("error.log", "nginx-error.log"),
        ("access.log", "nginx-access.log"),
        ("container.log", "ingress-container.log"),
        ("envoy-stderr.log", "envoy-stderr.log"),
        ("haproxy-stderr.log", "haproxy-stderr.log"),
    ] {
        let _ = std::fs::copy(ingress_dir.join(from), opts.out_dir.join(to));
    }
    outcome.map(|records| (records, retries))
}

/// proxy-terminated: each ingress replica in turn replaced, as a
/// Deployment's rollout of the proxy does (maxSurge 1): the new replica
/// joins the clients' balancer once it routes, the old one is deleted
/// (SIGTERM at once, no preStop) and leaves the clients' balancer only
/// `client_lag_ms` later.
async fn roll_proxies(
    p: &ScenarioParams,
    kubelet: &Kubelet,
    clients: &tokio::sync::watch::Sender<Vec<SocketAddr>>,
) -> Result<()> {
    kubelet.timeline().step("proxy rollout: start");
    for (old, old_addr) in kubelet.ingress_replicas() {
        let (new, new_addr) =
            kubelet.add_ingress_replica(crate::sim::controllers::ingress::NEXT_REVISION)?;
        clients.send_modify(|t| t.push(new_addr));
        kubelet
            .timeline()
            .step(format!("proxy rollout: {new} in the clients' balancer"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        kubelet
            .timeline()
            .step(format!("proxy rollout: delete {old}"));
        let lag = Duration::from_millis(p.client_lag_ms);
        let drop_old = async {
            tokio::time::sleep(lag).await;
            clients.send_modify(|t| t.retain(|a| *a != old_addr));
            kubelet
                .timeline()
                .step(format!("proxy rollout: {old} out of the clients' balancer"));
        };
        let (done, ()) = tokio::join!(kubelet.terminate_ingress_replica(&old), drop_old);
        done?;
    }
    Ok(())
}

async fn action(p: &ScenarioParams, kubelet: &Kubelet, current: &PodTemplate) -> Result<()> {
    match p.kind {
        ScenarioKind::RolloutNoPrestop
        | ScenarioKind::PrestopFixed
        | ScenarioKind::IgnoreSigterm
        | ScenarioKind::KeepaliveRace
        | ScenarioKind::IpGone
        | ScenarioKind::PrestopFailed
        | ScenarioKind::LbDeregistrationLag
        | ScenarioKind::Recreate => {
            kubelet.timeline().step("rollout: start");
            kubelet
                .rollout_to(
                    &current.next_revision(),
                    p.rollout_node.as_deref(),
                    p.replicas,
                    p.max_surge,
                    p.max_unavailable,
                )
                .await
        }
        ScenarioKind::Drain => {
            kubelet
                .drain(
                    NODE,
                    p.pdb_min_available,
                    Duration::from_millis(p.evict_interval_ms),
                )
                .await
        }
        ScenarioKind::NodeLost => {
            kubelet
                .timeline()
                .step("node-lost: the second node vanishes");
            kubelet.lose_node(NODE_2);
            // Its agent goes with it: the stream stays open and silent.
            let store = kubelet.store();
            for agent in store.list_pods(Some(AGENT_NAMESPACE)) {
                let on_it =
                    agent.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE_2);
                if let (true, Some(name)) = (on_it, agent.metadata.name.as_deref()) {
                    store.silence_pod(AGENT_NAMESPACE, name);
                }
            }
            tokio::time::sleep(Duration::from_millis(p.node_monitor_grace_ms)).await;
            kubelet.node_not_ready(NODE_2);
            let rest = p
                .load_ms
                .saturating_sub(p.warmup_ms + p.node_monitor_grace_ms);
            tokio::time::sleep(Duration::from_millis(rest)).await;
            Ok(())
        }
        ScenarioKind::ProxyTerminated => Ok(()),
        ScenarioKind::KeepaliveIdle => {
            // Nothing happens to the pods: the load's shape is the cause.
            tokio::time::sleep(Duration::from_millis(p.load_ms)).await;
            Ok(())
        }
        ScenarioKind::Oom => {
            kubelet.timeline().step("oom: memory hog joins");
            let mut hog = current.next_revision();
            hog.behaviour = Behaviour::Oom;
            hog.memory_limit = Some(p.memory_limit_mib << 20);
            hog.oom_after_ms = p.oom_after_ms;
            kubelet.start_pod(&hog)?;
            let until = p.load_ms.saturating_sub(p.warmup_ms);
            tokio::time::sleep(Duration::from_millis(until)).await;
            Ok(())
        }
    }
}

fn build_report(
    params: &ScenarioParams,
    opts: &RunOptions,
    records: Vec<RequestRecord>,
    timeline: Vec<LabEvent>,
    kernel_events: Vec<KernelEvent>,
    started: Instant,
    with_agent: bool,
) -> ScenarioReport {
    let mut failures_by_upstream = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_5xx()) {
        if let Some(ip) = r.upstream_ip() {
            *failures_by_upstream.entry(ip).or_insert(0) += 1;
        }
    }
    let mut sigterm_to_sigkill_ms = BTreeMap::new();
    for term in timeline
        .iter()
        .filter(|e| e.kind == LabEventKind::SigtermSent)
    {
        let kill = timeline
            .iter()
            .find(|e| e.kind == LabEventKind::SigkillSent && e.pod == term.pod);
        if let (Some(kill), Some(pod)) = (kill, &term.pod) {
            let ms = (kill.at.mono_ns - term.at.mono_ns) as f64 / 1e6;
            sigterm_to_sigkill_ms.insert(pod.clone(), ms);
        }
    }
    ScenarioReport {
        scenario: params.kind.name().into(),
        params: params.clone(),
        summary: LoadSummary::of(&records),
        duration_ms: started.elapsed().as_millis() as u64,
        out_dir: opts.out_dir.clone(),
        failures_by_upstream,
        sigterm_to_sigkill_ms,
        agent_events: with_agent.then_some(kernel_events.len()),
        proxy_retries: None,
        records,
        timeline,
        kernel_events,
    }
}

fn write_outputs(report: &ScenarioReport, store: &ClusterStore) -> Result<()> {
    let dir = &report.out_dir;
    write_lines(&dir.join("ground-truth.jsonl"), &report.records)?;
    write_lines(&dir.join("timeline.jsonl"), &report.timeline)?;
    let objects = serde_json::json!({
        "pods": store.list_pods(None),
        "endpointSlices": store.list_endpoint_slices(None),
        "nodes": store.list_nodes(),
        "events": store.list_events(None),
    });
    std::fs::write(
        dir.join("cluster.json"),
        serde_json::to_vec_pretty(&objects).unwrap_or_default(),
    )
    .map_err(io_err("writing cluster.json"))?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(report).unwrap_or_default(),
    )
    .map_err(io_err("writing summary.json"))
}

fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    let mut s = String::new();
    for i in items {
        if let Ok(line) = serde_json::to_string(i) {
            s.push_str(&line);
            s.push('\n');
        }
    }
    std::fs::write(path, s).map_err(io_err(format!("writing {}", path.display())))
}

/// Human summary: one block per run.
pub fn render(report: &ScenarioReport) -> String {
    let s = &report.summary;
    let mut out = format!(
        "scenario {} through {}: {} requests in {:.1} s: {} ok, {} x 502, {} x 503, {} x 504, {} other 5xx, {} client errors\n",
        report.scenario,
        report.params.proxy.name(),
        s.total,
        report.duration_ms as f64 / 1000.0,
        s.ok,
        s.s502,
        s.s503,
        s.s504,
        s.other_5xx,
        s.client_errors
    );
    for (ip, n) in &report.failures_by_upstream {
        out.push_str(&format!("  {n} x 5xx from upstream {ip}\n"));
    }
    for (pod, ms) in &report.sigterm_to_sigkill_ms {
        out.push_str(&format!("  {pod}: SIGKILL {ms:.1} ms after SIGTERM\n"));
    }
    if let Some(n) = report.agent_events {
        out.push_str(&format!(
            "  agent: {n} kernel events, {} about the failing pod IPs\n",
            report.agent_events_for_failures().len()
        ));
    }
    if let Some(r) = report.proxy_retries {
        out.push_str(&format!(
            "  {}: {} retried attempts, {} redispatched\n",
            report.params.proxy.name(),
            r.retried,
            r.redispatched
        ));
    }
    out.push_str(&format!("  output: {}\n", report.out_dir.display()));
    out
}
