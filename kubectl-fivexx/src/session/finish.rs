//! The end of a session: the last drop counters are recorded, the
//! capture is closed (whatever happens next, it is complete), the
//! analysis finishes through the same [`Recorder`], and its report is the
//! summary: its settings are the session's, as the capture's replay says.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use fivexx_core::report::Report;

use super::live::Session;
use super::render::{render, ReportFormat};
use crate::clock::now_ns;
use crate::error::CliError;
use crate::manifests::AGENT_NAMESPACE;

impl Session<'_> {
    pub(super) fn finish(self) -> Result<ExitCode, CliError> {
        let _ = std::io::stdout().flush();
        if let Some(p) = &self.progress {
            p.finish();
        }
        let Session {
            opts,
            mut state,
            mut counts,
            fatal,
            interrupted,
            mut view,
            ..
        } = self;
        let end_ns = now_ns();
        // What the plugin dropped since the agents' last Stats.
        let mut nodes: Vec<&String> = state.agents.stats.keys().collect();
        nodes.sort();
        for node in nodes {
            let d = state
                .agents
                .drop_counters(node, &state.agents.stats[node], end_ns);
            let _ = state.recorder.drops(&d);
        }
        let written = state.recorder.facts_written();
        let dropped = state.agents.total_drops();
        let (report, closed) = state.recorder.finish(end_ns, &mut |v| {
            counts.verdicts += 1;
            if let Some(view) = view.as_mut() {
                view.verdict(v);
            }
        });
        // Every burst is over: each is printed before the summary.
        if let Some(view) = view.as_mut() {
            view.close_all();
        }
        let mut capture_note = None;
        if let Some(path) = &opts.capture {
            let flushed = closed
                .map_err(|e| e.to_string())
                .and_then(|w| w.map_or(Ok(()), |mut w| w.flush().map_err(|e| e.to_string())));
            match flushed {
                Ok(()) => {
                    capture_note = Some(format!(
                        "capture: {} facts written to {}",
                        written.unwrap_or(0),
                        path.display()
                    ));
                }
                Err(e) => eprintln!("warning: closing {}: {e}", path.display()),
            }
        }
        if let Some(err) = fatal {
            return Err(err);
        }
        if let Some(format) = opts.summary {
            print!("\n{}", render(&report, format));
        }
        let html = opts.html.as_deref().map(|p| write_html(&report, p));
        eprintln!(
            "{} kernel facts, {} Kubernetes facts, {} failed requests, {} dropped",
            counts.kernel, counts.k8s, report.totals.failures, dropped
        );
        if opts.proxy_logs {
            for line in state.tally.report() {
                eprintln!("{line}");
            }
        }
        if let Some(n) = capture_note {
            eprintln!("{n}");
        }
        match html {
            Some(Err(e)) => return Err(e),
            Some(Ok(note)) => eprintln!("{note}"),
            None => {}
        }
        if let Some((node, reason)) = state.agents.lost.first() {
            return Err(CliError::new(
                format!("the agent on node {node} died mid-trace ({reason}); the report covers the other nodes and everything captured before"),
                format!("check `kubectl -n {AGENT_NAMESPACE} get pods -o wide` and the agent's logs; `kubectl fivexx status` shows its health"),
            ));
        }
        if interrupted && opts.summary.is_none() {
            return Err(CliError::interrupted(
                "capture interrupted; the file is complete up to now",
                "read it with `kubectl fivexx explain FILE`",
            ));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `--html FILE`: the report as one self-contained page.
fn write_html(report: &Report, path: &Path) -> Result<String, CliError> {
    std::fs::write(path, render(report, ReportFormat::Html)).map_err(|e| {
        CliError::new(
            format!("cannot write {}", path.display()),
            "check the path and its directory; the summary above is complete",
        )
        .with_source(e)
    })?;
    Ok(format!("html: the report written to {}", path.display()))
}
