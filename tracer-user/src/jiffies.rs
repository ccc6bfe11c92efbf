//! The kernel's jiffies clock, measured once at start-up, so that the
//! programs can tell how long a socket has been idle from its jiffies
//! stamps (`tcp_sock::lsndtime`, `icsk_ack.lrcvtime`; see
//! [`tracer_ebpf::IdleLayout`]).
//!
//! Why measured: a tracing program cannot read jiffies on every kernel
//! (the `bpf_jiffies64` helper is not offered to tracing programs
//! everywhere, and the `jiffies` symbol is absent from kallsyms without
//! KALLSYMS_ALL), and HZ is a build option. Jiffies advance one per tick of
//! the monotonic clock, so one (monotonic ns, jiffies) pair and HZ give
//! jiffies at any later monotonic time; `/proc/timer_list` prints both
//! ("now at N nsecs", "jiffies: J") in one read. Inside a container the
//! runtime masks it, so the DaemonSet mounts the host's file alone at
//! [`HOST_TIMER_LIST`]; failing both, `/proc/schedstat` gives jiffies
//! (absent on kernels without CONFIG_SCHED_INFO).

use std::time::{Duration, Instant};

use tracer_ebpf::IdleLayout;

/// ESTABLISHED -> FIN_WAIT1 is a record only after this much idle time:
/// closes right after a response (idle ~0, the common case) stay counters;
/// keep-alive idle timeouts (Gunicorn's 2 s, Node.js's 5 s, nginx's 60 s)
/// are all far above it.
pub const MIN_IDLE_CLOSE_MS: u32 = 100;

/// Where the DaemonSet mounts the host's `/proc/timer_list` (one
/// read-only file; runc masks the container's own).
pub const HOST_TIMER_LIST: &str = "/host/proc/timer_list";

/// The timer lists tried in order: the container's own, then the host's.
const TIMER_LISTS: [&str; 2] = ["/proc/timer_list", HOST_TIMER_LIST];

/// The HZ values Linux can be built with (kernel/Kconfig.hz).
const HZ_CHOICES: [u32; 4] = [100, 250, 300, 1000];

/// `jiffies_64` starts at INITIAL_JIFFIES, (u32)(-300 * HZ), so that the
/// 32-bit value wraps five minutes after boot.
fn initial_jiffies(hz: u32) -> u64 {
    (1u64 << 32) - 300 * u64::from(hz)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClockError {
    #[error("unreadable ({0})")]
    Unreadable(String),
    #[error("no jiffies in it")]
    Unparsable,
    #[error("no jiffies clock: {timer_list}; /proc/schedstat: {schedstat}")]
    NoClock {
        timer_list: String,
        schedstat: String,
    },
    #[error("HZ is not in the kernel config and could not be measured")]
    Hz,
}

/// One reading of the two clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub mono_ns: u64,
    pub jiffies: u64,
}

/// The measured clock, as the programs read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JiffiesClock {
    pub hz: u32,
    /// A tick: jiffies equal to `base_jiffies` from `base_ns` on.
    pub base_jiffies: u64,
    pub base_ns: u64,
}

impl JiffiesClock {
    /// Writes the clock into the programs' idle layout (its offsets come
    /// from BTF, see layout/offsets.rs).
    pub fn apply(&self, l: &mut IdleLayout) {
        l.hz = self.hz;
        l.min_idle_jiffies = (MIN_IDLE_CLOSE_MS * self.hz).div_ceil(1000);
        l.base_jiffies = self.base_jiffies as u32;
        l.base_ns_lo = self.base_ns as u32;
        l.base_ns_hi = (self.base_ns >> 32) as u32;
    }
}

/// Parses one `/proc/timer_list`: its `now at` line and the first CPU's
/// `jiffies:` line.
pub fn parse_timer_list(text: &str) -> Option<Sample> {
    let mut now = None;
    let mut jiffies = None;
    for line in text.lines() {
        let line = line.trim();
        if now.is_none() {
            if let Some(rest) = line.strip_prefix("now at ") {
                now = rest.strip_suffix(" nsecs")?.trim().parse().ok();
            }
        } else if let Some(rest) = line.strip_prefix("jiffies:") {
            jiffies = rest.trim().parse().ok();
            break;
        }
    }
    Some(Sample {
        mono_ns: now?,
        jiffies: jiffies?,
    })
}

