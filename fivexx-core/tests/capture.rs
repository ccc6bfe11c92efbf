//! Capture format: round trips, cuts, corruption and foreign files.

use fivexx_core::capture::{
    export_jsonl, CaptureError, CaptureHeader, CaptureReader, CaptureWriter, Compression,
    DropCounters, ProblemKind, Record, WriteOptions, FORMAT_MAJOR, FORMAT_MINOR, MAGIC,
};
use fivexx_core::event::Errno;
use fivexx_core::model::{
    AgentGoneFact, ClusterEvent, EndpointFact, Fact, HttpPeekFact, NodeChange, NodeFact, PodChange,
    PodFact, ProxyLogFact, ServiceFact, WorkloadRef,
};
use fivexx_core::protocol::DropCounts;
use fivexx_core::proxylog::parse_line;
use fivexx_core::{FourTuple, KernelEvent, KernelEventKind, SignalResult, TaskRef, TcpState};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, last))
}

/// A fact of every variant, varied by `i`.
fn sample_fact(i: u64) -> Fact {
    let at = 1_700_000_000_000_000_000 + i as i64 * 1_000_000;
    match i % 7 {
        0 | 1 => {
            let mut e = KernelEvent::new(KernelEventKind::ReceiveReset, i * 1000, at);
            e.node = format!("node-{}", i % 3);
            e.tuple = Some(FourTuple {
                saddr: ip(1),
                sport: 40000 + (i % 1000) as u16,
                daddr: ip((i % 200) as u8 + 2),
                dport: 8080,
            });
            e.tcp_state = Some(TcpState::SynSent);
            e.errno = i.is_multiple_of(2).then_some(Errno::ECONNREFUSED);
            e.sock_id = Some(i);
            Fact::Kernel(e)
        }
        2 => {
            let mut e = KernelEvent::new(KernelEventKind::Signal, i * 1000, at);
            e.signal = Some(15);
            e.signal_result = Some(SignalResult::Ignored);
            e.task = Some(TaskRef {
                pid: 100,
                comm: "containerd-shim".into(),
            });
            e.target = Some(TaskRef {
                pid: 200 + i as i32,
                comm: "sh".into(),
            });
            e.pod_uid = Some(format!("uid-{i}"));
            Fact::Kernel(e)
        }
        3 => Fact::Pod(PodFact {
            at_ns: at,
            namespace: "shop".into(),
            name: format!("api-{i}"),
            uid: format!("uid-{i}"),
            node: Some("node-1".into()),
            owner: Some(WorkloadRef {
                kind: "Deployment".into(),
                name: "api".into(),
            }),
            change: if i.is_multiple_of(2) {
                PodChange::Deleting { grace_period_s: 30 }
            } else {
                PodChange::Ip { ip: ip(9) }
            },
        }),
        4 => Fact::Endpoint(EndpointFact {
            at_ns: at,
            namespace: "shop".into(),
            service: "api".into(),
            slice: "api-abc".into(),
            address: ip(9),
            pod_uid: Some(format!("uid-{i}")),
            present: true,
            ready: i.is_multiple_of(2),
            serving: true,
            terminating: i % 2 == 1,
        }),
        5 => Fact::Node(NodeFact {
            at_ns: at,
            node: "node-2".into(),
            change: NodeChange::TaintAdded {
                key: "node.kubernetes.io/unschedulable".into(),
                effect: "NoSchedule".into(),
            },
        }),
        _ if i % 3 == 2 => proxy_log_fact(i),
        _ if i % 11 == 7 => http_peek_fact(i),
        _ if i % 13 == 11 => Fact::AgentGone(AgentGoneFact {
            at_ns: at,
            node: format!("node-{}", i % 3),
            reason: "the stream ended: connection reset by peer".into(),
            last_heard_ns: Some(at - 1_000_000),
        }),
        _ => {
            if i.is_multiple_of(2) {
                Fact::Service(ServiceFact {
                    at_ns: at,
                    namespace: "shop".into(),
                    name: "api".into(),
                    cluster_ip: Some(ip(250)),
                    present: true,
                })
            } else {
                Fact::Event(ClusterEvent {
                    at_ns: at,
                    namespace: "shop".into(),
                    reason: "Killing".into(),
                    message: "Stopping container api".into(),
                    object_kind: "Pod".into(),
                    object_name: format!("api-{i}"),
                    object_uid: None,
                    node: Some("node-1".into()),
                })
            }
        }
    }
}

