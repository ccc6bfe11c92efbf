//! The live loop: one `select!` over the agents' streams, their control
//! messages, the proxy logs, the watches and a one-second tick. Each turn
//! collects the facts it learnt and records them through the
//! [`Recorder`]; the verdicts that become final on the way are folded
//! into their bursts, which the incident view shows.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use tokio::sync::mpsc;

use fivexx_core::analysis::Recorder;
use fivexx_core::model::{AgentGoneFact, HttpPeekFact};
use fivexx_core::Fact;

use super::agents::{Agents, Ensured};
use super::dedup::Dedup;
use super::event_lines::kernel_line;
use super::incident::IncidentView;
use super::interest::{pod_node, Interest};
use super::options::SessionOptions;
use super::progress::{Counts, Progress};
use super::proxies::{adopted_line, new_proxy, pod_name};
use crate::agent::skew_error;
use crate::agent::subscription::{Control, Feed};
use crate::clock::now_ns;
use crate::error::CliError;
use crate::kube::proxy_logs::{self, LogFollowers, LogInput, LogTally, ProxyPod};
use crate::kube::timeline::Timeline;
use crate::kube::watch::{fatal_watch_error, KubeInput, PROXY_WATCH};
use crate::kube::KubeClient;
use crate::style::{say, Painter};

/// What the session starts with (see [`super::run`]).
pub struct State {
    pub interest: Interest,
    pub agents: Agents,
    pub recorder: Recorder<BufWriter<File>>,
    pub known_proxies: HashSet<String>,
    /// The proxies' names by address, for the burst lines (the view
    /// takes them).
    pub proxy_names: HashMap<IpAddr, String>,
    pub logs: Option<LogFollowers>,
    pub tally: LogTally,
}

/// What the session listens to.
pub struct Inputs {
    pub feed: mpsc::Receiver<Feed>,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub logs: mpsc::Receiver<LogInput>,
    pub watches: SelectAll<BoxStream<'static, KubeInput>>,
}

/// A running session.
pub struct Session<'a> {
    pub(super) client: &'a KubeClient,
    pub(super) opts: &'a SessionOptions,
    pub(super) paint: Painter,
    pub(super) state: State,
    pub(super) timeline: Timeline,
    pub(super) counts: Counts,
    pub(super) progress: Option<Progress>,
    /// The bursts (trace, node).
    pub(super) view: Option<IncidentView>,
    /// What ends the session with an error (after the summary's capture
    /// is closed).
    pub(super) fatal: Option<CliError>,
    pub(super) interrupted: bool,
    /// The facts learnt in this turn of the loop.
    facts: Vec<Fact>,
    /// Kernel events seen already (through another stream).
    dedup: Dedup,
}

