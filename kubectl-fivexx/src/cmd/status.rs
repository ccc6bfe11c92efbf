//! `kubectl fivexx status`: asks every agent, through its port-forward,
//! for its Hello (version, kernel, hooks) and first Stats (drops, clients).

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use fivexx_core::capability::HookState;
use fivexx_core::protocol::{AgentMessage, AgentStats, StreamFilter};
use serde::Serialize;

use crate::agent::{self, AgentConn, AgentPod, Hello};
use crate::error::{CliError, Source};
use crate::kube::{KubeClient, KubeFlags};
use crate::style::Painter;

pub const EXAMPLES: &str = "Examples:
  kubectl fivexx status
  kubectl fivexx status -o wide
  kubectl fivexx status -o json --context prod";

/// `-o` of `status`: the agents' table or its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Wide,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: StatusFormat,
}

/// One agent's answer (or why there was none).
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub node: String,
    pub pod: String,
    pub ready: bool,
    pub agent_version: Option<String>,
    pub kernel: Option<String>,
    pub btf: Option<bool>,
    pub hooks_attached: usize,
    pub hooks_total: usize,
    /// Hooks not attached, with the reason.
    pub hooks_missing: Vec<String>,
    pub kernel_drops: u64,
    pub clients: Option<u32>,
    pub compatible: Option<bool>,
    pub error: Option<String>,
    #[serde(skip)]
    pub hello: Option<Hello>,
}

/// A filter no event matches: status wants Hello and Stats only.
fn nothing() -> StreamFilter {
    StreamFilter {
        ips: vec![IpAddr::V4(Ipv4Addr::BROADCAST)],
        pod_uids: vec!["fivexx-status-probe".into()],
        ..Default::default()
    }
}