/// A proxy access-log fact from a real-looking upstreaminfo line.
fn proxy_log_fact(i: u64) -> Fact {
    let line = format!(
        "2026-11-25T07:19:14.{:09}Z 10.1.0.{} - - [25/Nov/2026:07:19:14 +0000] \"GET /x HTTP/1.1\" 502 150 \"-\" \"wrk\" 75 0.002 [shop-api-80] [] 10.0.1.{}:8080, 10.0.1.9:8080 0, 0 0.001, - 502, - {i:032x}",
        i % 1_000_000_000,
        i % 250,
        i % 200 + 2,
    );
    let entry = parse_line(&line).expect("the sample line parses");
    Fact::ProxyLog(ProxyLogFact::new(
        "ingress-nginx",
        "ingress-nginx-controller-abcde",
        i.is_multiple_of(2).then_some("node-1"),
        entry,
    ))
}

/// The drops record after fact `i`: `i` kernel drops of `send_reset`.
fn drops_after(i: u64) -> DropCounters {
    let kernel = [(KernelEventKind::SendReset, i)].into();
    let drops = DropCounts { kernel, stream: 0 };
    DropCounters {
        at_ns: i as i64,
        node: "node-1".into(),
        drops,
    }
}

/// A proxy pod peeked from mid-session on.
fn http_peek_fact(i: u64) -> Fact {
    Fact::HttpPeek(HttpPeekFact {
        at_ns: 1_700_000_000_000_000_000 + i as i64,
        namespace: "ingress-nginx".into(),
        pod: format!("ingress-nginx-controller-{i}"),
        node: "node-1".into(),
        proxy_ip: ip((i % 200) as u8 + 2),
    })
}

fn header() -> CaptureHeader {
    CaptureHeader {
        tool_version: "test 0".into(),
        context: Some("kind-lab".into()),
        nodes: vec!["node-1".into(), "node-2".into()],
        capabilities: vec![serde_json::json!({"node": "node-1", "hooks": []})],
        start_ns: 1_700_000_000_000_000_000,
        end_ns: None,
        http_peek_proxies: Vec::new(),
        engine: None,
    }
}

/// Writes a capture of `n` facts; returns the bytes, the records in order,
/// and the byte offset at which each record (or its chunk) becomes complete.
fn write_capture(n: u64, opts: WriteOptions) -> (Vec<u8>, Vec<Record>, Vec<usize>) {
    let h = header();
    let mut records = vec![Record::Header(h.clone())];
    let mut w = CaptureWriter::new(Vec::new(), &h, opts).unwrap();
    for i in 0..n {
        let f = sample_fact(i);
        w.write_fact(&f).unwrap();
        records.push(Record::Fact(f));
        if i % 5 == 4 {
            let d = drops_after(i);
            w.write_drops(&d).unwrap();
            records.push(Record::Drops(d));
        }
    }
    let out = w.finish(42).unwrap();
    records.push(Record::End(fivexx_core::capture::CaptureEnd {
        end_ns: 42,
        facts: n,
    }));
    // Complete-at offsets, from writing prefixes (uncompressed only).
    let mut ends = Vec::new();
    if opts.compression == Compression::None {
        let mut w = CaptureWriter::new(Vec::new(), &h, opts).unwrap();
        ends.push(w_len(&mut w));
        for i in 0..n {
            w.write_fact(&sample_fact(i)).unwrap();
            ends.push(w_len(&mut w));
            if i % 5 == 4 {
                w.write_drops(&drops_after(i)).unwrap();
                ends.push(w_len(&mut w));
            }
        }
        ends.push(out.len());
    }
    (out, records, ends)
}

fn w_len(w: &mut CaptureWriter<Vec<u8>>) -> usize {
    w.flush().unwrap();
    w.get_ref().len()
}

fn read_all(bytes: &[u8]) -> Result<(Vec<Record>, CaptureReader<&[u8]>), CaptureError> {
    let mut r = CaptureReader::new(bytes)?;
    let mut out = Vec::new();
    while let Some(rec) = r.next_record()? {
        out.push(rec);
    }
    Ok((out, r))
}

fn plain() -> WriteOptions {
    WriteOptions {
        compression: Compression::None,
        chunk_bytes: 1,
    }
}

fn zstd_small_chunks() -> WriteOptions {
    WriteOptions {
        compression: Compression::Zstd { level: 3 },
        chunk_bytes: 300,
    }
}

#[test]
fn round_trip_uncompressed_and_zstd() {
    for opts in [plain(), zstd_small_chunks(), WriteOptions::default()] {
        let (bytes, records, _) = write_capture(40, opts);
        let (got, r) = read_all(&bytes).unwrap();
        assert_eq!(got, records, "{opts:?}");
        assert!(r.stats().is_complete(), "{:?}", r.problems());
        assert_eq!(r.stats().facts, 40);
        assert_eq!(r.version(), (FORMAT_MAJOR, FORMAT_MINOR));
    }
}

