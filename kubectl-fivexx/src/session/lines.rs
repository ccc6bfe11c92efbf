//! What a live session prints on stdout: one line per kernel fact and an
//! inline explanation per verdict, both rendered by fivexx-core (the agent
//! prints the same event lines), coloured here.

use fivexx_core::explain::Verdict;
use fivexx_core::report::{event_line, is_failure, LineLayout};
use fivexx_core::KernelEvent;

use crate::style::Painter;

/// One line per kernel fact: the renderer the agent's table uses too.
pub fn kernel_line(ev: &KernelEvent, p: Painter) -> String {
    let s = event_line(ev, LineLayout::Cluster);
    if is_failure(ev) {
        p.yellow(&s)
    } else {
        s
    }
}

/// The inline explanation of one verdict, in red on a terminal.
pub fn verdict_line(v: &Verdict, p: Painter) -> String {
    p.red(&fivexx_core::report::verdict_line(v))
}
