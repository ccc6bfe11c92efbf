//! The live incident view of `trace` and `node`: one line per burst.
//!
//! On a terminal, each open burst is a spinner line on stderr that grows
//! in place (count, last time, statuses); when the burst closes its bar
//! goes and its final line, fix and next command are printed on stdout.
//! On a pipe nothing is drawn in place: a burst's lines are printed when
//! it closes. stdout holds only the requested output (closed bursts,
//! `--events` lines, the summary), so `trace | tee` stays readable.
//!
//! What a burst has counted and how its line reads is [`tally`]'s; this
//! module only draws.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::net::IpAddr;
use std::time::Duration;

use fivexx_core::explain::Verdict;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

mod tally;

use crate::style::{say, Painter};
#[cfg(test)]
use fivexx_core::explain::burst::BURST_GAP_NS;
#[cfg(test)]
use tally::CLOSE_MARGIN_NS;
use tally::{join, Burst, Bursts, Part};

/// The session's bursts and how they are shown.
pub struct IncidentView {
    bursts: Bursts,
    /// Spinners on stderr, when it is a terminal.
    bars: Option<Bars>,
    /// Colours of stdout's lines.
    out: Painter,
    /// Colours of what is drawn on stderr.
    err: Painter,
    /// The proxies' names by address.
    proxy_names: HashMap<IpAddr, String>,
    /// The next commands printed already: each is printed once.
    next_shown: HashSet<String>,
}

