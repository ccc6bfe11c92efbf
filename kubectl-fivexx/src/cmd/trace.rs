//! `kubectl fivexx trace [TARGET]`, `capture` and `node NODE`: one live
//! session that joins every relevant node's kernel facts with the
//! Kubernetes timeline, feeding the same engine as `explain FILE`.
//!
//! Memory is bounded on both sides: each agent subscription pushes into
//! one bounded queue with `try_send` (a slow terminal drops and counts,
//! it never stalls the port-forward nor the agent), the agents themselves
//! count what a slow client missed, and the engine windows its state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::mpsc;

use fivexx_core::capture::{CaptureHeader, CaptureWriter, DropCounters, WriteOptions};
use fivexx_core::explain::{ExplainConfig, Explainer, FailureKind, Verdict};
use fivexx_core::model::HttpPeekFact;
use fivexx_core::protocol::{AgentMessage, AgentStats, StreamFilter};
use fivexx_core::report::{
    event_line, is_failure, render_json, render_table, render_wide, CaptureInfo, LineLayout,
    ReportBuilder, ReportFilter,
};
use fivexx_core::{Fact, KernelEvent, KernelEventKind};

use crate::agent::{self, AgentConn, AgentPod, LinkError};
use crate::error::CliError;
use crate::kube::proxy_logs::{self, LogFollowers, LogTally, ProxyPod};
use crate::kube::target::{self, Scope, Target};
use crate::kube::timeline::{EventTracker, NodeTracker, PodTracker, SliceTracker};
use crate::kube::{KubeClient, KubeFlags};
use crate::manifests::AGENT_NAMESPACE;
use crate::style::Painter;

pub const TRACE_EXAMPLES: &str = "Examples:
  # explain 502s of a rollout as they happen; Ctrl-C prints the summary
  kubectl fivexx trace deploy/web -n shop
  # a Service's backends for two minutes, recorded for later
  kubectl fivexx trace svc/web --duration 2m --capture web.fxc
  # one pod, a StatefulSet, or every pod with a label
  kubectl fivexx trace pod/web-7d9f-x2x9q
  kubectl fivexx trace sts/db
  kubectl fivexx trace -l app=web
  # the whole namespace, or all of them
  kubectl fivexx trace -n shop
  kubectl fivexx trace -A";

pub const CAPTURE_EXAMPLES: &str = "Examples:
  kubectl fivexx capture deploy/web -n shop --duration 10m -f rollout.fxc
  kubectl fivexx capture -A --duration 1h -f cluster.fxc
  kubectl fivexx explain rollout.fxc";

pub const NODE_EXAMPLES: &str = "Examples:
  # watch a drain from the node's point of view
  kubectl fivexx node worker-3
  kubectl fivexx node worker-3 --duration 5m --capture drain.fxc";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
}

/// Flags shared by trace, capture and node.
#[derive(Args, Debug, Clone)]
pub struct SessionFlags {
    /// Stop after this long (e.g. 30s, 5m) and print the summary.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Tolerated clock skew between nodes and the API server.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub skew: String,
    /// How long to wait for facts that explain a failure before printing
    /// its verdict (shorter: sooner, but e.g. a SIGKILL at the end of a
    /// long grace period may not be known yet).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub lookahead: String,
    /// Kernel facts buffered between the agents and the terminal; beyond
    /// it, facts are dropped and counted rather than stalling the agents.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    pub queue: usize,
    /// Do not ask the agents to peek at the proxy pods' HTTP status lines
    /// (by default the 5xx each proxy writes are traced, in the kernel,
    /// first 16 bytes of a response only; plain HTTP/1.x only).
    #[arg(long)]
    pub no_http_peek: bool,
    /// Also follow the nginx proxy pods' access logs through the API
    /// (ingress-nginx's default `upstreaminfo` or nginx's `combined`
    /// format) and join each answer's status and upstream to the kernel
    /// facts: it sees TLS and HTTP/2 answers the peek cannot. Needs `get`
    /// on `pods/log` in the proxies' namespaces.
    #[arg(long)]
    pub proxy_logs: bool,
}

/// What a `trace` or `capture` session watches.
#[derive(Args, Debug)]
pub struct ScopeArgs {
    /// pod/NAME, deploy/NAME, sts/NAME, svc/NAME, node/NAME; none: the namespace.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    /// All namespaces (without TARGET).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only pods with these labels (KEY=VALUE[,KEY=VALUE]).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Also record everything to this capture file.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// Summary format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub session: SessionFlags,
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The capture file to write.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub session: SessionFlags,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's name.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Also record everything to this capture file.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// Summary format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub session: SessionFlags,
}

/// How a session shows itself.
struct Mode {
    /// One line per kernel fact and verdict (trace, node).
    lines: bool,
    /// A progress line on stderr (capture).
    progress: bool,
    summary: Option<Output>,
    capture: Option<PathBuf>,
}

impl ScopeArgs {
    /// TARGET, `-l` and `-A` to the pods and nodes the session watches.
    async fn resolve(&self, cluster: &KubeClient) -> anyhow::Result<target::Scope> {
        let t = Target::parse(self.target.as_deref())?;
        let labels = self
            .selector
            .as_deref()
            .map(target::parse_selector)
            .transpose()?
            .unwrap_or_default();
        Ok(target::resolve(cluster, &t, self.all_namespaces, labels).await?)
    }
}

pub async fn run_trace(kube: KubeFlags, args: TraceArgs) -> anyhow::Result<ExitCode> {
    let cluster = KubeClient::connect(&kube).await?;
    let scope = args.scope.resolve(&cluster).await?;
    let mode = Mode {
        lines: true,
        progress: false,
        summary: Some(args.output),
        capture: args.capture,
    };
    Ok(run_session(&cluster, scope, &args.session, mode).await?)
}

