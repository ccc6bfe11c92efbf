//! What tests and benchmarks drive the engine with: synthetic timelines
//! ([`synth`]) and whole-input runs that keep every verdict in memory.
//! The product streams facts through [`crate::analysis::Analysis`]
//! instead; this module is built only for tests (the `testkit` feature).

pub mod synth;

use crate::explain::{ExplainConfig, Explainer, Measurements, Verdict};
use crate::model::Fact;
use crate::report::{Report, ReportBuilder, ReportFilter};

/// Runs the engine over all `facts` and returns every verdict (in
/// failure-time order) with the measurements.
pub fn explain_all<'a>(
    facts: impl IntoIterator<Item = &'a Fact>,
    cfg: ExplainConfig,
) -> (Vec<Verdict>, Measurements) {
    let mut e = Explainer::new(cfg);
    let mut out = Vec::new();
    for f in facts {
        e.push(f, &mut |v| out.push(v));
    }
    let m = e.finish(&mut |v| out.push(v));
    (out, m)
}

/// Runs the engine over `facts` into a report.
pub fn build_report<'a>(
    facts: impl IntoIterator<Item = &'a Fact>,
    cfg: ExplainConfig,
    filter: ReportFilter,
    max_verdicts: usize,
) -> Report {
    let mut b = ReportBuilder::new(filter, max_verdicts);
    let mut e = Explainer::new(cfg);
    for f in facts {
        e.push(f, &mut |v| b.add(v));
    }
    let m = e.finish(&mut |v| b.add(v));
    b.finish(&m, None)
}
