//! Reading a log line: the runtime's stamp, statuses, numbers, times and
//! the quoted and bracketed fields the formats share.

use super::{bad, ProxyLogError};

/// The runtime's RFC 3339 stamp (Unix ns) and the line after it, if the
/// first token is one.
pub(crate) fn split_stamp(line: &str) -> (Option<i64>, &str) {
    if let Some((first, after)) = line.split_once(' ') {
        if first.contains('T') {
            if let Ok(t) = first.parse::<jiff::Timestamp>() {
                if let Ok(ns) = i64::try_from(t.as_nanosecond()) {
                    return (Some(ns), after.trim_start_matches(' '));
                }
            }
        }
    }
    (None, line)
}

/// An HTTP status, `100..=599`.
pub(crate) fn parse_status(s: &str) -> Option<u16> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| (100..=599).contains(v))
}

/// A whole number of at most 12 digits.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `1.234` (seconds, millisecond resolution) to 1234 ms.
pub(crate) fn parse_ms(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || int.len() > 12
        || frac.len() > 9
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut ms: u64 = int.parse::<u64>().ok()?.checked_mul(1000)?;
    let mut scale = 100;
    for b in frac.bytes().take(3) {
        ms += u64::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(ms)
}

/// A read position in a line.
pub(crate) struct Cursor<'a> {
    pub rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// The next space-separated word.
    pub fn word(&mut self) -> Option<&'a str> {
        let s = self.rest.trim_start_matches(' ');
        if s.is_empty() {
            return None;
        }
        let end = s.find(' ').unwrap_or(s.len());
        self.rest = &s[end..];
        Some(&s[..end])
    }

    /// One `"..."` field; returns its content. nginx escapes `"` as `\x22`
    /// (or `\"` with `escape=json`), so the field ends at the first
    /// unescaped quote.
    pub fn quoted(&mut self, field: &'static str) -> Result<&'a str, ProxyLogError> {
        let s = self.rest.trim_start_matches(' ');
        let Some(body) = s.strip_prefix('"') else {
            return Err(bad(field, "missing opening quote"));
        };
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    self.rest = &body[i + 1..];
                    return Ok(&body[..i]);
                }
                _ => {}
            }
        }
        Err(bad(field, "missing closing quote"))
    }

    /// One `[...]` field; returns its content.
    pub fn bracketed(&mut self, field: &'static str) -> Result<&'a str, ProxyLogError> {
        let s = self.rest.trim_start_matches(' ');
        let Some(body) = s.strip_prefix('[') else {
            return Err(bad(field, "missing `[`"));
        };
        let end = body.find(']').ok_or_else(|| bad(field, "missing `]`"))?;
        self.rest = &body[end + 1..];
        Ok(&body[..end])
    }
}
