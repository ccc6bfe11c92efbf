//! The HTTP peek case: exactly the 5xx status lines of a peeked cgroup.

use std::time::Duration;

use fivexx_core::capability::HookState;
use fivexx_core::KernelEventKind as K;

use super::children::{spawn, ChildMode};
use super::harness::{ensure, lo, make_dirs, CaseError, Outcome, SelftestTracer};
use super::Status;
use crate::tracer::TracerOptions;

/// The HTTP peek: a process in the peeked cgroup writes status lines with
/// write, writev, sendto and sendmsg; exactly its 5xx become events, with
/// the status, fd and socket, never more than 16 bytes read; other classes
/// are only counted; a process outside the set is never read.
pub(super) fn http_peek(s: &mut SelftestTracer) -> Outcome {
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
        let mut peek = SelftestTracer::with_options(&s.child_exe, &opts)?;
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut child = spawn(&s.child_exe, ChildMode::HttpWriter(port))?;
        let pid = child.id();
        let (mut conn, _) = listener.accept()?;
        std::fs::write(root.join(&rel).join("cgroup.procs"), pid.to_string())
            .map_err(CaseError::step(format!("moving {pid}")))?;
        child.stdin.take().ok_or("no stdin")?.write_all(b"go\n")?;
        let status = child.wait()?;
        ensure(status.success(), || {
            format!("http writer exited {status:?}")
        })?;
        let mut got = Vec::new();
        conn.set_read_timeout(Some(Duration::from_millis(200))).ok();
        let _ = conn.read_to_end(&mut got);

        // We are outside the set: our own status line must never be read.
        let (mut a, _) = (std::net::TcpStream::connect(("127.0.0.1", port))?, ());
        a.write_all(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")?;
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
        let counts = peek.tracer.http_counts()?;
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
