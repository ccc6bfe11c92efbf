//! What a live session is asked to do, decided by `cmd/` before it
//! starts. Its own module so that the session's parts (the loop, its
//! end) read it without reaching back into the module that runs them.

use std::path::PathBuf;
use std::time::Duration;

use fivexx_core::analysis::AnalysisError;

use super::render::ReportFormat;
use crate::error::CliError;
use crate::kube::target::Scope;

/// Everything a session needs, decided before it starts.
pub struct SessionOptions {
    pub scope: Scope,
    /// Stop after this long; `None`: on Ctrl-C.
    pub duration: Option<Duration>,
    pub skew_ns: i64,
    pub lookahead_ns: i64,
    /// Kernel facts buffered between the agents and the session.
    pub queue: usize,
    /// Ask the agents to peek at the proxies' HTTP status lines.
    pub http_peek: bool,
    /// Follow the proxies' access logs (nginx, Envoy, HAProxy).
    pub proxy_logs: bool,
    /// The live incident view (trace, node): one line per burst of
    /// failed requests on stdout, the open ones in place on a terminal.
    pub lines: bool,
    /// Also one line per kernel fact and 5xx proxy-log line on stdout
    /// (`--events`).
    pub events: bool,
    /// A progress line on stderr (capture).
    pub progress: bool,
    /// The report printed on stdout at the end.
    pub summary: Option<ReportFormat>,
    pub capture: Option<PathBuf>,
    /// At the end, the report as one HTML page in this file (`--html`).
    pub html: Option<PathBuf>,
}

impl SessionOptions {
    /// Whether the session talks on stderr as it goes.
    pub(super) fn chatty(&self) -> bool {
        self.lines || self.progress
    }

    /// A capture that could not be written ends the session: what is not
    /// recorded cannot be explained again.
    pub(super) fn capture_error(&self, e: AnalysisError) -> CliError {
        let path = self.capture.as_deref().unwrap_or(std::path::Path::new("-"));
        CliError::bare(format!("writing {}", path.display())).with_source(e)
    }
}
