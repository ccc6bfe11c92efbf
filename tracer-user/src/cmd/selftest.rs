//! `fivexx-agent selftest`: the kernel self-tests, on this node.

use anyhow::Context;
use tracer_user::selftest;

pub fn run(only: Option<String>) -> anyhow::Result<()> {
    if let Some(o) = &only {
        anyhow::ensure!(
            selftest::CASES.iter().any(|(n, _)| n == o),
            "unknown case {o}; known: {}",
            selftest::CASES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let exe = std::env::current_exe().context("locating our own binary for child processes")?;
    let summary = selftest::run_all(&exe, only.as_deref());
    println!("FIVEXX-SELFTEST {}", serde_json::to_string(&summary)?);
    if summary.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
