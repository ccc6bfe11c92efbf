//! `kubectl fivexx`: explains 502/504s during rollouts, drains and
//! scale-downs. This binary parses the command line and does the I/O; all
//! reasoning lives in `fivexx-core`.

#![forbid(unsafe_code)]

mod agent;
mod cli;
mod cmd;
mod duration;
mod error;
mod kube;
mod manifests;
mod session;
mod style;

use std::process::ExitCode;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match cli::parse_cli() {
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
