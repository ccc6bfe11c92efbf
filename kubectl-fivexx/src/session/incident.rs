//! The live incident view of `trace` and `node`: one line per burst.
//!
//! On a terminal, each open burst is a spinner line on stderr that grows
//! in place (count, last time, statuses); when the burst closes its bar
//! goes and its final line, fix and next command are printed on stdout.
//! On a pipe nothing is drawn in place: a burst's lines are printed when
//! it closes. stdout holds only the requested output (closed bursts,
//! `--events` lines, the summary), so `trace | tee` stays readable.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use fivexx_core::explain::Verdict;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::bursts::{join, Burst, Bursts, Part};
use super::live::say;
use crate::style::Painter;

/// The session's bursts and how they are shown.
pub struct IncidentView {
    bursts: Bursts,
    /// Spinners on stderr, when it is a terminal.
    bars: Option<Bars>,
    /// Colours of stdout's lines.
    out: Painter,
    /// Colours of what is drawn on stderr.
    err: Painter,
    /// Closed bursts printed so far.
    pub printed: u64,
}

impl IncidentView {
    pub fn new() -> IncidentView {
        IncidentView {
            bursts: Bursts::default(),
            bars: std::io::stderr().is_terminal().then(Bars::new),
            out: Painter::stdout(),
            err: Painter::stderr(),
            printed: 0,
        }
    }

    /// A verdict that came out: folded into its burst, whose bar grows.
    pub fn verdict(&mut self, v: &Verdict) {
        let id = self.bursts.add(v);
        if let (Some(bars), Some(b)) = (&mut self.bars, self.bursts.get(id)) {
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
            self.say(&closed_lines(&b, self.out));
            self.printed += 1;
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

/// A closed burst: its line, then its fix and next command, indented.
pub fn closed_lines(b: &Burst, p: Painter) -> String {
    let mut s = painted_line(b, p);
    for d in b.detail_lines() {
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

/// One spinner per open burst, on stderr.
struct Bars {
    multi: MultiProgress,
    open: HashMap<u64, ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    fn new() -> Bars {
        let style = ProgressStyle::with_template("{spinner} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
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
        bar.set_message(format!("{}  {}", p.yellow("open"), painted_line(b, p)));
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
    use super::*;

    #[test]
    fn a_plain_closed_burst_has_no_escape_codes() {
        let b = Burst {
            id: 1,
            count: 2,
            first_ns: 0,
            last_ns: 1_000_000,
            outcomes: [("502".to_string(), 2)].into(),
            cause: fivexx_core::explain::Cause::KeepAliveRace,
            workload_key: None,
            pod: Some("shop/web-1".into()),
            addresses: Default::default(),
            proxy: None,
            fix: Some(std::sync::Arc::new(fivexx_core::explain::Fix {
                action: "a".into(),
                because: "b".into(),
                params: Default::default(),
            })),
            next: None,
        };
        let plain = closed_lines(&b, Painter { enabled: false });
        assert_eq!(
            plain,
            "00:00:00.000–00:00:00.001 (1ms)  2 failed  502×2  keep-alive race  pod shop/web-1\n    fix: a — because b"
        );
        let coloured = closed_lines(&b, Painter { enabled: true });
        assert!(coloured.contains("\x1b[31m2 failed\x1b[0m"), "{coloured}");
    }
}
