//! `capture`'s progress line on stderr: a spinner on a terminal, else the
//! same line every 5 s (a CI log shows the session is alive).

use std::time::Instant;

pub struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
}

/// What the progress line counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub kernel: u64,
    pub k8s: u64,
    pub verdicts: u64,
}

impl Progress {
    pub fn start() -> Progress {
        let bar = indicatif::ProgressBar::new_spinner();
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    /// Called once a second.
    pub fn tick(&self, counts: Counts, drops: u64) {
        let line = format!(
            "capturing: elapsed {}s, events {} kernel + {} Kubernetes, drops {}",
            self.started.elapsed().as_secs(),
            counts.kernel,
            counts.k8s,
            drops
        );
        self.bar.set_message(line.clone());
        self.bar.tick();
        if self.bar.is_hidden() && self.started.elapsed().as_secs().is_multiple_of(5) {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
