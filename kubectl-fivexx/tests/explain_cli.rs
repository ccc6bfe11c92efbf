//! `kubectl fivexx explain FILE`, run as a user would: the real binary on
//! real files, good and bad.

use fivexx_core::capture::{
    CaptureHeader, CaptureWriter, Compression, DropCounters, WriteOptions, FORMAT_MAJOR,
    FORMAT_MINOR, MAGIC,
};
use fivexx_core::model::Fact;
use fivexx_core::testkit::synth::{ip4, Synth, MS, SECOND, T0};
use fivexx_core::ExitStatus;
use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubectl-fivexx"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fivexx-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A drain of node-2: two pods of deployment/api terminate with a 3 s
/// endpoint lag while the proxy on node-1 keeps connecting.
fn drain_facts() -> Vec<Fact> {
    let mut s = Synth::new();
    // The ingress is a pod of the cluster: its failed connects are a
    // proxy's, not an outside load balancer's.
    s.proxy_pod(ip4(10, 1, 0, 10), "node-1");
    s.cordon("node-2", T0 - SECOND);
    for n in 0..2u32 {
        let p = Synth::pod_spec("api", n, "node-2");
        s.start_pod(&p, T0 - 900 * SECOND, SECOND);
        let term = T0 + i64::from(n) * 10 * SECOND;
        s.delete(&p, term, 30);
        s.sigterm(&p, term, false);
        s.exit(
            &p,
            term + SECOND,
            ExitStatus {
                code: Some(0),
                signal: None,
                core_dumped: false,
            },
        );
        s.endpoint_not_ready(&p, term + 3 * SECOND);
        for k in 0..10 {
            s.refused(
                "node-1",
                ip4(10, 1, 0, 10),
                p.ip,
                term + 100 * MS + k * 280 * MS,
                Some("node-2"),
            );
        }
    }
    s.sorted()
}

