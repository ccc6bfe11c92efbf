//! Length-framed, CRC-checked frames with a sync marker, and a streaming
//! reader that resynchronises after damage.
//!
//! ```text
//! sync(4) len(u32 LE) tag(u8) payload[len] crc32(u32 LE over len|tag|payload)
//! ```
//!
//! The reader holds at most one frame (bounded by `max_len`) plus a read
//! window in memory, whatever the size of the stream.

use std::io::{self, Read};

/// Sync marker of a record frame.
pub(crate) const RECORD_SYNC: [u8; 4] = [0xf5, b'F', b'X', b'R'];
/// Sync marker of a zstd chunk frame.
pub(crate) const CHUNK_SYNC: [u8; 4] = [0xf5, b'F', b'X', b'Z'];
pub(crate) const FRAME_HEAD: usize = 9;
pub(crate) const FRAME_OVERHEAD: usize = FRAME_HEAD + 4;

const READ_BLOCK: usize = 64 * 1024;

/// Appends one frame to `out`.
pub(crate) fn write_frame(out: &mut Vec<u8>, sync: [u8; 4], tag: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("frame payload fits u32 (checked by caller)");
    out.extend_from_slice(&sync);
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.push(tag);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// What the frame reader found next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameEvent {
    /// A valid frame; its payload is `FrameReader::payload()` until the next call.
    Frame {
        offset: u64,
        tag: u8,
    },
    /// Bytes `[offset, offset+len)` were not a valid frame and were skipped.
    Skipped {
        offset: u64,
        len: u64,
    },
    /// The stream ends inside a frame that starts at `offset`; its bytes are
    /// in `FrameReader::payload()` (header included) for salvage.
    Truncated {
        offset: u64,
    },
    End,
}

pub(crate) struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    sync: [u8; 4],
    max_len: usize,
    /// The last frame's payload range in `buf`, consumed on the next call.
    payload: (usize, usize),
    consume_next: usize,
    /// Bytes dropped from the window during one resync scan.
    skipped_in_scan: usize,
}

