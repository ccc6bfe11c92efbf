//! Load the embedded object with this kernel's layouts, attach every hook
//! that can be attached, and expose the ring buffer and the counters.
//!
//! This file is longer than 600 lines because loading, the attach of each
//! hook in its two forms (tp_btf, then the classic tracepoint) and the
//! fallback between them share one loader's state; its tests sit with it.

use std::collections::BTreeSet;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use fivexx_core::capability::{CapabilityReport, HookForm, HookState, HookStatus};
use fivexx_core::KernelEventKind;
use tracer_ebpf::{
    CONFIG_SYMBOL, DROPPED_MAP, EVENTS_MAP, GENERATED_MAP, HTTP_CGROUPS_MAP, HTTP_COUNTS_MAP,
    STATE_COUNTS_LEN, STATE_COUNTS_MAP,
};

use crate::btf::KernelBtf;
use crate::counts::{KindCounts, RingCounts};
use crate::layout::{Hook, HookPlan, KernelLayout};
use crate::tracefs::Tracefs;
use crate::Error;

/// The kernel programs, built for bpfel-unknown-none by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// 8 MiB: about 58k records, ~400 ms of headroom at 130k events/s. The
/// benchmark (bench/README.md) dropped a few events with 1 MiB whenever the
/// agent was descheduled for ~50 ms on a loaded node, and none with 8 MiB.
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

#[derive(Clone, Debug)]
pub struct TracerOptions {
    /// Ring buffer size: a power of two, a multiple of the page size.
    pub ring_bytes: u32,
    /// Attach only these kinds (None: all).
    pub kinds: Option<BTreeSet<KernelEventKind>>,
    pub node: String,
    /// cgroups (paths under the cgroup v2 mount) whose writes the HTTP peek
    /// reads. Empty: the peek is not attached at all.
    pub http_cgroups: Vec<String>,
    /// Attach every hook as a classic tracepoint, even where tp_btf works.
    pub classic_tracepoints: bool,
    /// Attach kfree_skb where it only duplicates tcp_send_reset (bench).
    pub force_kfree_skb: bool,
    /// Do not read the idle time of closing connections (bench: its cost
    /// per close, side by side with the default).
    pub no_idle_time: bool,
}

impl Default for TracerOptions {
    fn default() -> Self {
        TracerOptions {
            ring_bytes: DEFAULT_RING_BYTES,
            kinds: None,
            node: String::new(),
            http_cgroups: Vec::new(),
            classic_tracepoints: false,
            force_kfree_skb: false,
            no_idle_time: false,
        }
    }
}

/// Why the HTTP peek's hooks are not attached: nobody asked for it.
pub const HTTP_ON_DEMAND: &str =
    "HTTP peek off: attached on demand (--http-cgroup, or a client naming proxy pods)";

/// Resolves `--http-cgroup` paths to cgroup ids (inode numbers).
pub fn resolve_cgroups(paths: &[String]) -> Result<Vec<(String, u64)>, Error> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let root = crate::enrich::cgroup2_root().ok_or_else(|| Error::Io {
        what: "the cgroup v2 mount".into(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no cgroup2 filesystem in /proc/self/mounts",
        ),
    })?;
    paths
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(root.to_str().unwrap_or("")).unwrap_or(p);
            let dir = root.join(rel.trim_start_matches('/'));
            crate::enrich::cgroup_id_of(&dir)
                .map(|id| (p.clone(), id))
                .ok_or_else(|| Error::Io {
                    what: format!("--http-cgroup {p}"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("no cgroup {}", dir.display()),
                    ),
                })
        })
        .collect()
}

/// Gives the state-change programs the jiffies clock they need to read a
/// closing connection's idle time; where the kernel's BTF lacks the
/// stamps or the clock cannot be measured, the hook is degraded and says
/// so (its other records are unchanged).
fn idle_clock(layout: &mut KernelLayout, release: &str) {
    let idle = &mut layout.config.idle;
    let why = if idle.tcp_lsndtime < 0 || idle.icsk_lrcvtime < 0 {
        "the kernel's BTF has no tcp_sock lsndtime / inet_conn.icsk_ack.lrcvtime".to_string()
    } else {
        match crate::jiffies::measure(release) {
            Ok(clock) => {
                clock.apply(idle);
                return;
            }
            Err(e) => crate::chain(&e),
        }
    };
    *idle = tracer_ebpf::IdleLayout::UNKNOWN;
    layout.degrade(
        &[KernelEventKind::StateChange],
        &format!("idle time of closing connections not read ({why}): idle keep-alive closes are not reported"),
    );
}