pub async fn run_capture(kube: KubeFlags, args: CaptureArgs) -> anyhow::Result<ExitCode> {
    if args.session.duration.is_none() {
        return Err(CliError::new(
            "capture needs --duration",
            "for example: kubectl fivexx capture -f out.fxc --duration 10m (or use trace --capture, which stops on Ctrl-C)",
        )
        .into());
    }
    let cluster = KubeClient::connect(&kube).await?;
    let scope = args.scope.resolve(&cluster).await?;
    let mode = Mode {
        lines: false,
        progress: true,
        summary: None,
        capture: Some(args.file),
    };
    Ok(run_session(&cluster, scope, &args.session, mode).await?)
}

pub async fn run_node(kube: KubeFlags, args: NodeArgs) -> anyhow::Result<ExitCode> {
    let cluster = KubeClient::connect(&kube).await?;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = cluster
        .get_opt("nodes", None, nodes.get(&args.node))
        .await?
        .ok_or_else(|| {
            CliError::new(
                format!("node \"{}\" not found", args.node),
                "list nodes with `kubectl get nodes`",
            )
        })?;
    print!("{}", node_context(&cluster, &node).await?);
    let scope = target::resolve(
        &cluster,
        &Target::Node(args.node.clone()),
        true,
        Default::default(),
    )
    .await?;
    let mode = Mode {
        lines: true,
        progress: false,
        summary: Some(args.output),
        capture: args.capture,
    };
    Ok(run_session(&cluster, scope, &args.session, mode).await?)
}

