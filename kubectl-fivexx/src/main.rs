//! `kubectl fivexx`: explains 502/504s during rollouts, drains and
//! scale-downs. This binary parses the command line and does the I/O; all
//! reasoning lives in `fivexx-core`.

#![forbid(unsafe_code)]

mod agent;
mod cmd;
mod duration;
mod error;
mod kube;
mod manifests;
mod session;
mod style;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl fivexx",
    bin_name = "kubectl fivexx",
    version,
    about = "Explain 502/504s during Kubernetes rollouts and drains from kernel facts",
    propagate_version = true,
    after_help = "Examples:\n  kubectl fivexx deploy\n  kubectl fivexx trace deploy/web -n shop\n  kubectl fivexx capture -A --duration 10m -f rollout.fxc\n  kubectl fivexx explain rollout.fxc"
)]
struct Cli {
    #[command(flatten)]
    kube: crate::kube::KubeFlags,
    /// Log verbosely to stderr (-v: debug, -vv: trace).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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

/// Parses the command line. A flag value that does not parse (a duration,
/// a time) is one line and exit 1, like every other bad input; usage
/// errors, `--help` and `--version` are clap's own.
fn parse_cli() -> Result<Cli, ExitCode> {
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

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(cli.verbose);
    let kube = cli.kube;
    let result = match cli.command {
        Command::Explain(args) => cmd::explain::run(&args),
        Command::Completion(args) => cmd::completion::run::<Cli>(&args),
        Command::Deploy(args) => cmd::run_async(cmd::deploy::run(kube, args)),
        Command::Undeploy(args) => cmd::run_async(cmd::deploy::undeploy(kube, args)),
        Command::Status(args) => cmd::run_async(cmd::status::run(kube, args)),
        Command::Trace(args) => cmd::run_async(cmd::trace::run(kube, args)),
        Command::Capture(args) => cmd::run_async(cmd::capture::run(kube, args)),
        Command::Node(args) => cmd::run_async(cmd::node::run(kube, args)),
        Command::Version(args) => cmd::run_async(cmd::version::run(kube, args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(cli_err) = e.downcast_ref::<error::CliError>() {
                eprintln!("kubectl fivexx: {}", cli_err.cause);
                if let Some(hint) = &cli_err.hint {
                    eprintln!("hint: {hint}");
                }
                return ExitCode::from(cli_err.code);
            }
            // One line: the cause chain joined, never a backtrace.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("kubectl fivexx: {}", msg.join(": "));
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr, off unless -v or RUST_LOG asks: stdout is the
/// user's output and may be piped.
fn init_logging(verbose: u8) {
    let default = match verbose {
        // Our own warnings only: client libraries log retries we report.
        0 => "kubectl_fivexx=warn",
        1 => "kubectl_fivexx=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(style::stderr_colour())
        .init();
}
