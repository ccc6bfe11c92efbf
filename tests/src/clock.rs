//! Timestamps the lab records: wall clock (to join with the Kubernetes
//! timeline and the agent's `wall_ns`) and CLOCK_MONOTONIC (the agent's
//! `mono_ns`, the same clock as `bpf_ktime_get_ns`).

use serde::{Deserialize, Serialize};

/// One instant on both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub wall_ns: i64,
    pub mono_ns: u64,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            wall_ns: wall_ns(),
            mono_ns: mono_ns(),
        }
    }
}

pub fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// RFC 3339 with microseconds, UTC, as Kubernetes' MicroTime prints it.
pub fn rfc3339(wall_ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(wall_ns)) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        Err(_) => format!("@{wall_ns}ns"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instant() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            super::rfc3339(1_764_044_587_123_456_789),
            "2025-11-25T04:23:07.123456Z"
        );
    }
}