/// CONFIG_HZ from a kernel config text (`/boot/config-<release>`).
pub fn hz_from_config(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|hz| HZ_CHOICES.contains(hz))
}

/// HZ from one sample: jiffies = INITIAL_JIFFIES + HZ * uptime. The best
/// fitting choice wins when it fits within half a second and clearly
/// better than the next (near five minutes of uptime all choices meet).
pub fn hz_from_uptime(s: Sample) -> Option<u32> {
    let mut fits: Vec<(f64, u32)> = HZ_CHOICES
        .iter()
        .map(|&hz| {
            let want = initial_jiffies(hz) as f64 + s.mono_ns as f64 * f64::from(hz) / 1e9;
            ((s.jiffies as f64 - want).abs(), hz)
        })
        .collect();
    fits.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (best, hz) = fits[0];
    let next = fits[1].0;
    (best < f64::from(hz) / 2.0 && next > 4.0 * best + 20.0).then_some(hz)
}

/// HZ from the rate between two samples at least 100 ms apart.
pub fn hz_from_rate(a: Sample, b: Sample) -> Option<u32> {
    let dt = b.mono_ns.checked_sub(a.mono_ns)? as f64 / 1e9;
    if dt < 0.1 {
        return None;
    }
    let rate = b.jiffies.checked_sub(a.jiffies)? as f64 / dt;
    HZ_CHOICES
        .iter()
        .copied()
        .min_by(|x, y| {
            (f64::from(*x) - rate)
                .abs()
                .total_cmp(&(f64::from(*y) - rate).abs())
        })
        .filter(|hz| (f64::from(*hz) - rate).abs() < f64::from(*hz) * 0.1)
}

/// The tick nearest the samples: each sample (t, j) says tick j came at or
/// before t, so tick j0 came at or before t - (j - j0) / HZ for every
/// sample; the smallest of those bounds is the tightest.
pub fn base_of(samples: &[Sample], hz: u32) -> Option<JiffiesClock> {
    let first = samples.first()?;
    let tick_ns = 1e9 / f64::from(hz);
    let base_ns = samples
        .iter()
        .filter_map(|s| {
            let ticks = s.jiffies.checked_sub(first.jiffies)?;
            Some(s.mono_ns as f64 - ticks as f64 * tick_ns)
        })
        .fold(f64::INFINITY, f64::min);
    base_ns.is_finite().then(|| JiffiesClock {
        hz,
        base_jiffies: first.jiffies,
        base_ns: base_ns.max(0.0) as u64,
    })
}

/// The jiffies in `/proc/schedstat`'s `timestamp` line.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("timestamp "))
        .and_then(|v| v.trim().parse().ok())
}

/// Where the samples come from. `/proc/timer_list` prints the kernel's
/// own monotonic time beside jiffies; container runtimes mask it (runc's
/// default masked paths), so inside a pod `/proc/schedstat`'s jiffies
/// `timestamp` is read instead, stamped with CLOCK_MONOTONIC taken just
/// after the read (a bound the estimator in [`base_of`] accepts: tick j
/// came at or before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    TimerList(&'static str),
    Schedstat,
}

fn read_sample(source: Source) -> Result<Sample, ClockError> {
    match source {
        Source::TimerList(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| ClockError::Unreadable(e.to_string()))?;
            if text.is_empty() {
                // runc masks it with /dev/null; an unmounted target is empty too.
                return Err(ClockError::Unreadable(
                    "empty: masked, or not mounted".into(),
                ));
            }
            parse_timer_list(&text).ok_or(ClockError::Unparsable)
        }
        Source::Schedstat => {
            let text = std::fs::read_to_string("/proc/schedstat")
                .map_err(|e| ClockError::Unreadable(e.to_string()))?;
            let mono_ns = crate::clock::monotonic_ns();
            let jiffies = parse_schedstat(&text).ok_or(ClockError::Unparsable)?;
            Ok(Sample { mono_ns, jiffies })
        }
    }
}

fn first_source() -> Result<(Source, Sample), ClockError> {
    let mut timer_list = Vec::new();
    for path in TIMER_LISTS {
        match read_sample(Source::TimerList(path)) {
            Ok(s) => return Ok((Source::TimerList(path), s)),
            Err(e) => timer_list.push(format!("{path}: {e}")),
        }
    }
    match read_sample(Source::Schedstat) {
        Ok(s) => Ok((Source::Schedstat, s)),
        Err(schedstat) => Err(ClockError::NoClock {
            timer_list: timer_list.join("; "),
            schedstat: schedstat.to_string(),
        }),
    }
}

