//! The agent's command line as a user meets it: bad input and missing
//! privilege give one line and a non-zero exit.

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fivexx-agent"))
}

#[test]
fn unknown_kind_is_a_one_line_error() {
    let out = agent()
        .args(["trace", "--kinds", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unknown kind \"bogus\""), "{err}");
}

#[test]
fn bad_ring_size_is_refused_before_loading() {
    let out = agent()
        .args(["trace", "--ring-bytes", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
}

/// Without CAP_BPF/CAP_PERFMON the agent names what is missing and exits 2.
#[test]
fn unprivileged_trace_names_the_missing_capabilities() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !has_setpriv {
        // Already unprivileged: run directly.
        if !is_root {
            let out = agent().args(["trace"]).output().unwrap();
            assert_eq!(out.status.code(), Some(2));
            return;
        }
        eprintln!("SKIP: setpriv (util-linux) not installed, cannot drop privileges");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_fivexx-agent"))
        .args(["trace"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("CAP_BPF") && err.contains("CAP_PERFMON"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// `check` works without privilege: it reads layouts only.
#[test]
fn check_without_load_needs_no_privilege() {
    let out = agent().args(["check"]).output().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("tracefs"),
            "check failed for another reason: {err}"
        );
        eprintln!("SKIP: tracefs not mounted and cannot be mounted here");
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tcp:tcp_send_reset"), "{text}");
}

/// With tracefs unmounted (in a private mount namespace), a privileged agent
/// mounts it itself and carries on.
#[test]
fn mounts_tracefs_when_absent() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP: {why}");
        return;
    }
    let agent = env!("CARGO_BIN_EXE_fivexx-agent");
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         if [ -d /sys/kernel/tracing/events ]; then echo still-mounted; exit 3; fi; \
         {agent} check && [ -d /sys/kernel/tracing/events ]"
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tcp:tcp_send_reset"), "{stdout}");
}
