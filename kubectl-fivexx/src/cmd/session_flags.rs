//! The flags `trace`, `capture` and `node` share, parsed once by clap
//! into typed values, and the [`SessionOptions`] they amount to.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::duration::FlagDuration;
use crate::error::CliError;
use crate::kube::target::{self, Scope, Target};
use crate::kube::KubeClient;
use crate::session::{ReportFormat, SessionOptions};

/// `-o` of an interactive session: its summary's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LiveFormat {
    Table,
    Wide,
    Json,
    Yaml,
}

/// What an interactive session (trace, node) writes besides its bursts:
/// the raw events if asked, an optional capture and the summary's format.
#[derive(Args, Debug)]
pub struct LiveOutputArgs {
    /// Also print every kernel fact and 5xx proxy-log line as it comes
    /// (by default only one line per burst of failed requests).
    #[arg(long)]
    pub events: bool,
    /// Also record everything to this capture file.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// At the end, also write the report as one self-contained HTML page
    /// (a pod timeline, the failures, fixes and next steps) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Summary format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: LiveFormat,
}

impl LiveOutputArgs {
    /// The session these flags and `session`'s ask for, over `scope`:
    /// bursts (and events, if asked) on stdout, the summary at the end,
    /// the capture if asked.
    pub fn options(self, session: &SessionFlags, scope: Scope) -> SessionOptions {
        let (events, html) = (self.events, self.html);
        let show = Show {
            lines: true,
            progress: false,
            summary: Some(self.output),
            capture: self.capture,
        };
        SessionOptions {
            events,
            html,
            ..session.options(scope, show)
        }
    }
}

impl From<LiveFormat> for ReportFormat {
    fn from(o: LiveFormat) -> ReportFormat {
        match o {
            LiveFormat::Table => ReportFormat::Table,
            LiveFormat::Wide => ReportFormat::Wide,
            LiveFormat::Json => ReportFormat::Json,
            LiveFormat::Yaml => ReportFormat::Yaml,
        }
    }
}

/// Flags shared by trace, capture and node.
#[derive(Args, Debug, Clone)]
pub struct SessionFlags {
    /// Stop after this long (e.g. 30s, 5m) and print the summary.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<FlagDuration>,
    /// Tolerated clock skew between nodes and the API server.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub skew: FlagDuration,
    /// How long to wait for facts that explain a failure before printing
    /// its verdict (shorter: sooner, but e.g. a SIGKILL at the end of a
    /// long grace period may not be known yet).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub lookahead: FlagDuration,
    /// Kernel facts buffered between the agents and the terminal; beyond
    /// it, facts are dropped and counted rather than stalling the agents.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    pub queue: usize,
    /// Do not ask the agents to peek at the proxy pods' HTTP status lines
    /// (by default the 5xx each proxy writes are traced, in the kernel,
    /// first 16 bytes of a response only; plain HTTP/1.x only).
    #[arg(long)]
    pub no_http_peek: bool,
    /// Also follow the proxy pods' access logs through the API and join
    /// each answer's status, upstream and the proxy's own words to the
    /// kernel facts: it sees TLS and HTTP/2 answers the peek cannot.
    /// Default formats are read: ingress-nginx's `upstreaminfo` and
    /// nginx's `combined`; Envoy's, Istio's and Envoy Gateway's (response
    /// flags such as UF, UC, UH); HAProxy's `option httplog` (termination
    /// state, retries). Needs `get` on `pods/log` in the proxies'
    /// namespaces.
    #[arg(long)]
    pub proxy_logs: bool,
}

/// How a command shows its session.
pub struct Show {
    /// One line per burst of failed requests (trace, node).
    pub lines: bool,
    /// A progress line on stderr (capture).
    pub progress: bool,
    pub summary: Option<LiveFormat>,
    pub capture: Option<PathBuf>,
}

impl SessionFlags {
    /// The session these flags ask for, over `scope`.
    pub fn options(&self, scope: Scope, show: Show) -> SessionOptions {
        SessionOptions {
            scope,
            duration: self.duration.map(|d| d.0),
            skew_ns: self.skew.ns(),
            lookahead_ns: self.lookahead.ns(),
            queue: self.queue,
            http_peek: !self.no_http_peek,
            proxy_logs: self.proxy_logs,
            lines: show.lines,
            events: false,
            progress: show.progress,
            summary: show.summary.map(ReportFormat::from),
            capture: show.capture,
            html: None,
        }
    }
}

/// What a `trace` or `capture` session watches.
#[derive(Args, Debug)]
pub struct ScopeArgs {
    /// pod/NAME, deploy/NAME, sts/NAME, svc/NAME, node/NAME; none: the namespace.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    /// All namespaces (without TARGET).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only pods with these labels (KEY=VALUE[,KEY=VALUE]).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

impl ScopeArgs {
    /// TARGET, `-l` and `-A` to the pods and nodes the session watches.
    pub async fn resolve(&self, client: &KubeClient) -> Result<Scope, CliError> {
        let t = Target::parse(self.target.as_deref())?;
        let labels = self
            .selector
            .as_deref()
            .map(target::parse_selector)
            .transpose()?
            .unwrap_or_default();
        target::resolve(client, &t, self.all_namespaces, labels).await
    }
}
