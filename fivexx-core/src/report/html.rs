//! `explain -o html`: one self-contained page (no network: an inline style,
//! an inline script, inline SVG, and a Content-Security-Policy that forbids
//! anything else) with the summary, episodes, fixes and next commands, and
//! a timeline drawn server-side: one row per pod with its lifecycle marks
//! and its ready, in-endpoints and proxies-still-routing spans, and one dot
//! per failed request on the row of its pod. The dots and marks need no
//! script; the script only fills the side panel from the verdicts' JSON.
//!
//! Size: a dot is one `<circle>` with a short `<title>`; a verdict's
//! details are one JSON object with at most [`MAX_EVIDENCE`] evidence
//! lines, and the text many verdicts share (fixes, next commands, the
//! pod's lifecycle evidence, times) is listed once and referenced by index.
//!
//! This file is longer than 600 lines because the page must load nothing:
//! its style and script are inline here, beside the small functions that
//! draw one section each.

use super::time::{format_duration, format_time};
use super::{render_table, Report};
use crate::explain::{Cause, Confidence, MarkKind, PodTrack, Span, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Evidence lines per verdict in the side panel (the rest are counted).
pub const MAX_EVIDENCE: usize = 12;

const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/// The drawing's geometry, in SVG user units.
const LABEL_W: f64 = 250.0;
const PLOT_W: f64 = 1000.0;
const ROW_H: f64 = 18.0;
const AXIS_H: f64 = 28.0;

/// Colours for the causes, in [`Cause::ALL`] order (repeating if causes
/// outnumber them); unexplained failures are grey.
const CAUSE_COLOURS: [&str; 10] = [
    "#e6550d", "#d62728", "#9467bd", "#8c1d1d", "#bcbd22", "#e377c2", "#17becf", "#1f77b4",
    "#2ca02c", "#8c564b",
];

fn cause_colour(c: Cause) -> &'static str {
    if c == Cause::Unexplained {
        return "#7f7f7f";
    }
    CAUSE_COLOURS[cause_index(c) % CAUSE_COLOURS.len()]
}

