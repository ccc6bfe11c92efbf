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

#[test]
fn serves_filtered_events_and_says_goodbye_on_sigterm() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP serve test: {why}");
        return;
    }
    let port = free_port();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_fivexx-agent"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--node",
            "lab-node",
        ])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
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
    assert_eq!(ev.errno, Some(111));
    assert_eq!(ev.node, "lab-node");

    // SIGTERM: the agent sends final stats and Goodbye, then exits 0.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
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
    let status = agent.wait().unwrap();
    assert!(status.success(), "agent exit {status:?}");
}

/// The HTTP peek is attached on demand: nothing is read until a client
/// names a proxy pod, then exactly that pod's 5xx status lines arrive, and
/// the peek stops again when the client leaves.
#[test]
fn http_peek_follows_the_proxy_pods_clients_name() {
    use std::os::unix::process::CommandExt;
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP http peek on demand: {why}");
        return;
    }
    let root = tracer_user::enrich::cgroup2_root().expect("cgroup v2 mount");
    let uid = format!(
        "0000f1e5-{:04x}-4000-8000-000000000001",
        std::process::id() & 0xffff
    );
    let base = root.join(format!("fivexx-test-peek-{}", std::process::id()));
    let container = base
        .join("kubepods.slice")
        .join(format!("kubepods-pod{}.slice", uid.replace('-', "_")))
        .join(format!("cri-containerd-{}.scope", "ab".repeat(32)));
    std::fs::create_dir_all(&container).unwrap();

    let port = free_port();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_fivexx-agent"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    // A "proxy" in the pod's container cgroup writing one status line.
    let answer = |status: &str| {
        let procs = container.join("cgroup.procs");
        // python3 is present wherever the suite runs (the lab needs it too).
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            &format!("import socket; s=socket.create_connection(('127.0.0.1',{sink_port})); s.send(b'HTTP/1.1 {status} X\\r\\n\\r\\n'); s.close()"),
        ]);
        unsafe {
            cmd.pre_exec(move || std::fs::write(&procs, std::process::id().to_string()));
        }
        let st = cmd.status().unwrap();
        assert!(st.success());
        let _ = sink.accept().map(|(mut s, _)| {
            let mut b = Vec::new();
            let _ = s.read_to_end(&mut b);
        });
    };
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
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    'outer: while Instant::now() < deadline {
        answer("503");
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            match client.recv() {
                Some(AgentMessage::Event { event }) => {
                    got = Some(event);
                    break 'outer;
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    let ev = got.expect("no HTTP event for the named proxy pod within 10 s");
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
    answer("502");
    all.0
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if let Some(AgentMessage::Event { event }) = all.recv() {
            panic!("peek still on after its client left: {event:?}");
        }
    }

    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let _ = agent.wait();
    for d in container.ancestors().take_while(|d| d.starts_with(&base)) {
        let _ = std::fs::remove_dir(d);
    }
}
