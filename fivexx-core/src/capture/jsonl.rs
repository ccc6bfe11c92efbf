//! Export of a capture as JSON lines, one record per line.

use super::{CaptureError, CaptureReader, ReadStats};
use std::io::{Read, Write};

/// Writes every readable record of `reader` as one JSON object per line
/// (`{"header":{..}}`, `{"fact":{"kernel":{..}}}`, `{"drops":{..}}`,
/// `{"end":{..}}`), skipping damage as the reader does. Returns the read
/// totals so the caller can warn about problems.
pub fn export_jsonl<R: Read, W: Write>(
    reader: &mut CaptureReader<R>,
    mut out: W,
) -> Result<ReadStats, CaptureError> {
    while let Some(record) = reader.next_record()? {
        serde_json::to_writer(&mut out, &record).map_err(|e| CaptureError::Encode(e.into()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(reader.stats().clone())
}
