//! The command line: the global kubectl flags and one subcommand each,
//! parsed once by clap into typed values.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

use crate::cmd;
use crate::error::CliError;
use crate::kube::KubeFlags;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl fivexx",
    bin_name = "kubectl fivexx",
    version,
    about = "Explain 502/504s during Kubernetes rollouts and drains from kernel facts",
    propagate_version = true,
    after_help = "Examples:\n  kubectl fivexx deploy\n  kubectl fivexx trace deploy/web -n shop\n  kubectl fivexx capture -A --duration 10m -f rollout.fxc\n  kubectl fivexx explain rollout.fxc"
)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// Log verbosely to stderr (-v: debug, -vv: trace).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Explain the failed connections recorded in a capture file (no cluster needed).
    Explain(cmd::explain::ExplainArgs),
    /// Install the node agent (DaemonSet and read-only RBAC in fivexx-system).
    #[command(after_help = cmd::deploy::EXAMPLES)]
    Deploy(cmd::deploy::DeployArgs),
    /// Remove what `deploy` installed (selected by its label).
    #[command(after_help = cmd::deploy::UNDEPLOY_EXAMPLES)]
    Undeploy(cmd::deploy::UndeployArgs),
    /// Per node: agent version, kernel, hooks, drops and clients.
    #[command(after_help = cmd::status::EXAMPLES)]
    Status(cmd::status::StatusArgs),
    /// Stream explained kernel facts for a workload, service, pod, node or namespace.
    #[command(after_help = cmd::trace::TRACE_EXAMPLES)]
    Trace(cmd::trace::TraceArgs),
    /// Record kernel facts and the Kubernetes timeline to a file, headless.
    #[command(after_help = cmd::capture::CAPTURE_EXAMPLES)]
    Capture(cmd::capture::CaptureArgs),
    /// Trace one node, with its cordon state, terminating pods and evictions.
    #[command(after_help = cmd::node::NODE_EXAMPLES)]
    Node(cmd::node::NodeArgs),
    /// Print the plugin's version and the deployed agents' versions.
    #[command(after_help = cmd::version::EXAMPLES)]
    Version(cmd::version::VersionArgs),
    /// Print a shell completion script (bash, zsh or fish).
    #[command(after_help = cmd::completion::EXAMPLES)]
    Completion(cmd::completion::CompletionArgs),
}

impl Command {
    /// Runs the command: cluster commands on a runtime, `explain` and
    /// `completion` without one (they need no network).
    pub fn run(self, kube: KubeFlags) -> Result<ExitCode, CliError> {
        match self {
            Command::Explain(args) => cmd::explain::run(&args),
            Command::Completion(args) => cmd::completion::run::<Cli>(&args),
            Command::Deploy(args) => cmd::run_async(cmd::deploy::run(kube, args)),
            Command::Undeploy(args) => cmd::run_async(cmd::deploy::undeploy(kube, args)),
            Command::Status(args) => cmd::run_async(cmd::status::run(kube, args)),
            Command::Trace(args) => cmd::run_async(cmd::trace::run(kube, args)),
            Command::Capture(args) => cmd::run_async(cmd::capture::run(kube, args)),
            Command::Node(args) => cmd::run_async(cmd::node::run(kube, args)),
            Command::Version(args) => cmd::run_async(cmd::version::run(kube, args)),
        }
    }
}

/// Parses the command line. A flag value that does not parse (a duration,
/// a time) is one line and exit 1, like every other bad input; usage
/// errors, `--help` and `--version` are clap's own.
pub fn parse_cli() -> Result<Cli, ExitCode> {
    use clap::error::{ContextKind, ErrorKind};
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if e.kind() == ErrorKind::ValueValidation => {
            // `--skew <DURATION>` names the flag; the value and its cause follow.
            let flag = e.get(ContextKind::InvalidArg).map(|a| {
                let a = a.to_string();
                a.split(' ').next().unwrap_or_default().to_string()
            });
            let value = e.get(ContextKind::InvalidValue).map(ToString::to_string);
            let why = std::error::Error::source(&e).map(ToString::to_string);
            match (flag, value, why) {
                (Some(f), Some(v), Some(w)) => eprintln!("kubectl fivexx: {f} {v}: {w}"),
                _ => eprintln!(
                    "kubectl fivexx: {}",
                    e.to_string().lines().next().unwrap_or("")
                ),
            }
            Err(ExitCode::from(1))
        }
        Err(e) => e.exit(),
    }
}
