//! `kubectl fivexx explain FILE`: offline analysis of a capture.
//!
//! Streams the capture through the same engine live `trace` uses, in
//! bounded memory. A damaged or cut capture gives a partial report and a
//! warning; a file nothing can be read from is an error (exit 1).

use clap::{Args, ValueEnum};
use fivexx_core::analysis::{Analysis, AnalysisOptions, FilterSpec, Overrides, ReadSummary, When};
use fivexx_core::capture::{CaptureReader, RecordRef};
use fivexx_core::report::{parse_time, render_html, render_json, render_table, render_wide};
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::duration::FlagDuration;
use crate::error::CliError;

type Result<T> = std::result::Result<T, CliError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
    /// One self-contained page: the summary and a timeline of the pods
    /// with a dot per failed request (redirect to a file).
    Html,
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
    /// Tolerated clock skew between nodes and the API server (e.g. 2s,
    /// 500ms). Default: what the capture recorded (2s for captures before
    /// format 1.3).
    #[arg(long, value_name = "DURATION")]
    pub skew: Option<FlagDuration>,
    /// How long after a failure to wait for facts explaining it. Default:
    /// what the capture recorded (30s before format 1.3).
    #[arg(long, value_name = "DURATION")]
    pub lookahead: Option<FlagDuration>,
    /// Verdicts listed in full (json, wide); the rest are only counted.
    /// Default 1000; for html all of them (one dot per failed request).
    #[arg(long, value_name = "N")]
    pub max_verdicts: Option<usize>,
}

/// Verdicts kept in full when `--max-verdicts` is not given.
const DEFAULT_MAX_VERDICTS: usize = 1000;

impl ExplainArgs {
    fn max_verdicts(&self) -> usize {
        match (self.max_verdicts, self.output) {
            (Some(n), _) => n,
            (None, Output::Html) => usize::MAX,
            (None, _) => DEFAULT_MAX_VERDICTS,
        }
    }
}

/// `--since`/`--until`: RFC 3339, Unix seconds, or `+DURATION` from the
/// capture's start (resolved by the analysis once the header is read).
fn parse_when(s: &str, flag: &str) -> Result<When> {
    if let Some(rel) = s.strip_prefix('+') {
        let d: FlagDuration = rel
            .parse()
            .map_err(|e| CliError::bare(format!("--{flag}")).with_source(e))?;
        return Ok(When::AfterStart(d.ns()));
    }
    parse_time(s)
        .map(When::At)
        .map_err(|e| CliError::bare(format!("--{flag}: {e}")))
}

fn options(args: &ExplainArgs) -> Result<AnalysisOptions> {
    if let Some(s) = args.skew.filter(|s| s.ns() > 3_600_000_000_000) {
        return Err(CliError::bare(format!(
            "--skew {:?}: at most 1h; clocks further apart cannot be joined",
            s.0
        )));
    }
    let when = |v: &Option<String>, flag| v.as_deref().map(|s| parse_when(s, flag)).transpose();
    Ok(AnalysisOptions {
        overrides: Overrides {
            skew_ns: args.skew.map(FlagDuration::ns),
            lookahead_ns: args.lookahead.map(FlagDuration::ns),
        },
        filter: FilterSpec {
            since: when(&args.since, "since")?,
            until: when(&args.until, "until")?,
            workload: args.workload.clone(),
            pod: args.pod.clone(),
        },
        max_verdicts: args.max_verdicts(),
    })
}

pub fn run(args: &ExplainArgs) -> Result<ExitCode> {
    let mut analysis = Analysis::new(options(args)?);
    let name = args.file.display().to_string();
    let file = File::open(&args.file)
        .map_err(|e| CliError::bare(format!("cannot open {name}")).with_source(e))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(CliError::bare(format!(
            "{name} is a directory, not a capture file"
        )));
    }
    let mut reader = CaptureReader::new(BufReader::with_capacity(256 * 1024, file))
        .map_err(|e| CliError::bare(name.clone()).with_source(e))?;
    let (major, minor) = reader.version();
    analysis.set_format_version(major, minor);
    // Facts are read by reference into a buffer the reader reuses: no
    // allocation per fact.
    while let Some(record) = reader
        .next_ref()
        .map_err(|e| CliError::bare(format!("reading {name}")).with_source(e))?
    {
        match record {
            RecordRef::Fact(f) => analysis.push_fact(f, &mut |_| {}),
            RecordRef::Other(r) => analysis.push_record(&r, &mut |_| {}),
        }
        .map_err(|e| CliError::bare("").with_source(e))?;
    }
    let stats = reader.stats().clone();
    if stats.records == 0 {
        let why = reader
            .problems()
            .first()
            .map_or("it holds no records".to_string(), |p| p.to_string());
        return Err(CliError::bare(format!(
            "{name}: nothing could be read: {why}"
        )));
    }
    let problems: Vec<String> = reader.problems().iter().map(|p| p.to_string()).collect();
    for p in &problems {
        eprintln!("warning: {name}: {p}");
    }
    if stats.problems > 0 {
        eprintln!(
            "warning: {name}: partial result: {} records read, {} problems",
            stats.records, stats.problems
        );
    }
    let report = analysis.finish(
        ReadSummary {
            complete: stats.is_complete(),
            problems,
            problem_count: stats.problems,
        },
        &mut |_| {},
    );
    let text = match args.output {
        Output::Table => render_table(&report),
        Output::Wide => render_wide(&report),
        Output::Json => render_json(&report) + "\n",
        Output::Html => render_html(&report),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `| head` closed the pipe: not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(CliError::bare("writing the report").with_source(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_wait_for_the_header() {
        assert_eq!(
            parse_when("+1s", "since").unwrap(),
            When::AfterStart(1_000_000_000)
        );
        assert_eq!(
            parse_when("+1m30s", "since").unwrap(),
            When::AfterStart(90_000_000_000)
        );
        assert!(parse_when("noon", "since").is_err());
        assert!(parse_when("+soon", "until").is_err());
    }

    #[test]
    fn html_keeps_every_verdict_unless_told() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ExplainArgs,
        }
        let max = |argv: &[&str]| {
            let cli: Cli =
                clap::Parser::try_parse_from(["explain", "capture.fxc"].iter().chain(argv))
                    .unwrap();
            cli.args.max_verdicts()
        };
        assert_eq!(max(&[]), DEFAULT_MAX_VERDICTS);
        assert_eq!(max(&["-o", "json"]), DEFAULT_MAX_VERDICTS);
        assert_eq!(max(&["-o", "html"]), usize::MAX);
        assert_eq!(max(&["-o", "html", "--max-verdicts", "7"]), 7);
    }
}
