//! The wall clock, in the engine's unit (ns since the Unix epoch). Its own
//! module because both the session (stamping Kubernetes facts) and the
//! agent links (when a node was last heard) read it, and neither should
//! reach into the other for it.

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
