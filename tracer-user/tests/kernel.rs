//! Kernel tests: the real programs in the real kernel (needs root or
//! CAP_BPF+CAP_PERFMON). Each case provokes one fact for real and asserts
//! the decoded fields. Without the privilege each test says why it skipped.

use std::path::PathBuf;

use tracer_user::selftest::{run_case, Status};

fn agent() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fivexx-agent"))
}

fn case(name: &str) {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP kernel test {name}: {why}");
        return;
    }
    let r = run_case(name, &agent());
    eprintln!("{:?} {name}: {}", r.status, r.detail);
    assert_ne!(r.status, Status::Fail, "{name}: {}", r.detail);
}

#[test]
fn refused_connect() {
    case("refused_connect");
}

#[test]
fn peer_reset() {
    case("peer_reset");
}

#[test]
fn connect_timeout() {
    case("connect_timeout");
}

#[test]
fn sigterm_handled() {
    case("sigterm_handled");
}

#[test]
fn sigterm_ignored_then_sigkill() {
    case("sigterm_ignored_then_sigkill");
}

#[test]
fn exit_with_code() {
    case("exit_with_code");
}

#[test]
fn kubelet_cgroup() {
    case("kubelet_cgroup");
}

#[test]
fn ring_overflow() {
    case("ring_overflow");
}

/// `fivexx-agent check -o json` is the capability report the plugin reads.
#[test]
fn check_reports_every_hook_as_json() {
    let out = std::process::Command::new(agent())
        .args(["check", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: fivexx_core::capability::CapabilityReport =
        serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.hooks.len(), tracer_user::layout::HOOKS.len());
    assert!(report
        .hooks
        .iter()
        .any(|h| h.tracepoint == "tcp:tcp_send_reset"));
}

#[test]
fn http_peek() {
    case("http_peek");
}

/// A server closes an idle keep-alive connection after 700 ms and 1500 ms;
/// the close carries the idle time the kernel read, and the client's next
/// request draws a RST on the same 4-tuple.
#[test]
fn idle_close() {
    case("idle_close");
}
