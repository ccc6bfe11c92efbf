//! `kubectl fivexx`: explains 502/504s during rollouts, drains and
//! scale-downs. This crate parses the command line and does the I/O; all
//! reasoning lives in `fivexx-core`.
//!
//! A library under a three-line `main.rs`: the binary is only the
//! process's entry. The modules stay private until something outside the
//! crate needs one, so that the compiler still reports dead code.

#![forbid(unsafe_code)]

mod agent;
mod cli;
mod clock;
mod cmd;
mod duration;
mod error;
mod kube;
mod manifests;
mod session;
mod style;

use std::process::ExitCode;

/// Runs the command line of this process to its exit code. Every failure
/// is printed here, once, as one line with its cause (and a hint line):
/// never a backtrace.
pub fn run() -> ExitCode {
    let cli = match cli::parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(cli.verbose);
    match cli.command.run(cli.kube) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kubectl fivexx: {e}");
            if let Some(hint) = &e.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.code)
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
