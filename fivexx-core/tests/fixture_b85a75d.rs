//! Captures written by the code of b85a75d (issue 24: nothing lost on the
//! way) explain to the verdicts that code gave them.
//!
//! Four lab captures, recorded by the real agent and plugin at b85a75d
//! (`FIVEXX_KEEP=1` scoring runs): a rollout through Envoy (response
//! flags, no client in its default format), HAProxy answering a pod that
//! ignores SIGTERM (termination states, nine answers the kernel cannot
//! explain), a `Recreate` rollout through nginx (no endpoints and endpoint
//! lag, `upstreaminfo`), and Envoy's idle keep-alive closes. Each
//! `.verdicts` file is what `kubectl-fivexx explain FILE -o json
//! --max-verdicts 1000000` printed at b85a75d, reduced to what a verdict
//! decides (totals, per verdict: time, kind, status, cause, confidence,
//! pod, sockets, upstream, fix), by the same reduction as [`digest`]. The
//! wording of evidence may improve; what is decided may not change.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use fivexx_core::analysis::{Analysis, AnalysisOptions, ReadSummary};
use fivexx_core::capture::{CaptureReader, RecordRef};
use fivexx_core::report::render_json;
use serde_json::Value;

const CAPTURES: [&str; 4] = [
    "rollout-no-prestop-envoy",
    "ignore-sigterm-haproxy",
    "recreate-nginx",
    "keepalive-idle-envoy",
];

fn dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/b85a75d"
    ))
}

/// The report of one capture file, explained as `kubectl fivexx explain`
/// does with its default settings (the capture's own) and every verdict.
fn explain(path: &Path) -> Value {
    let mut analysis = Analysis::new(AnalysisOptions {
        max_verdicts: usize::MAX,
        ..AnalysisOptions::default()
    });
    let file = File::open(path).expect("the fixture");
    let mut reader = CaptureReader::new(BufReader::new(file)).expect("a capture");
    let (major, minor) = reader.version();
    analysis.set_format_version(major, minor);
    while let Some(record) = reader.next_ref().expect("a readable record") {
        match record {
            RecordRef::Fact(f) => analysis.push_fact(f, &mut |_| {}),
            RecordRef::Other(r) => analysis.push_record(&r, &mut |_| {}),
        }
        .expect("the analysis takes it");
    }
    assert!(reader.stats().is_complete(), "{}", path.display());
    let report = analysis.finish(
        ReadSummary {
            complete: true,
            problems: Vec::new(),
            problem_count: 0,
        },
        &mut |_| {},
    );
    serde_json::from_str(&render_json(&report)).expect("the report's JSON")
}

fn socket(t: &Value) -> String {
    if t.is_null() {
        return "-".into();
    }
    format!(
        "{}:{}>{}:{}",
        s(&t["saddr"]),
        t["sport"],
        s(&t["daddr"]),
        t["dport"]
    )
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// What the report decided: its totals, the proxies' counts, and a line
/// per verdict.
fn digest(report: &Value) -> String {
    let compact = |v: &Value| serde_json::to_string(v).expect("JSON");
    let mut out = vec![
        format!("totals {}", compact(&report["totals"])),
        format!("http {}", compact(&report["engine"]["http"])),
    ];
    for v in report["verdicts"].as_array().expect("verdicts") {
        let f = &v["failure"];
        let up = &f["upstream"];
        let upstream = if up.is_null() {
            "-".to_string()
        } else {
            format!("{}:{}", s(&up["daddr"]), up["dport"])
        };
        out.push(
            [
                f["at_ns"].to_string(),
                s(&f["kind"]),
                s(&f["http_status"]),
                s(&v["cause"]),
                s(&v["confidence"]),
                s(&v["pod"]),
                socket(&f["tuple"]),
                upstream,
                s(&f["upstream_kind"]),
                f["upstream_failures"].as_u64().unwrap_or(0).to_string(),
                s(&v["fix"]["action"]),
            ]
            .join(" "),
        );
    }
    out.join("\n") + "\n"
}

#[test]
fn captures_of_b85a75d_explain_to_its_verdicts() {
    for name in CAPTURES {
        let got = digest(&explain(&dir().join(format!("{name}.fxc"))));
        let want = std::fs::read_to_string(dir().join(format!("{name}.verdicts")))
            .expect("the expected verdicts");
        if got != want {
            let first = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(want.lines().count()));
            panic!(
                "{name}: verdicts differ from b85a75d's at line {} (of {} now, {} then):\n now: {}\nthen: {}",
                first + 1,
                got.lines().count(),
                want.lines().count(),
                got.lines().nth(first).unwrap_or("<none>"),
                want.lines().nth(first).unwrap_or("<none>"),
            );
        }
    }
}
