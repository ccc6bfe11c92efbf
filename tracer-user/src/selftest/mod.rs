//! Kernel self-tests: load the real programs into the running kernel,
//! provoke each fact for real (sockets, signals, exits, cgroups) and assert
//! the decoded fields exactly against what the test itself knows.
//!
//! They run as `fivexx-agent selftest` (on a node, or inside the kernel
//! matrix's initramfs) and as cargo integration tests. Where the running
//! kernel cannot provide a fact, the case asserts the documented degraded
//! behaviour instead and reports `degraded`, never a silent pass.

pub mod children;
pub mod net;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use fivexx_core::capability::HookState;
use fivexx_core::{KernelEvent, KernelEventKind as K, SignalResult, TcpState};
use serde::Serialize;

use crate::decode::Decoder;
use crate::enrich::Enricher;
use crate::tracer::{Tracer, TracerOptions};
use children::{spawn, ChildMode};
use net::Socket;

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

type Outcome = Result<(Status, String), String>;

/// A loaded tracer plus everything it has reported so far.
pub struct Session {
    pub tracer: Tracer,
    ring: RingBuf<MapData>,
    decoder: Decoder,
    enricher: Enricher,
    pub seen: Vec<KernelEvent>,
    child_exe: PathBuf,
}

const WAIT: Duration = Duration::from_secs(3);

impl Session {
    pub fn start(child_exe: &Path) -> Result<Session, String> {
        Self::with_options(child_exe, &TracerOptions::default())
    }

    pub fn with_options(child_exe: &Path, opts: &TracerOptions) -> Result<Session, String> {
        let mut tracer = Tracer::load(opts).map_err(|e| e.to_string())?;
        let ring = tracer.take_ring().map_err(|e| e.to_string())?;
        let decoder = Decoder::new(
            crate::tracer::wall_clock_offset_ns(),
            tracer.facts.layout.reset_reasons.clone(),
            String::new(),
        );
        Ok(Session {
            tracer,
            ring,
            decoder,
            enricher: Enricher::new(),
            seen: Vec::new(),
            child_exe: child_exe.to_path_buf(),
        })
    }

