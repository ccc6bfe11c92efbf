//! The capture file: everything `explain` needs, in one append-only file.
//!
//! Layout (see `docs/capture-format.md` for the byte-level description):
//!
//! ```text
//! preamble   magic(8) major(u16) minor(u16) flags(u32) crc32(u32)
//! body       frames: sync(4) len(u32) tag(u8) payload[len] crc32(u32)
//!            uncompressed: one frame per record (tag = record type)
//!            zstd:         one frame per chunk (an independent zstd frame
//!                          holding whole record frames)
//! ```
//!
//! Every frame carries its own CRC and starts with a sync marker, so a
//! reader can skip a damaged frame, find the next one and go on; a file cut
//! anywhere reads back every complete record before the cut. The crate does
//! no file opening: callers pass any `Read` or `Write`.

mod frame;
mod jsonl;
mod reader;
mod wire;
mod writer;

pub use jsonl::export_jsonl;
pub use reader::{CaptureReader, DecodeError, ProblemKind, ReadProblem, ReadStats, RecordRef};
pub use writer::{CaptureWriter, Compression, WriteOptions};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::model::Fact;
use crate::protocol::DropCounts;

/// The format version this build writes. A reader accepts any minor
/// version of its own major (unknown record types are skipped) and refuses a
/// newer major.
pub const FORMAT_MAJOR: u16 = 1;
/// 1.1 added the `PROXY_LOG` record type (proxy access-log facts), 1.2 the
/// `HTTP_PEEK` record type (a proxy peeked from mid-session on), 1.3 the
/// header's `engine` settings (an older capture is explained with the
/// defaults, as it was recorded) and the kernel facts' trailing
/// `syn_sent_ns`, 1.4 the kernel facts' trailing `idle_us` (an older
/// record ends before it and reads as `None`), 1.5 the proxy-log facts'
/// trailing `client_port` and the `AGENT_GONE` record type, 1.6 the
/// `PROXY_ACCOUNT` record type (a proxy's typed account of a logged
/// answer, written instead of `PROXY_LOG`; an older reader skips it).
pub const FORMAT_MINOR: u16 = 6;

/// First 8 bytes of every capture. Like PNG's, it catches text-mode
/// mangling (`\r\n`, `^Z`) and is not valid UTF-8.
pub const MAGIC: [u8; 8] = [0x89, b'F', b'X', b'C', b'\r', b'\n', 0x1a, b'\n'];

/// The conventional file extension.
pub const EXTENSION: &str = "fxc";

/// Record types (frame tags of an uncompressed body or inside chunks).
pub(crate) mod tag {
    pub const HEADER: u8 = 1;
    pub const FACT: u8 = 2;
    pub const DROPS: u8 = 3;
    pub const END: u8 = 4;
    /// A proxy access-log fact (format 1.1; a 1.0 reader skips it).
    pub const PROXY_LOG: u8 = 5;
    /// A proxy whose HTTP answers are peeked from then on (format 1.2; an
    /// older reader skips it and counts hidden retries as before).
    pub const HTTP_PEEK: u8 = 6;
    /// A node's agent stream ended mid-session (format 1.5; an older
    /// reader skips it, and the report does not say where that node's
    /// facts stop).
    pub const AGENT_GONE: u8 = 7;
    /// A proxy's account of one logged answer (format 1.6: the proxy-log
    /// fact as JSON; replaces `PROXY_LOG`, which is still read).
    pub const PROXY_ACCOUNT: u8 = 8;
    /// A zstd chunk (only in a compressed body).
    pub const CHUNK: u8 = 0x5a;
}

/// What the capture is about, written first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureHeader {
    /// Version of the tool that wrote it (e.g. `kubectl-fivexx 0.1.0`).
    pub tool_version: String,
    /// kubeconfig context / cluster name.
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Agents' capability reports, kept opaque so that an older reader can
    /// show what a newer agent reported.
    #[serde(default)]
    pub capabilities: Vec<serde_json::Value>,
    pub start_ns: i64,
    /// Known only when the header is rewritten or from the end record.
    #[serde(default)]
    pub end_ns: Option<i64>,
    /// Addresses of the proxy pods whose HTTP status lines were peeked from
    /// the start: their upstream failures that no 5xx followed were retried
    /// (see `ExplainConfig::peeked_proxies`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_peek_proxies: Vec<std::net::IpAddr>,
    /// The engine settings the recording session explained with (format
    /// 1.3), so that `explain FILE` gives the verdicts the session gave.
    /// `None`: recorded before 1.3, or by a tool that runs no engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineSettings>,
}

