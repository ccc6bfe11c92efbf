//! Process cases: signals (handled, ignored, SIGKILL), exits with a code,
//! and a kubelet-style cgroup's pod and container on both.

use std::time::Duration;

use fivexx_core::{KernelEvent, KernelEventKind as K, SignalResult};

use super::children::{spawn, ChildMode};
use super::harness::{
    container_id, ensure, kernel_uuid, kill, make_dirs, CaseError, Outcome, SelftestTracer,
};
use super::Status;

fn signal_event(s: &mut SelftestTracer, sig: i32, target: u32) -> Result<KernelEvent, CaseError> {
    s.wait_for(&format!("signal {sig} to {target}"), |e| {
        e.kind == K::Signal
            && e.signal == Some(sig)
            && e.target.as_ref().is_some_and(|t| t.pid == target as i32)
    })
}

fn exit_event(s: &mut SelftestTracer, pid: u32) -> Result<KernelEvent, CaseError> {
    s.wait_for(&format!("exit of {pid}"), |e| {
        e.kind == K::Exit && e.target.as_ref().is_some_and(|t| t.pid == pid as i32)
    })
}

/// The sending thread's name: comm is per thread (test harness threads are named).
fn our_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn check_sender(ev: &KernelEvent) -> Result<(), CaseError> {
    let me = std::process::id() as i32;
    let task = ev.task.as_ref().ok_or("signal without a sender")?;
    ensure(task.pid == me, || {
        format!("sender pid {} want {me}", task.pid)
    })?;
    ensure(task.comm == our_comm(), || {
        format!("sender comm {:?} want {:?}", task.comm, our_comm())
    })
}

/// SIGTERM to a process with a handler: delivered; it exits with code 3.
pub(super) fn sigterm_handled(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::Signal, K::Exit])?;
    let mut child = spawn(&s.child_exe, ChildMode::TermHandler)?;
    let pid = child.id();
    kill(pid, libc::SIGTERM)?;
    let status = child.wait()?;
    ensure(status.code() == Some(3), || {
        format!("child exit status {status:?}, want code 3")
    })?;
    let sig = signal_event(s, 15, pid)?;
    ensure(sig.signal_result == Some(SignalResult::Delivered), || {
        format!("result {:?}, want delivered", sig.signal_result)
    })?;
    ensure(
        sig.target.as_ref().is_some_and(|t| t.comm == "fx-term"),
        || format!("target {:?}", sig.target),
    )?;
    check_sender(&sig)?;
    let ex = exit_event(s, pid)?;
    let code = ex.exit.and_then(|x| x.code);
    if s.tracer.facts.layout.btf_offsets.task_exit_code.is_none() {
        return Ok((
            Status::Degraded,
            "SIGTERM delivered; exit seen but exit codes unknown without BTF".into(),
        ));
    }
    ensure(code == Some(3), || {
        format!("exit code {:?}, want 3", ex.exit)
    })?;
    Ok((
        Status::Pass,
        format!(
            "SIGTERM {} -> {pid} (fx-term) delivered; exit code 3",
            our_comm()
        ),
    ))
}

/// SIGTERM to a process that ignores it: result `ignored`; then SIGKILL,
/// delivered, and death by signal 9.
pub(super) fn sigterm_ignored_then_sigkill(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::Signal, K::Exit])?;
    let mut child = spawn(&s.child_exe, ChildMode::IgnoreTerm)?;
    let pid = child.id();
    kill(pid, libc::SIGTERM)?;
    let term = signal_event(s, 15, pid)?;
    ensure(term.signal_result == Some(SignalResult::Ignored), || {
        format!("SIGTERM result {:?}, want ignored", term.signal_result)
    })?;
    check_sender(&term)?;
    kill(pid, libc::SIGKILL)?;
    let status = child.wait()?;
    use std::os::unix::process::ExitStatusExt;
    ensure(status.signal() == Some(9), || {
        format!("child status {status:?}, want killed by 9")
    })?;
    let k = signal_event(s, 9, pid)?;
    ensure(k.signal_result == Some(SignalResult::Delivered), || {
        format!("SIGKILL result {:?}", k.signal_result)
    })?;
    ensure(
        k.target.as_ref().is_some_and(|t| t.comm == "fx-ignore"),
        || format!("target {:?}", k.target),
    )?;
    check_sender(&k)?;
    let ex = exit_event(s, pid)?;
    if s.tracer.facts.layout.btf_offsets.task_exit_code.is_some() {
        ensure(ex.exit.and_then(|x| x.signal) == Some(9), || {
            format!("exit {:?}, want signal 9", ex.exit)
        })?;
    }
    Ok((
        Status::Pass,
        "SIGTERM ignored (result shows it), SIGKILL delivered, death by signal 9".into(),
    ))
}