/// Cordon state, terminating pods and recent evictions of one node.
async fn node_context(cluster: &KubeClient, node: &Node) -> Result<String, CliError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let mut out = String::new();
    let cordoned = spec.unschedulable.unwrap_or(false);
    let taints: Vec<String> = spec
        .taints
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    let kernel = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kernel_version.clone())
        .unwrap_or_default();
    out.push_str(&format!(
        "node/{name}: {}, kernel {kernel}{}\n",
        if cordoned {
            "cordoned (SchedulingDisabled)"
        } else {
            "schedulable"
        },
        if taints.is_empty() {
            String::new()
        } else {
            format!(", taints {}", taints.join(" "))
        }
    ));
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let on_node = cluster
        .call(
            "list",
            "pods",
            None,
            pods.list(&ListParams::default().fields(&format!("spec.nodeName={name}"))),
        )
        .await?;
    let terminating: Vec<String> = on_node
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    out.push_str(&format!(
        "pods: {} on the node, {} terminating{}\n",
        on_node.items.len(),
        terminating.len(),
        if terminating.is_empty() {
            String::new()
        } else {
            format!(": {}", terminating.join(", "))
        }
    ));
    let events: Api<Event> = Api::all(cluster.client.clone());
    let evs = cluster
        .call("list", "events", None, events.list(&ListParams::default()))
        .await?;
    let pod_names: HashSet<(String, String)> = on_node
        .items
        .iter()
        .map(|p| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut evictions: Vec<String> = evs
        .items
        .iter()
        .filter(|e| {
            matches!(
                e.reason.as_deref(),
                Some("Evicted" | "Evict" | "TaintManagerEviction" | "Preempted")
            )
        })
        .filter(|e| {
            e.source.as_ref().and_then(|s| s.host.as_deref()) == Some(name.as_str())
                || pod_names.contains(&(
                    e.involved_object.namespace.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default(),
                ))
        })
        .map(|e| {
            format!(
                "{} {}/{}",
                e.reason.as_deref().unwrap_or(""),
                e.involved_object.namespace.as_deref().unwrap_or(""),
                e.involved_object.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    evictions.truncate(20);
    out.push_str(&format!(
        "recent evictions: {}\n",
        if evictions.is_empty() {
            "none".to_string()
        } else {
            evictions.join(", ")
        }
    ));
    Ok(out)
}

/// Checks up front, with SelfSubjectAccessReviews, every permission the
/// session needs, so that a denial names its verb and resource before
/// anything starts. When reviews themselves are not allowed, the calls
/// will tell instead.
async fn preflight(cluster: &KubeClient, scope: &Scope) -> Result<(), CliError> {
    let ns = scope.namespace.clone();
    let mut wanted: Vec<(&str, &str, &str, Option<String>)> = Vec::new();
    for (group, res) in [
        ("", "pods"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "events"),
    ] {
        for verb in ["list", "watch"] {
            wanted.push((verb, group, res, ns.clone()));
        }
    }
    for verb in ["list", "watch"] {
        wanted.push((verb, "", "nodes", None));
    }
    wanted.push((
        "create",
        "",
        "pods/portforward",
        Some(AGENT_NAMESPACE.to_string()),
    ));
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let reviews = wanted.iter().map(|(verb, group, res, ns)| {
        let (resource, sub) = match res.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (res.to_string(), None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource),
                    subresource: sub,
                    namespace: ns.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api = api.clone();
        async move { api.create(&PostParams::default(), &review).await }
    });
    let answers = futures::future::join_all(reviews).await;
    for ((verb, _, res, ns), answer) in wanted.iter().zip(answers) {
        let Ok(review) = answer else { continue };
        let status = review.status.unwrap_or_default();
        if !status.allowed {
            let scope = match ns {
                Some(n) => format!(" in namespace {n}"),
                None => " at cluster scope".into(),
            };
            return Err(CliError::new(
                format!(
                    "forbidden: cannot {verb} {res}{scope}{}",
                    status.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                format!(
                    "ask your cluster admin for `{verb}` on `{res}` (check with `kubectl auth can-i {verb} {res}{}`)",
                    ns.as_ref().map(|n| format!(" -n {n}")).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// What the agent subscriptions send to the session.
enum AgentInput {
    Event(String, Box<KernelEvent>),
    Stats(String, Box<AgentStats>),
}

/// Rare messages that must not be dropped.
enum Control {
    Lost {
        node: String,
        reason: String,
    },
    Skew {
        node: String,
        version: String,
    },
    Connected {
        node: String,
        hello: Box<agent::Hello>,
    },
}

/// One subscription's reader: never blocks on the session.
fn spawn_reader(
    node: String,
    mut conn: AgentConn,
    tx: mpsc::Sender<AgentInput>,
    ctl: mpsc::UnboundedSender<Control>,
    dropped: Arc<AtomicU64>,
) {
    tokio::spawn(async move {
        let reason = loop {
            match conn.next().await {
                Some(Ok(AgentMessage::Event { event })) => {
                    if tx
                        .try_send(AgentInput::Event(node.clone(), Box::new(event)))
                        .is_err()
                    {
                        if tx.is_closed() {
                            return;
                        }
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(AgentMessage::Stats { stats })) => {
                    let _ = tx.try_send(AgentInput::Stats(node.clone(), Box::new(stats)));
                }
                Some(Ok(AgentMessage::Goodbye { reason })) => {
                    break format!("the agent said goodbye ({reason})")
                }
                Some(Ok(AgentMessage::Hello { .. })) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "the stream ended (agent pod gone or restarted)".to_string(),
            }
        };
        let _ = ctl.send(Control::Lost { node, reason });
    });
}

/// Opens one subscription and hands it to a reader.
fn spawn_subscription(
    cluster: KubeClient,
    agent: AgentPod,
    filter: StreamFilter,
    tx: mpsc::Sender<AgentInput>,
    ctl: mpsc::UnboundedSender<Control>,
    dropped: Arc<AtomicU64>,
) {
    tokio::spawn(async move {
        match AgentConn::open(&cluster, &agent.pod, filter).await {
            Ok(conn) => {
                let hello = conn.hello.clone();
                if !agent::compatible(&hello.agent_version) {
                    let _ = ctl.send(Control::Skew {
                        node: agent.node,
                        version: hello.agent_version,
                    });
                    return;
                }
                let _ = ctl.send(Control::Connected {
                    node: agent.node.clone(),
                    hello: Box::new(hello),
                });
                spawn_reader(agent.node, conn, tx, ctl, dropped);
            }
            Err(LinkError::Protocol { theirs, .. }) => {
                let _ = ctl.send(Control::Skew {
                    node: agent.node,
                    version: format!("protocol {theirs}"),
                });
            }
            Err(e) => {
                let _ = ctl.send(Control::Lost {
                    node: agent.node,
                    reason: format!("cannot connect: {e}"),
                });
            }
        }
    });
}

/// Which pods, addresses and nodes the agents are asked about.
#[derive(Default)]
struct Interest {
    uids: HashSet<String>,
    /// Proxy pods whose HTTP status lines the agents peek at.
    proxies: HashSet<String>,
    /// Their addresses, for the engine (hidden-by-retry counting).
    proxy_ips: HashSet<IpAddr>,
    ips: HashSet<IpAddr>,
    nodes: HashSet<String>,
}

fn pod_ip(p: &Pod) -> Option<IpAddr> {
    p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

fn pod_node(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone()
}

/// Kernel events seen through two subscriptions (an old pod's and a new
/// pod's filter both match a connection between them) are shown once.
struct Dedup {
    seen: HashSet<(String, u64, KernelEventKind)>,
    order: VecDeque<(String, u64, KernelEventKind)>,
}

impl Dedup {
    fn first(&mut self, node: &str, ev: &KernelEvent) -> bool {
        let key = (node.to_string(), ev.mono_ns, ev.kind);
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > 65_536 {
            if let Some(k) = self.order.pop_front() {
                self.seen.remove(&k);
            }
        }
        true
    }
}

#[allow(clippy::large_enum_variant)] // one at a time, moved not stored
enum KubeInput {
    Pod(watcher::Event<Pod>),
    Slice(watcher::Event<EndpointSlice>),
    Node(watcher::Event<Node>),
    Event(watcher::Event<Event>),
    /// Proxy pods in any namespace, by the proxy labels.
    Proxy(watcher::Event<Pod>),
    Failed(&'static str, watcher::Error),
}

/// The resource name of the proxy-pod watches: their failures are not
/// fatal ("when known": a denial only loses the proxy side).
const PROXY_WATCH: &str = "pods (proxies)";

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(watcher::Event<K>) -> KubeInput,
    resource: &'static str,
) -> BoxStream<'static, KubeInput>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    watcher(api, config)
        .default_backoff()
        .map(move |r| match r {
            Ok(ev) => wrap(ev),
            Err(e) => KubeInput::Failed(resource, e),
        })
        .boxed()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A watch failure that will not heal by retrying (RBAC).
fn fatal_watch_error(
    resource: &str,
    e: &watcher::Error,
    ns: Option<&str>,
    server: &str,
) -> Option<CliError> {
    let (verb, err) = match e {
        watcher::Error::InitialListFailed(k) => ("list", k),
        watcher::Error::WatchStartFailed(k) | watcher::Error::WatchFailed(k) => ("watch", k),
        watcher::Error::WatchError(s) if s.code == 403 => {
            return Some(crate::error::classify(
                &kube::Error::Api(s.clone()),
                &crate::error::Op {
                    verb: "watch",
                    resource,
                    namespace: ns,
                },
                server,
            ))
        }
        _ => return None,
    };
    match err {
        kube::Error::Api(s) if s.code == 403 || s.code == 401 => Some(crate::error::classify(
            err,
            &crate::error::Op {
                verb,
                resource,
                namespace: ns,
            },
            server,
        )),
        _ => None,
    }
}

/// One line per kernel fact: the renderer the agent's table uses too.
fn kernel_line(ev: &KernelEvent, p: Painter) -> String {
    let s = event_line(ev, LineLayout::Cluster);
    if is_failure(ev) {
        p.yellow(&s)
    } else {
        s
    }
}

/// The inline explanation of one failure.
fn verdict_line(v: &Verdict, p: Painter) -> String {
    let who = v
        .pod
        .clone()
        .or_else(|| v.workload_key.clone())
        .unwrap_or_else(|| v.failure.tuple.daddr.to_string());
    let mut s = if let Some(status) = v.failure.http_status {
        // A proxy's answer: client, proxy, status, upstream pod, cause.
        let upstream = v
            .failure
            .upstream
            .map_or("no failed upstream".to_string(), |u| {
                // Only a pod or workload names the upstream: `who`'s last
                // fallback is the client's address here.
                match v.pod.as_ref().or(v.workload_key.as_ref()) {
                    Some(w) => format!("upstream {}:{} ({w})", u.daddr, u.dport),
                    None => format!("upstream {}:{}", u.daddr, u.dport),
                }
            });
        let (client, proxy) = if v.failure.kind == FailureKind::Http5xxLogged {
            (
                v.failure.tuple.daddr.to_string(),
                format!("proxy on {} (access log)", v.failure.client_node),
            )
        } else {
            (
                format!("{}:{}", v.failure.tuple.daddr, v.failure.tuple.dport),
                format!("proxy {}:{}", v.failure.tuple.saddr, v.failure.tuple.sport),
            )
        };
        format!(
            "  => HTTP {status} to client {client} from {proxy}: {upstream}: {}, {:?} confidence",
            v.cause.label(),
            v.confidence
        )
    } else {
        format!(
            "  => {} {} to {} ({}): {}, {:?} confidence",
            v.cause.typical_http(),
            v.failure.kind.name(),
            v.failure.tuple.daddr,
            who,
            v.cause.label(),
            v.confidence
        )
    };
    if let Some(fix) = &v.fix {
        s.push_str(&format!("; fix: {} ({})", fix.action, fix.because));
    } else if let Some(n) = &v.note {
        s.push_str(&format!("; {n}"));
    }
    p.red(&s)
}

struct Capture {
    writer: CaptureWriter<BufWriter<File>>,
    path: PathBuf,
}

async fn run_session(
    cluster: &KubeClient,
    scope: Scope,
    flags: &SessionFlags,
    mode: Mode,
) -> Result<ExitCode, CliError> {
    let skew_ns = crate::duration::parse(&flags.skew)
        .map_err(|e| CliError::new(format!("--skew: {e}"), "for example: --skew 2s"))?
        .as_nanos() as i64;
    let duration = flags
        .duration
        .as_deref()
        .map(crate::duration::parse)
        .transpose()
        .map_err(|e| CliError::new(format!("--duration: {e}"), "for example: --duration 5m"))?;
    let lookahead_ns = crate::duration::parse(&flags.lookahead)
        .map_err(|e| CliError::new(format!("--lookahead: {e}"), "for example: --lookahead 10s"))?
        .as_nanos() as i64;
    let paint = Painter::stdout();
    preflight(cluster, &scope).await?;
    let agents = agent::agent_pods(cluster).await?;
    if agents.is_empty() {
        return Err(CliError::new(
            "the fivexx agent is deployed but has no pods",
            "check `kubectl -n fivexx-system get daemonset fivexx-agent` (node selector, taints, image pulls)",
        ));
    }
    let agent_by_node: HashMap<String, AgentPod> =
        agents.iter().map(|a| (a.node.clone(), a.clone())).collect();

    // The pods in scope now, and the proxies sending to them.
    let pods_api: Api<Pod> = match &scope.namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let initial = cluster
        .call(
            "list",
            "pods",
            scope.namespace.as_deref(),
            pods_api.list(&ListParams::default()),
        )
        .await?;
    let mut interest = Interest::default();
    let node_target = scope.node.is_some();
    for p in initial.items.iter().filter(|p| scope.matches(p)) {
        add_pod(&mut interest, p);
    }
    let all_pods: Api<Pod> = Api::all(cluster.client.clone());
    let mut proxies = 0;
    let mut log_pods: Vec<ProxyPod> = Vec::new();
    let mut known_proxies: HashSet<String> = HashSet::new();
    let mut proxy_selectors_listed: Vec<&str> = Vec::new();
    for sel in target::PROXY_SELECTORS {
        // "When known": a denial here only loses the proxy side.
        if let Ok(list) = all_pods.list(&ListParams::default().labels(sel)).await {
            proxy_selectors_listed.push(sel);
            for p in &list.items {
                known_proxies.extend(p.metadata.uid.clone());
                add_pod(&mut interest, p);
                log_pods.extend(ProxyPod::nginx(p).filter(|q| !log_pods.contains(q)));
                if let (Some(u), false) = (&p.metadata.uid, flags.no_http_peek) {
                    interest.proxies.insert(u.clone());
                    interest.proxy_ips.extend(pod_ip(p));
                }
                proxies += 1;
            }
        }
    }
    if let Some(n) = &scope.node {
        interest.nodes.insert(n.clone());
    }
    let (tx, mut rx) = mpsc::channel::<AgentInput>(flags.queue.max(16));
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Control>();
    let mut drops: HashMap<String, Arc<AtomicU64>> = HashMap::new();
    let mut connected: HashSet<String> = HashSet::new();
    let filter_of = |i: &Interest| -> StreamFilter {
        let http_pods = i.proxies.iter().cloned().collect();
        if node_target {
            // A node session wants everything its agent sees.
            return StreamFilter {
                http_pods,
                ..Default::default()
            };
        }
        StreamFilter {
            pod_uids: i.uids.iter().cloned().collect(),
            ips: i.ips.iter().copied().collect(),
            http_pods,
            ..Default::default()
        }
    };
    let mut missing_agents = Vec::new();
    let connect = |node: &str,
                   filter: StreamFilter,
                   drops: &mut HashMap<String, Arc<AtomicU64>>,
                   missing: &mut Vec<String>|
     -> bool {
        let Some(agent) = agent_by_node.get(node) else {
            missing.push(node.to_string());
            return false;
        };
        let d = drops.entry(node.to_string()).or_default().clone();
        spawn_subscription(
            cluster.clone(),
            agent.clone(),
            filter,
            tx.clone(),
            ctl_tx.clone(),
            d,
        );
        true
    };
    let first_filter = filter_of(&interest);
    let mut pending_hello = 0usize;
    for node in interest.nodes.clone() {
        if connect(&node, first_filter.clone(), &mut drops, &mut missing_agents) {
            connected.insert(node);
            pending_hello += 1;
        }
    }
    for n in &missing_agents {
        eprintln!("warning: no fivexx agent on node {n}: its kernel facts are missing (node selector or taints?)");
    }
    // Wait for the first Hellos: version skew and unreachable agents stop
    // the session before it starts.
    let mut hellos: Vec<(String, agent::Hello)> = Vec::new();
    let mut lost: Vec<(String, String)> = Vec::new();
    let hello_deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while pending_hello > 0 {
        let msg = tokio::select! {
            m = ctl_rx.recv() => m,
            _ = tokio::time::sleep_until(hello_deadline) => None,
            _ = tokio::signal::ctrl_c() => return Err(CliError::interrupted(
                "interrupted while connecting to the agents",
                "nothing was recorded",
            )),
        };
        let Some(msg) = msg else { break };
        pending_hello -= 1;
        match msg {
            Control::Connected { node, hello } => hellos.push((node, *hello)),
            Control::Skew { node, version } => return Err(agent::skew_error(&node, &version)),
            Control::Lost { node, reason } => {
                eprintln!("warning: agent on node {node}: {reason}");
                connected.remove(&node);
                lost.push((node, reason));
            }
        }
    }
    if !interest.nodes.is_empty() && hellos.is_empty() {
        let (node, reason) = lost
            .first()
            .cloned()
            .unwrap_or_else(|| ("?".into(), "no answer within 20s".into()));
        return Err(CliError::new(
            format!("no fivexx agent answered (node {node}: {reason})"),
            "check `kubectl fivexx status` and `kubectl -n fivexx-system get pods`",
        ));
    }
    if mode.lines || mode.progress {
        eprintln!(
            "tracing {}: {} pod(s), {} proxy pod(s), agents on {} node(s){}",
            scope.describe,
            interest.uids.len().saturating_sub(proxies),
            proxies,
            hellos.len(),
            duration
                .map(|d| format!(", for {d:?}"))
                .unwrap_or_else(|| ", Ctrl-C for the summary".into())
        );
    }

    let start_ns = now_ns();
    let mut log_tally = LogTally::new(if flags.proxy_logs { log_pods.len() } else { 0 });
    let (log_followers, mut log_rx) = if flags.proxy_logs {
        if log_pods.is_empty() && (mode.lines || mode.progress) {
            eprintln!("warning: --proxy-logs: no nginx proxy pod found (ingress-nginx or nginx-ingress labels)");
        }
        let (f, rx) = LogFollowers::start(cluster, log_pods, start_ns);
        (Some(f), rx)
    } else {
        (None, tokio::sync::mpsc::channel(1).1)
    };
    let mut peeked: Vec<IpAddr> = interest.proxy_ips.iter().copied().collect();
    peeked.sort();
    let mut capture = match &mode.capture {
        Some(path) => {
            let header = CaptureHeader {
                tool_version: format!("kubectl-fivexx {}", env!("CARGO_PKG_VERSION")),
                context: Some(cluster.context.clone()),
                nodes: hellos.iter().map(|(n, _)| n.clone()).collect(),
                capabilities: hellos
                    .iter()
                    .filter_map(|(_, h)| serde_json::to_value(&h.capabilities).ok())
                    .collect(),
                start_ns,
                end_ns: None,
                http_peek_proxies: peeked.clone(),
                engine: Some(fivexx_core::capture::EngineSettings {
                    skew_ns,
                    lookahead_ns,
                }),
            };
            let file = File::create(path).map_err(|e| {
                CliError::new(
                    format!("cannot create {}: {e}", path.display()),
                    "check the path and its directory",
                )
            })?;
            let writer = CaptureWriter::new(BufWriter::new(file), &header, WriteOptions::default())
                .map_err(|e| CliError::bare(format!("writing {}: {e}", path.display())))?;
            Some(Capture {
                writer,
                path: path.clone(),
            })
        }
        None => None,
    };

    // The Kubernetes side.
    let c = &cluster.client;
    let ns = scope.namespace.as_deref();
    let mut kube: SelectAll<BoxStream<'static, KubeInput>> = SelectAll::new();
    let all = watcher::Config::default;
    kube.push(watch(pods_api.clone(), all(), KubeInput::Pod, "pods"));
    let slices: Api<EndpointSlice> = match ns {
        Some(n) => Api::namespaced(c.clone(), n),
        None => Api::all(c.clone()),
    };
    kube.push(watch(slices, all(), KubeInput::Slice, "endpointslices"));
    kube.push(watch(
        Api::<Node>::all(c.clone()),
        all(),
        KubeInput::Node,
        "nodes",
    ));
    let events: Api<Event> = match ns {
        Some(n) => Api::namespaced(c.clone(), n),
        None => Api::all(c.clone()),
    };
    kube.push(watch(events, all(), KubeInput::Event, "events"));
    // Proxy pods started during the session (a proxy rollout or scale-up)
    // are peeked at and log-followed too.
    for sel in &proxy_selectors_listed {
        kube.push(watch(
            Api::<Pod>::all(c.clone()),
            all().labels(sel),
            KubeInput::Proxy,
            PROXY_WATCH,
        ));
    }

    let mut engine = Explainer::new(ExplainConfig {
        skew_ns,
        lookahead_ns,
        peeked_proxies: peeked.clone(),
        ..ExplainConfig::default()
    });
    let mut report = ReportBuilder::new(ReportFilter::default(), 1000);
    let (mut pods, mut slice_t, mut nodes_t, mut events_t) = (
        PodTracker::default(),
        SliceTracker::default(),
        NodeTracker::default(),
        EventTracker::default(),
    );
    let mut dedup = Dedup {
        seen: HashSet::new(),
        order: VecDeque::new(),
    };
    let mut agent_drops: HashMap<String, AgentStats> = HashMap::new();
    let (mut kernel_facts, mut k8s_facts, mut verdicts) = (0u64, 0u64, 0u64);
    let mut fatal: Option<CliError> = None;
    let mut interrupted = false;
    let started = Instant::now();
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let progress = if mode.progress {
        let pb = indicatif::ProgressBar::new_spinner();
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Some(pb)
    } else {
        None
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut out = std::io::stdout().lock();
    let mut facts: Vec<Fact> = Vec::new();
    // One listener for the whole session: a Ctrl-C between two turns of
    // the loop is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        facts.clear();
        tokio::select! {
            biased;
            _ = &mut ctrl_c => { interrupted = true; break; }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            Some(msg) = ctl_rx.recv() => match msg {
                Control::Lost { node, reason } => {
                    // Every subscription to a dead agent ends: report once.
                    if lost.iter().any(|(n, _)| n == &node) {
                        continue;
                    }
                    connected.remove(&node);
                    let others = connected.len();
                    eprintln!(
                        "{}",
                        paint.red(&format!(
                            "warning: the agent on node {node} stopped mid-trace: {reason}; continuing with {others} other node(s), facts so far are kept"
                        ))
                    );
                    lost.push((node, reason));
                }
                Control::Skew { node, version } => {
                    fatal = Some(agent::skew_error(&node, &version));
                    break;
                }
                Control::Connected { node, hello } => {
                    tracing::debug!(%node, agent_node = %hello.node, version = %hello.agent_version, "subscribed");
                }
            },
            Some(input) = rx.recv() => match input {
                AgentInput::Event(node, ev) => {
                    if dedup.first(&node, &ev) {
                        kernel_facts += 1;
                        if mode.lines {
                            let _ = writeln!(out, "{}", kernel_line(&ev, paint));
                        }
                        facts.push(Fact::Kernel(*ev));
                    }
                }
                AgentInput::Stats(node, stats) => {
                    if let Some(cap) = capture.as_mut() {
                        let mut dropped: std::collections::BTreeMap<String, u64> =
                            stats.dropped.iter().map(|(k, v)| (k.name().to_string(), *v)).collect();
                        let local = drops.get(&node).map_or(0, |d| d.load(Ordering::Relaxed));
                        dropped.insert("stream".into(), stats.client_dropped + local);
                        let _ = cap.writer.write_drops(&DropCounters { at_ns: now_ns(), node: node.clone(), dropped });
                    }
                    agent_drops.insert(node, *stats);
                }
            },
            Some(input) = log_rx.recv() => {
                if let Some(Fact::ProxyLog(f)) = log_tally.take(input) {
                    if mode.lines && f.status >= 500 {
                        let _ = writeln!(out, "{}", paint.yellow(&proxy_logs::fact_line(&f)));
                    }
                    facts.push(Fact::ProxyLog(f));
                }
            },
            Some(k) = kube.next() => {
                let at = now_ns();
                match k {
                    KubeInput::Pod(ev) => match ev {
                        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                            facts.extend(pods.observe(&p, at));
                            if scope.matches(&p) {
                                let (uid, ip, node) = (p.metadata.uid.clone(), pod_ip(&p), pod_node(&p));
                                let new_uid = uid.as_ref().is_some_and(|u| !interest.uids.contains(u));
                                let new_ip = ip.is_some_and(|i| !interest.ips.contains(&i));
                                if !node_target && (new_uid || new_ip) {
                                    let delta = StreamFilter {
                                        pod_uids: uid.into_iter().collect(),
                                        ips: ip.into_iter().collect(),
                                        ..Default::default()
                                    };
                                    add_pod(&mut interest, &p);
                                    for n in connected.clone() {
                                        connect(&n, delta.clone(), &mut drops, &mut missing_agents);
                                    }
                                }
                                if let Some(n) = node {
                                    if !connected.contains(&n) && !lost.iter().any(|(l, _)| l == &n) {
                                        interest.nodes.insert(n.clone());
                                        if connect(&n, filter_of(&interest), &mut drops, &mut missing_agents) {
                                            connected.insert(n);
                                        } else {
                                            eprintln!("warning: no fivexx agent on node {n}: its kernel facts are missing");
                                        }
                                    }
                                }
                            }
                        }
                        watcher::Event::Delete(p) => facts.extend(pods.gone(&p, at)),
                        _ => {}
                    },
                    KubeInput::Slice(ev) => match ev {
                        watcher::Event::Apply(s) | watcher::Event::InitApply(s) => facts.extend(slice_t.observe(&s, at)),
                        watcher::Event::Delete(s) => facts.extend(slice_t.gone(&s, at)),
                        _ => {}
                    },
                    KubeInput::Node(ev) => match ev {
                        watcher::Event::Apply(n) | watcher::Event::InitApply(n) => facts.extend(nodes_t.observe(&n, at)),
                        _ => {}
                    },
                    KubeInput::Event(ev) => match ev {
                        watcher::Event::Apply(e) | watcher::Event::InitApply(e) => facts.extend(events_t.observe(&e, at)),
                        _ => {}
                    },
                    KubeInput::Proxy(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        if let Some((uid, ip, node)) = new_proxy(&p, &known_proxies) {
                            known_proxies.insert(uid.clone());
                            let peek = !flags.no_http_peek;
                            add_pod(&mut interest, &p);
                            if peek {
                                interest.proxies.insert(uid.clone());
                                interest.proxy_ips.insert(ip);
                            }
                            let delta = new_proxy_filter(&uid, ip, peek, node_target);
                            for n in connected.clone() {
                                if let Some(f) = &delta {
                                    connect(&n, f.clone(), &mut drops, &mut missing_agents);
                                }
                            }
                            if !node_target && !connected.contains(&node) && !lost.iter().any(|(l, _)| l == &node)
                                && connect(&node, filter_of(&interest), &mut drops, &mut missing_agents)
                            {
                                connected.insert(node.clone());
                            }
                            if peek {
                                // From now on its 5xx are seen: the engine
                                // may count its unanswered failures as retried.
                                facts.push(Fact::HttpPeek(HttpPeekFact {
                                    at_ns: now_ns(),
                                    namespace: p.metadata.namespace.clone().unwrap_or_default(),
                                    pod: p.metadata.name.clone().unwrap_or_default(),
                                    node: node.clone(),
                                    proxy_ip: ip,
                                }));
                            }
                            let logged = match (&log_followers, ProxyPod::nginx(&p)) {
                                (Some(f), Some(pp)) => {
                                    f.add(pp);
                                    log_tally.pods += 1;
                                    true
                                }
                                _ => false,
                            };
                            if mode.lines || mode.progress {
                                eprintln!(
                                    "proxy pod {}/{} started on {node}: {}",
                                    p.metadata.namespace.as_deref().unwrap_or("?"),
                                    p.metadata.name.as_deref().unwrap_or("?"),
                                    match (peek, logged) {
                                        (true, true) => "peeking at its HTTP status lines, following its log",
                                        (true, false) => "peeking at its HTTP status lines",
                                        (false, true) => "following its log",
                                        (false, false) => "tracing its connections",
                                    }
                                );
                            }
                        }
                    }
                    KubeInput::Proxy(_) => {}
                    KubeInput::Failed(PROXY_WATCH, e) => {
                        tracing::debug!(error = %e, "proxy pod watch failed; retrying");
                    }
                    KubeInput::Failed(resource, e) => {
                        let res_ns = if resource == "nodes" { None } else { ns };
                        if let Some(err) = fatal_watch_error(resource, &e, res_ns, &cluster.server) {
                            fatal = Some(err);
                            break;
                        }
                        tracing::warn!(resource, error = %e, "watch failed; retrying");
                    }
                }
                k8s_facts += facts.len() as u64;
            },
            _ = tick.tick() => {
                if let Some(cap) = capture.as_mut() {
                    // A crash loses at most the last second.
                    let _ = cap.writer.flush();
                }
                if let Some(pb) = &progress {
                    let line = progress_line(started, kernel_facts, k8s_facts, total_drops(&drops, &agent_drops));
                    pb.set_message(line.clone());
                    pb.tick();
                    if pb.is_hidden() && started.elapsed().as_secs().is_multiple_of(5) {
                        eprintln!("{line}");
                    }
                }
            },
        }
        for f in &facts {
            if let Some(cap) = capture.as_mut() {
                if let Err(e) = cap.writer.write_fact(f) {
                    fatal = Some(CliError::bare(format!(
                        "writing {}: {e}",
                        cap.path.display()
                    )));
                }
            }
            engine.push(f, &mut |v| {
                verdicts += 1;
                if mode.lines {
                    let _ = writeln!(out, "{}", verdict_line(&v, paint));
                }
                report.add(v);
            });
        }
        if fatal.is_some() {
            break;
        }
    }
    let _ = out.flush();
    drop(out);
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    let end_ns = now_ns();
    let dropped = total_drops(&drops, &agent_drops);
    // Close the capture first: whatever happens next, it is complete.
    let mut capture_note = None;
    if let Some(cap) = capture.take() {
        let facts_written = cap.writer.facts();
        match cap.writer.finish(end_ns).map(|mut w| w.flush()) {
            Ok(_) => {
                capture_note = Some(format!(
                    "capture: {} facts written to {}",
                    facts_written,
                    cap.path.display()
                ))
            }
            Err(e) => eprintln!("warning: closing {}: {e}", cap.path.display()),
        }
    }
    let mut out = std::io::stdout().lock();
    let measurements = engine.finish(&mut |v| {
        verdicts += 1;
        if mode.lines {
            let _ = writeln!(out, "{}", verdict_line(&v, paint));
        }
        report.add(v);
    });
    drop(out);
    let mut info = CaptureInfo {
        context: Some(cluster.context.clone()),
        nodes: hellos.iter().map(|(n, _)| n.clone()).collect(),
        start_ns: Some(start_ns),
        end_ns: Some(end_ns),
        complete: lost.is_empty(),
        ..CaptureInfo::default()
    };
    info.tool_version = format!("kubectl-fivexx {}", env!("CARGO_PKG_VERSION"));
    for (node, st) in &agent_drops {
        let e = info.drops.entry(node.clone()).or_default();
        for (k, v) in &st.dropped {
            e.insert(k.name().to_string(), *v);
        }
        let local = drops.get(node).map_or(0, |d| d.load(Ordering::Relaxed));
        e.insert("stream".into(), st.client_dropped + local);
    }
    for (node, reason) in &lost {
        info.problems
            .push(format!("agent on node {node} lost: {reason}"));
    }
    info.problem_count = lost.len() as u64;
    if let Some(err) = fatal {
        return Err(err);
    }
    if let Some(fmt) = mode.summary {
        let r = report.finish(&measurements, Some(info));
        let text = match fmt {
            Output::Table => render_table(&r),
            Output::Wide => render_wide(&r),
            Output::Json => render_json(&r) + "\n",
            Output::Yaml => serde_json::from_str::<serde_json::Value>(&render_json(&r))
                .ok()
                .and_then(|v| serde_yaml::to_string(&v).ok())
                .unwrap_or_default(),
        };
        print!("\n{text}");
    }
    eprintln!(
        "{} kernel facts, {} Kubernetes facts, {} failures explained, {} dropped",
        kernel_facts, k8s_facts, verdicts, dropped
    );
    if flags.proxy_logs {
        for line in log_tally.report() {
            eprintln!("{line}");
        }
    }
    if let Some(n) = capture_note {
        eprintln!("{n}");
    }
    if let Some((node, reason)) = lost.first() {
        return Err(CliError::new(
            format!("the agent on node {node} died mid-trace ({reason}); the report covers the other nodes and everything captured before"),
            format!("check `kubectl -n {AGENT_NAMESPACE} get pods -o wide` and the agent's logs; `kubectl fivexx status` shows its health"),
        ));
    }
    if interrupted && mode.summary.is_none() {
        return Err(CliError::interrupted(
            "capture interrupted; the file is complete up to now",
            "read it with `kubectl fivexx explain FILE`",
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn add_pod(i: &mut Interest, p: &Pod) {
    if let Some(u) = &p.metadata.uid {
        i.uids.insert(u.clone());
    }
    if let Some(ip) = pod_ip(p) {
        i.ips.insert(ip);
    }
    if let Some(n) = pod_node(p) {
        i.nodes.insert(n);
    }
}

/// A proxy pod not seen before, once it runs somewhere with an address:
/// its uid, address and node.
fn new_proxy(p: &Pod, known: &HashSet<String>) -> Option<(String, IpAddr, String)> {
    let uid = p.metadata.uid.clone()?;
    if known.contains(&uid) || p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    Some((uid, pod_ip(p)?, pod_node(p)?))
}

/// The subscription that widens the connected agents' filters to a new
/// proxy pod. A node session already gets every event of its node, so it
/// only asks for the peek (restricted to that pod's HTTP answers, since an
/// empty filter means "everything"); without the peek it needs nothing.
fn new_proxy_filter(uid: &str, ip: IpAddr, peek: bool, node_target: bool) -> Option<StreamFilter> {
    let http_pods = if peek {
        vec![uid.to_string()]
    } else {
        Vec::new()
    };
    if node_target {
        return peek.then(|| StreamFilter {
            kinds: vec![KernelEventKind::HttpResponse],
            pod_uids: vec![uid.to_string()],
            http_pods,
            ..Default::default()
        });
    }
    Some(StreamFilter {
        pod_uids: vec![uid.to_string()],
        ips: vec![ip],
        http_pods,
        ..Default::default()
    })
}

fn total_drops(
    local: &HashMap<String, Arc<AtomicU64>>,
    agents: &HashMap<String, AgentStats>,
) -> u64 {
    let l: u64 = local.values().map(|d| d.load(Ordering::Relaxed)).sum();
    let a: u64 = agents
        .values()
        .map(|s| s.client_dropped + s.dropped.values().sum::<u64>())
        .sum();
    l + a
}

fn progress_line(started: Instant, kernel: u64, k8s: u64, drops: u64) -> String {
    format!(
        "capturing: elapsed {}s, events {} kernel + {} Kubernetes, drops {}",
        started.elapsed().as_secs(),
        kernel,
        k8s,
        drops
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node session's filter for a new proxy must never be empty of pods
    /// and addresses (that means "everything", twice over).
    #[test]
    fn new_proxy_filters_widen_without_duplicating_a_node_session() {
        let ip: IpAddr = "10.244.0.50".parse().unwrap();
        let f = new_proxy_filter("u1", ip, true, false).unwrap();
        assert_eq!(
            (f.pod_uids.clone(), f.ips.clone()),
            (vec!["u1".into()], vec![ip])
        );
        assert_eq!(f.http_pods, vec!["u1".to_string()]);
        let f = new_proxy_filter("u1", ip, false, false).unwrap();
        assert!(f.http_pods.is_empty() && f.ips == vec![ip]);
        let f = new_proxy_filter("u1", ip, true, true).unwrap();
        assert_eq!(f.kinds, vec![KernelEventKind::HttpResponse]);
        assert_eq!(f.pod_uids, vec!["u1".to_string()]);
        assert!(new_proxy_filter("u1", ip, false, true).is_none());
    }

    #[test]
    fn only_running_unseen_proxies_are_new() {
        let mut p = Pod::default();
        p.metadata.uid = Some("u1".into());
        assert!(new_proxy(&p, &HashSet::new()).is_none(), "no address yet");
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("n1".into()),
            ..Default::default()
        });
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            pod_ip: Some("10.0.0.1".into()),
            ..Default::default()
        });
        assert_eq!(
            new_proxy(&p, &HashSet::new()),
            Some(("u1".into(), "10.0.0.1".parse().unwrap(), "n1".into()))
        );
        assert!(new_proxy(&p, &["u1".to_string()].into()).is_none());
    }
}
