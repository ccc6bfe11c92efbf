//! `trace`'s sink: the events that pass the command line's filter, as a
//! table or JSON lines, and optionally into a capture file.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use fivexx_core::capture::{CaptureError, CaptureWriter, DropCounters};
use fivexx_core::{Fact, KernelEvent, KernelEventKind};

use crate::clock;
use crate::counts::{KindCounts, RingCounts};
use crate::enrich::Enricher;
use crate::output;
use crate::pump::Sink;
use crate::tracer::Tracer;

/// What `trace` keeps and what it drops.
pub struct Filter {
    pub pids: Vec<i32>,
    pub ports: Vec<u16>,
    pub kinds: Option<BTreeSet<KernelEventKind>>,
    /// A cgroup subtree, `/`-prefixed, relative to the cgroup v2 mount.
    pub cgroup: Option<String>,
}

impl Filter {
    pub fn keep(&self, ev: &KernelEvent, enricher: &mut Enricher) -> bool {
        if self.kinds.as_ref().is_some_and(|k| !k.contains(&ev.kind)) {
            return false;
        }
        if !self.pids.is_empty() {
            let pids = [
                ev.task.as_ref().map(|t| t.pid),
                ev.target.as_ref().map(|t| t.pid),
            ];
            if !pids.iter().flatten().any(|p| self.pids.contains(p)) {
                return false;
            }
        }
        if !self.ports.is_empty()
            && !ev
                .tuple
                .is_some_and(|t| self.ports.contains(&t.sport) || self.ports.contains(&t.dport))
        {
            return false;
        }
        if let Some(prefix) = &self.cgroup {
            let path = ev.cgroup_id.and_then(|id| enricher.cgroup_path(id));
            if !path.is_some_and(|p| p.starts_with(prefix.as_str())) {
                return false;
            }
        }
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// `output::TABLE_HEADER` columns, the plugin's node layout.
    Table,
    /// One `KernelEvent` JSON object per line.
    Json,
}

/// Why printing stopped.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("writing the events")]
    Write(#[from] std::io::Error),
    #[error("encoding an event as JSON")]
    Json(#[from] serde_json::Error),
    #[error("writing the capture")]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Agent(#[from] crate::Error),
}

impl PrintError {
    /// The reader went away (`| head`): a normal end, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, PrintError::Write(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Prints what passes the filter, as a table or JSON lines.
pub struct Printer<W: Write> {
    pub filter: Filter,
    pub format: LineFormat,
    pub out: W,
    pub capture: Option<CaptureWriter<std::fs::File>>,
    /// Print the counters this often (on the pump's tick).
    pub stats_every: Option<Duration>,
    last_stats: Instant,
}

impl<W: Write> Printer<W> {
    pub fn new(
        filter: Filter,
        format: LineFormat,
        out: W,
        capture: Option<CaptureWriter<std::fs::File>>,
        stats_every: Option<Duration>,
    ) -> Printer<W> {
        Printer {
            filter,
            format,
            out,
            capture,
            stats_every,
            last_stats: Instant::now(),
        }
    }

    /// Writes the drop counters and the end record; what was recorded so
    /// far is already on disk (flushed every second). Returns how many
    /// facts the capture holds, if there is one.
    pub fn finish_capture(
        &mut self,
        counts: &RingCounts,
        node: &str,
    ) -> Result<Option<u64>, PrintError> {
        let Some(mut cap) = self.capture.take() else {
            return Ok(None);
        };
        let now = clock::wall_clock_offset_ns() + clock::monotonic_ns() as i64;
        cap.write_drops(&DropCounters {
            at_ns: now,
            node: node.to_string(),
            drops: fivexx_core::protocol::DropCounts {
                kernel: counts.dropped.by_kind(),
                stream: 0,
            },
        })?;
        let facts = cap.facts();
        cap.finish(now)?;
        Ok(Some(facts))
    }
}

impl<W: Write> Sink for Printer<W> {
    type Error = PrintError;

    fn event(&mut self, ev: KernelEvent, enricher: &mut Enricher) -> Result<(), PrintError> {
        if !self.filter.keep(&ev, enricher) {
            return Ok(());
        }
        if let Some(cap) = self.capture.as_mut() {
            cap.write_fact(&Fact::Kernel(ev.clone()))?;
        }
        match self.format {
            LineFormat::Json => serde_json::to_writer(&mut self.out, &ev)?,
            LineFormat::Table => self.out.write_all(output::table_line(&ev).as_bytes())?,
        }
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn batch_done(&mut self) -> Result<(), PrintError> {
        Ok(self.out.flush()?)
    }

    fn tick(&mut self, tracer: &mut Tracer, received: KindCounts) -> Result<(), PrintError> {
        if let Some(cap) = self.capture.as_mut() {
            cap.flush()?; // a crash loses at most the last second
        }
        if self
            .stats_every
            .is_some_and(|every| self.last_stats.elapsed() >= every)
        {
            self.last_stats = Instant::now();
            eprint!("{}", output::counters_table(&tracer.ring_counts(received)?));
        }
        Ok(())
    }
}
