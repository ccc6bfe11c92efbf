//! UTC times without a date-time dependency: formatting for reports and
//! parsing of `--since/--until`.

const NS: i64 = 1_000_000_000;

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2023-11-14T22:13:20.123Z`.
pub fn format_time(ns: i64) -> String {
    let secs = ns.div_euclid(NS);
    let ms = ns.rem_euclid(NS) / 1_000_000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
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

/// Parses an RFC 3339 UTC time (`2023-11-14T22:13:20Z`, fractional seconds
/// and `+HH:MM` offsets allowed) or a Unix time in seconds (`1700000000.5`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(x) = s.parse::<f64>() {
        if x.is_finite() && x.abs() < 1e11 {
            return Ok((x * 1e9) as i64);
        }
    }
    let err =
        || format!("`{s}` is not a time: use RFC 3339 (2023-11-14T22:13:20Z) or Unix seconds");
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(err)
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(err());
    }
    let mut rest = &s[19..];
    let mut frac_ns = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return Err(err());
        }
        let mut padded = digits.clone();
        padded.truncate(9);
        while padded.len() < 9 {
            padded.push('0');
        }
        frac_ns = padded.parse().map_err(|_| err())?;
        rest = &r[digits.len()..];
    }
    let offset_s = match rest {
        "Z" | "z" | "" => 0,
        r if (r.starts_with('+') || r.starts_with('-')) && r.len() == 6 && &r[3..4] == ":" => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            let hh: i64 = r[1..3].parse().map_err(|_| err())?;
            let mm: i64 = r[4..6].parse().map_err(|_| err())?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(err()),
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    Ok(secs * NS + frac_ns)
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
