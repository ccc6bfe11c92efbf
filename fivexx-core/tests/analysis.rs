//! The one analysis path: a live session's report and the replay of its
//! capture agree, with the settings the capture recorded.

use fivexx_core::analysis::{
    Analysis, AnalysisOptions, Overrides, ReadSummary, Recorder, SettingSource,
};
use fivexx_core::capture::{CaptureHeader, CaptureReader, RecordRef};
use fivexx_core::report::{render_table, Report};
use fivexx_core::testkit::synth::{bench_stream, SECOND, T0};

fn header() -> CaptureHeader {
    CaptureHeader {
        tool_version: "test".into(),
        start_ns: T0,
        ..CaptureHeader::default()
    }
}

/// A "live session": every fact through the recorder, verdicts as shown.
fn live(opts: AnalysisOptions) -> (Report, Vec<String>, Vec<u8>) {
    let mut shown = Vec::new();
    let mut rec = Recorder::new(header(), Some(Vec::new()), opts).unwrap();
    for f in bench_stream(20_000) {
        rec.fact(&f, &mut |v| shown.push(serde_json::to_string(v).unwrap()))
            .unwrap();
    }
    let (report, file) = rec.finish(T0 + 3600 * SECOND, &mut |v| {
        shown.push(serde_json::to_string(v).unwrap())
    });
    (report, shown, file.unwrap().unwrap())
}

fn replay(file: &[u8], overrides: Overrides) -> Report {
    let mut r = CaptureReader::new(file).unwrap();
    let mut a = Analysis::new(AnalysisOptions {
        overrides,
        ..AnalysisOptions::default()
    });
    while let Some(rec) = r.next_ref().unwrap() {
        match rec {
            RecordRef::Fact(f) => a.push_fact(f, &mut |_| {}),
            RecordRef::Other(o) => a.push_record(&o, &mut |_| {}),
        }
        .unwrap();
    }
    a.finish(
        ReadSummary {
            complete: r.stats().is_complete(),
            ..ReadSummary::default()
        },
        &mut |_| {},
    )
}

fn json(r: &Report) -> serde_json::Value {
    serde_json::to_value(r).unwrap()
}

#[test]
fn a_capture_explains_to_the_verdicts_its_session_printed() {
    let opts = AnalysisOptions {
        overrides: Overrides {
            skew_ns: Some(SECOND),
            lookahead_ns: Some(5 * SECOND),
        },
        ..AnalysisOptions::default()
    };
    let (live_report, shown, file) = live(opts);
    assert!(!shown.is_empty());
    let again = replay(&file, Overrides::default());
    let (l, a) = (json(&live_report), json(&again));
    assert_eq!(l["verdicts"], a["verdicts"]);
    assert_eq!(l["totals"], a["totals"]);
    assert_eq!(l["episodes"], a["episodes"]);
    assert_eq!(l["workloads"], a["workloads"]);
    let s = again.settings.as_ref().unwrap();
    assert_eq!((s.lookahead_ns, s.skew_ns), (5 * SECOND, SECOND));
    assert_eq!(s.lookahead_from, SettingSource::Recorded);
    assert_eq!(s.skew_from, SettingSource::Recorded);
    let table = render_table(&again);
    assert!(
        table.contains("SETTINGS  lookahead 5.0s (recorded), skew 1.0s (recorded)"),
        "{table}"
    );
    // Each verdict the session showed is in its report, in order.
    let listed: Vec<String> = again
        .verdicts
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
    let mut shown_sorted = shown.clone();
    shown_sorted.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    if again.verdicts_omitted == 0 {
        assert_eq!(shown_sorted, listed_sorted);
    }
}

#[test]
fn a_flag_overrides_the_recorded_setting_and_the_report_says_so() {
    let (_, _, file) = live(AnalysisOptions {
        overrides: Overrides {
            skew_ns: None,
            lookahead_ns: Some(5 * SECOND),
        },
        ..AnalysisOptions::default()
    });
    let r = replay(
        &file,
        Overrides {
            skew_ns: None,
            lookahead_ns: Some(10 * SECOND),
        },
    );
    let s = r.settings.unwrap();
    assert_eq!(s.lookahead_ns, 10 * SECOND);
    assert_eq!(s.lookahead_from, SettingSource::Flag);
    assert_eq!(s.skew_ns, 2 * SECOND);
    assert_eq!(s.skew_from, SettingSource::Recorded);
}

#[test]
fn a_capture_without_settings_is_explained_with_the_defaults() {
    let mut w = fivexx_core::capture::CaptureWriter::new(Vec::new(), &header(), Default::default())
        .unwrap();
    for f in bench_stream(100) {
        w.write_fact(&f).unwrap();
    }
    let file = w.finish(T0).unwrap();
    let r = replay(&file, Overrides::default());
    let s = r.settings.clone().unwrap();
    assert_eq!((s.lookahead_ns, s.skew_ns), (30 * SECOND, 2 * SECOND));
    assert_eq!(s.lookahead_from, SettingSource::Default);
    assert!(render_table(&r).contains("lookahead 30.0s (default, not recorded)"));
}

/// An agent lost mid-session: the fact is recorded where it happened, the
/// live report and the capture's replay both say where that node's facts
/// stop, nothing else is lost (same failures), and the capture is complete.
#[test]
fn a_lost_agent_is_marked_where_its_facts_stop() {
    use fivexx_core::model::{AgentGoneFact, Fact};
    let mut facts: Vec<Fact> = bench_stream(6_000).collect();
    let mid = facts.len() / 2;
    let at = facts[mid].at_ns();
    facts.insert(
        mid,
        Fact::AgentGone(AgentGoneFact {
            at_ns: at,
            node: "node-2".into(),
            reason: "the stream ended: connection reset by peer".into(),
            last_heard_ns: Some(at - 1_000_000),
        }),
    );
    let mut rec = Recorder::new(header(), Some(Vec::new()), AnalysisOptions::default()).unwrap();
    for f in &facts {
        rec.fact(f, &mut |_| {}).unwrap();
    }
    let (live, file) = rec.finish(T0 + 3600 * SECOND, &mut |_| {});
    let file = file.unwrap().unwrap();
    let replayed = replay(&file, Overrides::default());
    let mut plain = Recorder::new(header(), None::<Vec<u8>>, AnalysisOptions::default()).unwrap();
    for f in facts.iter().filter(|f| !matches!(f, Fact::AgentGone(_))) {
        plain.fact(f, &mut |_| {}).unwrap();
    }
    let (without, _) = plain.finish(T0 + 3600 * SECOND, &mut |_| {});
    for r in [&live, &replayed] {
        let c = r.capture.as_ref().unwrap();
        assert!(c.complete, "{:?}", c.problems);
        assert_eq!(c.agents_gone.len(), 1);
        assert_eq!(c.agents_gone[0].at_ns, at);
        let table = render_table(r);
        assert!(
            table.contains("WARNING   node node-2: its agent's stream ended at")
                && table.contains("that node's kernel facts stop there"),
            "{table}"
        );
        assert_eq!(r.totals, without.totals);
    }
    assert!(json(&replayed)["capture"]["agents_gone"][0]["node"] == "node-2");
}