/// What is known about this kernel without loading anything.
pub struct KernelFacts {
    pub release: String,
    pub tracefs: Tracefs,
    pub layout: KernelLayout,
    pub btf_error: Option<String>,
}

impl KernelFacts {
    pub fn discover(may_mount: bool) -> Result<KernelFacts, Error> {
        let tracefs = Tracefs::discover(may_mount)?;
        let (btf, btf_error) = match KernelBtf::from_sys_fs() {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(crate::chain(&e))),
        };
        let mut layout = KernelLayout::discover(&tracefs, btf.as_ref())?;
        // What the container took away shows in the report, not as a
        // silent half-working agent.
        if let Some(note) = crate::pidns::outside_host_note() {
            use KernelEventKind::{Exit, OomVictim, Signal};
            layout.degrade(&[Signal, Exit, OomVictim], &note);
        }
        idle_clock(&mut layout, &kernel_release());
        if crate::enrich::cgroup2_root().is_none() {
            layout.degrade(
                &[KernelEventKind::HttpResponse],
                "no cgroup v2 hierarchy is mounted here (the DaemonSet mounts the host's \
                 /sys/fs/cgroup): the peek cannot find the proxy pods' cgroups",
            );
        }
        Ok(KernelFacts {
            release: kernel_release(),
            tracefs,
            layout,
            btf_error,
        })
    }

    /// The report before (or without) loading: what the layouts allow.
    pub fn report(&self, ring_bytes: u32, node: &str) -> CapabilityReport {
        CapabilityReport {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            node: node.to_string(),
            kernel_release: self.release.clone(),
            tracefs: Some(self.tracefs.root().display().to_string()),
            btf: self.btf_error.is_none(),
            btf_error: self.btf_error.clone(),
            btf_offsets: self.layout.btf_offsets.clone(),
            ring_buffer_bytes: ring_bytes,
            loaded: false,
            hooks: self
                .layout
                .plans
                .iter()
                .map(|p| HookStatus {
                    tracepoint: p.hook.tracepoint(),
                    kind: p.hook.kind,
                    state: if p.enabled() {
                        HookState::NotLoaded
                    } else {
                        p.state
                    },
                    reason: p.reason.clone(),
                    notes: p.notes.clone(),
                    form: Some(p.form),
                })
                .collect(),
        }
    }
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Loaded and attached programs. Dropping it detaches everything.
pub struct Tracer {
    ebpf: Ebpf,
    pub facts: KernelFacts,
    pub report: CapabilityReport,
    /// cgroup ids now in the HTTP peek's set.
    http_set: BTreeSet<u64>,
    /// Whether the peek's syscall hooks are attached now.
    http_attached: bool,
    /// `--kinds` of the run, which may exclude the peek.
    kinds: Option<BTreeSet<KernelEventKind>>,
}

impl Tracer {
    pub fn load(opts: &TracerOptions) -> Result<Tracer, Error> {
        crate::privilege::check_can_trace()?;
        let http_cgroups = resolve_cgroups(&opts.http_cgroups)?;
        let mut facts = KernelFacts::discover(true)?;
        if opts.classic_tracepoints {
            facts.layout.force_classic();
        }
        if opts.force_kfree_skb {
            facts.layout.force_kfree_skb();
        }
        if opts.no_idle_time && facts.layout.config.idle.known() {
            facts.layout.config.idle = tracer_ebpf::IdleLayout::UNKNOWN;
            facts.layout.degrade(
                &[KernelEventKind::StateChange],
                "idle time of closing connections not read (--no-idle-time)",
            );
        }
        raise_memlock_limit();
        // aya resolves a tp_btf program's target in its own parse of the
        // kernel's BTF; without it every hook takes its classic form.
        let aya_btf = if facts.layout.plans.iter().any(|p| p.form == HookForm::TpBtf) {
            match aya::Btf::from_sys_fs() {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!("kernel BTF unreadable for tp_btf ({e}); classic tracepoints");
                    facts.layout.force_classic();
                    None
                }
            }
        } else {
            None
        };
        let config = facts.layout.config;
        let mut ebpf = EbpfLoader::new()
            .override_global(CONFIG_SYMBOL, &config, true)
            .map_max_entries(EVENTS_MAP, opts.ring_bytes)
            .load(OBJECT)?;

