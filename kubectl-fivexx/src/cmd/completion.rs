//! `kubectl fivexx completion bash|zsh|fish`.

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;
use std::process::ExitCode;

use crate::error::CliError;

pub const EXAMPLES: &str = "Examples:
  # bash, for this shell
  source <(kubectl fivexx completion bash)
  # zsh, installed
  kubectl fivexx completion zsh > \"${fpath[1]}/_kubectl-fivexx\"
  # fish
  kubectl fivexx completion fish > ~/.config/fish/completions/kubectl-fivexx.fish

The scripts complete the `kubectl-fivexx` binary; kubectl >= 1.26 also
completes `kubectl fivexx` through a `kubectl_complete-fivexx` helper on PATH.";

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

pub fn run<C: CommandFactory>(args: &CompletionArgs) -> Result<ExitCode, CliError> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = C::command();
    clap_complete::generate(shell, &mut cmd, "kubectl-fivexx", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