const STYLE: &str = "
body{font:13px/1.4 system-ui,sans-serif;margin:0 360px 2em 1em;color:#222}
h1{font-size:18px}h2{font-size:15px;margin-top:1.4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;vertical-align:top}
th{background:#eee}tr:nth-child(even) td{background:#f7f7f7}td.n{text-align:right}
code,pre{font:12px ui-monospace,monospace}pre{background:#f4f4f4;padding:8px;overflow:auto}
.warn{color:#a40}.dim{color:#666}.legend span{margin-right:14px;white-space:nowrap}
.sw{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
#panel{position:fixed;top:0;right:0;width:340px;height:100vh;overflow:auto;box-sizing:border-box;
padding:8px 12px;border-left:1px solid #ccc;background:#fcfcfc}
#panel dt{font-weight:600;float:left;clear:left;width:84px}#panel dd{margin-left:90px}
#panel li{margin-bottom:3px}svg text{font:11px system-ui,sans-serif;fill:#333}
.grid{stroke:#ddd}.axis text{fill:#555}.stripe{fill:#f3f3f3}
.bar{stroke:none}.ready{fill:#9bd39b}.endpoints{fill:#7fb2e5}.routed{fill:#e9d36b}
.mark,.lgm{fill:none;stroke-width:1.5}.created{stroke:#2ca02c}.deleted{stroke:#000;stroke-dasharray:2 2}
.sigterm{stroke:#ff7f0e;stroke-width:2}.sigkill{stroke:#d00;stroke-width:2.5}
.exit{stroke:#555;stroke-dasharray:3 2}.oom_kill{stroke:#a0a;stroke-width:2.5}.gone{stroke:#aaa}
.dot{stroke:#fff;stroke-width:.6;fill-opacity:.9;cursor:pointer}.dot:hover,.dot[data-sel]{stroke:#000;stroke-width:1.5}
";

/// Fills the side panel from the embedded JSON with `textContent` only
/// (never markup), on hover, or pinned by a click.
const SCRIPT: &str = r#"(function(){
var d=JSON.parse(document.getElementById('verdicts').textContent),S=function(i){return i==null?null:d.s[i];};
var p=document.getElementById('panel'),svg=document.getElementById('timeline'),pin=null;
function el(t,x,c){var e=document.createElement(t);if(x!=null)e.textContent=String(x);if(c)e.className=c;return e;}
function kv(dl,k,v){if(v==null||v==='')return;dl.appendChild(el('dt',k));dl.appendChild(el('dd',v));}
function show(i){var v=d.v[i];if(!v)return;p.textContent='';p.appendChild(el('h3',S(v.cause)));
var dl=el('dl');kv(dl,'time',v.t);kv(dl,'status',v.status==null?'answer not seen':v.status);
kv(dl,'failure',v.kind+' '+v.at);kv(dl,'confidence',v.conf);kv(dl,'pod',S(v.pod));kv(dl,'workload',S(v.workload));
kv(dl,'service',S(v.svc));kv(dl,'proxy',S(v.proxy));kv(dl,'episode',S(v.ep));kv(dl,'burst',v.burst);kv(dl,'note',S(v.note));
p.appendChild(dl);
if(v.fix){p.appendChild(el('h4','fix'));p.appendChild(el('p',S(v.fix[0])));p.appendChild(el('p','because '+S(v.fix[1]),'dim'));}
if(v.next){p.appendChild(el('h4','next'));p.appendChild(el('code',S(v.next[0])));p.appendChild(el('p',S(v.next[1]),'dim'));}
if(v.ev.length){p.appendChild(el('h4','evidence'));var ul=el('ul');
v.ev.forEach(function(k){var e=d.lines[k],li=el('li');li.appendChild(el('span',S(e[0])+' '+S(e[1]),'dim'));li.appendChild(document.createTextNode(' '+S(e[2])));ul.appendChild(li);});
if(v.more)ul.appendChild(el('li','... '+v.more+' more','dim'));p.appendChild(ul);}}
function at(e){var t=e.target;return t&&t.getAttribute?t.getAttribute('data-i'):null;}
svg.addEventListener('mouseover',function(e){var i=at(e);if(i!=null&&pin==null)show(+i);});
svg.addEventListener('click',function(e){var i=at(e),o=svg.querySelector('[data-sel]');if(o)o.removeAttribute('data-sel');
if(i==null||pin===+i){pin=null;return;}pin=+i;e.target.setAttribute('data-sel','');show(pin);});
})();"#;

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn cause_index(c: Cause) -> usize {
    Cause::ALL
        .iter()
        .position(|x| *x == c)
        .unwrap_or(Cause::ALL.len() - 1)
}

fn confidence_name(c: Confidence) -> &'static str {
    match c {
        Confidence::Low => "low",
        Confidence::Medium => "medium",
        Confidence::High => "high",
    }
}

/// The class a mark is drawn with (after `mark`), as the JSON names it.
pub fn mark_class(k: MarkKind) -> &'static str {
    match k {
        MarkKind::Created => "created",
        MarkKind::Deleted => "deleted",
        MarkKind::Sigterm => "sigterm",
        MarkKind::Sigkill => "sigkill",
        MarkKind::Exit => "exit",
        MarkKind::OomKill => "oom_kill",
        MarkKind::Gone => "gone",
    }
}

fn mark_label(k: MarkKind) -> &'static str {
    match k {
        MarkKind::Created => "created",
        MarkKind::Deleted => "deleted",
        MarkKind::Sigterm => "SIGTERM",
        MarkKind::Sigkill => "SIGKILL",
        MarkKind::Exit => "exit",
        MarkKind::OomKill => "OOM kill",
        MarkKind::Gone => "gone",
    }
}

/// A mark's path at `x` in a row: a vertical tick with a head that tells
/// the kinds apart without colour.
fn mark_path(k: MarkKind, x: f64) -> String {
    let tick = format!("M{x:.1} 1v{}", ROW_H - 2.0);
    let head = match k {
        MarkKind::Sigterm => format!("M{:.1} 1h6", x - 3.0),
        MarkKind::Sigkill | MarkKind::OomKill => {
            format!("M{:.1} 1l6 6M{:.1} 1l-6 6", x - 3.0, x + 3.0)
        }
        MarkKind::Deleted => format!("M{x:.1} 1l4 3l-4 3"),
        _ => String::new(),
    };
    tick + &head
}

/// Maps times to x: the capture's window, widened to all that is drawn.
struct Scale {
    t0: i64,
    t1: i64,
}

impl Scale {
    fn of(r: &Report) -> Scale {
        let mut times: Vec<i64> = Vec::new();
        if let Some(c) = &r.capture {
            times.extend(c.start_ns);
            times.extend(c.end_ns);
        }
        times.extend(r.verdicts.iter().map(Verdict::at_ns));
        for p in &r.pods {
            times.extend(p.marks.iter().map(|m| m.at_ns));
            for s in p
                .ready
                .iter()
                .chain(&p.in_endpoints)
                .chain(&p.proxies_routed)
            {
                times.push(s.from_ns);
                times.extend(s.to_ns);
            }
        }
        let t0 = times.iter().copied().min().unwrap_or(0);
        let t1 = times.iter().copied().max().unwrap_or(0);
        Scale {
            t0,
            t1: t1.max(t0 + 1_000_000_000),
        }
    }

    fn x(&self, t: i64) -> f64 {
        let t = t.clamp(self.t0, self.t1);
        LABEL_W + (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * PLOT_W
    }

    /// At most about ten ticks, at a round step.
    fn ticks(&self) -> (i64, Vec<i64>) {
        const STEPS_MS: [i64; 19] = [
            100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
            600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 86_400_000,
        ];
        let span = self.t1 - self.t0;
        let step = STEPS_MS
            .iter()
            .map(|ms| ms * 1_000_000)
            .find(|s| span / s <= 10)
            .unwrap_or(span / 10 + 1);
        let first = self.t0.div_euclid(step) * step + if self.t0 % step == 0 { 0 } else { step };
        (
            step,
            (0..)
                .map(|k| first + k * step)
                .take_while(|t| *t <= self.t1)
                .collect(),
        )
    }
}

/// `22:13:20Z` (or `22:13:20.100Z` below a second) of [`format_time`].
fn tick_label(t: i64, step: i64) -> String {
    let full = format_time(t);
    let end = if step >= 1_000_000_000 { 19 } else { 23 };
    match full.get(11..end) {
        Some(s) => format!("{s}Z"),
        None => full,
    }
}

/// One row of the timeline: a pod's track, or the failures of a workload
/// (or of nothing known) that no track holds.
struct Row<'a> {
    label: String,
    title: String,
    track: Option<&'a PodTrack>,
    /// (cause index, verdict index), sorted.
    dots: Vec<(usize, usize)>,
}

/// A track's row label: its name, or what is known of a pod the API never
/// named (kernel facts of processes no pod could be found for).
fn track_label(t: &PodTrack) -> String {
    match (t.pod.is_empty(), t.uid.is_empty()) {
        (false, _) => t.pod.clone(),
        (true, false) => format!("pod uid {}", t.uid),
        (true, true) => "(processes of no known pod)".to_string(),
    }
}

fn rows(r: &Report) -> Vec<Row<'_>> {
    let mut out: Vec<Row> = r
        .pods
        .iter()
        .map(|t| {
            let label = track_label(t);
            let workload = t.workload_key.as_deref().map_or(String::new(), |k| {
                format!(" ({})", crate::model::workload_label(k))
            });
            let node = t
                .node
                .as_ref()
                .map_or(String::new(), |n| format!(" on {n}"));
            Row {
                title: format!("{label}{workload}{node}"),
                label,
                track: Some(t),
                dots: Vec::new(),
            }
        })
        .collect();
    let by_uid: HashMap<&str, usize> = r
        .pods
        .iter()
        .enumerate()
        .map(|(i, t)| (t.uid.as_str(), i))
        .collect();
    let mut other: BTreeMap<String, usize> = BTreeMap::new();
    for (i, v) in r.verdicts.iter().enumerate() {
        let row = match v.involved.pod_uid.as_deref().and_then(|u| by_uid.get(u)) {
            Some(row) => *row,
            None => {
                let what = v
                    .involved
                    .workload_key
                    .as_deref()
                    .map_or("other".to_string(), crate::model::workload_label);
                *other.entry(what.clone()).or_insert_with(|| {
                    out.push(Row {
                        label: format!("{what} (no pod track)"),
                        title: format!("failures of {what} with no pod timeline"),
                        track: None,
                        dots: Vec::new(),
                    });
                    out.len() - 1
                })
            }
        };
        out[row].dots.push((cause_index(v.cause), i));
    }
    for row in &mut out {
        row.dots.sort_unstable();
    }
    out
}

fn span_rect(o: &mut String, s: &Scale, span: &Span, class: &str, y: f64, what: &str) {
    let x0 = s.x(span.from_ns);
    let x1 = s.x(span.to_ns.unwrap_or(s.t1));
    let until = span.to_ns.map_or("the end".to_string(), format_time);
    let _ = write!(
        o,
        "<rect class=\"bar {class}\" x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"4\"><title>{what} {} .. {until}</title></rect>",
        (x1 - x0).max(0.5),
        format_time(span.from_ns)
    );
}

fn track_svg(o: &mut String, s: &Scale, t: &PodTrack) {
    for sp in &t.ready {
        span_rect(o, s, sp, "ready", 2.0, "ready");
    }
    for sp in &t.in_endpoints {
        span_rect(o, s, sp, "endpoints", 7.0, "in endpoints");
    }
    if let Some(sp) = &t.proxies_routed {
        span_rect(o, s, sp, "routed", 12.0, "proxies still routed");
    }
    for m in &t.marks {
        let _ = write!(
            o,
            "<path class=\"mark {}\" d=\"{}\"><title>{} {} {}</title></path>",
            mark_class(m.kind),
            mark_path(m.kind, s.x(m.at_ns)),
            mark_label(m.kind),
            format_time(m.at_ns),
            esc(&m.detail)
        );
    }
}

fn dots_svg(o: &mut String, s: &Scale, r: &Report, dots: &[(usize, usize)]) {
    let mut open: Option<usize> = None;
    for &(c, i) in dots {
        if open != Some(c) {
            if open.is_some() {
                o.push_str("</g>");
            }
            let _ = write!(o, "<g class=\"c{c}\">");
            open = Some(c);
        }
        let v = &r.verdicts[i];
        let t = format_time(v.at_ns());
        let _ = write!(
            o,
            "<circle class=\"dot\" data-i=\"{i}\" cx=\"{:.1}\" cy=\"{}\" r=\"3\"><title>{} {} {}</title></circle>",
            s.x(v.at_ns()),
            // Three lanes, so that a burst of failures reads as many dots.
            5 + (i % 3) * 4,
            t.get(11..).unwrap_or(&t),
            v.failure.http_status().map_or("-".to_string(), |st| st.to_string()),
            v.cause.label()
        );
    }
    if open.is_some() {
        o.push_str("</g>");
    }
}

fn axis_svg(o: &mut String, s: &Scale, y: f64, height: f64) {
    let (step, ticks) = s.ticks();
    let _ = write!(o, "<g class=\"axis\">");
    for t in ticks {
        let x = s.x(t);
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{AXIS_H}\" y2=\"{height}\"/><text x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{}<title>{}</title></text>",
            tick_label(t, step),
            format_time(t)
        );
    }
    o.push_str("</g>");
}

fn timeline_svg(o: &mut String, r: &Report) {
    let s = Scale::of(r);
    let rows = rows(r);
    let height = AXIS_H * 2.0 + ROW_H * rows.len() as f64;
    let width = LABEL_W + PLOT_W + 20.0;
    let _ = write!(
        o,
        "<svg id=\"timeline\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\">"
    );
    axis_svg(o, &s, 18.0, height - AXIS_H);
    for (k, row) in rows.iter().enumerate() {
        let y = AXIS_H + ROW_H * k as f64;
        let _ = write!(o, "<g transform=\"translate(0,{y})\">");
        if k % 2 == 1 {
            let _ = write!(
                o,
                "<rect class=\"stripe\" x=\"0\" y=\"0\" width=\"{width}\" height=\"{ROW_H}\"/>"
            );
        }
        let label: String = if row.label.chars().count() > 40 {
            row.label.chars().take(39).chain(['…']).collect()
        } else {
            row.label.clone()
        };
        let _ = write!(
            o,
            "<text x=\"4\" y=\"13\">{}<title>{}</title></text>",
            esc(&label),
            esc(&row.title)
        );
        if let Some(t) = row.track {
            track_svg(o, &s, t);
        }
        dots_svg(o, &s, r, &row.dots);
        o.push_str("</g>");
    }
    axis_svg(o, &s, height - 8.0, height - AXIS_H);
    o.push_str("</svg>");
}

/// The side panel's data: one entry per dot (`data-i` indexes `v`). The
/// text a page of thousands of verdicts repeats (pod, workload, cause,
/// fix, the pod's lifecycle evidence, times, sources) is in `s` once, and
/// referenced by index; so is each evidence line, in `lines`.
#[derive(Serialize, Default)]
struct PanelData {
    s: Vec<String>,
    /// `[time, source, fact]`, indexes into `s`.
    lines: Vec<[usize; 3]>,
    v: Vec<DotInfo>,
}

/// One verdict; `usize` fields index `PanelData::s`.
#[derive(Serialize)]
struct DotInfo {
    t: String,
    status: Option<u16>,
    kind: &'static str,
    /// The connection's 4-tuple, or the proxy's socket to its client.
    at: String,
    cause: usize,
    conf: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    svc: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ep: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<usize>,
    /// Indexes into `PanelData::lines`, at most [`MAX_EVIDENCE`].
    ev: Vec<usize>,
    #[serde(skip_serializing_if = "is_zero")]
    more: usize,
    /// `[action, because]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<[usize; 2]>,
    /// `[command, why]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<[usize; 2]>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Builds [`PanelData`], each string and evidence line stored once.
#[derive(Default)]
struct Interner {
    d: PanelData,
    strings: HashMap<String, usize>,
    lines: HashMap<[usize; 3], usize>,
}

impl Interner {
    fn s(&mut self, text: &str) -> usize {
        if let Some(i) = self.strings.get(text) {
            return *i;
        }
        self.d.s.push(text.to_string());
        self.strings.insert(text.to_string(), self.d.s.len() - 1);
        self.d.s.len() - 1
    }

    fn line(&mut self, e: &crate::model::Evidence) -> usize {
        let key = [
            self.s(&format_time(e.at_ns)),
            self.s(&e.source.to_string()),
            self.s(&e.fact.to_string()),
        ];
        *self.lines.entry(key).or_insert_with(|| {
            self.d.lines.push(key);
            self.d.lines.len() - 1
        })
    }

    fn verdict(&mut self, v: &Verdict, episodes: &HashMap<&str, &str>) -> DotInfo {
        let proxy = v.involved.proxy.as_ref().map(|p| {
            let mut s = p.node.clone();
            if let Some(a) = p.address {
                let _ = write!(s, " {a}");
            }
            if let Some(pod) = &p.pod {
                let _ = write!(s, " ({pod})");
            }
            self.s(&s)
        });
        let episode = v.episode.as_ref().map(|e| {
            let label = episodes.get(e.id.as_str()).copied().unwrap_or(&e.id);
            self.s(label)
        });
        DotInfo {
            t: format_time(v.at_ns()),
            status: v.failure.http_status(),
            kind: v.failure.kind().name(),
            at: v.failure.endpoints(),
            cause: self.s(v.cause.label()),
            conf: confidence_name(v.confidence),
            pod: v.involved.pod.as_deref().map(|p| self.s(p)),
            workload: v
                .involved
                .workload_key
                .as_deref()
                .map(|w| self.s(&crate::model::workload_label(w))),
            svc: v.involved.service.as_deref().map(|s| self.s(s)),
            proxy,
            ep: episode,
            burst: v.burst,
            note: v.note.as_deref().map(|n| self.s(n)),
            ev: v
                .evidence
                .iter()
                .take(MAX_EVIDENCE)
                .map(|e| self.line(e))
                .collect(),
            more: v.evidence.len().saturating_sub(MAX_EVIDENCE),
            fix: v
                .fix
                .as_ref()
                .map(|f| [self.s(&f.action), self.s(&f.because)]),
            next: v
                .next
                .as_ref()
                .map(|n| [self.s(&n.command), self.s(&n.why)]),
        }
    }
}

/// The panel's JSON, safe inside `<script>`: every `<` is `\u003c`, so
/// no `</script>` or `<!--` can appear.
fn panel_json(r: &Report) -> String {
    let episodes: HashMap<&str, &str> = r
        .episodes
        .iter()
        .map(|e| (e.id.as_str(), e.label.as_str()))
        .collect();
    let mut b = Interner::default();
    b.d.v.reserve(r.verdicts.len());
    for v in &r.verdicts {
        let info = b.verdict(v, &episodes);
        b.d.v.push(info);
    }
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_string(&b.d)
        .unwrap_or_else(|_| "{\"s\":[],\"lines\":[],\"v\":[]}".into())
        .replace('<', "\\u003c")
}

fn header_html(o: &mut String, r: &Report) {
    o.push_str("<h1>kubectl fivexx explain</h1>");
    if let Some(c) = &r.capture {
        let span = super::render::capture_span(c);
        let _ = write!(
            o,
            "<p>Capture <b>{}</b>, {} node(s): {}; {}; format {}{}</p>",
            esc(c.context.as_deref().unwrap_or("(no context)")),
            c.nodes.len(),
            esc(&c.nodes.join(", ")),
            esc(&span),
            esc(&c.format_version),
            if c.complete {
                ""
            } else {
                " <b class=\"warn\">INCOMPLETE</b>"
            }
        );
        let mut warnings: Vec<String> = c.problems.clone();
        warnings.extend(c.agent_gone_lines());
        if c.problem_count > c.problems.len() as u64 {
            warnings.push(format!("... {} problems in all", c.problem_count));
        }
        for (node, drops) in &c.drops {
            let total = drops.total();
            if total > 0 {
                warnings.push(format!(
                    "agent on {node} dropped {total} events: some failures may be missing"
                ));
            }
        }
        for w in warnings {
            let _ = write!(o, "<p class=\"warn\">warning: {}</p>", esc(&w));
        }
    }
    if let Some(st) = &r.settings {
        let _ = write!(o, "<p class=\"dim\">settings: {}</p>", esc(&st.describe()));
    }
    let t = &r.totals;
    let statuses: Vec<String> = t
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} × {s}"))
        .collect();
    let _ = write!(
        o,
        "<p><b>{} failed request(s)</b>{}: {} explained, {} unexplained; {} failed upstream connection(s) behind them.</p>",
        t.failures,
        if statuses.is_empty() { String::new() } else { format!(" ({})", statuses.join(", ")) },
        t.explained,
        t.unexplained,
        t.upstream_failures
    );
}

fn episodes_html(o: &mut String, r: &Report) {
    if r.episodes.is_empty() {
        return;
    }
    o.push_str("<h2>Episodes</h2><table><tr><th>episode</th><th>start</th><th>failures</th><th>over</th><th>causes</th><th>pods</th></tr>");
    for e in &r.episodes {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{} of {}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            esc(&e.label),
            format_time(e.start_ns),
            e.failures,
            e.of_total,
            format_duration(e.last_failure_ns - e.first_failure_ns),
            esc(&super::render::causes_line(&e.by_cause)),
            e.pods,
            esc(&e.pod_names.join(", "))
        );
    }
    o.push_str("</table>");
}

fn workloads_html(o: &mut String, r: &Report) {
    if r.workloads.is_empty() {
        return;
    }
    o.push_str("<h2>Failures by workload</h2><table><tr><th>workload</th><th>failures</th><th>cause</th><th>count</th><th>HTTP</th></tr>");
    for w in &r.workloads {
        let mut by: Vec<(&Cause, &u64)> = w.by_cause.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (i, (c, n)) in by.iter().enumerate() {
            let (name, total) = if i == 0 {
                (esc(&w.label), w.failures.to_string())
            } else {
                (String::new(), String::new())
            };
            let _ = write!(
                o,
                "<tr><td>{name}</td><td class=\"n\">{total}</td><td><span class=\"sw\" style=\"background:{}\"></span>{}</td><td class=\"n\">{n}</td><td>{}</td></tr>",
                cause_colour(**c),
                c.label(),
                esc(&super::render::statuses_text(w.by_cause_status.get(*c)))
            );
        }
    }
    o.push_str("</table>");
}

fn fixes_next_html(o: &mut String, r: &Report) {
    if r.workloads.iter().any(|w| !w.fixes.is_empty()) {
        o.push_str("<h2>Fixes</h2>");
        for w in r.workloads.iter().filter(|w| !w.fixes.is_empty()) {
            let _ = write!(o, "<h3>{}</h3><ul>", esc(&w.label));
            for f in &w.fixes {
                let _ = write!(
                    o,
                    "<li><b>{}</b>: {}<br><span class=\"dim\">because {}</span></li>",
                    f.cause.label(),
                    esc(&f.action),
                    esc(&f.because)
                );
            }
            o.push_str("</ul>");
        }
    }
    if r.workloads.iter().any(|w| !w.next.is_empty()) {
        o.push_str("<h2>Next</h2>");
        for w in r.workloads.iter().filter(|w| !w.next.is_empty()) {
            let _ = write!(o, "<h3>{}</h3><ul>", esc(&w.label));
            for n in &w.next {
                let _ = write!(
                    o,
                    "<li><b>{}</b>: <code>{}</code><br><span class=\"dim\">{}</span></li>",
                    n.cause.label(),
                    esc(&n.command),
                    esc(&n.why)
                );
            }
            o.push_str("</ul>");
        }
    }
}

fn legend_html(o: &mut String, r: &Report) {
    o.push_str("<p class=\"legend\">");
    for c in r.totals.by_cause.keys() {
        let _ = write!(
            o,
            "<span><span class=\"sw\" style=\"background:{}\"></span>{}</span>",
            cause_colour(*c),
            c.label()
        );
    }
    o.push_str("</p><p class=\"legend\">");
    for k in [
        MarkKind::Created,
        MarkKind::Deleted,
        MarkKind::Sigterm,
        MarkKind::Sigkill,
        MarkKind::Exit,
        MarkKind::OomKill,
        MarkKind::Gone,
    ] {
        let _ = write!(
            o,
            "<span><svg width=\"12\" height=\"18\" viewBox=\"0 0 12 18\"><path class=\"lgm {}\" d=\"{}\"/></svg> {}</span>",
            mark_class(k),
            mark_path(k, 6.0),
            mark_label(k)
        );
    }
    for (class, what) in [
        ("ready", "ready"),
        ("endpoints", "in endpoints"),
        ("routed", "proxies still routing after termination"),
    ] {
        let _ = write!(
            o,
            "<span><svg width=\"20\" height=\"6\"><rect class=\"bar {class}\" width=\"20\" height=\"6\"/></svg> {what}</span>"
        );
    }
    o.push_str("</p>");
}

fn style_html(o: &mut String) {
    o.push_str("<style>");
    o.push_str(STYLE);
    for (i, c) in Cause::ALL.iter().enumerate() {
        let _ = write!(o, ".c{i} .dot{{fill:{}}}", cause_colour(*c));
    }
    o.push_str("</style>");
}

/// The page: summary, episodes, workloads, fixes, next commands, the
/// timeline and its side panel, and the terminal table for reference.
pub fn render_html(r: &Report) -> String {
    let mut o = String::with_capacity(4096 + r.verdicts.len() * 600 + r.pods.len() * 1000);
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"{}\"><title>kubectl fivexx: {} failed request(s)</title>",
        esc(CSP),
        r.totals.failures
    );
    style_html(&mut o);
    o.push_str("</head><body>");
    header_html(&mut o, r);
    episodes_html(&mut o, r);
    workloads_html(&mut o, r);
    fixes_next_html(&mut o, r);
    let _ = write!(
        o,
        "<h2>Timeline</h2><p class=\"dim\">One row per pod ({}), one dot per failed request ({}); times UTC. Hover or click a dot for its verdict.{}</p>",
        r.pods.len(),
        r.verdicts.len(),
        if r.verdicts_omitted > 0 {
            format!(" {} more failures are not drawn (raise --max-verdicts).", r.verdicts_omitted)
        } else {
            String::new()
        }
    );
    legend_html(&mut o, r);
    timeline_svg(&mut o, r);
    let _ = write!(
        o,
        "<h2>As the terminal shows it</h2><details><summary>table</summary><pre>{}</pre></details>",
        esc(&render_table(r))
    );
    o.push_str("<div id=\"panel\"><h3>Verdict</h3><p class=\"dim\">Hover over or click a dot on the timeline (needs JavaScript; without it each dot's tooltip gives its time, status and cause).</p></div>");
    let _ = writeln!(
        o,
        "<script type=\"application/json\" id=\"verdicts\">{}</script><script>{SCRIPT}</script></body></html>",
        panel_json(r)
    );
    o
}