impl IncidentView {
    /// The view of a session whose proxies are `proxy_names`.
    pub fn new(proxy_names: HashMap<IpAddr, String>) -> IncidentView {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| Bars::new(ProgressDrawTarget::stderr()));
        IncidentView {
            bursts: Bursts::default(),
            bars,
            out: Painter::stdout(),
            err: Painter::stderr(),
            proxy_names,
            next_shown: HashSet::new(),
        }
    }

    /// A proxy adopted during the session.
    pub fn name_proxy(&mut self, ip: IpAddr, name: String) {
        self.proxy_names.insert(ip, name);
    }

    /// A verdict that came out: folded into its burst, whose bar grows.
    pub fn verdict(&mut self, v: &Verdict) {
        let id = self.bursts.add(v);
        let Some(b) = self.bursts.get_mut(id) else {
            return;
        };
        b.name_proxy(&self.proxy_names);
        if let Some(bars) = &mut self.bars {
            bars.show(b, self.err);
        }
    }

    /// The latest failure time seen: how far the session has explained.
    pub fn latest_ns(&self) -> i64 {
        self.bursts.latest_ns()
    }

    /// Closes and prints the bursts over once the session has explained
    /// up to `clock_ns`.
    pub fn advance(&mut self, clock_ns: i64) {
        let closed = self.bursts.close_over(clock_ns);
        self.print_closed(closed);
    }

    /// Closes and prints every open burst (the end of the session).
    pub fn close_all(&mut self) {
        let closed = self.bursts.close_all();
        self.print_closed(closed);
        if let Some(bars) = &self.bars {
            let _ = bars.multi.clear();
        }
    }

    fn print_closed(&mut self, closed: Vec<Burst>) {
        for b in closed {
            if let Some(bars) = &mut self.bars {
                bars.remove(b.id);
            }
            // A next command the session printed already is not repeated.
            let next = b
                .next
                .as_ref()
                .is_some_and(|n| self.next_shown.insert(n.command.clone()));
            self.say(&closed_lines(&b, self.out, next));
        }
    }

    /// Lines on stdout, between two redraws of the bars.
    pub fn say(&self, lines: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| say(lines)),
            None => say(lines),
        }
    }

    /// A line on stderr (a warning, a proxy adopted), between two redraws.
    pub fn note(&self, line: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

/// A closed burst: its line, then its fix and (if `next`) its next
/// command, indented.
pub fn closed_lines(b: &Burst, p: Painter, next: bool) -> String {
    let mut s = painted_line(b, p);
    let details = [b.fix_line(), b.next_line().filter(|_| next)];
    for d in details.into_iter().flatten() {
        s.push_str("\n    ");
        s.push_str(&p.dim(&d));
    }
    s
}

/// The burst's line with its count and statuses in red and its cause in
/// bold (when the painter is on).
fn painted_line(b: &Burst, p: Painter) -> String {
    join(b.parts().into_iter().map(|(part, s)| match part {
        Part::Count | Part::Outcomes => p.red(&s),
        Part::Cause => p.bold(&s),
        Part::Span | Part::Who | Part::Via => s,
    }))
}

/// An open burst's bar: what grows and who first, so that a narrow
/// terminal, which cuts the line, still shows the pod; then the cause,
/// the times and the proxy.
fn bar_message(b: &Burst, p: Painter) -> String {
    const ORDER: [Part; 6] = [
        Part::Count,
        Part::Outcomes,
        Part::Who,
        Part::Cause,
        Part::Span,
        Part::Via,
    ];
    let mut parts = b.parts();
    parts.sort_by_key(|(part, _)| ORDER.iter().position(|o| o == part));
    join(parts.into_iter().map(|(part, s)| match part {
        Part::Count | Part::Outcomes => p.yellow(&s),
        _ => s,
    }))
}

/// One spinner per open burst, on stderr.
struct Bars {
    multi: MultiProgress,
    open: HashMap<u64, ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Bars {
        let style = ProgressStyle::with_template("{spinner} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Bars {
            multi: MultiProgress::with_draw_target(target),
            open: HashMap::new(),
            style,
        }
    }

    /// The burst's bar, added on its first verdict, with its line now.
    fn show(&mut self, b: &Burst, p: Painter) {
        let bar = self.open.entry(b.id).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(self.style.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        bar.set_message(bar_message(b, p));
    }

    fn remove(&mut self, id: u64) {
        if let Some(bar) = self.open.remove(&id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tally::tests::{answer, fix, S, T0};
    use super::*;
    use fivexx_core::explain::NextStep;

    fn plain() -> Painter {
        Painter { enabled: false }
    }

    #[test]
    fn a_closed_burst_is_its_line_then_its_fix_and_next() {
        let mut v = answer(1, T0, 502);
        v.fix = fix("preStop sleep >= 2 s");
        v.next = Some(std::sync::Arc::new(NextStep {
            command: "kubectl get endpointslices -n shop -w".into(),
            why: "w".into(),
        }));
        let mut bs = Bursts::default();
        bs.add(&v);
        let b = bs.get(1).unwrap();
        let text = closed_lines(b, plain(), true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], b.line());
        assert_eq!(
            &lines[1..],
            [
                "    fix: preStop sleep >= 2 s — because endpoint-removal lag p99 1.1 s over 3 terminations",
                "    next: kubectl get endpointslices -n shop -w",
            ]
        );
        assert_eq!(closed_lines(b, plain(), false).lines().count(), 2);
        let coloured = closed_lines(b, Painter { enabled: true }, true);
        assert!(coloured.contains("\x1b[31m1 failed\x1b[0m"), "{coloured}");
        assert!(!text.contains('\x1b'));
    }

    /// The terminal path, drawn nowhere: bars come and go with their
    /// bursts, and the next command is printed once.
    #[test]
    fn bars_follow_the_open_bursts() {
        let mut view = IncidentView {
            bursts: Bursts::default(),
            bars: Some(Bars::new(ProgressDrawTarget::hidden())),
            out: plain(),
            err: plain(),
            proxy_names: HashMap::new(),
            next_shown: HashSet::new(),
        };
        view.name_proxy("10.0.0.9".parse().unwrap(), "ingress-nginx/c-1".into());
        for (id, t) in [(1, 0), (1, 1), (2, 2)] {
            let mut v = answer(id, T0 + t * S, 502);
            v.involved.proxy.as_mut().unwrap().pod = None;
            v.next = Some(std::sync::Arc::new(NextStep {
                command: "kubectl get endpointslices -n shop -w".into(),
                why: "w".into(),
            }));
            view.verdict(&v);
        }
        let bars = view.bars.as_ref().unwrap();
        assert_eq!(bars.open.len(), 2);
        let message = bars.open[&1].message();
        assert!(
            message.starts_with("2 failed  502×2  deployment shop/web  pod shop/web-29qx"),
            "{message}"
        );
        assert!(
            message.ends_with("via ingress-nginx/c-1 (lab-node-1)"),
            "{message}"
        );
        view.advance(T0 + S + BURST_GAP_NS + CLOSE_MARGIN_NS + 1);
        assert_eq!(view.bars.as_ref().unwrap().open.len(), 1);
        assert_eq!(view.next_shown.len(), 1);
        view.close_all();
        assert!(view.bars.as_ref().unwrap().open.is_empty());
        assert_eq!(view.bursts.latest_ns(), T0 + 2 * S);
    }
}
