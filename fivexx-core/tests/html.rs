//! `explain -o html`: one dot per failed request, one mark per signal,
//! everything escaped, nothing loaded from anywhere, and a size that holds
//! up for a busy namespace.

use fivexx_core::explain::{Cause, ExplainConfig, MarkKind, Observation};
use fivexx_core::model::{Evidence, Fact, FactSource};
use fivexx_core::report::{render_html, Report, ReportFilter};
use fivexx_core::testkit::build_report;
use fivexx_core::testkit::synth::{ip4, Synth, MS, SECOND, T0};
use fivexx_core::ExitStatus;

/// A rollout of `pods` pods of deployment/api, one every 2 s: each is
/// deleted and gets SIGTERM; every other one ignores it and is SIGKILLed
/// at the end of a 5 s grace period; proxies go on connecting to each for
/// 1 s after its SIGTERM (`per_pod` refused connects). Then 3 resets from
/// an address no pod owns.
fn rollout(pods: u32, per_pod: i64) -> Vec<Fact> {
    let mut s = Synth::new();
    let proxy = ip4(10, 1, 0, 10);
    s.proxy_pod(proxy, "node-1");
    for n in 0..pods {
        let p = Synth::pod_spec("api", n, "node-2");
        s.start_pod(&p, T0 - 900 * SECOND, SECOND);
        let term = T0 + i64::from(n) * 2 * SECOND;
        let ignores = n % 2 == 1;
        s.delete(&p, term, 5);
        s.sigterm(&p, term + 5 * MS, ignores);
        let end = if ignores {
            s.sigkill(&p, term + 5 * SECOND, (900, "containerd-shim"));
            term + 5 * SECOND
        } else {
            term + 500 * MS
        };
        s.exit(
            &p,
            end + MS,
            ExitStatus {
                code: (!ignores).then_some(0),
                signal: ignores.then_some(9),
                core_dumped: false,
            },
        );
        s.endpoint_not_ready(&p, term + SECOND);
        for k in 0..per_pod {
            let at = term + 10 * MS + k * (990 * MS / per_pod.max(1));
            s.refused("node-1", proxy, p.ip, at, Some("node-2"));
        }
        s.gone(&p, end + 2 * SECOND);
    }
    for k in 0..3 {
        s.reset("node-1", proxy, ip4(10, 9, 9, 9), T0 + k * SECOND, None);
    }
    s.sorted()
}

fn report(pods: u32, per_pod: i64) -> Report {
    build_report(
        &rollout(pods, per_pod),
        ExplainConfig::default(),
        ReportFilter::default(),
        usize::MAX,
    )
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn marks(r: &Report, kind: MarkKind) -> usize {
    r.pods
        .iter()
        .flat_map(|p| &p.marks)
        .filter(|m| m.kind == kind)
        .count()
}

/// The embedded panel data, parsed.
fn panel(html: &str) -> serde_json::Value {
    let start = html
        .find("<script type=\"application/json\" id=\"verdicts\">")
        .expect("the verdicts' JSON");
    let rest = &html[start..];
    let body = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    serde_json::from_str(body).expect("the verdicts' JSON parses")
}

/// The string a panel index stands for.
fn text<'a>(panel: &'a serde_json::Value, i: &serde_json::Value) -> &'a str {
    panel["s"][i.as_u64().expect("an index") as usize]
        .as_str()
        .expect("a string")
}

/// Every `attr="..."` value in `html`.
fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let pat = format!(" {attr}=\"");
    html.match_indices(&pat)
        .map(|(i, _)| {
            let v = &html[i + pat.len()..];
            &v[..v.find('"').unwrap_or(v.len())]
        })
        .collect()
}

#[test]
fn one_dot_per_failure_and_one_mark_per_signal() {
    let r = report(6, 5);
    assert!(r.totals.failures > 30, "{:?}", r.totals);
    assert_eq!(r.verdicts.len() as u64, r.totals.failures);
    let html = render_html(&r);
    assert_eq!(count(&html, "<circle class=\"dot\""), r.verdicts.len());
    for i in 0..r.verdicts.len() {
        assert!(html.contains(&format!("data-i=\"{i}\"")), "dot {i}");
    }
    let sigterms = marks(&r, MarkKind::Sigterm);
    let sigkills = marks(&r, MarkKind::Sigkill);
    assert_eq!(sigterms, 6);
    assert_eq!(sigkills, 3);
    assert_eq!(count(&html, "class=\"mark sigterm\""), sigterms);
    assert_eq!(count(&html, "class=\"mark sigkill\""), sigkills);
    assert_eq!(count(&html, "class=\"mark deleted\""), 6);
    assert_eq!(
        count(&html, "class=\"mark exit\""),
        marks(&r, MarkKind::Exit)
    );
    assert!(count(&html, "class=\"bar ready\"") >= 6);
    assert!(count(&html, "class=\"bar endpoints\"") >= 6);
    // The failures no pod owns have a row of their own.
    assert!(html.contains("(no pod track)"), "{html}");
    // The summary sections, as the table has them.
    for section in [
        "<h2>Episodes</h2>",
        "<h2>Failures by workload</h2>",
        "<h2>Timeline</h2>",
    ] {
        assert!(html.contains(section), "{section}");
    }
    assert!(html.contains("rollout of deployment shop/api"));
    let p = panel(&html);
    let v = p["v"].as_array().unwrap();
    assert_eq!(v.len(), r.verdicts.len());
    assert_eq!(
        v[0]["t"],
        fivexx_core::report::format_time(r.verdicts[0].at_ns())
    );
    assert_eq!(text(&p, &v[0]["cause"]), r.verdicts[0].cause.label());
    assert!(v
        .iter()
        .all(|d| d["conf"].is_string() && d["ev"].is_array()));
    // Times are UTC, as format_time writes them.
    assert!(html.contains("Z<title>2023-11-14T"), "axis tick labels");
}

