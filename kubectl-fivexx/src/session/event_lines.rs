//! What `--events` prints on stdout: one line per kernel fact, rendered
//! by fivexx-core's `report::lines` (the agent prints the same event
//! lines), coloured here. The verdicts are not printed one by one: the
//! incident view folds them into bursts ([`super::incident`]).

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
