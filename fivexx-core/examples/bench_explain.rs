//! Benchmark of `explain` on a large synthetic capture (not a timed test).
//!
//! ```text
//! bench_explain write FILE N     write a zstd capture of N synthetic facts
//! bench_explain explain FILE     stream it through reader + engine + report
//! bench_explain engine N         the engine alone on N generated facts
//! ```
//!
//! Each phase runs in its own process so that peak RSS (VmHWM) of the
//! explain phase is its own. `make -f mk/core.mk bench-explain` runs them
//! for 1 M and 10 M facts and prints facts/s and peak memory side by side.

use fivexx_core::analysis::{Analysis, AnalysisOptions, ReadSummary};
use fivexx_core::capture::{CaptureHeader, CaptureReader, CaptureWriter, RecordRef, WriteOptions};
use fivexx_core::explain::{ExplainConfig, Explainer};
use fivexx_core::testkit::synth::{bench_stream, T0};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::process::ExitCode;
use std::time::Instant;

/// Peak resident set size of this process, from /proc/self/status.
fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds (user + system) this process used, from /proc/self/stat:
/// on a shared machine, facts per CPU-second is the "one core" figure.
fn cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0) // USER_HZ is 100 on Linux
}

fn write(path: &str, n: u64) -> Result<(), String> {
    let f = File::create(path).map_err(|e| format!("{path}: {e}"))?;
    let header = CaptureHeader {
        tool_version: format!("bench_explain {}", env!("CARGO_PKG_VERSION")),
        context: Some("synthetic".into()),
        nodes: vec![
            "node-0".into(),
            "node-1".into(),
            "node-2".into(),
            "node-3".into(),
        ],
        capabilities: vec![],
        start_ns: T0,
        end_ns: None,
        http_peek_proxies: Vec::new(),
        engine: None,
    };
    let start = Instant::now();
    let mut w = CaptureWriter::new(
        BufWriter::with_capacity(1 << 20, f),
        &header,
        WriteOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut last = T0;
    for fact in bench_stream(n) {
        last = fact.at_ns();
        w.write_fact(&fact).map_err(|e| e.to_string())?;
    }
    w.finish(last).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "write    facts={n} bytes={size} ({:.1} B/fact) secs={:.2}",
        size as f64 / n.max(1) as f64,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn explain(path: &str) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let start = Instant::now();
    let cpu0 = cpu_secs().unwrap_or(0.0);
    let mut reader =
        CaptureReader::new(BufReader::with_capacity(1 << 20, f)).map_err(|e| e.to_string())?;
    // The path `kubectl fivexx explain` runs: the one analysis type.
    let mut analysis = Analysis::new(AnalysisOptions::default());
    let mut verdicts = 0u64;
    while let Some(rec) = reader.next_ref().map_err(|e| e.to_string())? {
        match rec {
            RecordRef::Fact(fact) => analysis.push_fact(fact, &mut |_| verdicts += 1),
            RecordRef::Other(r) => analysis.push_record(&r, &mut |_| verdicts += 1),
        }
        .map_err(|e| e.to_string())?;
    }
    let r = analysis.finish(ReadSummary::default(), &mut |_| verdicts += 1);
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs().unwrap_or(0.0) - cpu0;
    let facts = reader.stats().facts;
    println!(
        "explain  facts={facts} wall_s={secs:.2} cpu_s={cpu:.2} facts_per_s={:.0} facts_per_cpu_s={:.0} verdicts={verdicts} explained={} unexplained={} episodes={} peak_rss_kib={}",
        facts as f64 / secs,
        facts as f64 / cpu.max(0.01),
        r.totals.explained,
        r.totals.unexplained,
        r.episodes.len(),
        vm_hwm_kib().map_or("?".into(), |k| k.to_string())
    );
    if !reader.stats().is_complete() {
        return Err(format!("capture not read cleanly: {:?}", reader.problems()));
    }
    Ok(())
}

fn engine_only(n: u64) {
    let start = Instant::now();
    let cpu0 = cpu_secs().unwrap_or(0.0);
    let mut engine = Explainer::new(ExplainConfig::default());
    let mut verdicts = 0u64;
    for fact in bench_stream(n) {
        engine.push(&fact, &mut |_| verdicts += 1);
    }
    engine.finish(&mut |_| verdicts += 1);
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs().unwrap_or(0.0) - cpu0;
    println!(
        "engine   facts={n} wall_s={secs:.2} cpu_s={cpu:.2} facts_per_s={:.0} facts_per_cpu_s={:.0} verdicts={verdicts} (generator included) peak_rss_kib={}",
        n as f64 / secs,
        n as f64 / cpu.max(0.01),
        vm_hwm_kib().map_or("?".into(), |k| k.to_string())
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bench_explain write FILE N | explain FILE | engine N";
    let n = |s: Option<&String>| s.and_then(|x| x.replace('_', "").parse::<u64>().ok());
    let r = match args.get(1).map(String::as_str) {
        Some("write") => match (args.get(2), n(args.get(3))) {
            (Some(p), Some(k)) => write(p, k),
            _ => Err(usage.into()),
        },
        Some("explain") => match args.get(2) {
            Some(p) => explain(p),
            None => Err(usage.into()),
        },
        Some("engine") => match n(args.get(2)) {
            Some(k) => {
                engine_only(k);
                Ok(())
            }
            None => Err(usage.into()),
        },
        _ => Err(usage.into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_explain: {e}");
            ExitCode::from(1)
        }
    }
}
