//! `kubectl-fivexx explain CAPTURE -o html` of the lab's
//! `rollout-no-prestop`, recorded with the real plugin and agent as the
//! scoring tests do, opened in headless Chromium: the page the browser
//! built must hold one dot per failed request (the JSON report's
//! failures, its verdicts, and the load generator's 5xx), one SIGTERM
//! mark per terminated pod and one SIGKILL mark per SIGKILL, and it must
//! load nothing from anywhere. The page and a screenshot are left in
//! `target/test-artifacts/` for a person to look at.

mod scoring;

use std::path::{Path, PathBuf};
use std::process::Command;

use fivexx_core::explain::Cause;
use fivexx_core::report::format_time;
use fivexx_lab::harness::{plugin_and_agent, skip_unless_root, AgentServe};
use fivexx_lab::sim::scenario::{ScenarioKind, ScenarioParams};
use scoring::show;

/// `$CARGO_TARGET_DIR`, or the workspace's `target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// The `chromium` binary on `PATH`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// `kubectl-fivexx explain CAPTURE -o FORMAT`'s stdout.
fn explain(plugin: &Path, capture: &Path, format: &str) -> Vec<u8> {
    let out = Command::new(plugin)
        .args(["explain", &capture.display().to_string(), "-o", format])
        .env("NO_COLOR", "1")
        .output()
        .expect("run kubectl-fivexx explain");
    assert!(
        out.status.success(),
        "explain -o {format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Headless Chromium on `page` with `args`; its stdout. Console errors
/// (the page's script failing) are on its stderr, and fail the test.
fn browse(chromium: &Path, page: &Path, args: &[String]) -> String {
    let out = Command::new("timeout")
        .arg("180")
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args(["--enable-logging=stderr", "--v=0"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium {args:?}: {err}");
    assert!(
        !err.contains("Uncaught") && !err.contains("Content Security Policy"),
        "the page's console: {err}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The side panel once the first verdict's dot (`data-i="0"`, wherever its
/// row is) is clicked: the page with one more inline script (the CSP
/// allows it) that clicks it, as the browser built it.
fn clicked_panel(chromium: &Path, html: &str, copy: &Path) -> String {
    let click = "<script>document.querySelector('circle.dot[data-i=\"0\"]').dispatchEvent(new MouseEvent('click',{bubbles:true}));</script></body>";
    std::fs::write(copy, html.replacen("</body>", click, 1)).expect("write the clicked copy");
    let dom = browse(chromium, copy, &["--dump-dom".to_string()]);
    let start = dom
        .find("<div id=\"panel\">")
        .expect("the panel in the DOM");
    let end = dom[start..].find("</div>").map_or(dom.len(), |e| start + e);
    dom[start..end].to_string()
}

/// Each `src=`, `href=` and `url(` value in `html`, for the network check.
fn references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    for pat in ["src=", "href=", "url("] {
        for (i, _) in lower.match_indices(pat) {
            let v = lower[i + pat.len()..].trim_start_matches(['"', '\'', ' ']);
            out.push(v.chars().take(40).collect());
        }
    }
    out
}

fn network_check(html: &str) {
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;; script-src &#39;unsafe-inline&#39;; img-src data:\">"
    ), "the CSP meta");
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<link"), "a <link>");
    assert!(!lower.contains("@import"), "an @import");
    for r in references(html) {
        assert!(
            r.starts_with('#') || r.starts_with("data:"),
            "a reference to something other than the page: {r}"
        );
        assert!(
            !r.starts_with("http:") && !r.starts_with("https:") && !r.starts_with("//"),
            "{r}"
        );
    }
}

/// Marks of `kind` in the JSON report's `pods[].marks`.
fn json_marks(report: &serde_json::Value, kind: &str) -> usize {
    report["pods"]
        .as_array()
        .map(|pods| {
            pods.iter()
                .flat_map(|p| p["marks"].as_array().into_iter().flatten())
                .filter(|m| m["kind"] == kind)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn html_report_of_rollout_no_prestop_in_a_browser() {
    if skip_unless_root("html_report_of_rollout_no_prestop_in_a_browser") {
        return;
    }
    let Some(chromium) = chromium() else {
        show("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    let (plugin, agent_bin) = plugin_and_agent().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentServe::start(&agent_bin);
    let params = ScenarioParams::defaults(ScenarioKind::RolloutNoPrestop);
    let (lab, capture, run_dir) = scoring::record(&plugin, &agent, params, "html");
    drop(agent);
    let html = String::from_utf8(explain(&plugin, &capture, "html")).expect("UTF-8");
    let json: serde_json::Value =
        serde_json::from_slice(&explain(&plugin, &capture, "json")).expect("the JSON report");
    let dir = std::fs::canonicalize(target_dir())
        .expect("the target directory")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    // The capture too, to render again (`explain -o html`) without the lab.
    let kept = dir.join("report-capture.fxc");
    std::fs::copy(&capture, &kept).expect("keep the capture");
    let _ = std::fs::remove_dir_all(&run_dir);
    let page = dir.join("report.html");
    let png = dir.join("report.png");
    let dom_file = dir.join("report.dom.html");
    std::fs::write(&page, &html).expect("write report.html");
    network_check(&html);

    let dom = browse(&chromium, &page, &["--dump-dom".to_string()]);
    std::fs::write(&dom_file, &dom).expect("write report.dom.html");
    let _ = std::fs::remove_file(&png);
    browse(
        &chromium,
        &page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1600,2400".to_string(),
        ],
    );
    let png_size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    let panel = clicked_panel(&chromium, &html, &dir.join("report-clicked.html"));

    let dots = dom.matches("class=\"dot\"").count();
    let sigterm = dom.matches("class=\"mark sigterm\"").count();
    let sigkill = dom.matches("class=\"mark sigkill\"").count();
    let failures = json["totals"]["failures"].as_u64().unwrap_or(0) as usize;
    let verdicts = json["verdicts"].as_array().map_or(0, Vec::len);
    let load_5xx = lab.summary.total_5xx() as usize;
    show(&format!(
        "html report: {} ({} bytes, {:.2} MB); DOM {} ({} bytes); screenshot {} ({png_size} bytes); capture {}\n\
         html report: {dots} dots; JSON: {failures} failures, {verdicts} verdicts; load generator: {load_5xx} 5xx of {} requests; \
         marks: {sigterm} SIGTERM (JSON {}), {sigkill} SIGKILL (JSON {})",
        page.display(),
        html.len(),
        html.len() as f64 / 1e6,
        dom_file.display(),
        dom.len(),
        png.display(),
        kept.display(),
        lab.summary.total,
        json_marks(&json, "sigterm"),
        json_marks(&json, "sigkill"),
    ));
    assert!(png_size > 0, "no screenshot at {}", png.display());
    // The page's script showed the first verdict when its dot was clicked.
    let first = &json["verdicts"][0];
    let cause = first["cause"]
        .as_str()
        .and_then(Cause::parse)
        .expect("the first verdict's cause");
    let at = format_time(first["failure"]["at_ns"].as_i64().expect("its time"));
    for want in [cause.label(), at.as_str(), "<h4>evidence</h4>"] {
        assert!(
            panel.contains(want),
            "{want} not in the panel after a click: {panel}"
        );
    }
    assert!(
        dom.contains("<svg id=\"timeline\""),
        "the timeline was not in the DOM"
    );
    assert!(load_5xx > 0, "the scenario made no 5xx");
    assert_eq!(dots, failures, "dots vs the JSON report's failures");
    assert_eq!(dots, verdicts, "dots vs the JSON report's verdicts");
    assert_eq!(dots, load_5xx, "dots vs the load generator's 5xx");
    assert_eq!(sigterm, json_marks(&json, "sigterm"), "SIGTERM marks");
    assert_eq!(sigkill, json_marks(&json, "sigkill"), "SIGKILL marks");
    assert!(sigterm > 0, "no SIGTERM mark: each terminated pod got one");
    // Each terminated pod got exactly one SIGTERM mark.
    let terminated = json["pods"].as_array().map_or(0, |p| {
        p.iter()
            .filter(|p| {
                p["marks"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["kind"] == "deleted"))
            })
            .count()
    });
    assert!(
        sigterm >= terminated,
        "{sigterm} SIGTERM marks for {terminated} deleted pods"
    );
}