fn write_capture(path: &PathBuf, compression: Compression) -> Vec<u8> {
    let header = CaptureHeader {
        tool_version: "kubectl-fivexx test".into(),
        context: Some("lab".into()),
        nodes: vec!["node-1".into(), "node-2".into()],
        capabilities: vec![],
        start_ns: T0 - 60 * SECOND,
        end_ns: None,
        http_peek_proxies: Vec::new(),
        engine: None,
    };
    let mut w = CaptureWriter::new(
        Vec::new(),
        &header,
        WriteOptions {
            compression,
            chunk_bytes: 512,
        },
    )
    .unwrap();
    for f in drain_facts() {
        w.write_fact(&f).unwrap();
    }
    w.write_drops(&DropCounters {
        at_ns: T0 + 30 * SECOND,
        node: "node-2".into(),
        drops: fivexx_core::protocol::DropCounts {
            kernel: [(fivexx_core::KernelEventKind::SendReset, 7)]
                .into_iter()
                .collect(),
            stream: 0,
        },
    })
    .unwrap();
    let bytes = w.finish(T0 + 60 * SECOND).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn explains_a_capture_as_a_table() {
    let path = tmp("good.fxc");
    write_capture(&path, Compression::Zstd { level: 3 });
    let o = run(&["explain", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "drain of node node-2 (deployment shop/api) at 2023-11-14T22:13:19.000Z caused 20 of 20 failed requests"
        ),
        "{out}"
    );
    assert!(out.contains("preStop sleep >= 4 s"), "{out}");
    assert!(out.contains("agent on node-2 dropped 7 events"), "{out}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn json_and_wide_and_filters() {
    let path = tmp("good2.fxc");
    write_capture(&path, Compression::None);
    let p = path.to_str().unwrap();
    let o = run(&["explain", p, "-o", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema_version"], fivexx_core::report::SCHEMA_VERSION);
    assert_eq!(
        v["schema_version"], 3,
        "one verdict per failed request since schema 3"
    );
    assert_eq!(v["totals"]["failures"], 20);
    assert_eq!(v["capture"]["context"], "lab");
    assert_eq!(v["capture"]["complete"], true);

    let o = run(&["explain", p, "-o", "wide", "--pod", "api-1"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let rows = out.split("\nFAILURES\n").nth(1).unwrap_or("");
    assert_eq!(
        rows.lines()
            .filter(|l| l.contains("-> 10.244.0.3:8080"))
            .count(),
        10,
        "{out}"
    );

    let o = run(&[
        "explain",
        p,
        "-o",
        "json",
        "--workload",
        "deploy/api",
        "--since",
        "+70s",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["failures"], 10, "{v}");
    let o = run(&[
        "explain",
        p,
        "-o",
        "json",
        "--until",
        "2023-11-14T22:13:19Z",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["failures"], 0);
    let o = run(&["explain", p, "-o", "json", "--workload", "deploy/nope"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["failures"], 0);
}

fn assert_one_line_error(o: &Output, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    let e = stderr(o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("kubectl fivexx: "), "{e}");
    assert!(e.contains(needle), "wanted `{needle}` in: {e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_files_get_one_line_errors() {
    let png = tmp("image.png");
    std::fs::write(
        &png,
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0",
    )
    .unwrap();
    assert_one_line_error(&run(&["explain", png.to_str().unwrap()]), "PNG image");

    let empty = tmp("empty.fxc");
    std::fs::write(&empty, b"").unwrap();
    assert_one_line_error(&run(&["explain", empty.to_str().unwrap()]), "empty");

    let random = tmp("random.bin");
    let bytes: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(&random, bytes).unwrap();
    assert_one_line_error(
        &run(&["explain", random.to_str().unwrap()]),
        "not a fivexx capture",
    );

    let newer = tmp("newer.fxc");
    let mut pre = MAGIC.to_vec();
    pre.extend_from_slice(&(FORMAT_MAJOR + 1).to_le_bytes());
    pre.extend_from_slice(&0u16.to_le_bytes());
    pre.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32(&pre);
    pre.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&newer, pre).unwrap();
    assert_one_line_error(
        &run(&["explain", newer.to_str().unwrap()]),
        &format!(
            "format {}.0 is newer than this tool supports ({FORMAT_MAJOR}.{FORMAT_MINOR})",
            FORMAT_MAJOR + 1
        ),
    );

    assert_one_line_error(
        &run(&["explain", "/nonexistent/x.fxc"]),
        "cannot open /nonexistent/x.fxc",
    );
    assert_one_line_error(&run(&["explain", "/tmp"]), "is a directory");

    let good = tmp("good3.fxc");
    write_capture(&good, Compression::None);
    assert_one_line_error(
        &run(&["explain", good.to_str().unwrap(), "--since", "yesterday"]),
        "--since",
    );
    assert_one_line_error(
        &run(&["explain", good.to_str().unwrap(), "--skew", "fast"]),
        "--skew",
    );

    // Only a preamble and garbage: nothing could be read.
    let bytes = std::fs::read(&good).unwrap();
    let junk = tmp("junk.fxc");
    let mut b = bytes[..20].to_vec();
    b.extend_from_slice(&[0xAB; 3000]);
    std::fs::write(&junk, b).unwrap();
    assert_one_line_error(
        &run(&["explain", junk.to_str().unwrap()]),
        "nothing could be read",
    );
}

/// crc32 (IEEE) without a dependency, for the hand-made preamble.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn cut_or_corrupted_captures_give_partial_results_with_warnings() {
    let good = tmp("good4.fxc");
    let bytes = write_capture(&good, Compression::None);

    let cut = tmp("cut.fxc");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = run(&["explain", cut.to_str().unwrap(), "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("file cut at byte"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["capture"]["complete"], false);
    let n = v["totals"]["failures"].as_u64().unwrap();
    assert!(n > 0 && n < 20, "{n}");

    let corrupt = tmp("corrupt.fxc");
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    for x in &mut b[mid..mid + 40] {
        *x = !*x;
    }
    std::fs::write(&corrupt, b).unwrap();
    let o = run(&["explain", corrupt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("corrupted data at byte"), "{e}");
    assert!(e.contains("partial result"), "{e}");
    assert!(stdout(&o).contains("INCOMPLETE"));
}

#[test]
fn usage_names_kubectl_fivexx() {
    let o = run(&["explain", "--help"]);
    let out = stdout(&o);
    assert!(
        out.contains("Usage: kubectl fivexx explain [OPTIONS] <FILE>"),
        "{out}"
    );
    for flag in ["--output", "--since", "--until", "--workload", "--pod"] {
        assert!(out.contains(flag), "{flag}: {out}");
    }
    let o = run(&["explain", "x.fxc", "-o", "yaml"]);
    assert_eq!(o.status.code(), Some(2));
}
