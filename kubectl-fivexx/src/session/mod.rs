//! The sessions that feed fivexx-core's one analysis path: the live one
//! behind `trace`, `capture` and `node`, and the replay of a capture
//! behind `explain FILE` ([`replay`]); both print the report through
//! [`render`].
//!
//! The live session finds the pods and proxies in scope, keeps one stream
//! per node's agent (widened in place as pods appear), watches the
//! Kubernetes side, and hands every fact and drops record to one
//! [`Recorder`], which writes the capture and feeds the same record to the
//! analysis. Live verdicts and the capture's replay therefore agree by
//! construction.
//!
//! Memory is bounded on both sides: the streams push into one bounded
//! queue with `try_send` (a slow terminal drops and counts, it never
//! stalls the port-forward nor the agent), the agents count what a slow
//! client missed, and the engine windows its state.
//!
//! The sessions know nothing of the command line: `cmd/` builds
//! [`SessionOptions`] and [`ReplayOptions`].

mod agents;
mod dedup;
mod event_lines;
mod finish;
mod incident;
mod interest;
mod live;
mod options;
mod progress;
mod proxies;
mod render;
mod replay;

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::sync::mpsc;

use fivexx_core::analysis::{AnalysisOptions, Recorder};
use fivexx_core::capture::{CaptureHeader, EngineSettings};

use crate::agent::subscription::Sinks;
use crate::agent::{agent_pods, Hello};
use crate::clock::now_ns;
use crate::error::CliError;
use crate::kube::proxy_logs::{LogFollowers, LogTally};
use crate::kube::target::Scope;
use crate::kube::{rbac, watch, KubeClient};
use agents::{Agents, Ensured};
use interest::Interest;

pub use live::Session;
pub use options::SessionOptions;
pub use render::{render, verdicts_kept, ReportFormat};
pub use replay::{replay, ReplayOptions};

/// Runs one session to its end (the duration, Ctrl-C, or a fatal error)
/// and prints its summary.
pub async fn run(client: &KubeClient, opts: SessionOptions) -> Result<ExitCode, CliError> {
    rbac::preflight(client, &opts.scope).await?;
    let agent_pods = agent_pods(client).await?;
    if agent_pods.is_empty() {
        return Err(CliError::new(
            "the fivexx agent is deployed but has no pods",
            "check `kubectl -n fivexx-system get daemonset fivexx-agent` (node selector, taints, image pulls)",
        ));
    }
    let mut interest = Interest::new(opts.scope.node.as_deref());
    let pods = list_scope(client, &opts.scope).await?;
    for p in pods.iter().filter(|p| opts.scope.matches(p)) {
        interest.add_pod(p);
    }
    let found = proxies::discover(client, &mut interest, opts.http_peek).await;

    let (feed_tx, feed_rx) = mpsc::channel(opts.queue.max(16));
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let sinks = Sinks {
        feed: feed_tx,
        control: control_tx,
    };
    let mut agents = Agents::new(&agent_pods, sinks);
    let mut nodes: Vec<&String> = interest.nodes.iter().collect();
    nodes.sort();
    for node in nodes {
        if agents.ensure(client, node, || interest.filter()) == Ensured::NoAgent {
            eprintln!("warning: no fivexx agent on node {node}: its kernel facts are missing (node selector or taints?)");
        }
    }
    agents
        .wait_hellos(&mut control_rx, !interest.nodes.is_empty())
        .await?;
    if opts.chatty() {
        eprintln!(
            "tracing {}: {} pod(s), {} proxy pod(s), agents on {} node(s){}",
            opts.scope.describe,
            interest.uids.len().saturating_sub(found.count),
            found.count,
            agents.hellos.len(),
            opts.duration
                .map(|d| format!(", for {d:?}"))
                .unwrap_or_else(|| ", Ctrl-C for the summary".into())
        );
    }

    let start_ns = now_ns();
    let tally = LogTally::new(if opts.proxy_logs {
        found.log_pods.len()
    } else {
        0
    });
    let (logs, log_rx) = if opts.proxy_logs {
        if found.log_pods.is_empty() && opts.chatty() {
            eprintln!("warning: --proxy-logs: no proxy pod with a parsed log format found (nginx, Envoy or HAProxy ingress and gateway labels)");
        }
        let (f, rx) = LogFollowers::start(client, found.log_pods.clone(), start_ns);
        (Some(f), rx)
    } else {
        (None, mpsc::channel(1).1)
    };
    let recorder = open_recorder(client, &opts, &agents.hellos, &interest, start_ns)?;
    let watches = watch::session_watches(client, opts.scope.namespace.as_deref(), &found.selectors);
    let session = Session::new(
        client,
        &opts,
        live::State {
            interest,
            agents,
            recorder,
            known_proxies: found.known,
            proxy_names: found.names,
            logs,
            tally,
        },
    );
    let inputs = live::Inputs {
        feed: feed_rx,
        control: control_rx,
        logs: log_rx,
        watches,
    };
    session.run(inputs).await
}

/// The pods in the scope's namespace (all: every namespace) now.
async fn list_scope(client: &KubeClient, scope: &Scope) -> Result<Vec<Pod>, CliError> {
    let api: Api<Pod> = match &scope.namespace {
        Some(ns) => Api::namespaced(client.kube.clone(), ns),
        None => Api::all(client.kube.clone()),
    };
    let list = client
        .call(
            "list",
            "pods",
            scope.namespace.as_deref(),
            api.list(&ListParams::default()),
        )
        .await?;
    Ok(list.items)
}

/// The session's sink: its header records the engine settings, the
/// nodes that answered and the proxies peeked from the start; the capture
/// file, when asked for, is created here.
fn open_recorder(
    client: &KubeClient,
    opts: &SessionOptions,
    hellos: &[(String, Hello)],
    interest: &Interest,
    start_ns: i64,
) -> Result<Recorder<BufWriter<File>>, CliError> {
    let header = CaptureHeader {
        tool_version: format!("kubectl-fivexx {}", env!("CARGO_PKG_VERSION")),
        context: Some(client.context.clone()),
        nodes: hellos.iter().map(|(n, _)| n.clone()).collect(),
        capabilities: hellos
            .iter()
            .filter_map(|(_, h)| serde_json::to_value(&h.capabilities).ok())
            .collect(),
        start_ns,
        end_ns: None,
        http_peek_proxies: interest.peeked(),
        engine: Some(EngineSettings {
            skew_ns: opts.skew_ns,
            lookahead_ns: opts.lookahead_ns,
        }),
    };
    let file = match &opts.capture {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(|e| {
            CliError::new(
                format!("cannot create {}", path.display()),
                "check the path and its directory",
            )
            .with_source(e)
        })?)),
        None => None,
    };
    let analysis = AnalysisOptions {
        max_verdicts: verdicts_kept(opts.html.is_some()),
        ..AnalysisOptions::default()
    };
    Recorder::new(header, file, analysis).map_err(|e| opts.capture_error(e))
}
