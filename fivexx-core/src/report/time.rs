//! UTC times without a date-time dependency: formatting for reports and
//! parsing of `--since/--until`.

const NS: i64 = 1_000_000_000;

/// `2023-11-14T22:13:20.123Z`.
pub fn format_time(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => format!("@{ns}ns"),
    }
}

/// `1m30.5s`, `3.1s`, `250ms`.
pub fn format_duration(ns: i64) -> String {
    let ns = ns.max(0);
    if ns < NS {
        return format!("{}ms", ns / 1_000_000);
    }
    let secs = ns as f64 / 1e9;
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let m = (secs / 60.0).floor();
    format!("{}m{:.0}s", m as i64, secs - m * 60.0)
}

/// Why a `--since`/`--until` time was refused; the parser's own error
/// kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    #[error("`{text}` is not a time: use RFC 3339 (2023-11-14T22:13:20Z) or Unix seconds")]
    NotATime {
        text: String,
        #[source]
        source: jiff::Error,
    },
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// Parses an RFC 3339 time (`2023-11-14T22:13:20Z`, fractional seconds and
/// `+HH:MM` offsets allowed) or a Unix time in seconds (`1700000000.5`).
pub fn parse_time(s: &str) -> Result<i64, TimeError> {
    let s = s.trim();
    if let Ok(x) = s.parse::<f64>() {
        if x.is_finite() && x.abs() < 1e11 {
            return Ok((x * 1e9) as i64);
        }
    }
    let t: jiff::Timestamp = match s.parse() {
        Ok(t) => t,
        // No offset given: UTC, as every time this tool prints is.
        Err(_) => s
            .parse::<jiff::civil::DateTime>()
            .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
            .map(|z| z.timestamp())
            .map_err(|source| TimeError::NotATime {
                text: s.to_string(),
                source,
            })?,
    };
    i64::try_from(t.as_nanosecond()).map_err(|_| TimeError::OutOfRange(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        let t = 1_700_000_000 * NS + 123_000_000;
        assert_eq!(format_time(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time("2023-11-14T22:13:20.123Z").unwrap(), t);
        assert_eq!(parse_time("2023-11-14T23:13:20.123+01:00").unwrap(), t);
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000 * NS);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_time("2023-11-14T22:13:20.123").unwrap(), t);
        assert!(parse_time("2023-13-14T22:13:20Z").is_err());
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(250_000_000), "250ms");
        assert_eq!(format_duration(3_100_000_000), "3.1s");
        assert_eq!(format_duration(90 * NS), "1m30s");
    }
}