/// Measures the running kernel's clock: HZ from `/boot/config-<release>`,
/// else from the uptime fit, else from the rate over 150 ms; the base
/// from samples over a few ticks (about 20 ms).
pub fn measure(release: &str) -> Result<JiffiesClock, ClockError> {
    let (source, first) = first_source()?;
    let mut samples = vec![first];
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(20) {
        std::thread::sleep(Duration::from_micros(700));
        samples.push(read_sample(source)?);
    }
    let config = std::fs::read_to_string(format!("/boot/config-{release}")).ok();
    let hz = match config.as_deref().and_then(hz_from_config) {
        Some(hz) => hz,
        None => match hz_from_uptime(samples[0]) {
            Some(hz) => hz,
            None => {
                std::thread::sleep(Duration::from_millis(150));
                hz_from_rate(samples[0], read_sample(source)?).ok_or(ClockError::Hz)?
            }
        },
    };
    tracing::debug!(
        hz,
        samples = samples.len(),
        ?source,
        "jiffies clock measured"
    );
    base_of(&samples, hz).ok_or(ClockError::Unparsable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_timer_list() {
        let text = "Timer List Version: v0.10\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 1612098814520 nsecs\n\ncpu: 0\n  .idle_jiffies   : 4295295217\n  .last_jiffies   : 4295295231\njiffies: 4295295263\n";
        assert_eq!(
            parse_timer_list(text),
            Some(Sample {
                mono_ns: 1_612_098_814_520,
                jiffies: 4_295_295_263
            })
        );
        assert_eq!(parse_timer_list("now at x nsecs\njiffies: 1\n"), None);
        assert_eq!(parse_timer_list(""), None);
        assert_eq!(
            parse_schedstat("version 15\ntimestamp 4294892345\ncpu0 0 0 0\n"),
            Some(4_294_892_345)
        );
        assert_eq!(parse_schedstat("version 15\n"), None);
    }

    #[test]
    fn hz_fits_the_uptime_but_not_near_five_minutes() {
        // The host this was written on: HZ 250, 1612 s up.
        let s = Sample {
            mono_ns: 1_612_098_814_520,
            jiffies: 4_295_295_263,
        };
        assert_eq!(hz_from_uptime(s), Some(250));
        // A guest 4 s after boot at HZ 1000.
        let g = Sample {
            mono_ns: 4_000_000_000,
            jiffies: initial_jiffies(1000) + 4_000,
        };
        assert_eq!(hz_from_uptime(g), Some(1000));
        let five = Sample {
            mono_ns: 300_000_000_000,
            jiffies: 1 << 32,
        };
        assert_eq!(hz_from_uptime(five), None);
        assert_eq!(hz_from_config("CONFIG_A=y\nCONFIG_HZ=300\n"), Some(300));
        assert_eq!(hz_from_config("CONFIG_HZ=7\n"), None);
    }

    #[test]
    fn rate_and_base() {
        let a = Sample {
            mono_ns: 1_000_000_000,
            jiffies: 500,
        };
        let b = Sample {
            mono_ns: 1_200_000_000,
            jiffies: 550,
        };
        assert_eq!(hz_from_rate(a, b), Some(250));
        assert_eq!(hz_from_rate(a, a), None);
        // Tick 500 at 1.0005 s: samples 1.0015 s (500) and 1.0046 s (501).
        let s = [
            Sample {
                mono_ns: 1_001_500_000,
                jiffies: 500,
            },
            Sample {
                mono_ns: 1_004_600_000,
                jiffies: 501,
            },
        ];
        let c = base_of(&s, 250).unwrap();
        assert_eq!((c.base_jiffies, c.base_ns), (500, 1_000_600_000));
        let mut l = IdleLayout::UNKNOWN;
        c.apply(&mut l);
        assert_eq!(l.min_idle_jiffies, 25);
        assert_eq!(l.jiffies_at(1_000_600_000 + 700_000_000), 500 + 175);
        assert_eq!(l.idle_jiffies(675, 500, 490), 175);
        assert_eq!(l.idle_jiffies(675, 680, 670), 5);
    }
}
