//! Reading captures: streaming, bounded memory, tolerant of cuts and damage.

use super::frame::{FrameEvent, FrameReader, CHUNK_SYNC, RECORD_SYNC};
use super::writer::{FLAG_ZSTD, MAX_CHUNK, MAX_CHUNK_RAW, MAX_RECORD, PREAMBLE_LEN};
use super::{tag, wire, CaptureError, Record, RecordError, FORMAT_MAJOR, MAGIC};
use crate::model::Fact;
use serde::Serialize;
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

/// Keep at most this many problems in detail (the rest are only counted).
const MAX_PROBLEMS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProblemKind {
    /// Bytes that were not a valid record were skipped.
    Corrupted { skipped_bytes: u64 },
    /// The file ends inside a record: it was cut (e.g. a crash while recording).
    Truncated,
    /// The file has no end record: the recording did not finish cleanly.
    MissingEnd,
    /// A record with a valid CRC could not be decoded.
    Undecodable { detail: DecodeError },
    /// A record type this version does not know (written by a newer minor).
    UnknownRecord { tag: u8 },
}

/// An error as one line: it and its sources, joined by ": ".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// A record's decoding error, kept with its sources; shared, and equal
/// to another that says the same (problems are compared and cloned).
#[derive(Clone, Debug)]
pub struct DecodeError(Arc<RecordError>);

impl<E: Into<RecordError>> From<E> for DecodeError {
    fn from(e: E) -> DecodeError {
        DecodeError(Arc::new(e.into()))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&error_chain(self.0.as_ref()))
    }
}

impl PartialEq for DecodeError {
    fn eq(&self, other: &DecodeError) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for DecodeError {}

impl Serialize for DecodeError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Something wrong in a capture that reading went past.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadProblem {
    /// Byte offset in the file (of the chunk, for compressed captures).
    pub offset: u64,
    /// Offset inside the decompressed chunk, for compressed captures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_chunk: Option<u64>,
    #[serde(flatten)]
    pub kind: ProblemKind,
}

impl fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match self.in_chunk {
            Some(i) => format!("byte {} (chunk offset {i})", self.offset),
            None => format!("byte {}", self.offset),
        };
        match &self.kind {
            ProblemKind::Corrupted { skipped_bytes } => {
                write!(f, "corrupted data at {at}: {skipped_bytes} bytes skipped")
            }
            ProblemKind::Truncated => write!(f, "file cut at {at}: the last record is incomplete"),
            ProblemKind::MissingEnd => {
                write!(
                    f,
                    "no end record after {at}: the recording did not finish cleanly"
                )
            }
            ProblemKind::Undecodable { detail } => {
                write!(f, "undecodable record at {at}: {detail}")
            }
            ProblemKind::UnknownRecord { tag } => {
                write!(
                    f,
                    "unknown record type {tag} at {at} (newer minor version?), skipped"
                )
            }
        }
    }
}

/// Totals of one read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    pub records: u64,
    pub facts: u64,
    pub problems: u64,
    pub skipped_bytes: u64,
    /// Offset of the cut, when the file was cut.
    pub truncated_at: Option<u64>,
    /// The end record was read.
    pub clean_end: bool,
}

impl ReadStats {
    /// True when the whole capture was read without loss.
    pub fn is_complete(&self) -> bool {
        self.problems == 0 && self.clean_end
    }
}

/// Streaming capture reader over any `Read`. Memory is bounded by the
/// largest chunk or record, whatever the size of the file.
pub struct CaptureReader<R: Read> {
    frames: FrameReader<R>,
    compressed: bool,
    major: u16,
    minor: u16,
    /// Records of the current decompressed chunk, and the chunk's offset.
    chunk: Option<(FrameReader<io::Empty>, u64)>,
    problems: Vec<ReadProblem>,
    stats: ReadStats,
    finished: bool,
    /// The fact [`next_ref`](Self::next_ref) lends out, and a kernel event
    /// put aside for its strings while an API fact is in the slot.
    slot: Option<Fact>,
    spare: Option<crate::event::KernelEvent>,
}

/// Where a record frame to decode is: its tag, the file offset (of its
/// chunk, when compressed) and the offset inside the chunk.
#[derive(Clone, Copy)]
struct FrameAt {
    tag: u8,
    offset: u64,
    in_chunk: Option<u64>,
}

/// A record read by [`CaptureReader::next_ref`].
#[derive(Debug)]
pub enum RecordRef<'a> {
    /// A fact, valid until the next read.
    Fact(&'a Fact),
    /// Any other record (rare: boxed to keep this small).
    Other(Box<Record>),
}