impl<'a> Session<'a> {
    pub fn new(client: &'a KubeClient, opts: &'a SessionOptions, mut state: State) -> Session<'a> {
        let names = std::mem::take(&mut state.proxy_names);
        Session {
            client,
            opts,
            paint: Painter::stdout(),
            state,
            timeline: Timeline::default(),
            counts: Counts::default(),
            progress: opts.progress.then(Progress::start),
            view: opts.lines.then(|| IncidentView::new(names)),
            fatal: None,
            interrupted: false,
            facts: Vec::new(),
            dedup: Dedup::default(),
        }
    }

    /// Runs until the duration, Ctrl-C or a fatal error; then the summary.
    pub async fn run(mut self, mut inputs: Inputs) -> Result<ExitCode, CliError> {
        let deadline = self.opts.duration.map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // One listener for the whole session: a Ctrl-C between two turns
        // of the loop is not lost.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                biased;
                _ = &mut ctrl_c => { self.interrupted = true; break; }
                () = until(deadline) => break,
                Some(msg) = inputs.control.recv() => self.on_control(msg),
                Some(input) = inputs.feed.recv() => self.on_feed(input),
                Some(input) = inputs.logs.recv() => self.on_log(input),
                Some(k) = inputs.watches.next() => self.on_kube(k),
                _ = tick.tick() => {
                    self.on_tick();
                    self.find_new_agents().await;
                }
            }
            self.record();
            if self.fatal.is_some() {
                break;
            }
        }
        self.finish()
    }

    fn on_control(&mut self, msg: Control) {
        match msg {
            Control::Lost {
                node,
                reason,
                last_heard_ns,
            } => {
                let warning =
                    format!("warning: the agent on node {node} stopped mid-trace: {reason}");
                if self.state.agents.lose(&node, reason.clone()) {
                    // Recorded where it happened: the report (live, and
                    // replayed from the capture) says where this node's
                    // facts stop.
                    self.facts.push(Fact::AgentGone(AgentGoneFact {
                        at_ns: now_ns(),
                        node: node.clone(),
                        reason,
                        last_heard_ns,
                    }));
                    let others = self.state.agents.open_count();
                    let line = format!(
                        "{warning}; continuing with {others} other node(s), facts so far are kept"
                    );
                    self.note(&Painter::stderr().red(&line));
                }
            }
            Control::Skew { node, version } => {
                self.fatal = Some(skew_error(&node, &version));
            }
            Control::Connected { node, hello } => {
                tracing::debug!(%node, agent_node = %hello.node, version = %hello.agent_version, "subscribed");
            }
        }
    }

    fn on_feed(&mut self, input: Feed) {
        match input {
            Feed::Event(ev) => {
                if !self.dedup.first(&ev) {
                    return;
                }
                self.counts.kernel += 1;
                if self.opts.events {
                    self.say_event(&kernel_line(&ev, self.paint));
                }
                self.facts.push(Fact::Kernel(*ev));
            }
            Feed::Stats(node, stats) => {
                let d = self.state.agents.drop_counters(&node, &stats, now_ns());
                // A failed write shows when the capture is closed.
                let _ = self.state.recorder.drops(&d);
                self.state.agents.stats.insert(node, *stats);
            }
        }
    }

    fn on_log(&mut self, input: LogInput) {
        if let Some(Fact::ProxyLog(f)) = self.state.tally.take(input) {
            if self.opts.events && f.account.status >= 500 {
                self.say_event(&self.paint.yellow(&proxy_logs::fact_line(&f)));
            }
            self.facts.push(Fact::ProxyLog(f));
        }
    }

    fn on_kube(&mut self, k: KubeInput) {
        let at = now_ns();
        let before = self.facts.len();
        let t = &mut self.timeline;
        match k {
            KubeInput::Pod(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                self.facts.extend(t.pods.observe(&p, at));
                self.on_pod(&p);
            }
            KubeInput::Pod(watcher::Event::Delete(p)) => self.facts.extend(t.pods.gone(&p, at)),
            KubeInput::Slice(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                self.facts.extend(t.slices.observe(&s, at));
            }
            KubeInput::Slice(watcher::Event::Delete(s)) => self.facts.extend(t.slices.gone(&s, at)),
            KubeInput::Node(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                self.facts.extend(t.nodes.observe(&n, at));
            }
            KubeInput::Service(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                self.facts.extend(t.services.observe(&s, at));
            }
            KubeInput::Service(watcher::Event::Delete(s)) => {
                self.facts.extend(t.services.gone(&s, at));
            }
            KubeInput::Event(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                self.facts.extend(t.events.observe(&e, at));
            }
            // The proxy pods' own lifecycle (deletion, readiness): a proxy
            // replica terminated under traffic is a cause of its own.
            KubeInput::Proxy(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                self.facts.extend(t.pods.observe(&p, at));
                self.on_proxy(&p);
            }
            KubeInput::Proxy(watcher::Event::Delete(p)) => self.facts.extend(t.pods.gone(&p, at)),
            KubeInput::Failed(PROXY_WATCH, e) => {
                tracing::debug!(error = %e, "proxy pod watch failed; retrying");
            }
            KubeInput::Failed(resource, e) => {
                let ns = if resource == "nodes" {
                    None
                } else {
                    self.opts.scope.namespace.as_deref()
                };
                match fatal_watch_error(resource, &e, ns, &self.client.server) {
                    Some(err) => self.fatal = Some(err),
                    None => tracing::warn!(resource, error = %e, "watch failed; retrying"),
                }
            }
            _ => {}
        }
        // An adopted proxy's HttpPeek fact counts as a Kubernetes one.
        self.counts.k8s += (self.facts.len() - before) as u64;
    }

    /// A pod in scope widens every open stream to it (an `Update`); its
    /// node, if new to the session, gets its first and only stream.
    fn on_pod(&mut self, p: &Pod) {
        if !self.opts.scope.matches(p) {
            return;
        }
        let delta = self.state.interest.add_pod(p);
        self.state.agents.widen(&delta);
        if let Some(node) = pod_node(p) {
            self.open_stream(&node);
        }
    }

    /// A proxy pod that started during the session: peeked at, followed
    /// and subscribed to like the ones found at the start.
    fn on_proxy(&mut self, p: &Pod) {
        let Some((uid, ip, node)) = new_proxy(p, &self.state.known_proxies) else {
            return;
        };
        self.state.known_proxies.insert(uid.clone());
        if let Some(view) = &mut self.view {
            view.name_proxy(ip, pod_name(p));
        }
        let peek = self.opts.http_peek;
        let delta = self.state.interest.add_proxy(p, &uid, ip, peek);
        self.state.agents.widen(&delta);
        if !self.state.interest.node_target {
            self.open_stream(&node);
        }
        if peek {
            // From now on its 5xx are seen: the engine may count its
            // unanswered failures as retried.
            self.facts.push(Fact::HttpPeek(HttpPeekFact {
                at_ns: now_ns(),
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                pod: p.metadata.name.clone().unwrap_or_default(),
                node: node.clone(),
                proxy_ip: ip,
            }));
        }
        let logged = match (&self.state.logs, ProxyPod::of(p)) {
            (Some(f), Some(pp)) => {
                f.add(pp);
                self.state.tally.pods += 1;
                true
            }
            _ => false,
        };
        if self.opts.chatty() {
            self.note(&adopted_line(p, &node, peek, logged));
        }
    }

    /// Opens `node`'s stream with the whole interest set, unless it has one.
    fn open_stream(&mut self, node: &str) {
        let interest = &self.state.interest;
        let opened = self
            .state
            .agents
            .ensure(self.client, node, || interest.filter());
        if opened == Ensured::NoAgent {
            self.note(&format!(
                "warning: no fivexx agent on node {node}: its kernel facts are missing"
            ));
        }
    }

    /// A node that joined mid-session (an autoscaler's scale-up, a
    /// replacement node) runs pods of interest before its agent pod is
    /// listed: the agent pods are listed again, at most every 5 s while a
    /// node lacks one, and its stream opens when its agent appears.
    async fn find_new_agents(&mut self) {
        let agents = &mut self.state.agents;
        if !agents.any_missing()
            || agents
                .listed_at
                .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        agents.listed_at = Some(tokio::time::Instant::now());
        let listed = tokio::time::timeout(
            Duration::from_secs(2),
            crate::agent::agent_pods(self.client),
        )
        .await;
        let Ok(Ok(pods)) = listed else {
            return;
        };
        for node in self.state.agents.learn(pods) {
            self.note(&format!(
                "agent on node {node} found: its kernel facts are recorded from now on"
            ));
            self.open_stream(&node);
        }
    }

    fn on_tick(&mut self) {
        // A crash loses at most the last second of the capture.
        let _ = self.state.recorder.flush();
        if let Some(p) = &self.progress {
            p.tick(self.counts, self.state.agents.total_drops());
        }
        // Verdicts come out a lookahead (and the skew) after their
        // failure: a burst quiet for that long plus its gap is over even
        // when no verdict came out since.
        let explained = now_ns() - self.opts.lookahead_ns - self.opts.skew_ns;
        if let Some(view) = &mut self.view {
            view.advance(explained.max(view.latest_ns()));
        }
    }

    /// An `--events` line on stdout, clear of the bursts' bars.
    fn say_event(&self, line: &str) {
        match &self.view {
            Some(v) => v.say(line),
            None => say(line),
        }
    }

    /// A line on stderr, clear of the bursts' bars.
    pub(super) fn note(&self, line: &str) {
        match &self.view {
            Some(v) => v.note(line),
            None => eprintln!("{line}"),
        }
    }

    /// Records this turn's facts: the capture and the analysis get each
    /// one, and the verdicts it makes final go to their bursts; the
    /// bursts they leave behind are over.
    fn record(&mut self) {
        let verdicts = &mut self.counts.verdicts;
        let view = &mut self.view;
        let mut seen = |v: &fivexx_core::explain::Verdict| {
            *verdicts += 1;
            if let Some(view) = view.as_mut() {
                view.verdict(v);
            }
        };
        for f in self.facts.drain(..) {
            if let Err(e) = self.state.recorder.fact(&f, &mut seen) {
                self.fatal = Some(self.opts.capture_error(e));
            }
        }
        if let Some(view) = &mut self.view {
            view.advance(view.latest_ns());
        }
    }
}

async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
