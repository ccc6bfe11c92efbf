//! `fivexx-agent serve` end to end: a real agent process, real clients over
//! loopback, a real refused connect, and SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fivexx_core::wire::{self, AgentMessage, ClientMessage, StreamFilter, PROTOCOL_VERSION};
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
