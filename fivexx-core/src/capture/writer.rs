//! Writing captures, append-only.

use super::frame::{write_frame, CHUNK_SYNC, RECORD_SYNC};
use super::{
    tag, wire, CaptureEnd, CaptureError, CaptureHeader, DropCounters, RecordError, FORMAT_MAJOR,
    FORMAT_MINOR, MAGIC,
};
use crate::model::Fact;
use std::io::Write;

/// Largest record payload a writer produces and a reader accepts.
pub(crate) const MAX_RECORD: usize = 1 << 20;
/// Largest chunk (compressed) and its decompressed size.
pub(crate) const MAX_CHUNK: usize = 8 << 20;
pub(crate) const MAX_CHUNK_RAW: usize = 8 << 20;
/// Preamble flag: the body is a sequence of zstd chunks.
pub(crate) const FLAG_ZSTD: u32 = 1;
pub(crate) const PREAMBLE_LEN: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zstd at this level (1..=19; 3 is a good default).
    Zstd {
        level: i32,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    pub compression: Compression,
    /// Uncompressed bytes per zstd chunk. A chunk is also closed by
    /// [`CaptureWriter::flush`]: what a crash can lose is the open chunk.
    pub chunk_bytes: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: if cfg!(feature = "zstd") {
                Compression::Zstd { level: 3 }
            } else {
                Compression::None
            },
            chunk_bytes: 256 * 1024,
        }
    }
}

/// Writes a capture to any `Write`. Each record (uncompressed) or chunk
/// (zstd) is passed to the writer in one `write_all`, so wrap files in a
/// `BufWriter` only if you also call [`flush`](Self::flush) periodically.
pub struct CaptureWriter<W: Write> {
    out: W,
    opts: WriteOptions,
    /// Record frames of the open chunk (zstd only).
    chunk: Vec<u8>,
    frame: Vec<u8>,
    payload: Vec<u8>,
    facts: u64,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the preamble and the header record.
    pub fn new(
        mut out: W,
        header: &CaptureHeader,
        opts: WriteOptions,
    ) -> Result<Self, CaptureError> {
        let flags = match opts.compression {
            Compression::None => 0,
            Compression::Zstd { .. } => {
                if !cfg!(feature = "zstd") {
                    return Err(CaptureError::NoZstd);
                }
                FLAG_ZSTD
            }
        };
        let mut pre = Vec::with_capacity(PREAMBLE_LEN);
        pre.extend_from_slice(&MAGIC);
        pre.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
        pre.extend_from_slice(&FORMAT_MINOR.to_le_bytes());
        pre.extend_from_slice(&flags.to_le_bytes());
        let crc = crc32fast::hash(&pre);
        pre.extend_from_slice(&crc.to_le_bytes());
        out.write_all(&pre)?;
        let mut w = CaptureWriter {
            out,
            opts: WriteOptions {
                chunk_bytes: opts.chunk_bytes.clamp(1, 4 << 20),
                ..opts
            },
            chunk: Vec::new(),
            frame: Vec::new(),
            payload: Vec::new(),
            facts: 0,
        };
        let json = serde_json::to_vec(header).map_err(|e| CaptureError::Encode(e.into()))?;
        w.record(tag::HEADER, &json)?;
        w.flush()?;
        Ok(w)
    }

    pub fn write_fact(&mut self, fact: &Fact) -> Result<(), CaptureError> {
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        let r = wire::encode_fact(fact, &mut payload)
            .map_err(|e| CaptureError::Encode(e.into()))
            .and_then(|tag| self.record(tag, &payload));
        self.payload = payload;
        r?;
        self.facts += 1;
        Ok(())
    }

    pub fn write_drops(&mut self, drops: &DropCounters) -> Result<(), CaptureError> {
        let json = serde_json::to_vec(drops).map_err(|e| CaptureError::Encode(e.into()))?;
        self.record(tag::DROPS, &json)
    }

    /// The underlying writer (what has been passed to it so far).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Facts written so far.
    pub fn facts(&self) -> u64 {
        self.facts
    }

    /// Makes everything written so far durable as far as `W` allows: closes
    /// the open chunk and flushes `W`.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.close_chunk()?;
        self.out.flush()?;
        Ok(())
    }

    /// Writes the end record, flushes and returns the writer.
    pub fn finish(mut self, end_ns: i64) -> Result<W, CaptureError> {
        let end = CaptureEnd {
            end_ns,
            facts: self.facts,
        };
        let json = serde_json::to_vec(&end).map_err(|e| CaptureError::Encode(e.into()))?;
        self.record(tag::END, &json)?;
        self.flush()?;
        Ok(self.out)
    }

    fn record(&mut self, tag: u8, payload: &[u8]) -> Result<(), CaptureError> {
        if payload.len() > MAX_RECORD {
            return Err(CaptureError::Encode(RecordError::Limit(format!(
                "record of {} bytes exceeds the {MAX_RECORD}-byte limit",
                payload.len()
            ))));
        }
        match self.opts.compression {
            Compression::None => {
                self.frame.clear();
                write_frame(&mut self.frame, RECORD_SYNC, tag, payload);
                self.out.write_all(&self.frame)?;
            }
            Compression::Zstd { .. } => {
                write_frame(&mut self.chunk, RECORD_SYNC, tag, payload);
                if self.chunk.len() >= self.opts.chunk_bytes {
                    self.close_chunk()?;
                }
            }
        }
        Ok(())
    }

    fn close_chunk(&mut self) -> Result<(), CaptureError> {
        let Compression::Zstd { level } = self.opts.compression else {
            return Ok(());
        };
        if self.chunk.is_empty() {
            return Ok(());
        }
        let compressed = compress(&self.chunk, level)?;
        let mut payload = Vec::with_capacity(compressed.len() + 4);
        payload.extend_from_slice(&(self.chunk.len() as u32).to_le_bytes());
        payload.extend_from_slice(&compressed);
        self.frame.clear();
        write_frame(&mut self.frame, CHUNK_SYNC, tag::CHUNK, &payload);
        self.out.write_all(&self.frame)?;
        self.chunk.clear();
        Ok(())
    }
}

#[cfg(feature = "zstd")]
fn compress(data: &[u8], level: i32) -> Result<Vec<u8>, CaptureError> {
    zstd::bulk::compress(data, level).map_err(CaptureError::Compress)
}

#[cfg(not(feature = "zstd"))]
fn compress(_data: &[u8], _level: i32) -> Result<Vec<u8>, CaptureError> {
    Err(CaptureError::NoZstd)
}
