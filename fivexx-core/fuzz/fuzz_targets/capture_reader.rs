//! Fuzzes the capture reader: whatever the bytes, reading must neither
//! panic nor loop, and memory stays bounded.
//!
//! The first input byte picks how the rest is used, so that the fuzzer gets
//! past the preamble's CRC and the frames' CRCs instead of stopping there:
//! - 0: the raw file;
//! - 1 / 2: a valid uncompressed / zstd preamble, then the bytes;
//! - 3 / 4: a valid preamble, then the bytes cut into frames with correct
//!   CRCs (so record decoding and zstd decompression see arbitrary payloads).
#![no_main]

use fivexx_core::capture::{
    export_jsonl, CaptureHeader, CaptureReader, CaptureWriter, Compression, WriteOptions,
};
use libfuzzer_sys::fuzz_target;

fn preamble(zstd: bool) -> Vec<u8> {
    let opts = WriteOptions {
        compression: if zstd {
            Compression::Zstd { level: 1 }
        } else {
            Compression::None
        },
        chunk_bytes: 1024,
    };
    let w =
        CaptureWriter::new(Vec::new(), &CaptureHeader::default(), opts).expect("in-memory write");
    w.get_ref()[..20].to_vec()
}

fn frame(out: &mut Vec<u8>, sync: [u8; 4], tag: u8, payload: &[u8]) {
    out.extend_from_slice(&sync);
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(tag);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn framed(zstd: bool, data: &[u8]) -> Vec<u8> {
    let mut out = preamble(zstd);
    let sync = if zstd {
        [0xf5, b'F', b'X', b'Z']
    } else {
        [0xf5, b'F', b'X', b'R']
    };
    let mut rest = data;
    while rest.len() >= 2 {
        let tag = rest[0];
        let len = (rest[1] as usize).min(rest.len() - 2);
        frame(
            &mut out,
            sync,
            if zstd { 0x5a } else { tag % 6 },
            &rest[2..2 + len],
        );
        rest = &rest[2 + len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = match mode % 5 {
        0 => rest.to_vec(),
        1 | 2 => {
            let mut b = preamble(mode % 5 == 2);
            b.extend_from_slice(rest);
            b
        }
        n => framed(n == 4, rest),
    };
    if let Ok(mut reader) = CaptureReader::new(&bytes[..]) {
        let _ = export_jsonl(&mut reader, std::io::sink());
        let stats = reader.stats();
        assert!(stats.records <= bytes.len() as u64);
    }
});
