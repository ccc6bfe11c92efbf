//! The two clocks the agent reads: CLOCK_MONOTONIC (the kernel's
//! `bpf_ktime_get_ns()` timebase) and its offset to the wall clock.
//!
//! A module of its own because both the loader (`tracer`, converting
//! record times once at start-up) and the jiffies measurement (`jiffies`,
//! pairing a tick with a monotonic time) read them: kept in either, the
//! two would import each other.

/// Unix-epoch ns minus CLOCK_MONOTONIC ns, measured now: added to the
/// kernel's timestamps it gives wall-clock time. The realtime read is
/// bracketed by two monotonic reads and paired with their midpoint, so a
/// preemption between the calls costs at most half its length.
pub fn wall_clock_offset_ns() -> i64 {
    let m1 = now(libc::CLOCK_MONOTONIC);
    let r = now(libc::CLOCK_REALTIME);
    let m2 = now(libc::CLOCK_MONOTONIC);
    r - (m1 + (m2 - m1) / 2)
}

/// CLOCK_MONOTONIC now, in ns: comparable with the records' `ts_ns`.
pub fn monotonic_ns() -> u64 {
    now(libc::CLOCK_MONOTONIC) as u64
}

fn now(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a local timespec the call fills; it outlives it.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_time_advances_and_the_wall_clock_is_after_2020() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        let wall = wall_clock_offset_ns() + monotonic_ns() as i64;
        assert!(wall > 1_577_836_800 * 1_000_000_000, "{wall}");
    }
}
