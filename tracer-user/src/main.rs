//! `fivexx-agent`: the node side of kubectl-fivexx.

//!
//! main.rs is the command line and the one-line error; each command is a
//! file of cmd/. This is the binary edge: anyhow lives here and in cmd/.

mod cmd;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use tracer_user::selftest::children;
use tracer_user::Error;

use cmd::check::ReportFormat;
use cmd::serve::ServeArgs;
use cmd::trace::TraceArgs;
use cmd::DEFAULT_LISTEN;

#[derive(Parser)]
#[command(
    name = "fivexx-agent",
    version,
    about = "Traces TCP resets, refused and timed-out connects, and pod-killing signals with eBPF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report what this kernel supports: hooks, layouts, BTF, ring buffer.
    #[command(after_help = "Examples:\n  fivexx-agent check\n  fivexx-agent check -o json")]
    Check {
        #[arg(short, long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
        /// Load and attach the programs to prove they work (needs root); without
        /// it, only layouts are read.
        #[arg(long)]
        load: bool,
    },
    /// Stream kernel events on this node, without any API server.
    #[command(
        after_help = "Examples:\n  sudo fivexx-agent trace\n  sudo fivexx-agent trace -o json --kinds signal,exit\n  sudo fivexx-agent trace --port 8080 --stats-interval 10"
    )]
    Trace(TraceArgs),
    /// Serve the event stream to clients (the plugin) on a loopback port.
    #[command(after_help = "Examples:\n  sudo fivexx-agent serve --listen 127.0.0.1:7450")]
    Serve(ServeArgs),
    /// Exit 0 when an agent answers on its port (liveness and readiness probes).
    Probe {
        #[arg(long, default_value = DEFAULT_LISTEN)]
        addr: SocketAddr,
    },
    /// Run the kernel self-tests: real programs, real sockets and signals.
    Selftest {
        /// Run only this case.
        #[arg(long)]
        only: Option<String>,
    },
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(children::CHILD_ARG) {
        children::run(&args[2..]);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIVEXX_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { output, load } => cmd::check::run(output, load),
        Command::Trace(t) => cmd::trace::run(t),
        Command::Selftest { only } => cmd::selftest::run(only),
        Command::Serve(s) => cmd::serve::run(s),
        Command::Probe { addr } => cmd::probe::run(addr),
    };
    if let Err(e) = result {
        let code = match e.downcast_ref::<Error>() {
            Some(Error::Privilege { .. }) => 2,
            _ => 1,
        };
        eprintln!("fivexx-agent: {e:#}");
        std::process::exit(code);
    }
}