/// Proxy-log facts (format 1.6: the proxy's account) and HTTP-peek facts
/// (1.2) round-trip, in their own record types (tags 8 and 6), and export as
/// `{"fact":{"proxy_log":{..}}}` and `{"fact":{"http_peek":{..}}}`.
#[test]
fn newer_facts_round_trip_in_their_own_record_types() {
    let facts: Vec<Fact> = (0..6)
        .flat_map(|i| [proxy_log_fact(i), http_peek_fact(i)])
        .collect();
    for opts in [plain(), WriteOptions::default()] {
        let h = header();
        let mut w = CaptureWriter::new(Vec::new(), &h, opts).unwrap();
        for f in &facts {
            w.write_fact(f).unwrap();
        }
        let bytes = w.finish(42).unwrap();
        let (got, r) = read_all(&bytes).unwrap();
        let got_facts: Vec<Fact> = got
            .into_iter()
            .filter_map(|r| match r {
                Record::Fact(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(got_facts, facts, "{opts:?}");
        assert!(r.stats().is_complete(), "{:?}", r.problems());
        assert_eq!(r.version(), (FORMAT_MAJOR, FORMAT_MINOR));
        let mut out = Vec::new();
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        export_jsonl(&mut r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let first = text
            .lines()
            .find(|l| l.contains("proxy_log"))
            .expect("a proxy_log line");
        let v: serde_json::Value = serde_json::from_str(first).unwrap();
        let pl = &v["fact"]["proxy_log"];
        let pl = &pl["account"];
        assert_eq!(pl["status"], 502);
        assert_eq!(pl["tries"][0]["addr"], "10.0.1.2:8080");
        assert_eq!(pl["tries"][1]["status"], serde_json::Value::Null);
        assert_eq!(pl["format"], "upstreaminfo");
        assert!(!text.contains("GET /x"), "the request line is never kept");
        let peek = text
            .lines()
            .find(|l| l.contains("http_peek"))
            .expect("an http_peek line");
        let v: serde_json::Value = serde_json::from_str(peek).unwrap();
        assert_eq!(v["fact"]["http_peek"]["proxy_ip"], "10.0.1.2");
        assert_eq!(v["fact"]["http_peek"]["node"], "node-1");
    }
}

/// What a 1.0 reader does with a 1.1 capture: the proxy-log record type is
/// unknown to it, so it skips those records and reports them, and reads
/// every other record. Emulated by renumbering the proxy-log (1.1) and
/// HTTP-peek (1.2) frames to a type this reader does not know.
#[test]
fn newer_minor_records_are_skippable_by_older_readers() {
    let h = header();
    let mut w = CaptureWriter::new(Vec::new(), &h, plain()).unwrap();
    let pod = sample_fact(3);
    w.write_fact(&pod).unwrap();
    w.write_fact(&proxy_log_fact(1)).unwrap();
    w.write_fact(&http_peek_fact(2)).unwrap();
    w.write_fact(&pod).unwrap();
    let mut bytes = w.finish(42).unwrap();
    // Frames: sync(4) len(4) tag(1) payload crc(4) after the 20-byte preamble.
    let mut at = 20;
    let mut renumbered = Vec::new();
    while at + 9 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let tag = bytes[at + 8];
        if tag == 8 || tag == 6 {
            bytes[at + 8] = 0xe0 + tag;
            let crc = crc32fast::hash(&bytes[at + 4..at + 9 + len]);
            bytes[at + 9 + len..at + 13 + len].copy_from_slice(&crc.to_le_bytes());
            renumbered.push(tag);
        }
        at += 13 + len;
    }
    assert_eq!(
        renumbered,
        vec![8, 6],
        "a proxy-account (8) and an HTTP-peek (6) record"
    );
    let (got, r) = read_all(&bytes).unwrap();
    let facts: Vec<&Record> = got
        .iter()
        .filter(|r| matches!(r, Record::Fact(_)))
        .collect();
    assert_eq!(facts, vec![&Record::Fact(pod.clone()), &Record::Fact(pod)]);
    let kinds: Vec<_> = r.problems().iter().map(|p| p.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            ProblemKind::UnknownRecord { tag: 0xe8 },
            ProblemKind::UnknownRecord { tag: 0xe6 }
        ]
    );
}

#[test]
fn zstd_is_smaller_on_repetitive_facts() {
    let (plain_bytes, _, _) = write_capture(500, plain());
    let (z, _, _) = write_capture(500, WriteOptions::default());
    assert!(
        z.len() * 3 < plain_bytes.len(),
        "{} vs {}",
        z.len(),
        plain_bytes.len()
    );
}

/// The uncompressed file cut at every byte: every record complete before
/// the cut is read back, nothing else, and the cut is reported.
#[test]
fn cut_at_every_byte_uncompressed() {
    let (bytes, records, ends) = write_capture(12, plain());
    assert_eq!(ends.len(), records.len());
    for cut in 0..bytes.len() {
        let slice = &bytes[..cut];
        match read_all(slice) {
            Err(CaptureError::Empty) => assert_eq!(cut, 0),
            Err(CaptureError::TruncatedPreamble(_)) => assert!(cut < 20),
            Err(e) => panic!("cut {cut}: unexpected error {e}"),
            Ok((got, r)) => {
                let complete = ends.iter().filter(|e| **e <= cut).count();
                assert_eq!(got, records[..complete], "cut at {cut}");
                let kinds: Vec<_> = r.problems().iter().map(|p| p.kind.clone()).collect();
                assert!(
                    kinds.contains(&ProblemKind::Truncated)
                        || kinds.contains(&ProblemKind::MissingEnd),
                    "cut at {cut} not reported: {kinds:?}"
                );
                assert!(!r.stats().is_complete());
            }
        }
    }
}

/// Cut compressed files: what comes back is a prefix of the records, it
/// includes every record of every complete chunk, and the cut is reported.
#[test]
fn cut_at_every_byte_zstd() {
    let (bytes, records, _) = write_capture(30, zstd_small_chunks());
    let mut best_prefix = 0;
    for cut in 20..bytes.len() {
        let (got, r) = read_all(&bytes[..cut]).unwrap();
        assert_eq!(got[..], records[..got.len()], "cut at {cut}: not a prefix");
        assert!(
            got.len() >= best_prefix,
            "cut at {cut}: lost records a shorter cut kept"
        );
        best_prefix = best_prefix.max(got.len());
        assert!(!r.stats().is_complete(), "cut at {cut} not reported");
    }
    assert!(best_prefix >= records.len() - 2);
}

/// One flipped byte anywhere after the preamble loses at most the record
/// (or chunk) it hits, never yields a wrong record, and is reported.
#[test]
fn flip_every_byte_uncompressed() {
    let (bytes, records, _) = write_capture(12, plain());
    for pos in 20..bytes.len() {
        let mut b = bytes.clone();
        b[pos] ^= 0x5a;
        let (got, r) = read_all(&b).unwrap();
        assert!(
            got.len() + 1 >= records.len(),
            "flip at {pos}: lost {} records",
            records.len() - got.len()
        );
        assert_subsequence(&got, &records, pos);
        assert!(r.stats().problems > 0, "flip at {pos} not reported");
    }
}

#[test]
fn flip_every_byte_zstd() {
    let (bytes, records, _) = write_capture(30, zstd_small_chunks());
    for pos in 20..bytes.len() {
        let mut b = bytes.clone();
        b[pos] ^= 0x01;
        let (got, r) = read_all(&b).unwrap();
        assert_subsequence(&got, &records, pos);
        assert!(
            got.len() + 12 >= records.len(),
            "flip at {pos}: lost too much"
        );
        assert!(r.stats().problems > 0, "flip at {pos} not reported");
    }
}

#[test]
fn flipped_preamble_is_refused_cleanly() {
    let (bytes, _, _) = write_capture(3, plain());
    for pos in 0..20 {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        assert!(CaptureReader::new(&b[..]).is_err(), "flip at {pos}");
    }
}

fn assert_subsequence(got: &[Record], all: &[Record], pos: usize) {
    let mut it = all.iter();
    for g in got {
        assert!(
            it.any(|r| r == g),
            "flip at {pos}: record not in the original order: {g:?}"
        );
    }
}

#[test]
fn corruption_is_skipped_with_its_offset() {
    let (mut bytes, records, ends) = write_capture(10, plain());
    // Overwrite the middle of the 4th record with garbage.
    let at = ends[3] + 12;
    for b in &mut bytes[at..at + 5] {
        *b = 0xee;
    }
    let (got, r) = read_all(&bytes).unwrap();
    assert_eq!(got.len(), records.len() - 1);
    let p = &r.problems()[0];
    assert_eq!(p.offset, ends[3] as u64);
    assert!(matches!(p.kind, ProblemKind::Corrupted { .. }));
    assert!(p.to_string().contains(&format!("byte {}", ends[3])), "{p}");
    assert!(r.stats().clean_end);
}

#[test]
fn inserted_garbage_is_skipped() {
    let (bytes, records, ends) = write_capture(6, plain());
    let mut b = bytes[..ends[2]].to_vec();
    b.extend_from_slice(&[0u8; 1000]);
    b.extend_from_slice(&bytes[ends[2]..]);
    let (got, r) = read_all(&b).unwrap();
    assert_eq!(got, records);
    assert_eq!(
        r.problems()[0].kind,
        ProblemKind::Corrupted {
            skipped_bytes: 1000
        }
    );
}

#[test]
fn foreign_files_get_clear_errors() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";
    let err = CaptureReader::new(&png[..]).err().unwrap();
    assert!(err.to_string().contains("PNG"), "{err}");
    assert!(matches!(
        CaptureReader::new(&b""[..]),
        Err(CaptureError::Empty)
    ));
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let err = CaptureReader::new(&random[..]).err().unwrap();
    assert!(err.to_string().starts_with("not a fivexx capture"), "{err}");
    let err = CaptureReader::new(&b"{\"fact\":1}\n"[..]).err().unwrap();
    assert!(err.to_string().contains("JSON"), "{err}");
    let err = CaptureReader::new(&MAGIC[..5]).err().unwrap();
    assert!(matches!(err, CaptureError::TruncatedPreamble(_)), "{err}");
}

#[test]
fn newer_major_is_refused_naming_both_versions() {
    let mut pre = MAGIC.to_vec();
    pre.extend_from_slice(&(FORMAT_MAJOR + 1).to_le_bytes());
    pre.extend_from_slice(&3u16.to_le_bytes());
    pre.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&pre);
    pre.extend_from_slice(&crc.to_le_bytes());
    pre.extend_from_slice(b"whatever a future version writes");
    let err = CaptureReader::new(&pre[..]).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}.3", FORMAT_MAJOR + 1)), "{msg}");
    assert!(
        msg.contains(&format!("{FORMAT_MAJOR}.{FORMAT_MINOR}")),
        "{msg}"
    );
}

