//! `fivexx-agent serve` end to end: a real agent process, real clients over
//! loopback, a real refused connect, and SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fivexx_core::protocol::{
    self as wire, AgentMessage, ClientMessage, StreamFilter, PROTOCOL_VERSION,
};
use fivexx_core::KernelEventKind;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A blocking client speaking the length-delimited protocol.
struct Client(TcpStream);

impl Client {
    fn connect(port: u16, filter: StreamFilter) -> Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("agent never listened: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut c = Client(stream);
        c.send(&ClientMessage::Subscribe {
            protocol: PROTOCOL_VERSION,
            filter,
        });
        c
    }

    fn send(&mut self, msg: &ClientMessage) {
        let body = wire::encode(msg);
        self.0
            .write_all(&(body.len() as u32).to_be_bytes())
            .unwrap();
        self.0.write_all(&body).unwrap();
    }

    fn recv(&mut self) -> Option<AgentMessage> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut body).ok()?;
        Some(wire::decode_agent(&body).unwrap())
    }
}

/// A `fivexx-agent serve` child. Dropping it (a failed assertion
/// included) stops the agent, so a failing test never leaves programs
/// attached for the tests that follow.
struct Agent(Option<std::process::Child>);

impl Agent {
    fn serve(port: u16, extra: &[&str]) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_fivexx-agent"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Agent(Some(child))
    }

    fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// Sends SIGTERM (the agent's orderly stop).
    fn terminate(&self) {
        // SAFETY: kill(2) takes plain integers; the pid is our own child's,
        // not yet reaped, so it cannot name another process.
        unsafe { libc::kill(self.id() as i32, libc::SIGTERM) };
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        self.0.take().expect("running").wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn serves_filtered_events_and_says_goodbye_on_sigterm() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP serve test: {why}");
        return;
    }
    let port = free_port();
    let mut agent = Agent::serve(port, &["--node", "lab-node"]);
    let mut resets = Client::connect(
        port,
        StreamFilter {
            kinds: vec![KernelEventKind::ReceiveReset],
            ips: vec!["127.0.0.1".parse().unwrap()],
            ..Default::default()
        },
    );
    let mut signals = Client::connect(
        port,
        StreamFilter {
            kinds: vec![KernelEventKind::Signal],
            ..Default::default()
        },
    );
    for c in [&mut resets, &mut signals] {
        match c.recv() {
            Some(AgentMessage::Hello {
                node, capabilities, ..
            }) => {
                assert_eq!(node, "lab-node");
                assert!(capabilities.loaded);
            }
            other => panic!("expected Hello, got {other:?}"),
        }
    }
    // `probe` is what the DaemonSet's liveness and readiness run.
    let probe = Command::new(env!("CARGO_BIN_EXE_fivexx-agent"))
        .args(["probe", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let closed = free_port();
    let err = TcpStream::connect(("127.0.0.1", closed)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    let deadline = Instant::now() + Duration::from_secs(5);
    let ev = loop {
        assert!(
            Instant::now() < deadline,
            "no receive_reset for port {closed}"
        );
        match resets.recv() {
            Some(AgentMessage::Event { event })
                if event.tuple.is_some_and(|t| t.dport == closed) =>
            {
                break event
            }
            Some(AgentMessage::Event { event }) => {
                assert_eq!(event.kind, KernelEventKind::ReceiveReset)
            }
            Some(_) => {}
            None => panic!("stream ended"),
        }
    };
    assert_eq!(ev.errno, Some(fivexx_core::event::Errno::ECONNREFUSED));
    assert_eq!(ev.node, "lab-node");

    // SIGTERM: the agent sends final stats and Goodbye, then exits 0.
    agent.terminate();
    let mut saw_goodbye = false;
    let mut saw_signal_event_for_reset = false;
    while let Some(msg) = signals.recv() {
        match msg {
            AgentMessage::Goodbye { .. } => {
                saw_goodbye = true;
                break;
            }
            AgentMessage::Event { event } => {
                saw_signal_event_for_reset |= event.kind != KernelEventKind::Signal
            }
            _ => {}
        }
    }
    assert!(saw_goodbye, "no Goodbye before the stream closed");
    assert!(
        !saw_signal_event_for_reset,
        "the signal client received a non-signal event"
    );
    let status = agent.wait();
    assert!(status.success(), "agent exit {status:?}");
}

/// A fake proxy pod: a kubelet-style container cgroup for a pod UID, and
/// a way to make a process in it write one status line to a local peer.
struct ProxyPod {
    uid: String,
    base: std::path::PathBuf,
    container: std::path::PathBuf,
    sink: TcpListener,
}

impl ProxyPod {
    fn new(tag: &str) -> ProxyPod {
        let root = tracer_user::enrich::cgroup2_root().expect("cgroup v2 mount");
        let uid = format!(
            "0000f1e5-{:04x}-4000-8000-{:012x}",
            std::process::id() & 0xffff,
            tag.len()
        );
        let base = root.join(format!("fivexx-test-{tag}-{}", std::process::id()));
        let container = base
            .join("kubepods.slice")
            .join(format!("kubepods-pod{}.slice", uid.replace('-', "_")))
            .join(format!("cri-containerd-{}.scope", "ab".repeat(32)));
        std::fs::create_dir_all(&container).unwrap();
        ProxyPod {
            uid,
            base,
            container,
            sink: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    /// A "proxy" in the pod's container cgroup writes one status line.
    fn answer(&self, status: &str) {
        use std::os::unix::process::CommandExt;
        let sink_port = self.sink.local_addr().unwrap().port();
        let procs = self.container.join("cgroup.procs");
        // python3 is present wherever the suite runs (the lab needs it too).
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            &format!("import socket; s=socket.create_connection(('127.0.0.1',{sink_port})); s.send(b'HTTP/1.1 {status} X\\r\\n\\r\\n'); s.close()"),
        ]);
        // SAFETY: the hook runs in the forked child between fork and exec and
        // only writes our pid to one cgroup file. It allocates (the pid's text),
        // which POSIX does not promise is safe after fork in a threaded
        // process; glibc's malloc resets its locks in the child (atfork), which
        // is what this test relies on.
        unsafe {
            cmd.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
        }
        let st = cmd.status().unwrap();
        assert!(st.success());
        let _ = self.sink.accept().map(|(mut s, _)| {
            let mut b = Vec::new();
            let _ = s.read_to_end(&mut b);
        });
    }
}

impl Drop for ProxyPod {
    fn drop(&mut self) {
        for d in self
            .container
            .ancestors()
            .take_while(|d| d.starts_with(&self.base))
        {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Answers until the client receives an HTTP event (the agent applies the
/// clients' pods on its 1 s tick), for at most 10 s.
fn answer_until_peeked(
    pod: &ProxyPod,
    client: &mut Client,
    status: &str,
) -> Option<fivexx_core::KernelEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        pod.answer(status);
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            match client.recv() {
                Some(AgentMessage::Event { event }) => return Some(event),
                Some(_) => {}
                None => break,
            }
        }
    }
    None
}

/// Fails if `client` receives an event within `window`.
fn assert_silent(client: &mut Client, window: Duration, what: &str) {
    client
        .0
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let until = Instant::now() + window;
    while Instant::now() < until {
        if let Some(AgentMessage::Event { event }) = client.recv() {
            panic!("{what}: {event:?}");
        }
    }
    client
        .0
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
}

/// The HTTP peek is attached on demand: nothing is read until a client
/// names a proxy pod, then exactly that pod's 5xx status lines arrive, and
/// the peek stops again when the client leaves.
#[test]
fn http_peek_follows_the_proxy_pods_clients_name() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP http peek on demand: {why}");
        return;
    }
    let pod = ProxyPod::new("peek");
    let uid = pod.uid.clone();

    let port = free_port();
    let mut agent = Agent::serve(port, &[]);
    let mut client = Client::connect(
        port,
        StreamFilter {
            kinds: vec![KernelEventKind::HttpResponse],
            http_pods: vec![uid.clone()],
            ..Default::default()
        },
    );
    assert!(matches!(client.recv(), Some(AgentMessage::Hello { .. })));
    // The agent applies clients' pods on its 1 s tick; retry until peeked.
    let ev = answer_until_peeked(&pod, &mut client, "503")
        .expect("no HTTP event for the named proxy pod within 10 s");
    assert_eq!(ev.http_status, Some(503));
    assert_eq!(ev.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(ev.task.as_ref().map(|t| t.comm.as_str()), Some("python3"));
    drop(client);
    // Nobody asks any more: after the next tick the peek reads nothing, even
    // for a client that takes every HTTP event there is.
    std::thread::sleep(Duration::from_millis(2500));
    let mut all = Client::connect(
        port,
        StreamFilter {
            kinds: vec![KernelEventKind::HttpResponse],
            ..Default::default()
        },
    );
    assert!(matches!(all.recv(), Some(AgentMessage::Hello { .. })));
    pod.answer("502");
    assert_silent(
        &mut all,
        Duration::from_millis(1500),
        "peek still on after its client left",
    );

    agent.terminate();
    let _ = agent.wait();
}

/// An `Update` naming a proxy pod turns the peek on for a stream that
/// subscribed without one, and an `Update` removing it turns it off: the
/// agent follows the pods clients name now, not only at `Subscribe`.
#[test]
fn update_adding_a_proxy_pod_attaches_the_peek() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP http peek by update: {why}");
        return;
    }
    let pod = ProxyPod::new("peek-update");
    let port = free_port();
    let mut agent = Agent::serve(port, &[]);
    // Every HTTP event there is, but no pod named: the peek stays off.
    let mut client = Client::connect(
        port,
        StreamFilter {
            kinds: vec![KernelEventKind::HttpResponse],
            ..Default::default()
        },
    );
    assert!(matches!(client.recv(), Some(AgentMessage::Hello { .. })));
    std::thread::sleep(Duration::from_millis(1500));
    pod.answer("503");
    assert_silent(
        &mut client,
        Duration::from_millis(1500),
        "peek on before any client named a pod",
    );

    let pods = StreamFilter {
        http_pods: vec![pod.uid.clone()],
        ..Default::default()
    };
    client.send(&ClientMessage::Update {
        add: pods.clone(),
        remove: StreamFilter::default(),
    });
    let ev = answer_until_peeked(&pod, &mut client, "504")
        .expect("no HTTP event within 10 s of an Update naming the pod");
    assert_eq!(ev.http_status, Some(504));
    assert_eq!(ev.pod_uid.as_deref(), Some(pod.uid.as_str()));

    client.send(&ClientMessage::Update {
        add: StreamFilter::default(),
        remove: pods,
    });
    // Applied on the next tick; then the filter passes every HTTP event,
    // so silence means the peek is off.
    std::thread::sleep(Duration::from_millis(2500));
    pod.answer("502");
    assert_silent(
        &mut client,
        Duration::from_millis(1500),
        "peek still on after an Update removed its pod",
    );

    agent.terminate();
    let _ = agent.wait();
}

