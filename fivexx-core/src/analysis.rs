//! The one analysis path for live sessions and `explain FILE`: a capture
//! header and the stream of capture records in, verdicts and a report out.
//!
//! A live session hands every record it records to [`Recorder`], which
//! writes it to the capture (when there is one) and gives the same record
//! to the [`Analysis`]; `explain FILE` replays the file's records through
//! the same type. The engine settings come from the header, so a capture
//! explains to the verdicts its session printed: that holds by
//! construction, not by each command building its own engine.

use crate::capture::{
    CaptureEnd, CaptureError, CaptureHeader, CaptureWriter, DropCounters, Record, FORMAT_MAJOR,
    FORMAT_MINOR,
};
use crate::explain::{ExplainConfig, Explainer, Verdict};
use crate::model::Fact;
use crate::report::{CaptureInfo, Report, ReportBuilder, ReportFilter};
pub use crate::report::{Overrides, SettingSource, SettingsUsed};
use std::io::Write;

/// A `--since`/`--until` bound, resolved against the header's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    At(i64),
    /// `+DURATION`: after the capture's start.
    AfterStart(i64),
}

/// Which verdicts the report covers, before the header is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterSpec {
    pub since: Option<When>,
    pub until: Option<When>,
    pub workload: Option<String>,
    pub pod: Option<String>,
}

/// How an analysis reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalysisOptions {
    pub overrides: Overrides,
    pub filter: FilterSpec,
    /// Verdicts kept in full in the report; the rest are only counted.
    pub max_verdicts: usize,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            overrides: Overrides::default(),
            filter: FilterSpec::default(),
            max_verdicts: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("--{0}: a relative time needs the capture's header, which is missing")]
    RelativeWithoutHeader(&'static str),
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// What reading the records met, for the report's header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Read to an end record with no damage.
    pub complete: bool,
    pub problems: Vec<String>,
    pub problem_count: u64,
}

/// Capture header + records -> report. See the module's doc.
pub struct Analysis {
    opts: AnalysisOptions,
    started: Option<Started>,
    info: CaptureInfo,
}

struct Started {
    engine: Explainer,
    builder: ReportBuilder,
    settings: SettingsUsed,
}

impl Analysis {
    pub fn new(opts: AnalysisOptions) -> Analysis {
        Analysis {
            opts,
            started: None,
            info: CaptureInfo {
                format_version: format!("{FORMAT_MAJOR}.{FORMAT_MINOR}"),
                ..CaptureInfo::default()
            },
        }
    }

    /// The format version of the file read (`explain` sets it from the
    /// preamble; a live session records this build's).
    pub fn set_format_version(&mut self, major: u16, minor: u16) {
        self.info.format_version = format!("{major}.{minor}");
    }

    /// The settings in force, once the first record is in.
    pub fn settings(&self) -> Option<&SettingsUsed> {
        self.started.as_ref().map(|s| &s.settings)
    }

    /// Starts from a header (the first record) or without one (a capture
    /// whose header was lost): then the defaults apply.
    fn start(&mut self, header: Option<&CaptureHeader>) -> Result<&mut Started, AnalysisError> {
        if self.started.is_none() {
            if let Some(h) = header {
                self.info.tool_version.clone_from(&h.tool_version);
                self.info.context.clone_from(&h.context);
                self.info.nodes.clone_from(&h.nodes);
                self.info.start_ns = Some(h.start_ns);
                self.info.end_ns = self.info.end_ns.or(h.end_ns);
            }
            let settings = SettingsUsed::resolve(
                header.and_then(|h| h.engine),
                self.opts.overrides,
                header
                    .map(|h| h.http_peek_proxies.clone())
                    .unwrap_or_default(),
            );
            let f = &self.opts.filter;
            let start = header.map(|h| h.start_ns);
            let resolve = |w: Option<When>, flag: &'static str| -> Result<_, AnalysisError> {
                match w {
                    None => Ok(None),
                    Some(When::At(t)) => Ok(Some(t)),
                    Some(When::AfterStart(d)) => start
                        .map(|s| Some(s.saturating_add(d)))
                        .ok_or(AnalysisError::RelativeWithoutHeader(flag)),
                }
            };
            let filter = ReportFilter {
                since_ns: resolve(f.since, "since")?,
                until_ns: resolve(f.until, "until")?,
                workload: f.workload.clone(),
                pod: f.pod.clone(),
            };
            let cfg = ExplainConfig::recorded(settings.engine(), settings.peeked_proxies.clone());
            self.started = Some(Started {
                engine: Explainer::new(cfg),
                builder: ReportBuilder::new(filter, self.opts.max_verdicts),
                settings,
            });
        }
        Ok(self.started.as_mut().expect("just started"))
    }

    /// One fact; verdicts that became final are shown to `seen`, then
    /// kept for the report.
    pub fn push_fact(
        &mut self,
        fact: &Fact,
        seen: &mut impl FnMut(&Verdict),
    ) -> Result<(), AnalysisError> {
        if let Fact::AgentGone(g) = fact {
            self.info.agents_gone.push(g.clone());
        }
        let s = self.start(None)?;
        let builder = &mut s.builder;
        s.engine.push(fact, &mut |v| {
            seen(&v);
            builder.add(v);
        });
        Ok(())
    }

    /// Any record; a header after the first record is ignored, as are
    /// repeated ones.
    pub fn push_record(
        &mut self,
        record: &Record,
        seen: &mut impl FnMut(&Verdict),
    ) -> Result<(), AnalysisError> {
        match record {
            Record::Header(h) => {
                self.start(Some(h))?;
            }
            Record::Fact(f) => self.push_fact(f, seen)?,
            Record::Drops(d) => {
                self.start(None)?;
                self.count_drops(d);
            }
            Record::End(CaptureEnd { end_ns, .. }) => {
                self.start(None)?;
                self.info.end_ns = Some(*end_ns);
            }
        }
        Ok(())
    }

    fn count_drops(&mut self, d: &DropCounters) {
        // Cumulative counters: the latest reading is the largest.
        self.info
            .drops
            .entry(d.node.clone())
            .or_default()
            .max_with(&d.drops);
    }

    /// A problem the records cannot show (an agent lost mid-session).
    pub fn note_problem(&mut self, problem: String) {
        self.info.problems.push(problem);
        self.info.problem_count += 1;
    }

    /// Classifies what is still pending and makes the report.
    pub fn finish(mut self, read: ReadSummary, seen: &mut impl FnMut(&Verdict)) -> Report {
        let _ = self.start(None);
        let Some(Started {
            engine,
            mut builder,
            settings,
        }) = self.started
        else {
            unreachable!("start(None) cannot fail")
        };
        let m = engine.finish(&mut |v| {
            seen(&v);
            builder.add(v);
        });
        let mut info = self.info;
        info.complete = read.complete && info.problem_count == 0;
        info.problem_count += read.problem_count;
        info.problems.extend(read.problems);
        let mut report = builder.finish(&m, Some(info));
        report.settings = Some(settings);
        report
    }
}