/// Asks one agent for its Hello and first Stats.
pub async fn probe(client: &KubeClient, agent: &AgentPod) -> AgentStatus {
    let mut st = AgentStatus {
        node: agent.node.clone(),
        pod: agent.pod.clone(),
        ready: agent.ready,
        agent_version: None,
        kernel: None,
        btf: None,
        hooks_attached: 0,
        hooks_total: 0,
        hooks_missing: Vec::new(),
        kernel_drops: 0,
        clients: None,
        compatible: None,
        error: None,
        hello: None,
    };
    let mut conn = match AgentConn::open(client, &agent.pod, nothing()).await {
        Ok(c) => c,
        Err(e) => {
            st.error = Some(e.to_string());
            return st;
        }
    };
    let h = conn.hello.clone();
    st.agent_version = Some(h.agent_version.clone());
    st.compatible = Some(agent::compatible(&h.agent_version));
    st.kernel = Some(h.capabilities.kernel_release.clone());
    st.btf = Some(h.capabilities.btf);
    st.hooks_total = h.capabilities.hooks.len();
    for hook in &h.capabilities.hooks {
        match hook.state {
            HookState::Attached | HookState::Degraded => st.hooks_attached += 1,
            // Opt-in hooks (HTTP peek) are not missing when not asked for.
            HookState::NotLoaded => st.hooks_total -= 1,
            _ => st.hooks_missing.push(format!(
                "{} ({})",
                hook.tracepoint,
                hook.reason.as_deref().unwrap_or("no reason given")
            )),
        }
    }
    st.hello = Some(h);
    let stats = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(msg) = conn.next().await {
            match msg {
                Ok(AgentMessage::Stats { stats }) => return Ok(stats),
                Ok(AgentMessage::Goodbye { reason }) => {
                    return Err(format!("agent said goodbye: {reason}"))
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the agent closed the stream".to_string())
    })
    .await;
    match stats {
        Ok(Ok(s)) => apply_stats(&mut st, &s),
        Ok(Err(e)) => st.error = Some(e),
        Err(_) => st.error = Some("no stats within 5s".into()),
    }
    st
}

fn apply_stats(st: &mut AgentStatus, s: &AgentStats) {
    st.kernel_drops = s.dropped.values().sum();
    // Our own probe connection is one of the clients.
    st.clients = Some(s.clients.saturating_sub(1));
}

/// Probes every agent concurrently.
pub async fn probe_all(client: &KubeClient, agents: &[AgentPod]) -> Vec<AgentStatus> {
    futures::future::join_all(agents.iter().map(|a| probe(client, a))).await
}

pub async fn run(kube: KubeFlags, args: StatusArgs) -> Result<ExitCode, CliError> {
    let client = KubeClient::connect(&kube).await?;
    let agents = agent::agent_pods(&client).await?;
    if agents.is_empty() {
        return Err(CliError::new(
            "the fivexx agent DaemonSet exists but has no pods on any node",
            "check `kubectl -n fivexx-system describe daemonset fivexx-agent` (node selector, taints, image pulls)",
        )
        );
    }
    let statuses = probe_all(&client, &agents).await;
    let text = match args.output {
        StatusFormat::Table => render_table(&statuses, false, Painter::stdout()),
        StatusFormat::Wide => render_table(&statuses, true, Painter::stdout()),
        StatusFormat::Json => serde_json::to_string_pretty(&statuses).map_err(not_encoded)? + "\n",
        StatusFormat::Yaml => serde_yaml::to_string(&statuses).map_err(not_encoded)?,
    };
    print!("{text}");
    if let Some(s) = statuses.iter().find(|s| s.compatible == Some(false)) {
        return Err(agent::skew_error(
            &s.node,
            s.agent_version.as_deref().unwrap_or("?"),
        ));
    }
    if let Some(s) = statuses.iter().find(|s| s.error.is_some()) {
        return Err(CliError::new(
            format!(
                "the agent on node {} did not answer: {}",
                s.node,
                s.error.as_deref().unwrap_or_default()
            ),
            format!("check `kubectl -n fivexx-system logs {}`", s.pod),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn not_encoded(e: impl Into<Source>) -> CliError {
    CliError::bare("cannot encode the agents' status").with_source(e)
}

/// kubectl-style columns.
pub fn render_table(statuses: &[AgentStatus], wide: bool, p: Painter) -> String {
    let mut rows = vec![{
        let mut h = vec![
            "NODE", "AGENT", "KERNEL", "HOOKS", "DROPS", "CLIENTS", "STATUS",
        ];
        if wide {
            h.extend(["POD", "BTF", "MISSING"]);
        }
        h.into_iter().map(String::from).collect::<Vec<_>>()
    }];
    for s in statuses {
        let status = match (&s.error, s.compatible) {
            (Some(_), _) => p.red("unreachable"),
            (None, Some(false)) => p.red("version-skew"),
            _ if !s.ready => p.yellow("not-ready"),
            _ if !s.hooks_missing.is_empty() => p.yellow("degraded"),
            _ => p.green("ok"),
        };
        let mut row = vec![
            s.node.clone(),
            s.agent_version.clone().unwrap_or_else(|| "-".into()),
            s.kernel.clone().unwrap_or_else(|| "-".into()),
            if s.hello.is_some() {
                format!("{}/{}", s.hooks_attached, s.hooks_total)
            } else {
                "-".into()
            },
            s.kernel_drops.to_string(),
            s.clients.map_or("-".into(), |c| c.to_string()),
            status,
        ];
        if wide {
            row.push(s.pod.clone());
            row.push(s.btf.map_or("-".into(), |b| b.to_string()));
            row.push(if s.hooks_missing.is_empty() {
                "-".into()
            } else {
                s.hooks_missing.join("; ")
            });
        }
        rows.push(row);
    }
    columns(&rows)
}

/// Left-aligned columns separated by three spaces, as kubectl prints.
/// Widths ignore colour escapes.
pub fn columns(rows: &[Vec<String>]) -> String {
    fn visible(s: &str) -> usize {
        let mut n = 0;
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (false, _) => n += 1,
                _ => {}
            }
        }
        n
    }
    let ncol = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncol)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| visible(c))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - visible(c) + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