        let mut report = facts.report(opts.ring_bytes, &opts.node);
        report.loaded = true;
        if !http_cgroups.is_empty() {
            let map = ebpf
                .map_mut(HTTP_CGROUPS_MAP)
                .ok_or(Error::MissingMap(HTTP_CGROUPS_MAP))?;
            let mut set = aya::maps::HashMap::<_, u64, u8>::try_from(map)
                .map_err(map_error(HTTP_CGROUPS_MAP))?;
            for (_, id) in &http_cgroups {
                set.insert(id, 1, 0).map_err(map_error(HTTP_CGROUPS_MAP))?;
            }
        }
        for (plan, status) in facts.layout.plans.iter().zip(report.hooks.iter_mut()) {
            if !plan.enabled() {
                continue;
            }
            if plan.hook.kind == KernelEventKind::HttpResponse && http_cgroups.is_empty() {
                status.state = HookState::NotLoaded;
                status.reason = Some(HTTP_ON_DEMAND.to_string());
                continue;
            }
            if opts
                .kinds
                .as_ref()
                .is_some_and(|k| !k.contains(&plan.hook.kind))
            {
                status.state = HookState::NotLoaded;
                status.reason = Some("not requested (--kinds)".to_string());
                continue;
            }
            attach_hook(&mut ebpf, plan, aya_btf.as_ref(), status);
        }
        let http_attached = !http_cgroups.is_empty();
        Ok(Tracer {
            ebpf,
            facts,
            report,
            http_set: http_cgroups.iter().map(|(_, id)| *id).collect(),
            http_attached,
            kinds: opts.kinds.clone(),
        })
    }

    /// The cgroup ids the HTTP peek reads now.
    pub fn http_set(&self) -> &BTreeSet<u64> {
        &self.http_set
    }

    /// Makes `ids` the HTTP peek's cgroup set, attaching the peek's hooks
    /// when the set becomes non-empty and detaching them when it empties:
    /// the syscall hooks run on every write of the node, so a node nobody
    /// asks about pays nothing. Returns whether the peek is on.
    pub fn set_http_cgroups(&mut self, ids: &BTreeSet<u64>) -> Result<bool, Error> {
        if *ids == self.http_set {
            return Ok(self.http_attached);
        }
        let map = self
            .ebpf
            .map_mut(HTTP_CGROUPS_MAP)
            .ok_or(Error::MissingMap(HTTP_CGROUPS_MAP))?;
        let mut set =
            aya::maps::HashMap::<_, u64, u8>::try_from(map).map_err(map_error(HTTP_CGROUPS_MAP))?;
        for id in self.http_set.difference(ids) {
            let _ = set.remove(id);
        }
        for id in ids.difference(&self.http_set) {
            set.insert(id, 1, 0).map_err(map_error(HTTP_CGROUPS_MAP))?;
        }
        self.http_set = ids.clone();
        let want = !ids.is_empty()
            && self
                .kinds
                .as_ref()
                .is_none_or(|k| k.contains(&KernelEventKind::HttpResponse));
        if want == self.http_attached {
            return Ok(want);
        }
        let plans: Vec<_> = self
            .facts
            .layout
            .plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.hook.kind == KernelEventKind::HttpResponse && p.enabled())
            .map(|(i, p)| (i, p.clone()))
            .collect();
        for (i, plan) in plans {
            let status = &mut self.report.hooks[i];
            if want {
                status.reason = None;
                // The peek's hooks are classic tracepoints: no BTF needed.
                attach_hook(&mut self.ebpf, &plan, None, status);
            } else {
                detach_hook(&mut self.ebpf, &plan.hook);
                status.state = HookState::NotLoaded;
                status.reason = Some(HTTP_ON_DEMAND.to_string());
            }
        }
        self.http_attached = want;
        Ok(want)
    }

    /// The ring buffer of records; can be taken once.
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, Error> {
        let map = self
            .ebpf
            .take_map(EVENTS_MAP)
            .ok_or(Error::MissingMap(EVENTS_MAP))?;
        RingBuf::try_from(map).map_err(map_error(EVENTS_MAP))
    }

    /// The ring's ledger now: the kernel's generated and dropped counts,
    /// summed over CPUs, beside what the caller `received` from the ring.
    pub fn ring_counts(&self, received: KindCounts) -> Result<RingCounts, Error> {
        let mut c = RingCounts {
            received,
            ..RingCounts::default()
        };
        sum_into(&self.ebpf, GENERATED_MAP, c.generated.slots_mut())?;
        sum_into(&self.ebpf, DROPPED_MAP, c.dropped.slots_mut())?;
        Ok(c)
    }

    /// TCP state transitions counted in the kernel, `(old, new, count)`.
    pub fn state_transitions(&self) -> Result<Vec<(u8, u8, u64)>, Error> {
        let mut all = vec![0u64; STATE_COUNTS_LEN as usize];
        sum_into(&self.ebpf, STATE_COUNTS_MAP, &mut all)?;
        Ok(all
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| ((i >> 4) as u8, (i & 0xf) as u8, *n))
            .collect())
    }

    /// Status lines seen by the HTTP peek, by class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub fn http_counts(&self) -> Result<[u64; 5], Error> {
        let mut all = [0u64; 8];
        sum_into(&self.ebpf, HTTP_COUNTS_MAP, &mut all)?;
        Ok([all[1], all[2], all[3], all[4], all[5]])
    }

    /// Detaches every program now (records already in the ring stay readable).
    pub fn detach_all(&mut self) {
        for hook in crate::layout::HOOKS {
            detach_hook(&mut self.ebpf, &hook);
        }
    }
}