/// The live session's sink: each record goes to the capture file (when
/// one is recorded) and then, the same record, to the analysis.
pub struct Recorder<W: Write> {
    capture: Option<CaptureWriter<W>>,
    analysis: Analysis,
}

impl<W: Write> Recorder<W> {
    /// Writes the header (with the settings the analysis will use) to the
    /// capture and starts the analysis from it.
    pub fn new(
        mut header: CaptureHeader,
        capture: Option<W>,
        opts: AnalysisOptions,
    ) -> Result<Recorder<W>, AnalysisError> {
        let recorded = header.engine;
        let settings =
            SettingsUsed::resolve(recorded, opts.overrides, header.http_peek_proxies.clone());
        header.engine = Some(settings.engine());
        let capture = capture
            .map(|w| CaptureWriter::new(w, &header, Default::default()))
            .transpose()?;
        // The session's own settings are recorded ones: replayed, the
        // capture says the same.
        let mut analysis = Analysis::new(AnalysisOptions {
            overrides: Overrides::default(),
            ..opts
        });
        analysis.start(Some(&header))?;
        Ok(Recorder { capture, analysis })
    }

    pub fn settings(&self) -> Option<&SettingsUsed> {
        self.analysis.settings()
    }

    /// Records one fact and analyses it. A write error is returned after
    /// the fact was analysed: the live view loses nothing.
    pub fn fact(&mut self, f: &Fact, seen: &mut impl FnMut(&Verdict)) -> Result<(), AnalysisError> {
        let written = match self.capture.as_mut() {
            Some(c) => c.write_fact(f),
            None => Ok(()),
        };
        self.analysis.push_fact(f, seen)?;
        Ok(written?)
    }

    /// Records an agent's drop counters.
    pub fn drops(&mut self, d: &DropCounters) -> Result<(), AnalysisError> {
        let written = match self.capture.as_mut() {
            Some(c) => c.write_drops(d),
            None => Ok(()),
        };
        self.analysis.count_drops(d);
        Ok(written?)
    }

    /// Pushes buffered capture bytes to the file (a crash loses at most
    /// what came since).
    pub fn flush(&mut self) -> Result<(), AnalysisError> {
        if let Some(c) = self.capture.as_mut() {
            c.flush()?;
        }
        Ok(())
    }

    pub fn note_problem(&mut self, problem: String) {
        self.analysis.note_problem(problem);
    }

    /// Facts written to the capture so far.
    pub fn facts_written(&self) -> Option<u64> {
        self.capture.as_ref().map(CaptureWriter::facts)
    }

    /// Closes the capture first (whatever happens next, it is complete),
    /// then finishes the analysis. The capture's result comes separately:
    /// a failed close still gives the report.
    pub fn finish(
        mut self,
        end_ns: i64,
        seen: &mut impl FnMut(&Verdict),
    ) -> (Report, Result<Option<W>, AnalysisError>) {
        let closed = self
            .capture
            .take()
            .map(|c| c.finish(end_ns))
            .transpose()
            .map_err(AnalysisError::from);
        let _ = self
            .analysis
            .push_record(&Record::End(CaptureEnd { end_ns, facts: 0 }), seen);
        let report = self.analysis.finish(
            ReadSummary {
                complete: true,
                ..ReadSummary::default()
            },
            seen,
        );
        (report, closed)
    }
}