/// Provokes a refused connect to `ip` on a port nobody listens on; returns
/// the port.
fn refuse(ip: &str) -> u16 {
    let closed = free_port();
    let err = TcpStream::connect((ip, closed)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    closed
}

/// Reads until an event towards `dport` arrives (within 5 s).
fn event_to(client: &mut Client, dport: u16) -> Option<fivexx_core::KernelEvent> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match client.recv() {
            Some(AgentMessage::Event { event })
                if event.tuple.is_some_and(|t| t.dport == dport) =>
            {
                return Some(event)
            }
            Some(_) => {}
            None => return None,
        }
    }
    None
}

/// `Update` widens and narrows a live stream's filter: an address the
/// subscription did not name passes once an Update adds it, on the same
/// connection, and stops again once an Update removes it. A second client
/// that names the address all along proves each reset really happened.
#[test]
fn update_widens_and_narrows_the_stream_in_place() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP serve update: {why}");
        return;
    }
    // 127.0.0.0/8 is all loopback: 127.0.0.2 refuses like 127.0.0.1.
    const TARGET: &str = "127.0.0.2";
    let target: std::net::IpAddr = TARGET.parse().unwrap();
    let port = free_port();
    let mut agent = Agent::serve(port, &[]);
    let resets = |ips: Vec<std::net::IpAddr>| StreamFilter {
        kinds: vec![KernelEventKind::ReceiveReset],
        ips,
        ..Default::default()
    };
    let mut client = Client::connect(port, resets(vec!["127.0.0.3".parse().unwrap()]));
    let mut witness = Client::connect(port, resets(vec![target]));
    for c in [&mut client, &mut witness] {
        assert!(matches!(c.recv(), Some(AgentMessage::Hello { .. })));
    }

    // Not named: the witness sees the reset, the client does not.
    let first = refuse(TARGET);
    assert!(
        event_to(&mut witness, first).is_some(),
        "no reset to {TARGET}:{first} at all"
    );
    assert_silent(
        &mut client,
        Duration::from_millis(500),
        "an address the filter does not name passed",
    );

    // Named by an Update: the next reset arrives on the same stream.
    let add = StreamFilter {
        ips: vec![target],
        ..Default::default()
    };
    client.send(&ClientMessage::Update {
        add: add.clone(),
        remove: StreamFilter::default(),
    });
    std::thread::sleep(Duration::from_millis(300));
    let second = refuse(TARGET);
    let ev = event_to(&mut client, second).expect("no reset after an Update added its address");
    assert_eq!(ev.kind, KernelEventKind::ReceiveReset);
    assert_eq!(ev.errno, Some(fivexx_core::event::Errno::ECONNREFUSED));
    assert_eq!(ev.tuple.map(|t| t.daddr), Some(target));
    assert!(event_to(&mut witness, second).is_some());

    // Removed again: silence, while the witness still sees it.
    client.send(&ClientMessage::Update {
        add: StreamFilter::default(),
        remove: add,
    });
    std::thread::sleep(Duration::from_millis(300));
    let third = refuse(TARGET);
    assert!(
        event_to(&mut witness, third).is_some(),
        "no reset to {TARGET}:{third} at all"
    );
    assert_silent(
        &mut client,
        Duration::from_millis(500),
        "an address an Update removed still passed",
    );

    agent.terminate();
    let status = agent.wait();
    assert!(status.success(), "agent exit {status:?}");
}