impl FrameReader<io::Empty> {
    /// Frames of bytes already in memory (a decompressed chunk): parsed in
    /// place, without copying them through the read window.
    pub(crate) fn from_vec(buf: Vec<u8>, sync: [u8; 4], max_len: usize) -> Self {
        FrameReader {
            inner: io::empty(),
            buf,
            pos: 0,
            base: 0,
            eof: true,
            sync,
            max_len,
            payload: (0, 0),
            consume_next: 0,
            skipped_in_scan: 0,
        }
    }
}

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(inner: R, base: u64, sync: [u8; 4], max_len: usize) -> Self {
        FrameReader {
            inner,
            buf: Vec::with_capacity(READ_BLOCK),
            pos: 0,
            base,
            eof: false,
            sync,
            max_len,
            payload: (0, 0),
            consume_next: 0,
            skipped_in_scan: 0,
        }
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.buf[self.payload.0..self.payload.1]
    }

    /// Stream offset just past everything returned so far.
    pub(crate) fn offset_now(&self) -> u64 {
        self.base + (self.pos + self.consume_next) as u64
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes at least `n` bytes available after `pos` unless the stream ends
    /// first; returns how many are available.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.buf.len() - self.pos >= n || self.eof {
            return Ok(self.buf.len() - self.pos);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        while self.buf.len() < n && !self.eof {
            let old = self.buf.len();
            let want = (n - old).max(READ_BLOCK);
            self.buf.resize(old + want, 0);
            match self.inner.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(k) => self.buf.truncate(old + k),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        }
        Ok(self.buf.len() - self.pos)
    }

    /// Checks whether a complete valid frame starts at `pos + at`; returns
    /// its total length. `None` also when the data is incomplete.
    fn valid_frame_at(&mut self, at: usize) -> io::Result<Option<usize>> {
        let avail = self.fill(at + FRAME_HEAD)?;
        if avail < at + FRAME_HEAD {
            return Ok(None);
        }
        let s = self.pos + at;
        if self.buf[s..s + 4] != self.sync {
            return Ok(None);
        }
        let len = u32::from_le_bytes(self.buf[s + 4..s + 8].try_into().unwrap_or([0; 4])) as usize;
        if len > self.max_len {
            return Ok(None);
        }
        let total = FRAME_OVERHEAD + len;
        let avail = self.fill(at + total)?;
        let s = self.pos + at;
        if avail < at + total {
            return Ok(None);
        }
        let body = &self.buf[s + 4..s + FRAME_HEAD + len];
        let want = u32::from_le_bytes(
            self.buf[s + FRAME_HEAD + len..s + total]
                .try_into()
                .unwrap_or([0; 4]),
        );
        Ok((crc32fast::hash(body) == want).then_some(total))
    }

    /// Scans forward from `pos + 1` for the start of the next valid frame;
    /// returns how many bytes precede it (all remaining bytes if none).
    fn resync(&mut self) -> io::Result<usize> {
        let mut at = 1;
        loop {
            let avail = self.fill(at + 4)?;
            if avail < at + 4 {
                return Ok(avail);
            }
            let window = &self.buf[self.pos + at..];
            match window.windows(4).position(|w| w == self.sync) {
                Some(k) => {
                    let cand = at + k;
                    if self.valid_frame_at(cand)?.is_some() {
                        return Ok(cand);
                    }
                    at = cand + 1;
                }
                None => {
                    // Keep the last 3 bytes: a marker may straddle the refill.
                    let seen = window.len().saturating_sub(3);
                    at += seen.max(1);
                    // Bound memory while scanning a long damaged stretch:
                    // drop what we have already ruled out, bar `pos` itself.
                    if at > 4 * READ_BLOCK {
                        let drop = at - 1;
                        self.pos += drop;
                        self.skipped_in_scan += drop;
                        at = 1;
                    }
                }
            }
        }
    }

    pub(crate) fn next_event(&mut self) -> io::Result<FrameEvent> {
        self.pos += self.consume_next;
        self.consume_next = 0;
        self.payload = (0, 0);
        let avail = self.fill(FRAME_HEAD)?;
        if avail == 0 {
            return Ok(FrameEvent::End);
        }
        let offset = self.offset();
        if let Some(total) = self.valid_frame_at(0)? {
            let len = total - FRAME_OVERHEAD;
            let tag = self.buf[self.pos + 8];
            self.payload = (self.pos + FRAME_HEAD, self.pos + FRAME_HEAD + len);
            self.consume_next = total;
            return Ok(FrameEvent::Frame { offset, tag });
        }
        // Not a valid frame here. Either the stream was cut inside this
        // frame (then no valid frame follows), or it is damaged.
        self.skipped_in_scan = 0;
        let skip = self.resync()?;
        let skipped = self.skipped_in_scan + skip;
        let rest = self.buf.len() - self.pos;
        if skip >= rest && self.eof && self.starts_like_frame(offset) {
            // Nothing valid follows: a cut. Hand the partial frame over.
            self.payload = (self.pos, self.buf.len());
            self.consume_next = rest;
            return Ok(FrameEvent::Truncated { offset });
        }
        self.pos += skip;
        Ok(FrameEvent::Skipped {
            offset,
            len: skipped as u64,
        })
    }

    /// A cut frame still begins with the sync marker (or a prefix of it), and
    /// its declared length, if readable, reaches past the end of the stream.
    fn starts_like_frame(&self, offset: u64) -> bool {
        if offset != self.offset() {
            return false; // scanning dropped bytes: it was long garbage
        }
        let rest = &self.buf[self.pos..];
        let n = rest.len().min(4);
        if rest[..n] != self.sync[..n] {
            return false;
        }
        if rest.len() >= 8 {
            let len = u32::from_le_bytes(rest[4..8].try_into().unwrap_or([0; 4])) as usize;
            return len <= self.max_len && FRAME_OVERHEAD + len > rest.len();
        }
        true
    }
}
