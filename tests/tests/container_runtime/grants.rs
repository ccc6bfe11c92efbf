//! Least privilege, proven by failures: every grant of the pod template
//! (each added capability, hostPID, each volume mount) is taken away in
//! turn, and the agent's answer must name what is missing or show a
//! capability lost. A grant without a failing case fails the test: it
//! would be a grant beyond need.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use fivexx_core::capability::{CapabilityReport, HookState};
use fivexx_core::protocol::StreamFilter;
use fivexx_core::{KernelEvent, KernelEventKind};

use super::host::{self, PodProcess, Subscriber};
use super::pod::{PodTemplate, Removed};
use super::{on_demand, signal_case, start, Answer, Node, PROBE_POD_UID};

/// The grants of the template, each with a case name; then BTF hidden as
/// on a kernel without it (not a grant: the container's own read-only
/// sysfs shows /sys/kernel/btf whatever the volumes).
pub fn of(pod: &PodTemplate) -> Result<Vec<(String, Removed)>> {
    let mut out = Vec::new();
    for cap in pod.added_capabilities()? {
        out.push((
            format!("no-{}", cap.to_lowercase().replace('_', "-")),
            Removed::Capability(cap),
        ));
    }
    if pod.host_pid() {
        out.push(("no-hostpid".into(), Removed::HostPid));
    }
    for m in pod.host_mounts()? {
        out.push((
            format!("no-{}-mount", m.name),
            Removed::Volume(m.name, m.dst),
        ));
    }
    out.push(("no-kernel-btf".into(), Removed::KernelBtf));
    Ok(out)
}

/// Runs the pod without one grant and judges the answer; returns it as
/// one line, verbatim where the agent printed one.
pub fn case(node: &Node, case: &str, removed: &Removed) -> Result<String> {
    let bundle = node.bundle(case, removed)?;
    let id = format!("fivexx-{case}");
    let (pid, answer) = start(node, &bundle, &id)?;
    let line = match answer {
        Answer::Exited(code, stderr) => {
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            ensure!(
                lines.len() == 1 && code.is_some_and(|c| c != 0),
                "{case}: exit {code:?} with {} lines of stderr, want one:\n{stderr}",
                lines.len()
            );
            let want = match removed {
                Removed::Capability(c) => c.as_str(),
                Removed::Volume(_, dst) if dst == "/sys/kernel/tracing" => "tracefs",
                other => bail!("{case}: the agent exited without {other:?}: {}", lines[0]),
            };
            ensure!(
                lines[0].contains(want),
                "{case}: {:?} does not name {want}",
                lines[0]
            );
            format!("exit {} \"{}\"", code.unwrap_or(-1), lines[0])
        }
        Answer::Serving(report) => {
            let lost = serving_case(node, case, removed, &report);
            let code = node.runc.stop(&id, pid, Duration::from_secs(10))?;
            ensure!(code == Some(0), "{case}: SIGTERM gave exit {code:?}");
            format!("{}; {}", summary(&report), lost?)
        }
    };
    Ok(line)
}

/// The agent runs without the grant: what it lost, or an error when it
/// lost nothing (a grant beyond need).
fn serving_case(
    node: &Node,
    case: &str,
    removed: &Removed,
    report: &CapabilityReport,
) -> Result<String> {
    match removed {
        Removed::HostPid => {
            let ev = signal_case(node, false)?;
            ensure!(
                ev.signal.pod_uid.as_deref() != Some(PROBE_POD_UID),
                "{case}: the SIGTERM still carries its pod UID: hostPID is not needed"
            );
            let said = report
                .hooks
                .iter()
                .filter(|h| h.kind == KernelEventKind::Signal)
                .any(|h| {
                    h.state == HookState::Degraded
                        && h.notes.iter().any(|n| n.contains("host PID namespace"))
                });
            ensure!(
                said,
                "{case}: the report does not say the signal hook lost the host PID namespace"
            );
            Ok(format!(
                "LOST: {ev}; the report marks signal, exit and OOM degraded: not in the host PID namespace"
            ))
        }
        Removed::KernelBtf => {
            ensure!(
                !report.btf
                    && report
                        .btf_error
                        .as_deref()
                        .is_some_and(|e| e.contains("/sys/kernel/btf")),
                "{case}: the report does not say BTF is missing"
            );
            Ok("LOST: BTF (named in the report)".into())
        }
        Removed::Volume(name, dst) if dst == "/sys/fs/cgroup" => match http_case(node)? {
            None => {
                let said = report.hooks.iter().any(|h| {
                    h.kind == KernelEventKind::HttpResponse
                        && h.notes.iter().any(|n| n.contains("no cgroup v2 hierarchy"))
                });
                ensure!(
                    said,
                    "{case}: the report does not say the peek lost the cgroup mount"
                );
                Ok("LOST: the HTTP peek finds no proxy pod cgroup; the report marks the peek hooks degraded: no cgroup v2 hierarchy".into())
            }
            Some(ev) => bail!("{case}: without volume {name} the HTTP peek still saw {ev:?}"),
        },
        Removed::Volume(name, dst) if dst == jiffies_mount() => match idle_case(node)? {
            None => {
                let said = report.hooks.iter().any(|h| {
                    h.kind == KernelEventKind::StateChange
                        && h.state == HookState::Degraded
                        && h.notes
                            .iter()
                            .any(|n| n.contains("idle time of closing connections not read"))
                });
                ensure!(
                    said,
                    "{case}: the report does not say the state-change hook lost the idle time"
                );
                Ok("LOST: a connection closed after 300 ms idle comes without its idle time; the report marks inet_sock_set_state degraded: idle time of closing connections not read".into())
            }
            Some(ev) => bail!(
                "{case}: without volume {name} the idle close still came with {:?} us",
                ev.idle_us
            ),
        },
        other => bail!(
            "{case}: the agent serves fully without {other:?}: a grant beyond need ({})",
            summary(report)
        ),
    }
}

