//! The engine settings a report was made with, and where each came from:
//! part of the report, so that two reports of one capture can be compared.

use super::format_duration;
use crate::capture::EngineSettings;
use serde::Serialize;
use std::net::IpAddr;

/// Settings given on the command line; each overrides the recorded one,
/// and the report says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub skew_ns: Option<i64>,
    pub lookahead_ns: Option<i64>,
}

/// Where a setting the analysis ran with came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// From the capture's header (or the live session's own).
    Recorded,
    /// A flag overrode the recorded value.
    Flag,
    /// Not recorded (a capture older than format 1.3): the default, which
    /// is what that capture's session ran with unless it set a flag.
    Default,
}

impl SettingSource {
    fn word(self) -> &'static str {
        match self {
            SettingSource::Recorded => "recorded",
            SettingSource::Flag => "flag",
            SettingSource::Default => "default, not recorded",
        }
    }
}

/// The settings a report was made with: part of the report, so that two
/// reports of one capture can be compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettingsUsed {
    pub skew_ns: i64,
    pub skew_from: SettingSource,
    pub lookahead_ns: i64,
    pub lookahead_from: SettingSource,
    /// Proxies whose HTTP status lines were peeked from the start.
    pub peeked_proxies: Vec<IpAddr>,
}

impl SettingsUsed {
    pub(crate) fn resolve(
        recorded: Option<EngineSettings>,
        o: Overrides,
        peeked: Vec<IpAddr>,
    ) -> Self {
        let base = recorded.unwrap_or_default();
        let from = |flag: Option<i64>| match (flag, recorded) {
            (Some(_), _) => SettingSource::Flag,
            (None, Some(_)) => SettingSource::Recorded,
            (None, None) => SettingSource::Default,
        };
        SettingsUsed {
            skew_ns: o.skew_ns.unwrap_or(base.skew_ns),
            skew_from: from(o.skew_ns),
            lookahead_ns: o.lookahead_ns.unwrap_or(base.lookahead_ns),
            lookahead_from: from(o.lookahead_ns),
            peeked_proxies: peeked,
        }
    }

    /// The engine settings these amount to, for a capture header.
    pub fn engine(&self) -> EngineSettings {
        EngineSettings {
            skew_ns: self.skew_ns,
            lookahead_ns: self.lookahead_ns,
        }
    }

    /// `lookahead 5.0s (recorded), skew 1.0s (flag), 1 proxy peeked from the start`.
    pub fn describe(&self) -> String {
        let peeked = match self.peeked_proxies.len() {
            0 => String::new(),
            1 => ", 1 proxy peeked from the start".to_string(),
            n => format!(", {n} proxies peeked from the start"),
        };
        format!(
            "lookahead {} ({}), skew {} ({}){peeked}",
            format_duration(self.lookahead_ns),
            self.lookahead_from.word(),
            format_duration(self.skew_ns),
            self.skew_from.word(),
        )
    }
}