impl<R: Read> CaptureReader<R> {
    /// Reads and checks the preamble. Fails on an empty, foreign, damaged
    /// or newer-major file.
    pub fn new(mut inner: R) -> Result<Self, CaptureError> {
        let mut pre = [0u8; PREAMBLE_LEN];
        let mut n = 0;
        while n < PREAMBLE_LEN {
            match inner.read(&mut pre[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if n == 0 {
            return Err(CaptureError::Empty);
        }
        let m = n.min(MAGIC.len());
        if pre[..m] != MAGIC[..m] {
            return Err(CaptureError::Foreign(sniff(&pre[..n])));
        }
        if n < PREAMBLE_LEN {
            return Err(CaptureError::TruncatedPreamble(PREAMBLE_LEN));
        }
        let major = u16::from_le_bytes([pre[8], pre[9]]);
        let minor = u16::from_le_bytes([pre[10], pre[11]]);
        let crc_ok =
            crc32fast::hash(&pre[..16]) == u32::from_le_bytes([pre[16], pre[17], pre[18], pre[19]]);
        if major > FORMAT_MAJOR && crc_ok {
            return Err(CaptureError::NewerMajor {
                file_major: major,
                file_minor: minor,
            });
        }
        if !crc_ok || major == 0 {
            return Err(CaptureError::CorruptPreamble);
        }
        let flags = u32::from_le_bytes([pre[12], pre[13], pre[14], pre[15]]);
        if flags & !FLAG_ZSTD != 0 {
            return Err(CaptureError::Foreign(format!(
                "unknown preamble flags {flags:#x} in format {major}.{minor}"
            )));
        }
        let compressed = flags & FLAG_ZSTD != 0;
        if compressed && !cfg!(feature = "zstd") {
            return Err(CaptureError::NoZstd);
        }
        let (sync, max) = if compressed {
            (CHUNK_SYNC, MAX_CHUNK)
        } else {
            (RECORD_SYNC, MAX_RECORD)
        };
        Ok(CaptureReader {
            frames: FrameReader::new(inner, PREAMBLE_LEN as u64, sync, max),
            compressed,
            major,
            minor,
            chunk: None,
            problems: Vec::new(),
            stats: ReadStats::default(),
            finished: false,
            slot: None,
            spare: None,
        })
    }

    /// The file's format version.
    pub fn version(&self) -> (u16, u16) {
        (self.major, self.minor)
    }

    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// The first problems met so far (at most 100; `stats().problems` counts all).
    pub fn problems(&self) -> &[ReadProblem] {
        &self.problems
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    fn problem(&mut self, offset: u64, in_chunk: Option<u64>, kind: ProblemKind) {
        self.stats.problems += 1;
        match &kind {
            ProblemKind::Corrupted { skipped_bytes } => self.stats.skipped_bytes += skipped_bytes,
            ProblemKind::Truncated => {
                self.stats.truncated_at.get_or_insert(offset);
            }
            _ => {}
        }
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(ReadProblem {
                offset,
                in_chunk,
                kind,
            });
        }
    }

    /// The next record, or `None` at the end. Damage is skipped and recorded
    /// in [`problems`](Self::problems); only I/O errors are returned.
    pub fn next_record(&mut self) -> Result<Option<Record>, CaptureError> {
        while let Some(at) = self.next_frame()? {
            match decode(at.tag, self.payload()) {
                Ok(Some(r)) => return Ok(Some(self.count(at.tag, r))),
                Ok(None) => self.unknown(at),
                Err(detail) => self.undecodable(at, detail),
            }
        }
        Ok(None)
    }

    /// Like [`next_record`](Self::next_record), but a fact is decoded into
    /// a buffer the reader keeps and lent out: the strings of one kernel
    /// event are reused for the next, so reading allocates nothing per
    /// fact. Other records are returned as they are.
    pub fn next_ref(&mut self) -> Result<Option<RecordRef<'_>>, CaptureError> {
        while let Some(at) = self.next_frame()? {
            let payload = match &self.chunk {
                Some((chunk, _)) => chunk.payload(),
                None => self.frames.payload(),
            };
            let fact = match at.tag {
                tag::FACT => wire::decode_fact_into(payload, &mut self.slot, &mut self.spare)
                    .map_err(DecodeError::from),
                tag::PROXY_LOG => wire::decode_proxy_log(payload)
                    .map(|f| wire::put(&mut self.slot, &mut self.spare, f))
                    .map_err(DecodeError::from),
                tag::HTTP_PEEK => wire::decode_http_peek(payload)
                    .map(|f| wire::put(&mut self.slot, &mut self.spare, f))
                    .map_err(DecodeError::from),
                tag::PROXY_ACCOUNT => wire::decode_proxy_account(payload)
                    .map(|f| wire::put(&mut self.slot, &mut self.spare, f))
                    .map_err(DecodeError::from),
                tag::AGENT_GONE => wire::decode_agent_gone(payload)
                    .map(|f| wire::put(&mut self.slot, &mut self.spare, f))
                    .map_err(DecodeError::from),
                _ => match decode(at.tag, payload) {
                    Ok(Some(r)) => {
                        return Ok(Some(RecordRef::Other(Box::new(self.count(at.tag, r)))))
                    }
                    Ok(None) => {
                        self.unknown(at);
                        continue;
                    }
                    Err(detail) => Err(detail),
                },
            };
            match fact {
                Ok(()) => {
                    self.count(at.tag, ());
                    return Ok(self.slot.as_ref().map(RecordRef::Fact));
                }
                Err(detail) => self.undecodable(at, detail),
            }
        }
        Ok(None)
    }

    /// The payload of the frame [`next_frame`](Self::next_frame) found.
    fn payload(&self) -> &[u8] {
        match &self.chunk {
            Some((chunk, _)) => chunk.payload(),
            None => self.frames.payload(),
        }
    }

    fn unknown(&mut self, at: FrameAt) {
        let tag = at.tag;
        self.problem(at.offset, at.in_chunk, ProblemKind::UnknownRecord { tag });
    }

    fn undecodable(&mut self, at: FrameAt, detail: DecodeError) {
        self.problem(at.offset, at.in_chunk, ProblemKind::Undecodable { detail });
    }

    /// The next record frame to decode (its payload is
    /// [`payload`](Self::payload)), or `None` at the end. Damage is
    /// skipped and recorded; chunks are decompressed on the way.
    fn next_frame(&mut self) -> Result<Option<FrameAt>, CaptureError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if let Some((chunk, chunk_off)) = &mut self.chunk {
                let chunk_off = *chunk_off;
                match chunk.next_event()? {
                    FrameEvent::Frame { offset, tag } => {
                        return Ok(Some(FrameAt {
                            tag,
                            offset: chunk_off,
                            in_chunk: Some(offset),
                        }))
                    }
                    FrameEvent::Skipped { offset, len } => self.problem(
                        chunk_off,
                        Some(offset),
                        ProblemKind::Corrupted { skipped_bytes: len },
                    ),
                    // Only a salvaged (cut) chunk ends inside a record; the
                    // cut itself was already reported for the chunk.
                    FrameEvent::Truncated { .. } | FrameEvent::End => self.chunk = None,
                }
                continue;
            }
            match self.frames.next_event()? {
                FrameEvent::Frame { offset, tag } => {
                    if self.compressed {
                        if tag != tag::CHUNK {
                            self.problem(offset, None, ProblemKind::UnknownRecord { tag });
                            continue;
                        }
                        match decompress_chunk(self.frames.payload()) {
                            Ok(raw) => self.start_chunk(raw, offset),
                            Err(detail) => {
                                self.problem(offset, None, ProblemKind::Undecodable { detail })
                            }
                        }
                        continue;
                    }
                    return Ok(Some(FrameAt {
                        tag,
                        offset,
                        in_chunk: None,
                    }));
                }
                FrameEvent::Skipped { offset, len } => {
                    self.problem(offset, None, ProblemKind::Corrupted { skipped_bytes: len })
                }
                FrameEvent::Truncated { offset } => {
                    self.problem(offset, None, ProblemKind::Truncated);
                    if self.compressed {
                        // Salvage the complete records of the cut chunk.
                        let raw = salvage_chunk(self.frames.payload());
                        self.start_chunk(raw, offset);
                    }
                }
                FrameEvent::End => {
                    self.finished = true;
                    if !self.stats.clean_end && self.stats.truncated_at.is_none() {
                        let off = self.frames_end_offset();
                        self.problem(off, None, ProblemKind::MissingEnd);
                    }
                }
            }
        }
    }

