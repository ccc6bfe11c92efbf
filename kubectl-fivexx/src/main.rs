//! `kubectl fivexx`: explains 502/504s during rollouts, drains and
//! scale-downs. This binary parses the command line and does the I/O; all
//! reasoning lives in `fivexx-core`.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl fivexx",
    bin_name = "kubectl fivexx",
    version,
    about = "Explain 502/504s during Kubernetes rollouts and drains from kernel facts",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Explain the failed connections recorded in a capture file (no cluster needed).
    Explain(cmd::explain::ExplainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Explain(args) => cmd::explain::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the cause chain joined, never a backtrace.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("kubectl fivexx: {}", msg.join(": "));
            ExitCode::from(1)
        }
    }
}
