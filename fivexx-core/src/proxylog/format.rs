//! A log format as the registry knows it: its capture id, its names, the
//! proxy that writes it, how far its clock may be from the answer's write,
//! and the reader that claims its lines.

use super::{formats, ProxyAccount, ProxyKind, ProxyLogError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Reads a line (after the runtime's stamp, Unix ns, when it had one):
/// `None` when the line is not in this reader's format, else the account
/// or what is wrong with the line.
pub type ReadLine = fn(&str, Option<i64>) -> Option<Result<ProxyAccount, ProxyLogError>>;

/// One registered format: a row of [`formats::FORMATS`], defined in its
/// family's module.
#[derive(Debug)]
pub struct FormatSpec {
    /// Stored in captures: never reused, never renumbered.
    pub id: u8,
    /// The name in JSON and in captures' proxy-log records.
    pub key: &'static str,
    /// The name users know it by.
    pub name: &'static str,
    /// The proxy that writes it.
    pub proxy: ProxyKind,
    /// How much later than a precise logged time the proxy may write the
    /// answer (see each family's module for the measurement).
    pub write_lag_ns: i64,
    /// The reader that claims this format's lines; formats one reader
    /// tells apart (nginx's `combined` and `upstreaminfo`, Envoy's and
    /// Istio's text) have it on the first of their rows only.
    pub read: Option<ReadLine>,
}

/// Which registered format a line was in.
#[derive(Clone, Copy)]
pub struct LogFormat(&'static FormatSpec);

impl LogFormat {
    /// The format of a registry row (the handles each family's module
    /// exports).
    pub const fn of(spec: &'static FormatSpec) -> LogFormat {
        LogFormat(spec)
    }

    /// The registered format with this capture id.
    pub fn from_id(id: u8) -> Option<LogFormat> {
        formats::FORMATS
            .iter()
            .find(|f| f.id == id)
            .map(|f| LogFormat(f))
    }

    /// The registered format with this key.
    pub fn from_key(key: &str) -> Option<LogFormat> {
        formats::FORMATS
            .iter()
            .find(|f| f.key == key)
            .map(|f| LogFormat(f))
    }

    /// Every registered format, in the registry's order.
    pub fn all() -> impl Iterator<Item = LogFormat> {
        formats::FORMATS.iter().map(|f| LogFormat(f))
    }

    pub fn id(self) -> u8 {
        self.0.id
    }

    pub fn key(self) -> &'static str {
        self.0.key
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The proxy that writes this format.
    pub fn proxy(self) -> ProxyKind {
        self.0.proxy
    }

    pub fn write_lag_ns(self) -> i64 {
        self.0.write_lag_ns
    }
}

impl PartialEq for LogFormat {
    fn eq(&self, other: &LogFormat) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for LogFormat {}

impl std::hash::Hash for LogFormat {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.id.hash(h);
    }
}

impl fmt::Debug for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogFormat({})", self.0.key)
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for LogFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.key)
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = std::borrow::Cow::<'de, str>::deserialize(d)?;
        LogFormat::from_key(&key)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown log format {key:?}")))
    }
}