    fn frames_end_offset(&self) -> u64 {
        // `next_event` consumed everything: the stream offset is the file size.
        self.frames.offset_now()
    }

    fn start_chunk(&mut self, raw: Vec<u8>, offset: u64) {
        self.chunk = Some((FrameReader::from_vec(raw, RECORD_SYNC, MAX_RECORD), offset));
    }

    fn count<T>(&mut self, tag: u8, r: T) -> T {
        self.stats.records += 1;
        match tag {
            tag::FACT | tag::PROXY_LOG | tag::PROXY_ACCOUNT | tag::HTTP_PEEK | tag::AGENT_GONE => {
                self.stats.facts += 1
            }
            tag::END => self.stats.clean_end = true,
            _ => {}
        }
        r
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<Record, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Decodes one record payload; `Ok(None)` for an unknown type.
fn decode(tag: u8, payload: &[u8]) -> Result<Option<Record>, DecodeError> {
    Ok(Some(match tag {
        tag::FACT => Record::Fact(wire::decode_fact(payload).map_err(DecodeError::from)?),
        tag::PROXY_LOG => Record::Fact(wire::decode_proxy_log(payload).map_err(DecodeError::from)?),
        tag::HTTP_PEEK => Record::Fact(wire::decode_http_peek(payload).map_err(DecodeError::from)?),
        tag::PROXY_ACCOUNT => {
            Record::Fact(wire::decode_proxy_account(payload).map_err(DecodeError::from)?)
        }
        tag::AGENT_GONE => {
            Record::Fact(wire::decode_agent_gone(payload).map_err(DecodeError::from)?)
        }
        tag::HEADER => Record::Header(serde_json::from_slice(payload).map_err(DecodeError::from)?),
        tag::DROPS => Record::Drops(serde_json::from_slice(payload).map_err(DecodeError::from)?),
        tag::END => Record::End(serde_json::from_slice(payload).map_err(DecodeError::from)?),
        _ => return Ok(None),
    }))
}

fn chunk_raw_len(payload: &[u8]) -> Result<usize, DecodeError> {
    let head: [u8; 4] = payload
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| RecordError::Limit("chunk too short".into()))?;
    let raw = u32::from_le_bytes(head) as usize;
    if raw > MAX_CHUNK_RAW {
        return Err(RecordError::Limit(format!(
            "chunk claims {raw} bytes, over the {MAX_CHUNK_RAW}-byte limit"
        ))
        .into());
    }
    Ok(raw)
}

#[cfg(feature = "zstd")]
fn decompress_chunk(payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let raw = chunk_raw_len(payload)?;
    zstd::bulk::decompress(&payload[4..], raw).map_err(|e| RecordError::Zstd(e).into())
}

/// Decompresses what can be decompressed of a cut chunk (its frame header
/// included), in bounded memory. Whatever comes out is checked record by
/// record, so garbage at the cut is dropped by the record CRCs.
#[cfg(feature = "zstd")]
fn salvage_chunk(frame: &[u8]) -> Vec<u8> {
    let start = super::frame::FRAME_HEAD + 4; // frame head, then raw length
    let Some(data) = frame.get(start..) else {
        return Vec::new();
    };
    let Ok(mut dec) = zstd::stream::read::Decoder::with_buffer(data) else {
        return Vec::new();
    };
    if dec.window_log_max(24).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while out.len() < MAX_CHUNK_RAW {
        match dec.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => out.extend_from_slice(&buf[..k]),
        }
    }
    out.truncate(MAX_CHUNK_RAW);
    out
}

#[cfg(not(feature = "zstd"))]
fn decompress_chunk(_payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
    Err(RecordError::Limit("zstd support not built in".into()).into())
}

#[cfg(not(feature = "zstd"))]
fn salvage_chunk(_frame: &[u8]) -> Vec<u8> {
    Vec::new()
}

/// Names what a foreign file looks like, for the error message.
fn sniff(head: &[u8]) -> String {
    let starts = |p: &[u8]| head.starts_with(p);
    if starts(b"\x89PNG") {
        "it is a PNG image".into()
    } else if starts(&[0x1f, 0x8b]) {
        "it is gzip-compressed data".into()
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "it is a bare zstd stream (decompress it first?)".into()
    } else if starts(b"\x7fELF") {
        "it is an ELF executable".into()
    } else if starts(b"%PDF") {
        "it is a PDF document".into()
    } else if starts(b"PK\x03\x04") {
        "it is a zip archive".into()
    } else if head.first() == Some(&b'{') {
        "it looks like JSON (an export, not a capture?)".into()
    } else if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "it is a text file".into()
    } else {
        let hex: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("unknown data starting with {}", hex.join(" "))
    }
}