/// A plain exit with a code, and nothing emitted for its non-leader threads.
pub(super) fn exit_with_code(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::Exit])?;
    let mut child = spawn(&s.child_exe, ChildMode::Exit(7))?;
    let pid = child.id();
    let status = child.wait()?;
    ensure(status.code() == Some(7), || {
        format!("child status {status:?}")
    })?;
    let ex = exit_event(s, pid)?;
    ensure(
        ex.target.as_ref().is_some_and(|t| t.comm == "fx-exit"),
        || format!("exit target {:?}", ex.target),
    )?;
    if s.tracer.facts.layout.btf_offsets.task_exit_code.is_none() {
        return Ok((
            Status::Degraded,
            "exit seen; code unknown without BTF".into(),
        ));
    }
    ensure(ex.exit.and_then(|x| x.code) == Some(7), || {
        format!("exit {:?}, want code 7", ex.exit)
    })?;
    // A thread exiting is not a process exit.
    let t = std::thread::spawn(|| {
        // SAFETY: plain syscall.
        unsafe { libc::syscall(libc::SYS_gettid) as i32 }
    });
    let tid = t.join().map_err(|_| "thread panicked")?;
    s.expect_none("exit event for a thread", Duration::from_millis(100), |e| {
        e.kind == K::Exit && e.target.as_ref().is_some_and(|x| x.pid == tid)
    })?;
    Ok((
        Status::Pass,
        "exit code 7 reported once for the process, none for a thread".into(),
    ))
}

/// A process in a kubelet-style cgroup: its signal and exit carry the pod
/// UID and container id parsed from the path.
pub(super) fn kubelet_cgroup(s: &mut SelftestTracer) -> Outcome {
    s.require_attached(&[K::Signal, K::Exit])?;
    let root = crate::enrich::cgroup2_root().ok_or("no cgroup v2 mount found")?;
    let pod_uid = kernel_uuid()?;
    let container_id = container_id()?;
    let rel = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{container_id}.scope",
        pod_uid.replace('-', "_")
    );
    let made = make_dirs(&root, &rel)?;
    let leaf = root.join(&rel);
    let outcome = (|| {
        let mut child = spawn(&s.child_exe, ChildMode::Sleep)?;
        let pid = child.id();
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string()).map_err(CaseError::step(
            format!("moving {pid} into {}", leaf.display()),
        ))?;
        // The agent's periodic scan, which on a node has long seen the container.
        s.enricher.refresh_processes();
        kill(pid, libc::SIGTERM)?;
        let _ = child.wait();
        let sig = signal_event(s, 15, pid)?;
        ensure(sig.pod_uid.as_deref() == Some(pod_uid.as_str()), || {
            format!("signal pod_uid {:?} want {pod_uid}", sig.pod_uid)
        })?;
        ensure(
            sig.container_id.as_deref() == Some(container_id.as_str()),
            || format!("signal container_id {:?}", sig.container_id),
        )?;
        let ex = exit_event(s, pid)?;
        let want_id = crate::enrich::cgroup_id_of(&leaf);
        ensure(ex.cgroup_id == want_id, || {
            format!("exit cgroup_id {:?} want {want_id:?}", ex.cgroup_id)
        })?;
        ensure(ex.pod_uid.as_deref() == Some(pod_uid.as_str()), || {
            format!("exit pod_uid {:?}", ex.pod_uid)
        })?;
        ensure(
            ex.container_id.as_deref() == Some(container_id.as_str()),
            || format!("exit container_id {:?}", ex.container_id),
        )?;
        Ok((
            Status::Pass,
            format!(
                "pod {pod_uid} container {}… on signal and exit",
                &container_id[..12]
            ),
        ))
    })();
    for dir in made.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    outcome
}