    /// Drains what the kernel has produced so far; returns how many records.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            n += 1;
            if let Ok(mut ev) = self.decoder.decode_bytes(&item) {
                self.enricher.enrich(&mut ev);
                self.seen.push(ev);
            }
        }
        n
    }

    /// Waits until an event matching `pred` has been seen.
    pub fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&KernelEvent) -> bool,
    ) -> Result<KernelEvent, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            self.drain();
            if let Some(ev) = self.seen.iter().find(|e| pred(e)) {
                return Ok(ev.clone());
            }
            if Instant::now() > deadline {
                return Err(format!("no {what} within {WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asserts that no event matching `pred` arrives within `window`.
    pub fn expect_none(
        &mut self,
        what: &str,
        window: Duration,
        pred: impl Fn(&KernelEvent) -> bool,
    ) -> Result<(), String> {
        std::thread::sleep(window);
        self.drain();
        match self.seen.iter().find(|e| pred(e)) {
            Some(ev) => Err(format!("unexpected {what}: {ev:?}")),
            None => Ok(()),
        }
    }

    fn hook_state(&self, kind: K) -> Option<HookState> {
        self.tracer
            .report
            .hooks
            .iter()
            .find(|h| h.kind == kind)
            .map(|h| h.state)
    }

    fn require_attached(&self, kinds: &[K]) -> Result<(), String> {
        for k in kinds {
            match self.hook_state(*k) {
                Some(HookState::Attached | HookState::Degraded) => {}
                other => return Err(format!("hook for {k} is {other:?}, not attached")),
            }
        }
        Ok(())
    }
}

fn lo() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Matches a network event by its 4-tuple on loopback.
fn tuple_is(ev: &KernelEvent, sport: u16, dport: u16) -> bool {
    ev.tuple
        .is_some_and(|t| t.saddr == lo() && t.daddr == lo() && t.sport == sport && t.dport == dport)
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// A connect to a closed port: the client sees a RST in SYN_SENT and error
/// 111; 6.10+ also reports the RST sent with reason NO_SOCKET.
fn refused_connect(s: &mut Session) -> Outcome {
    s.require_attached(&[K::ReceiveReset, K::SockError, K::StateChange])?;
    let closed = Socket::bound().map_err(|e| e.to_string())?;
    let server_port = closed.port().map_err(|e| e.to_string())?;
    drop(closed); // nothing listens there now
    let client = Socket::bound().map_err(|e| e.to_string())?;
    let client_port = client.port().map_err(|e| e.to_string())?;
    let err = client
        .connect(server_port)
        .expect_err("connect to a closed port succeeded");
    ensure(err.raw_os_error() == Some(libc::ECONNREFUSED), || {
        format!("connect failed with {err}, not ECONNREFUSED")
    })?;

    let rr = s.wait_for("tcp_receive_reset", |e| {
        e.kind == K::ReceiveReset && tuple_is(e, client_port, server_port)
    })?;
    ensure(rr.tcp_state == Some(TcpState::SynSent), || {
        format!("receive_reset state {:?}, want SYN_SENT", rr.tcp_state)
    })?;
    ensure(rr.errno == Some(111), || {
        format!("receive_reset errno {:?}, want 111", rr.errno)
    })?;
    let se = s.wait_for("inet_sk_error_report 111", |e| {
        e.kind == K::SockError && tuple_is(e, client_port, server_port)
    })?;
    ensure(se.errno == Some(111), || {
        format!("sock_error errno {:?}, want 111", se.errno)
    })?;
    let sc = s.wait_for("SYN_SENT->CLOSE", |e| {
        e.kind == K::StateChange && tuple_is(e, client_port, server_port)
    })?;
    ensure(
        sc.tcp_state == Some(TcpState::SynSent) && sc.new_state == Some(TcpState::Close),
        || format!("state change {:?}->{:?}", sc.tcp_state, sc.new_state),
    )?;

    let socketless = s.tracer.facts.layout.config.send_reset.reason.present();
    if socketless && s.hook_state(K::SendReset) == Some(HookState::Attached) {
        // The reply comes from the server side: source is the closed port.
        let sr = s.wait_for("tcp_send_reset NO_SOCKET", |e| {
            e.kind == K::SendReset && tuple_is(e, server_port, client_port)
        })?;
        ensure(sr.reset_reason.as_deref() == Some("NO_SOCKET"), || {
            format!("reset reason {:?}, want NO_SOCKET", sr.reset_reason)
        })?;
        Ok((Status::Pass, format!("127.0.0.1:{client_port} -> :{server_port}: RST sent NO_SOCKET, RST received in SYN_SENT, errno 111, SYN_SENT->CLOSE")))
    } else {
        // Degraded kernel (< 6.10): the socket-less RST is invisible; assert
        // that the report says so and that the client side still saw it.
        let hook = s
            .tracer
            .report
            .hooks
            .iter()
            .find(|h| h.kind == K::SendReset);
        ensure(
            hook.is_some_and(|h| {
                h.notes.iter().any(|n| n.contains("socket-less")) || h.state == HookState::Missing
            }),
            || {
                "send_reset lacks reason but the capability report does not say socket-less RSTs are missed".to_string()
            },
        )?;
        s.expect_none(
            "send_reset for a socket-less RST",
            Duration::from_millis(200),
            |e| e.kind == K::SendReset && tuple_is(e, server_port, client_port),
        )?;
        Ok((Status::Degraded, "no socket-less tcp_send_reset on this kernel (reported); refusal seen via tcp_receive_reset in SYN_SENT and errno 111".to_string()))
    }
}

/// An established connection aborted by the peer with SO_LINGER 0.
fn peer_reset(s: &mut Session) -> Outcome {
    s.require_attached(&[K::SendReset, K::ReceiveReset, K::SockError])?;
    let listener = Socket::bound().map_err(|e| e.to_string())?;
    let server_port = listener.port().map_err(|e| e.to_string())?;
    listener.listen(16).map_err(|e| e.to_string())?;
    let client = Socket::bound().map_err(|e| e.to_string())?;
    let client_port = client.port().map_err(|e| e.to_string())?;
    client.connect(server_port).map_err(|e| e.to_string())?;
    let conn = listener.accept().map_err(|e| e.to_string())?;
    conn.set_linger_zero().map_err(|e| e.to_string())?;
    drop(conn); // abortive close: RST
    let read = client.read_byte();
    ensure(
        read.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::ECONNRESET),
        || format!("client read gave {read:?}, want ECONNRESET"),
    )?;

    let sr = s.wait_for("tcp_send_reset from the aborting side", |e| {
        e.kind == K::SendReset && tuple_is(e, server_port, client_port)
    })?;
    let rr = s.wait_for("tcp_receive_reset at the client", |e| {
        e.kind == K::ReceiveReset && tuple_is(e, client_port, server_port)
    })?;
    ensure(rr.tcp_state == Some(TcpState::Established), || {
        format!("receive_reset state {:?}, want ESTABLISHED", rr.tcp_state)
    })?;
    ensure(rr.errno == Some(104), || {
        format!("receive_reset errno {:?}, want 104", rr.errno)
    })?;
    let se = s.wait_for("inet_sk_error_report 104", |e| {
        e.kind == K::SockError && tuple_is(e, client_port, server_port)
    })?;
    ensure(se.errno == Some(104), || {
        format!("sock_error errno {:?}, want 104", se.errno)
    })?;
    ensure(
        sr.task
            .as_ref()
            .is_some_and(|t| t.pid == std::process::id() as i32),
        || {
            format!(
                "send_reset from close() should run in our process context, got {:?}",
                sr.task
            )
        },
    )?;
    Ok((
        Status::Pass,
        format!(
            "RST sent (reason {}), received in ESTABLISHED, errno 104",
            sr.reset_reason.as_deref().unwrap_or("n/a on this kernel")
        ),
    ))
}

/// A connect whose SYNs are silently dropped (the listener's accept queue is
/// full): SYN retransmits, then ETIMEDOUT and SYN_SENT->CLOSE.
fn connect_timeout(s: &mut Session) -> Outcome {
    s.require_attached(&[K::SynRetransmit, K::SockError, K::StateChange])?;
    let listener = Socket::bound().map_err(|e| e.to_string())?;
    let server_port = listener.port().map_err(|e| e.to_string())?;
    listener.listen(0).map_err(|e| e.to_string())?;
    // With backlog 0 one established connection fills the accept queue; we
    // never accept it, so the kernel drops every further SYN.
    let filler = Socket::bound().map_err(|e| e.to_string())?;
    filler
        .connect(server_port)
        .map_err(|e| format!("filler connect: {e}"))?;
    std::thread::sleep(Duration::from_millis(50));
    let client = Socket::bound().map_err(|e| e.to_string())?;
    let client_port = client.port().map_err(|e| e.to_string())?;
    client.set_syn_count(1).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let err = client
        .connect(server_port)
        .expect_err("connect into a full accept queue succeeded");
    let took = started.elapsed();
    ensure(err.raw_os_error() == Some(libc::ETIMEDOUT), || {
        format!("connect failed with {err}, want ETIMEDOUT")
    })?;

    let rt = s.wait_for("SYN retransmit", |e| {
        e.kind == K::SynRetransmit && tuple_is(e, client_port, server_port)
    })?;
    ensure(rt.tcp_state == Some(TcpState::SynSent), || {
        format!("retransmit state {:?}", rt.tcp_state)
    })?;
    let se = s.wait_for("inet_sk_error_report 110", |e| {
        e.kind == K::SockError && tuple_is(e, client_port, server_port)
    })?;
    ensure(se.errno == Some(110), || {
        format!("sock_error errno {:?}, want 110", se.errno)
    })?;
    let sc = s.wait_for("SYN_SENT->CLOSE", |e| {
        e.kind == K::StateChange && tuple_is(e, client_port, server_port)
    })?;
    ensure(sc.tcp_state == Some(TcpState::SynSent), || {
        format!("state change from {:?}", sc.tcp_state)
    })?;
    let retransmits = s
        .seen
        .iter()
        .filter(|e| e.kind == K::SynRetransmit && tuple_is(e, client_port, server_port))
        .count();
    drop(filler);
    Ok((
        Status::Pass,
        format!(
            "{retransmits} SYN retransmit(s), ETIMEDOUT after {:.1} s, SYN_SENT->CLOSE",
            took.as_secs_f64()
        ),
    ))
}

fn signal_event(s: &mut Session, sig: i32, target: u32) -> Result<KernelEvent, String> {
    s.wait_for(&format!("signal {sig} to {target}"), |e| {
        e.kind == K::Signal
            && e.signal == Some(sig)
            && e.target.as_ref().is_some_and(|t| t.pid == target as i32)
    })
}

fn exit_event(s: &mut Session, pid: u32) -> Result<KernelEvent, String> {
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

fn check_sender(ev: &KernelEvent) -> Result<(), String> {
    let me = std::process::id() as i32;
    let task = ev.task.as_ref().ok_or("signal without a sender")?;
    ensure(task.pid == me, || {
        format!("sender pid {} want {me}", task.pid)
    })?;
    ensure(task.comm == our_comm(), || {
        format!("sender comm {:?} want {:?}", task.comm, our_comm())
    })
}

fn kill(pid: u32, sig: i32) -> Result<(), String> {
    // SAFETY: plain syscall.
    if unsafe { libc::kill(pid as i32, sig) } != 0 {
        return Err(format!(
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// SIGTERM to a process with a handler: delivered; it exits with code 3.
fn sigterm_handled(s: &mut Session) -> Outcome {
    s.require_attached(&[K::Signal, K::Exit])?;
    let mut child = spawn(&s.child_exe, ChildMode::TermHandler).map_err(|e| e.to_string())?;
    let pid = child.id();
    kill(pid, libc::SIGTERM)?;
    let status = child.wait().map_err(|e| e.to_string())?;
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
fn sigterm_ignored_then_sigkill(s: &mut Session) -> Outcome {
    s.require_attached(&[K::Signal, K::Exit])?;
    let mut child = spawn(&s.child_exe, ChildMode::IgnoreTerm).map_err(|e| e.to_string())?;
    let pid = child.id();
    kill(pid, libc::SIGTERM)?;
    let term = signal_event(s, 15, pid)?;
    ensure(term.signal_result == Some(SignalResult::Ignored), || {
        format!("SIGTERM result {:?}, want ignored", term.signal_result)
    })?;
    check_sender(&term)?;
    kill(pid, libc::SIGKILL)?;
    let status = child.wait().map_err(|e| e.to_string())?;
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
fn exit_with_code(s: &mut Session) -> Outcome {
    s.require_attached(&[K::Exit])?;
    let mut child = spawn(&s.child_exe, ChildMode::Exit(7)).map_err(|e| e.to_string())?;
    let pid = child.id();
    let status = child.wait().map_err(|e| e.to_string())?;
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
fn kubelet_cgroup(s: &mut Session) -> Outcome {
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
        let mut child = spawn(&s.child_exe, ChildMode::Sleep).map_err(|e| e.to_string())?;
        let pid = child.id();
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("moving {pid} into {}: {e}", leaf.display()))?;
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

/// The HTTP peek: a process in the peeked cgroup writes status lines with
/// write, writev, sendto and sendmsg; exactly its 5xx become events, with
/// the status, fd and socket, never more than 16 bytes read; other classes
/// are only counted; a process outside the set is never read.
fn http_peek(s: &mut Session) -> Outcome {
    use std::io::{Read, Write};
    let root = crate::enrich::cgroup2_root().ok_or("no cgroup v2 mount found")?;
    let rel = format!("fivexx-selftest-http-{}", std::process::id());
    let made = make_dirs(&root, &rel)?;
    let outcome = (|| {
        let opts = TracerOptions {
            kinds: Some([K::HttpResponse].into_iter().collect()),
            http_cgroups: vec![rel.clone()],
            ..Default::default()
        };
        let mut peek = Session::with_options(&s.child_exe, &opts)?;
        let attached = peek
            .tracer
            .report
            .hooks
            .iter()
            .filter(|h| h.kind == K::HttpResponse && h.state == HookState::Attached)
            .count();
        ensure(attached == 4, || {
            format!("{attached} of 4 HTTP syscall hooks attached")
        })?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let mut child =
            spawn(&s.child_exe, ChildMode::HttpWriter(port)).map_err(|e| e.to_string())?;
        let pid = child.id();
        let (mut conn, _) = listener.accept().map_err(|e| e.to_string())?;
        std::fs::write(root.join(&rel).join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("moving {pid}: {e}"))?;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(b"go\n")
            .map_err(|e| e.to_string())?;
        let status = child.wait().map_err(|e| e.to_string())?;
        ensure(status.success(), || {
            format!("http writer exited {status:?}")
        })?;
        let mut got = Vec::new();
        conn.set_read_timeout(Some(Duration::from_millis(200))).ok();
        let _ = conn.read_to_end(&mut got);

        // We are outside the set: our own status line must never be read.
        let (mut a, _) = (
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?,
            (),
        );
        a.write_all(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let me = std::process::id() as i32;

        let want = [(502u16, 16u8), (504, 16), (503, 12)];
        for (code, bytes) in want {
            let ev = peek.wait_for(&format!("HTTP {code}"), |e| {
                e.kind == K::HttpResponse
                    && e.http_status == Some(code)
                    && e.task.as_ref().is_some_and(|t| t.pid == pid as i32)
            })?;
            ensure(ev.http_peek_bytes == Some(bytes), || {
                format!(
                    "{code}: peeked {:?} bytes, want {bytes}",
                    ev.http_peek_bytes
                )
            })?;
            ensure(ev.fd.is_some_and(|fd| fd >= 0), || {
                format!("{code}: fd {:?}", ev.fd)
            })?;
            if peek.tracer.facts.layout.config.kernel.socket_sk >= 0 {
                ensure(
                    ev.tuple.is_some_and(|t| t.dport == port && t.daddr == lo()),
                    || format!("{code}: tuple {:?}, want -> 127.0.0.1:{port}", ev.tuple),
                )?;
            }
        }
        peek.expect_none(
            "a non-5xx or foreign event",
            Duration::from_millis(200),
            |e| {
                e.kind == K::HttpResponse
                    && (e.task.as_ref().is_some_and(|t| t.pid == me)
                        || !e.http_status.is_some_and(|c| (500..600).contains(&c)))
            },
        )?;
        let n5 = peek
            .seen
            .iter()
            .filter(|e| e.kind == K::HttpResponse)
            .count();
        ensure(n5 == 3, || format!("{n5} HTTP events, want exactly 3"))?;
        let counts = peek.tracer.http_counts().map_err(|e| e.to_string())?;
        ensure(counts == [0, 1, 0, 1, 3], || {
            format!("status classes counted {counts:?}, want [0, 1, 0, 1, 3]")
        })?;
        ensure(!got.is_empty(), || {
            "the peer received nothing: the writes did not happen".to_string()
        })?;
        Ok((Status::Pass, "5xx 502/504/503 via sendto/sendmsg/write with fd and 4-tuple; 200 and 404 counted only; 16 bytes max (12 for a 12-byte write); our own 500 unread".to_string()))
    })();
    for dir in made.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    outcome
}

/// Ring-buffer overflow with a one-page ring: received + dropped = generated.
fn ring_overflow(s: &mut Session) -> Outcome {
    const SIGNALS: usize = 2000;
    let opts = TracerOptions {
        ring_bytes: page_size(),
        kinds: Some([K::Signal].into_iter().collect()),
        ..Default::default()
    };
    let mut small = Session::with_options(&s.child_exe, &opts)?;
    let mut child = spawn(&s.child_exe, ChildMode::IgnoreTerm).map_err(|e| e.to_string())?;
    let pid = child.id();
    for _ in 0..SIGNALS {
        kill(pid, libc::SIGHUP)?; // ignored by the child: an event each, no death
    }
    small.tracer.detach_all();
    std::thread::sleep(Duration::from_millis(50));
    let mut received = [0u64; tracer_ebpf::KIND_COUNT];
    while let Some(item) = small.ring.next() {
        if let Some(raw) = tracer_ebpf::RawEvent::from_bytes(&item) {
            if let Some(slot) = received.get_mut(raw.kind as usize) {
                *slot += 1;
            }
        }
    }
    let c = small.tracer.counters().map_err(|e| e.to_string())?;
    let _ = child.kill();
    let _ = child.wait();
    let mut lines = Vec::new();
    for (i, (&got, (&generated, &dropped))) in received
        .iter()
        .zip(c.generated.iter().zip(c.dropped.iter()))
        .enumerate()
    {
        ensure(got + dropped == generated, || {
            format!("kind {i}: received {got} + dropped {dropped} != generated {generated}")
        })?;
        if generated > 0 {
            lines.push(format!(
                "received {got} + dropped {dropped} = generated {generated}"
            ));
        }
    }
    let sig = tracer_ebpf::EventKind::Signal as usize;
    ensure(c.generated[sig] >= SIGNALS as u64, || {
        format!("generated {} < {SIGNALS} signals sent", c.generated[sig])
    })?;
    ensure(c.dropped[sig] > 0, || {
        format!("no drops with a {}-byte ring", page_size())
    })?;
    Ok((
        Status::Pass,
        format!("signal: {} ({}-byte ring)", lines.join("; "), page_size()),
    ))
}

fn page_size() -> u32 {
    // SAFETY: plain libc call.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u32
}

pub fn make_dirs(root: &Path, rel: &str) -> Result<Vec<PathBuf>, String> {
    let mut made = Vec::new();
    let mut p = root.to_path_buf();
    for seg in rel.split('/') {
        p.push(seg);
        if !p.exists() {
            std::fs::create_dir(&p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
            made.push(p.clone());
        }
    }
    Ok(made)
}

/// A random UUID from the kernel, as kubelet's pod UIDs look.
fn kernel_uuid() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("reading /proc/sys/kernel/random/uuid: {e}"))
}

/// 64 hex digits, as containerd's container ids look.
fn container_id() -> Result<String, String> {
    Ok(format!("{}{}", kernel_uuid()?, kernel_uuid()?).replace('-', ""))
}

pub type Case = fn(&mut Session) -> Outcome;

pub const CASES: [(&str, Case); 9] = [
    ("refused_connect", refused_connect),
    ("peer_reset", peer_reset),
    ("connect_timeout", connect_timeout),
    ("sigterm_handled", sigterm_handled),
    ("sigterm_ignored_then_sigkill", sigterm_ignored_then_sigkill),
    ("exit_with_code", exit_with_code),
    ("kubelet_cgroup", kubelet_cgroup),
    ("ring_overflow", ring_overflow),
    ("http_peek", http_peek),
];

/// Runs one case by name in a fresh session.
pub fn run_case(name: &str, child_exe: &Path) -> CaseResult {
    let (name, case) = CASES
        .iter()
        .find(|(n, _)| *n == name)
        .copied()
        .expect("known case");
    let outcome = Session::start(child_exe).and_then(|mut s| case(&mut s));
    to_result(name, outcome)
}

fn to_result(name: &'static str, outcome: Outcome) -> CaseResult {
    match outcome {
        Ok((status, detail)) => CaseResult {
            name,
            status,
            detail,
        },
        Err(detail) => CaseResult {
            name,
            status: Status::Fail,
            detail,
        },
    }
}

/// Runs every case against one shared session, printing a line per case.
pub fn run_all(child_exe: &Path, only: Option<&str>) -> Summary {
    let mut tests = Vec::new();
    match Session::start(child_exe) {
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
            println!("FAIL     load: {e}");
            tests.push(CaseResult {
                name: "load",
                status: Status::Fail,
                detail: e,
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