/// Every engine setting a verdict depends on that a user can change. The
/// rest of the engine's windows are constants of the build. A later
/// setting is added here with a serde default equal to the behaviour
/// before it, so that older captures keep their verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Tolerated clock difference between nodes and the API server.
    pub skew_ns: i64,
    /// How long after a failure the engine waited for facts explaining it.
    pub lookahead_ns: i64,
}

impl Default for EngineSettings {
    /// What a capture without settings was explained with.
    fn default() -> Self {
        EngineSettings {
            skew_ns: 2_000_000_000,
            lookahead_ns: 30_000_000_000,
        }
    }
}

/// Events an agent generated but could not deliver (ring buffer full, slow
/// client), cumulative, at a time. Format 1.6 writes `drops`; earlier
/// captures wrote one map of kind names with `stream` among them, which
/// reads into the same counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DropCounters {
    pub at_ns: i64,
    pub node: String,
    pub drops: DropCounts,
}

impl<'de> Deserialize<'de> for DropCounters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Either {
            at_ns: i64,
            node: String,
            #[serde(default)]
            drops: Option<DropCounts>,
            /// Up to 1.5: kind name (or `stream`) -> dropped so far.
            #[serde(default)]
            dropped: BTreeMap<String, u64>,
        }
        let e = Either::deserialize(d)?;
        let drops = e.drops.unwrap_or_else(|| {
            let mut c = DropCounts::default();
            for (name, n) in e.dropped {
                match crate::event::KernelEventKind::parse(&name) {
                    Some(kind) => {
                        c.kernel.insert(kind, n);
                    }
                    None => c.stream += n,
                }
            }
            c
        });
        Ok(DropCounters {
            at_ns: e.at_ns,
            node: e.node,
            drops,
        })
    }
}

/// The last record of a capture that was closed cleanly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureEnd {
    pub end_ns: i64,
    pub facts: u64,
}

/// One record read back from a capture.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Header(CaptureHeader),
    Fact(Fact),
    Drops(DropCounters),
    End(CaptureEnd),
}

/// Why one record could not be encoded or decoded: the codec's own
/// error, kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("binary layout")]
    Binary(#[from] postcard::Error),
    #[error("JSON")]
    Json(#[from] serde_json::Error),
    #[error("zstd")]
    Zstd(#[source] std::io::Error),
    #[error("{0}")]
    Limit(String),
}

/// Why a capture cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("the file is empty")]
    Empty,
    #[error("not a fivexx capture: {0}")]
    Foreign(String),
    #[error("the file ends inside its {0}-byte preamble (cut while recording?)")]
    TruncatedPreamble(usize),
    #[error("the capture's preamble is corrupted (CRC mismatch)")]
    CorruptPreamble,
    #[error(
        "capture format {file_major}.{file_minor} is newer than this tool supports ({FORMAT_MAJOR}.{FORMAT_MINOR}): upgrade kubectl-fivexx"
    )]
    NewerMajor { file_major: u16, file_minor: u16 },
    #[error("the capture is zstd-compressed but this build has no zstd support")]
    NoZstd,
    #[error("compression failed")]
    Compress(#[source] std::io::Error),
    #[error("a record could not be encoded")]
    Encode(#[source] RecordError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drops record of format 1.5 and before (one map of kind names, with
    /// the client's `stream` among them) reads into the same counts.
    #[test]
    fn drops_records_before_1_6_read_as_counts() {
        let old = r#"{"at_ns":5,"node":"node-1","dropped":{"send_reset":3,"signal":1,"stream":7}}"#;
        let d: DropCounters = serde_json::from_str(old).unwrap();
        assert_eq!(d.drops.stream, 7);
        assert_eq!(d.drops.kernel[&crate::KernelEventKind::SendReset], 3);
        assert_eq!(d.drops.total(), 11);
        let again: DropCounters =
            serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(again, d);
    }
}
