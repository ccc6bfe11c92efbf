//! `kubectl fivexx capture`: a headless session that records to a file
//! for a duration, with a progress line instead of the live lines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::session_flags::{ScopeArgs, SessionFlags, Show};
use crate::error::CliError;
use crate::kube::{KubeClient, KubeFlags};
use crate::session;

pub const CAPTURE_EXAMPLES: &str = "Examples:
  kubectl fivexx capture deploy/web -n shop --duration 10m -f rollout.fxc
  kubectl fivexx capture -A --duration 1h -f cluster.fxc
  kubectl fivexx explain rollout.fxc";

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

pub async fn run(kube: KubeFlags, args: CaptureArgs) -> Result<ExitCode, CliError> {
    if args.session.duration.is_none() {
        return Err(CliError::new(
            "capture needs --duration",
            "for example: kubectl fivexx capture -f out.fxc --duration 10m (or use trace --capture, which stops on Ctrl-C)",
        )
        );
    }
    let client = KubeClient::connect(&kube).await?;
    let scope = args.scope.resolve(&client).await?;
    let show = Show {
        lines: false,
        progress: true,
        summary: None,
        capture: Some(args.file),
    };
    session::run(&client, args.session.options(scope, show)).await
}
