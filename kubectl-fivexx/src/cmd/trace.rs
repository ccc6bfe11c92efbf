//! `kubectl fivexx trace [TARGET]`: a live session that prints one line
//! per burst of failed requests (with `--events`, every kernel fact too),
//! then the summary.

use std::process::ExitCode;

use clap::Args;

use super::session_flags::{LiveOutputArgs, ScopeArgs, SessionFlags};
use crate::error::CliError;
use crate::kube::{KubeClient, KubeFlags};
use crate::session;

pub const TRACE_EXAMPLES: &str = "Examples:
  # explain 502s of a rollout as they happen; Ctrl-C prints the summary
  kubectl fivexx trace deploy/web -n shop
  # a Service's backends for two minutes, recorded for later
  kubectl fivexx trace svc/web --duration 2m --capture web.fxc
  # every kernel fact and proxy-log 5xx as well as the bursts
  kubectl fivexx trace deploy/web -n shop --events
  # a page to share: the report as HTML when the trace ends
  kubectl fivexx trace deploy/web -n shop --duration 5m --html rollout.html
  # one pod, a StatefulSet, or every pod with a label
  kubectl fivexx trace pod/web-7d9f-x2x9q
  kubectl fivexx trace sts/db
  kubectl fivexx trace -l app=web
  # the whole namespace, or all of them
  kubectl fivexx trace -n shop
  kubectl fivexx trace -A";

#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub out: LiveOutputArgs,
    #[command(flatten)]
    pub session: SessionFlags,
}

pub async fn run(kube: KubeFlags, args: TraceArgs) -> Result<ExitCode, CliError> {
    let client = KubeClient::connect(&kube).await?;
    let scope = args.scope.resolve(&client).await?;
    session::run(&client, args.out.options(&args.session, scope)).await
}
