//! `explain FILE`: a capture's records replayed through the same
//! [`Analysis`] the live session feeds through its `Recorder`, with the
//! engine settings the capture's header recorded, so the file explains to
//! the verdicts its session printed.
//!
//! Streamed in bounded memory: facts are read by reference into a buffer
//! the reader reuses. A damaged or cut capture gives a partial report and
//! warnings; a file nothing can be read from is an error.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use fivexx_core::analysis::{Analysis, AnalysisOptions, ReadSummary};
use fivexx_core::capture::{CaptureReader, RecordRef};
use fivexx_core::report::Report;

use crate::error::CliError;

/// What a replay reads and how it reports.
pub struct ReplayOptions {
    pub file: PathBuf,
    pub analysis: AnalysisOptions,
}

/// The report, and what reading the file met (one line each, to print
/// before the report: the report says "incomplete", these say where).
pub struct Replay {
    pub report: Report,
    pub warnings: Vec<String>,
}

/// Reads from this far: a capture is written sequentially and read once.
const READ_BUFFER: usize = 256 * 1024;

pub fn replay(opts: ReplayOptions) -> Result<Replay, CliError> {
    let name = opts.file.display().to_string();
    let file = File::open(&opts.file)
        .map_err(|e| CliError::bare(format!("cannot open {name}")).with_source(e))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(CliError::bare(format!(
            "{name} is a directory, not a capture file"
        )));
    }
    let mut reader = CaptureReader::new(BufReader::with_capacity(READ_BUFFER, file))
        .map_err(|e| CliError::bare(name.clone()).with_source(e))?;
    let mut analysis = Analysis::new(opts.analysis);
    let (major, minor) = reader.version();
    analysis.set_format_version(major, minor);
    while let Some(record) = reader
        .next_ref()
        .map_err(|e| CliError::bare(format!("reading {name}")).with_source(e))?
    {
        match record {
            RecordRef::Fact(f) => analysis.push_fact(f, &mut |_| {}),
            RecordRef::Other(r) => analysis.push_record(&r, &mut |_| {}),
        }
        .map_err(|e| CliError::bare(format!("cannot explain {name}")).with_source(e))?;
    }
    let stats = reader.stats().clone();
    if stats.records == 0 {
        let why = reader
            .problems()
            .first()
            .map_or("it holds no records".to_string(), ToString::to_string);
        return Err(CliError::bare(format!(
            "{name}: nothing could be read: {why}"
        )));
    }
    let problems: Vec<String> = reader.problems().iter().map(ToString::to_string).collect();
    let mut warnings: Vec<String> = problems.iter().map(|p| format!("{name}: {p}")).collect();
    if stats.problems > 0 {
        warnings.push(format!(
            "{name}: partial result: {} records read, {} problems",
            stats.records, stats.problems
        ));
    }
    let report = analysis.finish(
        ReadSummary {
            complete: stats.is_complete(),
            problems,
            problem_count: stats.problems,
        },
        &mut |_| {},
    );
    Ok(Replay { report, warnings })
}
