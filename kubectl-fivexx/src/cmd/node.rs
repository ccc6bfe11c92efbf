//! `kubectl fivexx node NODE`: the node's context (cordon state,
//! terminating pods, evictions), then a session over every pod on it.

use std::process::ExitCode;

use clap::Args;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use super::session_flags::{LiveOutputArgs, SessionFlags};
use crate::error::CliError;
use crate::kube::node_context::node_context;
use crate::kube::target::{self, Target};
use crate::kube::{KubeClient, KubeFlags};
use crate::session;

pub const NODE_EXAMPLES: &str = "Examples:
  # watch a drain from the node's point of view
  kubectl fivexx node worker-3
  kubectl fivexx node worker-3 --duration 5m --capture drain.fxc";

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's name.
    #[arg(value_name = "NODE")]
    pub node: String,
    #[command(flatten)]
    pub out: LiveOutputArgs,
    #[command(flatten)]
    pub session: SessionFlags,
}

pub async fn run(kube: KubeFlags, args: NodeArgs) -> Result<ExitCode, CliError> {
    let client = KubeClient::connect(&kube).await?;
    let nodes: Api<Node> = Api::all(client.kube.clone());
    let node = client
        .get_opt("nodes", None, nodes.get(&args.node))
        .await?
        .ok_or_else(|| {
            CliError::new(
                format!("node \"{}\" not found", args.node),
                "list nodes with `kubectl get nodes`",
            )
        })?;
    print!("{}", node_context(&client, &node).await?);
    let target = Target::Node(args.node.clone());
    let scope = target::resolve(&client, &target, true, Default::default()).await?;
    session::run(&client, args.out.options(&args.session, scope)).await
}
