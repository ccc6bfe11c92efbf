//! Durations as kubectl writes them (`500ms`, `10s`, `2m`, `1h`, `1m30s`).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a duration (try 10s, 500ms, 2m or 1m30s)")]
pub struct BadDuration(String);

pub fn parse(s: &str) -> Result<Duration, BadDuration> {
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
    }
}
