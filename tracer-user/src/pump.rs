//! The agent's main loop, shared by `trace` (print) and `serve` (publish):
//! wait on the ring buffer, decode and enrich each record, hand it to a
//! sink; refresh the pid cache; stop on SIGTERM, Ctrl-C or a deadline, then
//! detach and drain what is left so the final counters balance.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use fivexx_core::KernelEvent;
use tokio::io::unix::AsyncFd;

use crate::counts::KindCounts;
use crate::decode::Decoder;
use crate::enrich::Enricher;
use crate::tracer::Tracer;

/// Where decoded events go. An error stops the loop (e.g. stdout closed).
pub trait Sink {
    /// Why the sink cannot go on.
    type Error: std::error::Error + Send + Sync + 'static;
    fn event(&mut self, ev: KernelEvent, enricher: &mut Enricher) -> Result<(), Self::Error>;
    /// Called after a batch; the place to flush.
    fn batch_done(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Called every `tick` with what the loop has read from the ring so
    /// far; the kernel's side of the ledger is `tracer.ring_counts`.
    fn tick(&mut self, _tracer: &mut Tracer, _received: KindCounts) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Why the loop stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PumpError<E: std::error::Error + 'static> {
    #[error("polling the ring buffer")]
    Poll(#[source] std::io::Error),
    #[error("installing the SIGTERM and SIGINT handlers")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Sink(E),
}

pub struct Pump {
    pub decoder: Decoder,
    pub enricher: Enricher,
    /// Records read from the ring, by kind: the agent's side of the
    /// ring's ledger ([`crate::counts::RingCounts`]).
    pub received: KindCounts,
}

pub struct LoopOptions {
    pub tick: Option<Duration>,
    pub duration: Option<Duration>,
}

impl Pump {
    pub fn new(decoder: Decoder) -> Pump {
        Pump {
            decoder,
            enricher: Enricher::new(),
            received: KindCounts::default(),
        }
    }

    /// Reads everything the ring holds now.
    pub fn drain<S: Sink>(
        &mut self,
        ring: &mut RingBuf<MapData>,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        while let Some(item) = ring.next() {
            let decoded = self.decoder.decode_bytes(&item);
            drop(item);
            let Ok(mut ev) = decoded else { continue };
            self.received.add(ev.kind, 1);
            self.enricher.enrich(&mut ev);
            sink.event(ev, &mut self.enricher)?;
        }
        sink.batch_done()
    }

    /// Runs until SIGTERM, SIGINT, the deadline, or a sink error.
    pub async fn run<S: Sink>(
        &mut self,
        ring: RingBuf<MapData>,
        tracer: &mut Tracer,
        sink: &mut S,
        opts: LoopOptions,
    ) -> Result<(), PumpError<S::Error>> {
        use tokio::signal::unix::{signal, SignalKind};
        // SAFETY: the ring buffer owns its fd for as long as the AsyncFd
        // lives, and nothing else closes it.
        let mut fd = unsafe { AsyncFd::register(ring) }.map_err(|e| PumpError::Poll(e.into()))?;
        let mut term = signal(SignalKind::terminate()).map_err(PumpError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(PumpError::Signals)?;
        self.enricher.refresh_processes();
        let mut refresh = tokio::time::interval(Duration::from_secs(2));
        let every = opts
            .tick
            .unwrap_or(Duration::from_secs(86_400 * 365))
            .max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
        let outcome = loop {
            tokio::select! {
                guard = fd.readable_mut() => {
                    let mut guard = guard.map_err(PumpError::Poll)?;
                    if let Err(e) = self.drain(guard.get_inner_mut(), sink) {
                        break Err(PumpError::Sink(e));
                    }
                    guard.clear_ready();
                }
                _ = refresh.tick() => self.enricher.refresh_processes(),
                _ = tick.tick() => sink.tick(tracer, self.received).map_err(PumpError::Sink)?,
                _ = term.recv() => break Ok(()),
                _ = int.recv() => break Ok(()),
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break Ok(()),
            }
        };
        // Detach first, then read what is still in the ring.
        tracer.detach_all();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = self.drain(fd.get_mut(), sink);
        outcome
    }
}