/// The report as `kubectl fivexx status` would show it, on one line.
fn summary(report: &CapabilityReport) -> String {
    let attached = report
        .hooks
        .iter()
        .filter(|h| h.state == HookState::Attached)
        .count();
    let off = report
        .hooks
        .iter()
        .filter(|h| on_demand(h.reason.as_deref()))
        .count();
    let mut s = format!(
        "serving, {attached}/{} hooks attached ({off} HTTP peek hooks off until asked), btf {}",
        report.hooks.len(),
        report.btf
    );
    if let Some(e) = &report.btf_error {
        s.push_str(&format!(" (btf_error \"{e}\")"));
    }
    let others = report
        .hooks
        .iter()
        .filter(|h| h.state != HookState::Attached && !on_demand(h.reason.as_deref()));
    for h in others {
        s.push_str(&format!(
            "; {} {:?}: {}{}",
            h.tracepoint,
            h.state,
            h.reason.as_deref().unwrap_or(""),
            h.notes.join("; ")
        ));
    }
    s
}

/// Where the DaemonSet mounts the host's timer list (the agent's jiffies
/// clock; the runtime masks the container's own).
pub fn jiffies_mount() -> &'static str {
    "/host/proc/timer_list"
}

/// A loopback connection closed by its client after 300 ms idle: the
/// agent's state-change event with its idle time, or None after 3 s.
pub fn idle_case(node: &Node) -> Result<Option<KernelEvent>> {
    let filter = StreamFilter {
        kinds: vec![KernelEventKind::StateChange],
        ips: vec![Ipv4Addr::LOCALHOST.into()],
        ..Default::default()
    };
    let port7450 = node.pod.container_port()?;
    let mut sub = Subscriber::connect(&node.netns.path, port7450, filter)?;
    let client = host::idle_close(Duration::from_millis(300))?;
    let got = sub.wait_for("an idle close", Duration::from_secs(3), |e| {
        e.kind == KernelEventKind::StateChange
            && e.idle_us.is_some()
            && e.tuple
                .is_some_and(|t| t.sport == client || t.dport == client)
    });
    Ok(got.ok())
}

/// A client names a proxy pod for the HTTP peek; a host process in that
/// pod's cgroup writes a 503 status line. The event, or None after 5 s.
pub fn http_case(node: &Node) -> Result<Option<KernelEvent>> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    let cgroup2 = host::cgroup2_root()?;
    let cid = format!("{:064x}", 0xb1u64);
    // bash writes the status line with one write(2) after the agent's next
    // tick (once a second) has attached the peek to the pod's cgroups.
    let script = format!(
        "sleep 2.5; exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'HTTP/1.1 503 Service Unavailable\\r\\n\\r\\n' >&3; sleep 1"
    );
    let mut bash = Command::new("bash");
    let _proxy = PodProcess::spawn(&cgroup2, PROBE_POD_UID, &cid, bash.args(["-c", &script]))?;
    let accept = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let filter = StreamFilter {
        kinds: vec![KernelEventKind::HttpResponse],
        pod_uids: vec![PROBE_POD_UID.into()],
        http_pods: vec![PROBE_POD_UID.into()],
        ..Default::default()
    };
    let port7450 = node.pod.container_port()?;
    let mut sub = Subscriber::connect(&node.netns.path, port7450, filter)?;
    let got = sub.wait_for("a 503 status line", Duration::from_secs(5), |e| {
        e.kind == KernelEventKind::HttpResponse && e.http_status == Some(503)
    });
    let _conn = accept
        .join()
        .map_err(|_| anyhow::anyhow!("accept panicked"))?
        .context("the proxy process never connected")?;
    Ok(got.ok())
}
