//! `kubectl fivexx explain FILE`: offline analysis of a capture.
//!
//! Streams the capture through the same engine live `trace` uses, in
//! bounded memory. A damaged or cut capture gives a partial report and a
//! warning; a file nothing can be read from is an error (exit 1).

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use fivexx_core::capture::{CaptureReader, Record, RecordRef};
use fivexx_core::explain::{ExplainConfig, Explainer};
use fivexx_core::report::{
    parse_time, render_json, render_table, render_wide, CaptureInfo, ReportBuilder, ReportFilter,
};
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The capture file (from `kubectl fivexx capture` or `trace --capture`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Output,
    /// Only failures at or after this time: RFC 3339, Unix seconds, or
    /// +DURATION from the capture's start (e.g. +2m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only failures at or before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only failures of this workload: deploy/NAME, NS/deployment/NAME or NAME.
    #[arg(long, value_name = "WORKLOAD")]
    pub workload: Option<String>,
    /// Only failures of this pod: NAME or NS/NAME.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// Tolerated clock skew between nodes and the API server (e.g. 2s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub skew: String,
    /// Verdicts listed in full (json, wide); the rest are only counted.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_verdicts: usize,
}

/// Parses `500ms`, `2s`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let x: f64 = num
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
        .with_context(|| format!("`{s}` is not a duration (try 2s, 500ms, 5m)"))?;
    let mult = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => bail!("`{s}` has an unknown unit `{unit}` (use ms, s, m or h)"),
    };
    let ns = x * mult;
    if ns > 1e18 {
        bail!("`{s}` is too long");
    }
    Ok(ns as i64)
}

fn parse_when(s: &str, start: Option<i64>, flag: &str) -> Result<i64> {
    if let Some(rel) = s.strip_prefix('+') {
        let d = parse_duration(rel).with_context(|| format!("--{flag}"))?;
        let Some(start) = start else {
            bail!("--{flag} {s}: a relative time needs the capture's header, which is missing");
        };
        return Ok(start + d);
    }
    parse_time(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

pub fn run(args: &ExplainArgs) -> Result<ExitCode> {
    let skew_ns = parse_duration(&args.skew).context("--skew")?;
    if skew_ns > 3_600_000_000_000 {
        bail!(
            "--skew {}: at most 1h; clocks further apart cannot be joined",
            args.skew
        );
    }
    let mut cfg = Some(ExplainConfig {
        skew_ns,
        ..ExplainConfig::default()
    });
    let name = args.file.display().to_string();
    let file = File::open(&args.file).with_context(|| format!("cannot open {name}"))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        bail!("{name} is a directory, not a capture file");
    }
    let mut reader = CaptureReader::new(BufReader::with_capacity(256 * 1024, file))
        .with_context(|| name.clone())?;
    let (major, minor) = reader.version();
    let mut info = CaptureInfo {
        format_version: format!("{major}.{minor}"),
        ..CaptureInfo::default()
    };
    let mut builder: Option<ReportBuilder> = None;
    // Made at the first record: the header (first) says which proxies
    // were peeked.
    let mut engine: Option<Explainer> = None;
    // Relative --since/--until need the header, which is the first record;
    // the filter is fixed at the first record of any kind.
    let make_builder = |info: &CaptureInfo| -> Result<ReportBuilder> {
        let filter = ReportFilter {
            since_ns: args
                .since
                .as_deref()
                .map(|s| parse_when(s, info.start_ns, "since"))
                .transpose()?,
            until_ns: args
                .until
                .as_deref()
                .map(|s| parse_when(s, info.start_ns, "until"))
                .transpose()?,
            workload: args.workload.clone(),
            pod: args.pod.clone(),
        };
        Ok(ReportBuilder::new(filter, args.max_verdicts))
    };
    // Facts are read by reference into a buffer the reader reuses: no
    // allocation per fact.
    while let Some(record) = reader
        .next_ref()
        .with_context(|| format!("reading {name}"))?
    {
        let record = match record {
            RecordRef::Fact(f) => {
                let (Some(e), Some(b)) = (engine.as_mut(), builder.as_mut()) else {
                    // A fact before any header: start without one.
                    let e = engine.insert(Explainer::new(cfg.take().unwrap_or_default()));
                    let b = builder.insert(make_builder(&info)?);
                    e.push(f, &mut |v| b.add(v));
                    continue;
                };
                e.push(f, &mut |v| b.add(v));
                continue;
            }
            RecordRef::Other(r) => *r,
        };
        if let Record::Header(h) = &record {
            info.tool_version.clone_from(&h.tool_version);
            info.context.clone_from(&h.context);
            info.nodes.clone_from(&h.nodes);
            info.start_ns = Some(h.start_ns);
            info.end_ns = info.end_ns.or(h.end_ns);
            if let Some(c) = cfg.as_mut() {
                c.peeked_proxies.clone_from(&h.http_peek_proxies);
            }
        }
        if builder.is_none() {
            builder = Some(make_builder(&info)?);
        }
        let engine = engine.get_or_insert_with(|| Explainer::new(cfg.take().unwrap_or_default()));
        let Some(b) = builder.as_mut() else { continue };
        match record {
            Record::Fact(f) => engine.push(&f, &mut |v| b.add(v)),
            Record::Drops(d) => {
                let node = info.drops.entry(d.node).or_default();
                for (kind, n) in d.dropped {
                    let e = node.entry(kind).or_default();
                    *e = (*e).max(n); // cumulative counters
                }
            }
            Record::End(e) => info.end_ns = Some(e.end_ns),
            Record::Header(_) => {}
        }
    }
    let stats = reader.stats().clone();
    if stats.records == 0 {
        let why = reader
            .problems()
            .first()
            .map_or("it holds no records".to_string(), |p| p.to_string());
        bail!("{name}: nothing could be read: {why}");
    }
    info.complete = stats.is_complete();
    info.problem_count = stats.problems;
    info.problems = reader.problems().iter().map(|p| p.to_string()).collect();
    for p in &info.problems {
        eprintln!("warning: {name}: {p}");
    }
    if info.problem_count > 0 {
        eprintln!(
            "warning: {name}: partial result: {} records read, {} problems",
            stats.records, stats.problems
        );
    }
    let mut builder = match builder {
        Some(b) => b,
        None => make_builder(&info)?,
    };
    let engine = engine.unwrap_or_else(|| Explainer::new(cfg.take().unwrap_or_default()));
    let measurements = engine.finish(&mut |v| builder.add(v));
    let report = builder.finish(&measurements, Some(info));
    let text = match args.output {
        Output::Table => render_table(&report),
        Output::Wide => render_wide(&report),
        Output::Json => render_json(&report) + "\n",
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `| head` closed the pipe: not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing the report"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2s").unwrap(), 2_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("2m").unwrap(), 120_000_000_000);
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("1e30h").is_err());
    }

    #[test]
    fn relative_times_need_a_start() {
        assert_eq!(parse_when("+1s", Some(10), "since").unwrap(), 1_000_000_010);
        assert!(parse_when("+1s", None, "since").is_err());
        assert!(parse_when("noon", Some(0), "since").is_err());
    }
}
