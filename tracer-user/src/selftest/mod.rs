//! Kernel self-tests: load the real programs into the running kernel,
//! provoke each fact for real (sockets, signals, exits, cgroups) and assert
//! the decoded fields exactly against what the test itself knows.
//!
//! They run as `fivexx-agent selftest` (on a node, or inside the kernel
//! matrix's initramfs) and as cargo integration tests. Where the running
//! kernel cannot provide a fact, the case asserts the documented degraded
//! behaviour instead and reports `degraded`, never a silent pass.
//!
//! The harness (`SelftestTracer`, the case error, helpers) is in
//! harness.rs, the processes and sockets the cases drive in children.rs
//! and net.rs; the cases are grouped by family: network.rs (resets,
//! refusals, timeouts), idle.rs (the idle keep-alive close and its
//! RST), process.rs (signals, exits, cgroups), http.rs (the
//! status-line peek) and ring.rs (overflow and drop counting). This file
//! is the registry and the runner.

pub mod children;
mod harness;
mod http;
mod idle;
pub mod net;
mod network;
mod process;
mod ring;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

pub use harness::{make_dirs, CaseError, Outcome, SelftestTracer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Degraded,
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub kernel: String,
    pub passed: usize,
    pub failed: usize,
    pub degraded: usize,
    pub tests: Vec<CaseResult>,
}

pub type Case = fn(&mut SelftestTracer) -> Outcome;

pub const CASES: [(&str, Case); 10] = [
    ("refused_connect", network::refused_connect),
    ("peer_reset", network::peer_reset),
    ("connect_timeout", network::connect_timeout),
    ("sigterm_handled", process::sigterm_handled),
    (
        "sigterm_ignored_then_sigkill",
        process::sigterm_ignored_then_sigkill,
    ),
    ("exit_with_code", process::exit_with_code),
    ("kubelet_cgroup", process::kubelet_cgroup),
    ("ring_overflow", ring::ring_overflow),
    ("http_peek", http::http_peek),
    ("idle_close", idle::idle_close),
];

/// Runs one case by name in a fresh session.
pub fn run_case(name: &str, child_exe: &Path) -> CaseResult {
    let (name, case) = CASES
        .iter()
        .find(|(n, _)| *n == name)
        .copied()
        .expect("known case");
    let outcome = SelftestTracer::start(child_exe).and_then(|mut s| case(&mut s));
    to_result(name, outcome)
}

fn to_result(name: &'static str, outcome: Outcome) -> CaseResult {
    match outcome {
        Ok((status, detail)) => CaseResult {
            name,
            status,
            detail,
        },
        Err(e) => CaseResult {
            name,
            status: Status::Fail,
            detail: crate::chain(&e),
        },
    }
}

/// Runs every case against one shared session, printing a line per case.
pub fn run_all(child_exe: &Path, only: Option<&str>) -> Summary {
    let mut tests = Vec::new();
    match SelftestTracer::start(child_exe) {
        Ok(mut session) => {
            for (name, case) in CASES {
                if only.is_some_and(|o| o != name) {
                    continue;
                }
                let started = Instant::now();
                let r = to_result(name, case(&mut session));
                println!(
                    "{:<8} {name} ({:.2} s): {}",
                    format!("{:?}", r.status).to_uppercase(),
                    started.elapsed().as_secs_f64(),
                    r.detail
                );
                tests.push(r);
            }
        }
        Err(e) => {
            let detail = crate::chain(&e);
            println!("FAIL     load: {detail}");
            tests.push(CaseResult {
                name: "load",
                status: Status::Fail,
                detail,
            });
        }
    }
    let count = |st: Status| tests.iter().filter(|t| t.status == st).count();
    Summary {
        kernel: crate::tracer::kernel_release(),
        passed: count(Status::Pass) + count(Status::Degraded),
        failed: count(Status::Fail),
        degraded: count(Status::Degraded),
        tests,
    }
}
