//! What every self-test case uses: a loaded tracer that remembers what it
//! has seen (`SelftestTracer`), the case's error type, and small helpers
//! for addresses, signals, cgroup directories and ids.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use fivexx_core::capability::HookState;
use fivexx_core::{KernelEvent, KernelEventKind as K};

use super::Status;
use crate::decode::Decoder;
use crate::enrich::Enricher;
use crate::tracer::{Tracer, TracerOptions};

/// Why a case failed. Its detail line is [`crate::chain`] of it.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// What the kernel reported is not what the case provoked.
    #[error("{0}")]
    Check(String),
    /// A step of the case itself failed (a socket, a child, a file).
    #[error("{what}")]
    Step {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Agent(#[from] crate::Error),
}

impl CaseError {
    /// `CaseError::Step` for `what`, as a `map_err` argument.
    pub fn step(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CaseError {
        let what = what.into();
        move |source| CaseError::Step { what, source }
    }
}

impl From<String> for CaseError {
    fn from(msg: String) -> CaseError {
        CaseError::Check(msg)
    }
}

impl From<&str> for CaseError {
    fn from(msg: &str) -> CaseError {
        CaseError::Check(msg.to_string())
    }
}

/// A case's verdict and its detail line.
pub type Outcome = Result<(Status, String), CaseError>;

/// A loaded tracer plus everything it has reported so far.
pub struct SelftestTracer {
    pub tracer: Tracer,
    pub(super) ring: RingBuf<MapData>,
    decoder: Decoder,
    pub(super) enricher: Enricher,
    pub seen: Vec<KernelEvent>,
    pub(super) child_exe: PathBuf,
}

const WAIT: Duration = Duration::from_secs(3);

impl SelftestTracer {
    pub fn start(child_exe: &Path) -> Result<SelftestTracer, CaseError> {
        Self::with_options(child_exe, &TracerOptions::default())
    }

    pub fn with_options(
        child_exe: &Path,
        opts: &TracerOptions,
    ) -> Result<SelftestTracer, CaseError> {
        let mut tracer = Tracer::load(opts)?;
        let ring = tracer.take_ring()?;
        let mut decoder = Decoder::new(
            crate::clock::wall_clock_offset_ns(),
            tracer.facts.layout.reset_reasons.clone(),
            String::new(),
        );
        decoder.hz = tracer.facts.layout.config.idle.hz;
        Ok(SelftestTracer {
            tracer,
            ring,
            decoder,
            enricher: Enricher::new(),
            seen: Vec::new(),
            child_exe: child_exe.to_path_buf(),
        })
    }

    /// Drains what the kernel has produced so far; returns how many records.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            n += 1;
            if let Ok(mut ev) = self.decoder.decode_bytes(&item) {
                self.enricher.enrich(&mut ev);
                self.seen.push(ev);
            }
        }
        n
    }

    /// Waits until an event matching `pred` has been seen.
    pub fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&KernelEvent) -> bool,
    ) -> Result<KernelEvent, CaseError> {
        let deadline = Instant::now() + WAIT;
        loop {
            self.drain();
            if let Some(ev) = self.seen.iter().find(|e| pred(e)) {
                return Ok(ev.clone());
            }
            if Instant::now() > deadline {
                return Err(format!("no {what} within {WAIT:?}").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asserts that no event matching `pred` arrives within `window`.
    pub fn expect_none(
        &mut self,
        what: &str,
        window: Duration,
        pred: impl Fn(&KernelEvent) -> bool,
    ) -> Result<(), CaseError> {
        std::thread::sleep(window);
        self.drain();
        match self.seen.iter().find(|e| pred(e)) {
            Some(ev) => Err(format!("unexpected {what}: {ev:?}").into()),
            None => Ok(()),
        }
    }

    /// How many events match `pred` once `window` has passed.
    pub(super) fn count_after(
        &mut self,
        window: Duration,
        pred: impl Fn(&KernelEvent) -> bool,
    ) -> usize {
        std::thread::sleep(window);
        self.drain();
        self.seen.iter().filter(|e| pred(e)).count()
    }

    pub(super) fn hook_state(&self, kind: K) -> Option<HookState> {
        self.tracer
            .report
            .hooks
            .iter()
            .find(|h| h.kind == kind)
            .map(|h| h.state)
    }

    /// Whether the hook of `tracepoint` (`category:name`) is attached.
    pub(super) fn attached(&self, tracepoint: &str) -> bool {
        self.tracer
            .report
            .hook(tracepoint)
            .is_some_and(|h| matches!(h.state, HookState::Attached | HookState::Degraded))
    }

    pub(super) fn require_attached(&self, kinds: &[K]) -> Result<(), CaseError> {
        for k in kinds {
            match self.hook_state(*k) {
                Some(HookState::Attached | HookState::Degraded) => {}
                other => return Err(format!("hook for {k} is {other:?}, not attached").into()),
            }
        }
        Ok(())
    }
}

pub(super) fn lo() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Matches a network event by its 4-tuple on loopback.
pub(super) fn tuple_is(ev: &KernelEvent, sport: u16, dport: u16) -> bool {
    ev.tuple
        .is_some_and(|t| t.saddr == lo() && t.daddr == lo() && t.sport == sport && t.dport == dport)
}

pub(super) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), CaseError> {
    if cond {
        Ok(())
    } else {
        Err(CaseError::Check(msg()))
    }
}

pub(super) fn kill(pid: u32, sig: i32) -> Result<(), CaseError> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid as i32, sig) } != 0 {
        return Err(CaseError::Step {
            what: format!("kill({pid}, {sig})"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

pub(super) fn page_size() -> u32 {
    // SAFETY: sysconf(3) takes a plain integer and touches no memory of ours.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u32
}

/// Creates the missing directories of `rel` under `root`; returns the ones
/// it made, outermost first, for the caller to remove in reverse.
pub fn make_dirs(root: &Path, rel: &str) -> Result<Vec<PathBuf>, CaseError> {
    let mut made = Vec::new();
    let mut p = root.to_path_buf();
    for seg in rel.split('/') {
        p.push(seg);
        if !p.exists() {
            std::fs::create_dir(&p).map_err(CaseError::step(format!("mkdir {}", p.display())))?;
            made.push(p.clone());
        }
    }
    Ok(made)
}

/// A random UUID from the kernel, as kubelet's pod UIDs look.
pub(super) fn kernel_uuid() -> Result<String, CaseError> {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .map_err(CaseError::step("reading /proc/sys/kernel/random/uuid"))
}

/// 64 hex digits, as containerd's container ids look.
pub(super) fn container_id() -> Result<String, CaseError> {
    Ok(format!("{}{}", kernel_uuid()?, kernel_uuid()?).replace('-', ""))
}