/// Why one hook could not be attached; the hook's reason in the report.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("program {0} missing from the object")]
    MissingProgram(&'static str),
    #[error("program {program} is not a tracepoint program")]
    NotATracepoint {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// `summary` is the verifier log cut to what says why; the whole log
    /// stays in `source`.
    #[error("verifier or load error: {summary}")]
    Load {
        summary: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attach failed")]
    Attach(#[source] aya::programs::ProgramError),
}

impl HookError {
    /// One line for the capability report: the cause chain, except that a
    /// load error's verifier log (which can run to thousands of lines) is
    /// given only as its summary.
    pub fn reason(&self) -> String {
        match self {
            HookError::Load { .. } => self.to_string(),
            _ => crate::chain(self),
        }
    }
}

/// Attaches one planned hook and records the outcome in its status: the
/// planned state (attached or degraded), or failed with the reason. A
/// tp_btf program the kernel refuses falls back to the classic
/// tracepoint, and the status says so.
fn attach_hook(ebpf: &mut Ebpf, plan: &HookPlan, btf: Option<&aya::Btf>, status: &mut HookStatus) {
    let hook = &plan.hook;
    if let (HookForm::TpBtf, Some(prog), Some(btf)) = (plan.form, hook.btf, btf) {
        match attach_btf(ebpf, prog.program, hook.name, btf) {
            Ok(()) => {
                status.state = plan.state;
                status.form = Some(HookForm::TpBtf);
                return;
            }
            Err(e) => {
                let reason = e.reason();
                tracing::warn!(
                    "{} as tp_btf: {reason}; trying the classic tracepoint",
                    hook.tracepoint()
                );
                status
                    .notes
                    .push(format!("tp_btf refused ({reason}): classic tracepoint"));
            }
        }
    } else if let Some(why) = &plan.classic_because {
        tracing::debug!("{}: classic tracepoint ({why})", hook.tracepoint());
    }
    status.form = Some(HookForm::Tracepoint);
    match attach(ebpf, hook.program, hook.category, hook.name) {
        Ok(()) => status.state = plan.state,
        Err(e) => {
            let reason = e.reason();
            tracing::warn!("{}: {reason}", hook.tracepoint());
            status.state = HookState::Failed;
            status.reason = Some(reason);
        }
    }
}

/// Detaches and unloads one hook's programs, both forms (a no-op for
/// what is not loaded).
fn detach_hook(ebpf: &mut Ebpf, hook: &Hook) {
    if let Some(tp) = ebpf
        .program_mut(hook.program)
        .and_then(|p| <&mut TracePoint>::try_from(p).ok())
    {
        let _ = tp.unload();
    }
    if let Some(tp) = hook.btf.and_then(|b| {
        ebpf.program_mut(b.program)
            .and_then(|p| <&mut BtfTracePoint>::try_from(p).ok())
    }) {
        let _ = tp.unload();
    }
}

fn attach_btf(
    ebpf: &mut Ebpf,
    program: &'static str,
    tracepoint: &str,
    btf: &aya::Btf,
) -> Result<(), HookError> {
    let prog = ebpf
        .program_mut(program)
        .ok_or(HookError::MissingProgram(program))?;
    let tp: &mut BtfTracePoint = prog
        .try_into()
        .map_err(|source| HookError::NotATracepoint { program, source })?;
    tp.load(tracepoint, btf).map_err(|source| HookError::Load {
        summary: summarize_verifier(&format!("{source:#}")),
        source,
    })?;
    if let Err(e) = tp.attach() {
        let _ = tp.unload();
        return Err(HookError::Attach(e));
    }
    Ok(())
}

fn attach(
    ebpf: &mut Ebpf,
    program: &'static str,
    category: &str,
    name: &str,
) -> Result<(), HookError> {
    let prog = ebpf
        .program_mut(program)
        .ok_or(HookError::MissingProgram(program))?;
    let tp: &mut TracePoint = prog
        .try_into()
        .map_err(|source| HookError::NotATracepoint { program, source })?;
    tp.load().map_err(|source| HookError::Load {
        summary: summarize_verifier(&format!("{source:#}")),
        source,
    })?;
    tp.attach(category, name).map_err(HookError::Attach)?;
    Ok(())
}

/// `Error::Map` for the map `name`, as a `map_err` argument.
fn map_error(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> Error {
    move |source| Error::Map { name, source }
}

/// The verifier log can run to thousands of lines: keep its first line and
/// its last four, which say what was rejected and where.
fn summarize_verifier(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() <= 5 {
        return lines.join(" | ");
    }
    format!(
        "{} | ... | {}",
        lines[0],
        lines[lines.len() - 4..].join(" | ")
    )
}

fn sum_into(ebpf: &Ebpf, name: &'static str, out: &mut [u64]) -> Result<(), Error> {
    let map = ebpf.map(name).ok_or(Error::MissingMap(name))?;
    let arr = PerCpuArray::<_, u64>::try_from(map).map_err(map_error(name))?;
    for (i, slot) in out.iter_mut().enumerate() {
        let values = arr.get(&(i as u32), 0).map_err(map_error(name))?;
        *slot = values.iter().sum();
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF maps and programs to RLIMIT_MEMLOCK
/// (later ones to the memory cgroup), whose default (64 KiB or 8 MiB) is
/// far below one 8 MiB ring. Raise it to infinity, or at least to the
/// hard limit; without CAP_SYS_RESOURCE only the latter can work, and on
/// such a kernel the load then fails with EPERM, so say why beforehand.
fn raise_memlock_limit() {
    let infinite = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `infinite` is a local rlimit that outlives the call, which
    // only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &infinite) } == 0 {
        return;
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a local rlimit the call fills; it outlives it.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } == 0
        && cur.rlim_cur < cur.rlim_max
    {
        let to_hard = libc::rlimit {
            rlim_cur: cur.rlim_max,
            rlim_max: cur.rlim_max,
        };
        // SAFETY: as above; raising the soft limit to the hard one needs
        // no privilege.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &to_hard) };
        cur.rlim_cur = cur.rlim_max;
    }
    if charges_memlock(&kernel_release()) && cur.rlim_cur != libc::RLIM_INFINITY {
        tracing::warn!(
            "kernel {} charges BPF memory to RLIMIT_MEMLOCK (before 5.11) and the limit stays at \
             {} KiB: loading may fail with EPERM; grant CAP_SYS_RESOURCE (kubectl fivexx deploy \
             adds it for nodes with such kernels)",
            kernel_release(),
            cur.rlim_cur / 1024
        );
    } else {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; fine on 5.11+");
    }
}

/// Whether a kernel release charges BPF memory to RLIMIT_MEMLOCK (< 5.11).
pub fn charges_memlock(release: &str) -> bool {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let version = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    version < (5, 11)
}

#[cfg(test)]
mod tests {
    use super::charges_memlock;

    #[test]
    fn only_kernels_before_5_11_charge_memlock() {
        assert!(charges_memlock("5.10.0-46-cloud-amd64"));
        assert!(charges_memlock("4.19.0"));
        assert!(!charges_memlock("5.11.0"));
        assert!(!charges_memlock("6.1.0-57-cloud-amd64"));
        assert!(!charges_memlock("6.18.44-fc-v1045"));
    }
}