#[test]
fn jsonl_export_has_one_line_per_record() {
    let (bytes, records, _) = write_capture(8, WriteOptions::default());
    let mut r = CaptureReader::new(&bytes[..]).unwrap();
    let mut out = Vec::new();
    let stats = export_jsonl(&mut r, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), records.len());
    assert!(stats.is_complete());
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["header"]["context"], "kind-lab");
    let fact: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(fact["fact"]["kernel"]["kind"], "receive_reset");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random sizes and options; a random cut reads back a prefix of the
    /// records with no error other than the reported cut.
    #[test]
    fn prop_cut_reads_a_reported_prefix(n in 0u64..60, zstd in any::<bool>(), cut_frac in 0.0f64..1.0) {
        let opts = if zstd { zstd_small_chunks() } else { plain() };
        let (bytes, records, ends) = write_capture(n, opts);
        let cut = 20 + ((bytes.len() - 20) as f64 * cut_frac) as usize;
        let (got, r) = read_all(&bytes[..cut]).unwrap();
        prop_assert_eq!(&got[..], &records[..got.len()]);
        if !zstd {
            prop_assert_eq!(got.len(), ends.iter().filter(|e| **e <= cut).count());
        }
        prop_assert_eq!(r.stats().is_complete(), cut == bytes.len());
    }

    /// Any byte flipped to any value: no panic, no invented record, reported.
    #[test]
    fn prop_flip_any_byte(n in 1u64..40, zstd in any::<bool>(), pos_frac in 0.0f64..1.0, val in any::<u8>()) {
        let opts = if zstd { zstd_small_chunks() } else { plain() };
        let (mut bytes, records, _) = write_capture(n, opts);
        let pos = ((bytes.len() - 1) as f64 * pos_frac) as usize;
        prop_assume!(bytes[pos] != val);
        bytes[pos] = val;
        match read_all(&bytes) {
            Err(_) => prop_assert!(pos < 20),
            Ok((got, r)) => {
                assert_subsequence(&got, &records, pos);
                prop_assert!(r.stats().problems > 0);
            }
        }
    }

    /// Arbitrary bytes after a valid preamble never panic and never loop.
    #[test]
    fn prop_garbage_body_is_survived(body in proptest::collection::vec(any::<u8>(), 0..2000), zstd in any::<bool>()) {
        let opts = if zstd { zstd_small_chunks() } else { plain() };
        let (bytes, _, _) = write_capture(0, opts);
        let mut b = bytes[..20].to_vec();
        b.extend_from_slice(&body);
        let (_, r) = read_all(&b).unwrap();
        prop_assert!(!r.stats().is_complete() || body.is_empty());
    }
}