#[test]
fn text_is_escaped_and_cannot_close_the_script() {
    let mut r = report(2, 3);
    r.pods[0].pod = "shop/<script>alert(1)</script>&\"'".into();
    r.pods[0].marks[0].detail = "<b>bold</b>".into();
    let v = &mut r.verdicts[0];
    v.note = Some("</script><script>alert(2)</script><!--".into());
    v.evidence.push(Evidence {
        at_ns: T0,
        source: FactSource::Api,
        fact: Observation::Text("<img src=x onerror=alert(3)> & \"q\"".into()),
    });
    let html = render_html(&r);
    assert!(!html.contains("alert(1)</script>"), "pod name");
    assert!(html.contains("shop/&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;"));
    assert!(!html.contains("<b>bold"));
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"));
    assert!(!html.contains("<img"));
    assert!(!html.contains("<!--"));
    // Two scripts (the data and the code), each closed once.
    assert_eq!(count(&html, "<script"), 2);
    assert_eq!(count(&html, "</script>"), 2);
    let p = panel(&html);
    assert_eq!(
        text(&p, &p["v"][0]["note"]),
        "</script><script>alert(2)</script><!--"
    );
    let ev = p["v"][0]["ev"].as_array().unwrap();
    let line = &p["lines"][ev.last().unwrap().as_u64().unwrap() as usize];
    assert_eq!(text(&p, &line[2]), "<img src=x onerror=alert(3)> & \"q\"");
    assert_eq!(text(&p, &line[1]), "api");
}

#[test]
fn nothing_is_loaded_from_anywhere() {
    let html = render_html(&report(3, 4));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;; script-src &#39;unsafe-inline&#39;; img-src data:\">"
    ));
    for bad in [
        "http://", "https://", "<link", "@import", "url(", "<iframe", "<img",
    ] {
        assert!(!html.contains(bad), "{bad}");
    }
    for attr in ["src", "href", "xlink:href", "action"] {
        for v in attr_values(&html, attr) {
            assert!(v.starts_with('#') || v.starts_with("data:"), "{attr}={v}");
        }
    }
}

#[test]
fn the_evidence_per_dot_is_capped() {
    let mut r = report(2, 2);
    let extra = r.verdicts[0].evidence[0].clone();
    r.verdicts[0].evidence.resize(40, extra);
    let p = panel(&render_html(&r));
    assert_eq!(p["v"][0]["ev"].as_array().unwrap().len(), 12);
    assert_eq!(p["v"][0]["more"], 28);
}

#[test]
fn every_cause_has_a_colour_and_a_legend_entry() {
    let mut r = report(2, 2);
    let n = r.verdicts.len();
    for (i, c) in Cause::ALL.iter().enumerate() {
        r.totals.by_cause.insert(*c, 1);
        r.verdicts[i % n].cause = *c;
    }
    let html = render_html(&r);
    for (i, c) in Cause::ALL.iter().enumerate() {
        assert!(html.contains(&format!(".c{i} .dot{{fill:#")), "{c:?}");
        assert!(
            html.contains(&format!("</span>{}</span>", c.label())),
            "{c:?}"
        );
    }
    assert_eq!(count(&html, "<circle class=\"dot\""), r.verdicts.len());
}

#[test]
fn an_empty_report_is_a_page_too() {
    let r = build_report(
        &Vec::<Fact>::new(),
        ExplainConfig::default(),
        ReportFilter::default(),
        10,
    );
    let html = render_html(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(count(&html, "class=\"dot\""), 0);
    assert_eq!(panel(&html)["v"].as_array().unwrap().len(), 0);
}

/// A 10-minute capture of a busy namespace: 300 pods, about 5,000 failed
/// requests. The page must stay small enough for a browser to open.
#[test]
fn a_busy_capture_stays_small() {
    let mut r = report(300, 17);
    assert!(r.verdicts.len() >= 5_000, "{} verdicts", r.verdicts.len());
    // The workload's 300 pods and the ingress proxy's.
    assert_eq!(r.pods.len(), 301);
    let html = render_html(&r);
    assert_eq!(count(&html, "<circle class=\"dot\""), r.verdicts.len());
    let evidence: usize = r.verdicts.iter().map(|v| v.evidence.len()).sum();
    eprintln!(
        "html size: {} verdicts ({evidence} evidence lines), {} pods: {} bytes ({:.2} MB, {:.0} bytes per verdict)",
        r.verdicts.len(),
        r.pods.len(),
        html.len(),
        html.len() as f64 / 1e6,
        html.len() as f64 / r.verdicts.len() as f64
    );
    assert!(html.len() < 8_000_000, "{} bytes", html.len());
    // The worst case: every verdict with more evidence than is shown,
    // none of it shared.
    for (i, v) in r.verdicts.iter_mut().enumerate() {
        for k in 0..40 {
            v.evidence.push(Evidence {
                at_ns: T0 + (i * 40 + k) as i64 * MS,
                source: FactSource::Node("node-1".into()),
                fact: Observation::Text(
                    format!("RST received in SYN_SENT on 10.1.0.10:{i} -> 10.244.0.7:{k}").into(),
                ),
            });
        }
    }
    let html = render_html(&r);
    eprintln!(
        "html size, every verdict with 40 more unshared evidence lines (12 shown): {} bytes ({:.2} MB)",
        html.len(),
        html.len() as f64 / 1e6
    );
    assert!(html.len() < 8_000_000, "{} bytes", html.len());
}
