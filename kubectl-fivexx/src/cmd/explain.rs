//! `kubectl fivexx explain FILE`: offline analysis of a capture. Parses
//! its flags into [`ReplayOptions`], replays the file through the same
//! analysis live sessions use ([`session::replay`]) and prints the report
//! as they do ([`session::render`]).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use fivexx_core::analysis::{AnalysisOptions, FilterSpec, Overrides, When};
use fivexx_core::report::parse_time;

use crate::duration::FlagDuration;
use crate::error::CliError;
use crate::session::{self, ReplayOptions, ReportFormat};

/// `-o` of `explain`: the report on the terminal, as JSON, or as a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Table,
    Wide,
    Json,
    /// One self-contained page: the summary and a timeline of the pods
    /// with a dot per failed request (redirect to a file).
    Html,
}

impl From<ExplainFormat> for ReportFormat {
    fn from(f: ExplainFormat) -> ReportFormat {
        match f {
            ExplainFormat::Table => ReportFormat::Table,
            ExplainFormat::Wide => ReportFormat::Wide,
            ExplainFormat::Json => ReportFormat::Json,
            ExplainFormat::Html => ReportFormat::Html,
        }
    }
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The capture file (from `kubectl fivexx capture` or `trace --capture`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: ExplainFormat,
    /// Only failures at or after this time: RFC 3339, Unix seconds, or
    /// +DURATION from the capture's start (e.g. +2m).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub since: Option<When>,
    /// Only failures at or before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub until: Option<When>,
    /// Only failures of this workload: deploy/NAME, NS/deployment/NAME or NAME.
    #[arg(long, value_name = "WORKLOAD")]
    pub workload: Option<String>,
    /// Only failures of this pod: NAME or NS/NAME.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// Tolerated clock skew between nodes and the API server (e.g. 2s,
    /// 500ms). Default: what the capture recorded (2s for captures before
    /// format 1.3).
    #[arg(long, value_name = "DURATION", value_parser = parse_skew)]
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

impl ExplainArgs {
    fn options(&self) -> ReplayOptions {
        ReplayOptions {
            file: self.file.clone(),
            analysis: AnalysisOptions {
                overrides: Overrides {
                    skew_ns: self.skew.map(FlagDuration::ns),
                    lookahead_ns: self.lookahead.map(FlagDuration::ns),
                },
                filter: FilterSpec {
                    since: self.since,
                    until: self.until,
                    workload: self.workload.clone(),
                    pod: self.pod.clone(),
                },
                max_verdicts: self
                    .max_verdicts
                    .unwrap_or_else(|| session::verdicts_kept(self.output == ExplainFormat::Html)),
            },
        }
    }
}

/// `--since`/`--until`: RFC 3339, Unix seconds, or `+DURATION` from the
/// capture's start (resolved by the analysis once the header is read).
fn parse_when(s: &str) -> Result<When, String> {
    match s.strip_prefix('+') {
        Some(rel) => rel
            .parse::<FlagDuration>()
            .map(|d| When::AfterStart(d.ns()))
            .map_err(|e| e.to_string()),
        None => parse_time(s).map(When::At).map_err(|e| e.to_string()),
    }
}

/// Clocks further apart than an hour are not one incident's clocks: a
/// join that wide would pair unrelated facts.
fn parse_skew(s: &str) -> Result<FlagDuration, String> {
    let d = s.parse::<FlagDuration>().map_err(|e| e.to_string())?;
    if d.0 > std::time::Duration::from_secs(3600) {
        return Err("at most 1h; clocks further apart cannot be joined".into());
    }
    Ok(d)
}

pub fn run(args: &ExplainArgs) -> Result<ExitCode, CliError> {
    let replay = session::replay(args.options())?;
    for w in &replay.warnings {
        eprintln!("warning: {w}");
    }
    let text = session::render(&replay.report, args.output.into());
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExplainArgs,
    }

    fn parse(argv: &[&str]) -> Result<ExplainArgs, clap::Error> {
        let cli: Cli = clap::Parser::try_parse_from(["explain", "capture.fxc"].iter().chain(argv))?;
        Ok(cli.args)
    }

    #[test]
    fn relative_times_wait_for_the_header() {
        assert_eq!(parse_when("+1s").unwrap(), When::AfterStart(1_000_000_000));
        assert_eq!(
            parse_when("+1m30s").unwrap(),
            When::AfterStart(90_000_000_000)
        );
        assert!(parse_when("noon").is_err());
        assert!(parse_when("+soon").is_err());
    }

    #[test]
    fn times_and_skews_are_checked_by_the_parser() {
        let args = parse(&["--since", "+2m", "--until", "1700000000"]).unwrap();
        assert_eq!(args.since, Some(When::AfterStart(120_000_000_000)));
        assert_eq!(args.until, Some(When::At(1_700_000_000_000_000_000)));
        for bad in [
            &["--since", "yesterday"][..],
            &["--until", "+soon"],
            &["--skew", "2h"],
        ] {
            let e = parse(bad).err().unwrap();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
        }
    }

    #[test]
    fn html_keeps_every_verdict_unless_told() {
        let max = |argv: &[&str]| parse(argv).unwrap().options().analysis.max_verdicts;
        let default = AnalysisOptions::default().max_verdicts;
        assert_eq!(max(&[]), default);
        assert_eq!(max(&["-o", "json"]), default);
        assert_eq!(max(&["-o", "html"]), usize::MAX);
        assert_eq!(max(&["-o", "html", "--max-verdicts", "7"]), 7);
    }
}
