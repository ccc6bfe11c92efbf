//! Durations as kubectl writes them (`500ms`, `10s`, `2m`, `1h`, `1m30s`):
//! the one grammar of every duration flag, parsed by clap into
//! [`FlagDuration`] before any command runs.

use std::str::FromStr;
use std::time::Duration;

/// A duration flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlagDuration(pub Duration);

impl FlagDuration {
    /// In nanoseconds, as the engine counts (at most ~31 years: no overflow).
    pub fn ns(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }
}

impl FromStr for FlagDuration {
    type Err = BadDuration;
    fn from_str(s: &str) -> Result<Self, BadDuration> {
        parse(s).map(FlagDuration)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a duration (try 10s, 500ms, 2m or 1m30s)")]
pub struct BadDuration(String);

fn parse(s: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    // A bare number is seconds.
    if let Ok(secs) = t.parse::<f64>() {
        return (secs.is_finite() && (0.0..1e9).contains(&secs))
            .then(|| Duration::from_secs_f64(secs))
            .ok_or_else(bad);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += num * mult;
        rest = &rest[unit_end..];
    }
    (total < 1e9)
        .then(|| Duration::from_secs_f64(total))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_forms_parse() {
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("2").unwrap(), Duration::from_secs(2));
        assert!(parse("ten").is_err());
        assert!(parse("5parsecs").is_err());
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("1e30h").is_err());
        assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(
            "1m30s".parse::<FlagDuration>().unwrap().ns(),
            90_000_000_000
        );
    }
}
