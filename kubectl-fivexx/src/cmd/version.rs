//! `kubectl fivexx version`: the plugin's version, then each deployed
//! agent's (from its Hello), like `kubectl version` does for the server.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::agent;
use crate::cmd::status;
use crate::error::CliError;
use crate::kube::{KubeClient, KubeFlags};

pub const EXAMPLES: &str = "Examples:
  kubectl fivexx version
  kubectl fivexx version --client
  kubectl fivexx version -o json";

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Only the plugin's version; do not contact the client.
    #[arg(long)]
    pub client: bool,
    /// Output format: text or json.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: VersionFormat,
}

/// `-o` of `version`: kubectl's lines, or one JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Text,
    Json,
}

#[derive(Serialize)]
struct Versions {
    client: String,
    protocol: u32,
    agents: Vec<AgentVersion>,
}

#[derive(Serialize)]
struct AgentVersion {
    node: String,
    version: Option<String>,
    error: Option<String>,
}

fn json_of(v: &Versions) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map_err(|e| CliError::bare("cannot encode the versions").with_source(e))
}

pub async fn run(kube: KubeFlags, args: VersionArgs) -> Result<ExitCode, CliError> {
    let client = env!("CARGO_PKG_VERSION").to_string();
    let protocol = fivexx_core::protocol::PROTOCOL_VERSION;
    let json = args.output == VersionFormat::Json;
    if !json {
        println!("Client Version: {client} (agent protocol {protocol})");
    }
    let mut v = Versions {
        client,
        protocol,
        agents: Vec::new(),
    };
    if args.client {
        if json {
            println!("{}", json_of(&v)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let client = KubeClient::connect(&kube).await?;
    let agents = agent::agent_pods(&client).await?;
    let statuses = status::probe_all(&client, &agents).await;
    for s in &statuses {
        if !json {
            match (&s.agent_version, &s.error) {
                (Some(ver), _) => println!("Agent Version: {ver} (node {})", s.node),
                (None, Some(e)) => println!("Agent Version: unknown (node {}: {e})", s.node),
                (None, None) => println!("Agent Version: unknown (node {})", s.node),
            }
        }
        v.agents.push(AgentVersion {
            node: s.node.clone(),
            version: s.agent_version.clone(),
            error: s.error.clone(),
        });
    }
    if json {
        println!("{}", json_of(&v)?);
    }
    if let Some(s) = statuses.iter().find(|s| s.compatible == Some(false)) {
        return Err(agent::skew_error(
            &s.node,
            s.agent_version.as_deref().unwrap_or("?"),
        ));
    }
    Ok(ExitCode::SUCCESS)
}
