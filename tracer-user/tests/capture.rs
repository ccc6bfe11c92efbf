//! `fivexx-agent trace --capture FILE`: a node-local postmortem recording
//! that `explain` reads later.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use fivexx_core::capture::{CaptureReader, Record};
use fivexx_core::{Fact, KernelEventKind};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fivexx-agent"))
}

#[test]
fn records_what_it_shows_and_closes_the_file_cleanly() {
    if let Err(why) = tracer_user::privilege::kernel_tests_possible() {
        eprintln!("SKIP capture test: {why}");
        return;
    }
    let path =
        std::env::temp_dir().join(format!("fivexx-agent-capture-{}.fxc", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut child = agent()
        .args([
            "trace",
            "-o",
            "json",
            "--kinds",
            "receive_reset,sock_error",
            "--duration",
            "3",
            "--node",
            "node-a",
        ])
        .arg("--capture")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // loaded and attached
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(TcpStream::connect(("127.0.0.1", closed)).is_err());
    let status = child.wait().unwrap();
    assert!(status.success(), "agent exited {status:?}");

    let mut reader = CaptureReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let (mut header, mut resets, mut drops, mut end) = (false, 0, false, false);
    while let Some(rec) = reader.next_record().unwrap() {
        match rec {
            Record::Header(h) => {
                header = h.nodes == vec!["node-a".to_string()] && h.capabilities.len() == 1
            }
            Record::Fact(Fact::Kernel(ev)) => {
                assert!(
                    matches!(
                        ev.kind,
                        KernelEventKind::ReceiveReset | KernelEventKind::SockError
                    ),
                    "{ev:?}"
                );
                if ev.kind == KernelEventKind::ReceiveReset
                    && ev.tuple.is_some_and(|t| t.dport == closed)
                {
                    assert_eq!(ev.errno, Some(fivexx_core::event::Errno::ECONNREFUSED));
                    resets += 1;
                }
            }
            Record::Drops(d) => {
                drops = d.node == "node-a"
                    && d.drops
                        .kernel
                        .contains_key(&fivexx_core::KernelEventKind::ReceiveReset)
            }
            Record::End(_) => end = true,
            other => panic!("unexpected record {other:?}"),
        }
    }
    let _ = std::fs::remove_file(&path);
    assert!(header, "header without node or capability report");
    assert_eq!(resets, 1, "the refused connect to {closed}");
    assert!(drops, "no drop counters recorded");
    assert!(end, "capture not closed cleanly");
    assert!(reader.problems().is_empty(), "{:?}", reader.problems());
}

#[test]
fn never_overwrites_an_existing_file() {
    let path = std::env::temp_dir().join(format!("fivexx-agent-exists-{}.fxc", std::process::id()));
    std::fs::write(&path, b"earlier work").unwrap();
    let out = agent()
        .args(["trace", "--capture"])
        .arg(&path)
        .output()
        .unwrap();
    let kept = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create capture"), "{err}");
    assert_eq!(kept, b"earlier work");
}
