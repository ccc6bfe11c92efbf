//! How a report is printed, once for the live summary and `explain FILE`:
//! a capture explains to the report its session printed, so the two must
//! print it alike too. Each command maps its own `-o` values onto
//! [`ReportFormat`]; nothing here knows the command line.

use fivexx_core::analysis::AnalysisOptions;
use fivexx_core::report::{render_html, render_json, render_table, render_wide, Report};

/// The forms a report is printed in (a command offers some of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Wide,
    Json,
    Yaml,
    /// One self-contained page (a pod timeline with a dot per failure).
    Html,
}

pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Table => render_table(report),
        ReportFormat::Wide => render_wide(report),
        ReportFormat::Json => render_json(report) + "\n",
        // The JSON's schema, in YAML: one document shape, two syntaxes.
        ReportFormat::Yaml => serde_json::from_str::<serde_json::Value>(&render_json(report))
            .ok()
            .and_then(|v| serde_yaml::to_string(&v).ok())
            .unwrap_or_default(),
        ReportFormat::Html => render_html(report),
    }
}

/// Verdicts a report keeps in full (the rest are only counted): a page
/// draws a dot per failed request, so it keeps every one; a terminal's
/// table and JSON keep the engine's default, the first 1000.
pub fn verdicts_kept(html: bool) -> usize {
    if html {
        usize::MAX
    } else {
        AnalysisOptions::default().max_verdicts
    }
}
