//! Checksummed records in append-only files (the WAL and the catalog):
//! `payload length u32 LE, CRC-32 of the payload u32 LE, payload`.
//!
//! A crash can leave the last record cut short or half written; [`scan`] stops at the
//! first record that is incomplete or fails its checksum and says where the good prefix
//! ends, so the writer can truncate the torn tail.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

pub const HEADER: usize = 8;
/// A record larger than this is taken as garbage (a torn length field), not allocated.
pub const MAX_RECORD: usize = 256 << 20;

/// Appends a framed record to `out`.
pub fn put(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Starts a record in `out` whose payload the caller appends; [`seal`] fills the header.
pub fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER]);
    at
}

pub fn seal(out: &mut [u8], at: usize) {
    let payload = &out[at + HEADER..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    out[at..at + 4].copy_from_slice(&len);
    out[at + 4..at + 8].copy_from_slice(&crc);
}

/// The valid records of `bytes` from `start`, and the offset where validity ends
/// (`bytes.len()` when every record is whole).
pub fn scan(bytes: &[u8], start: usize) -> (Vec<&[u8]>, usize) {
    let mut records = Vec::new();
    let mut pos = start;
    while let Some(header) = bytes.get(pos..pos + HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = bytes.get(pos + HEADER..pos + HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push(payload);
        pos += HEADER + len;
    }
    (records, pos)
}

/// Writes `bytes` to a new file at `path` atomically: temporary file, fsync, rename,
/// fsync of the directory. A reader sees the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp).at(&tmp)?;
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
    }
    std::fs::rename(&tmp, path).at(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes creations, renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_scan_at_the_last_good_record() {
        let mut bytes = Vec::new();
        put(&mut bytes, b"one");
        put(&mut bytes, b"two");
        let good = bytes.len();
        put(&mut bytes, b"three");
        let (records, end) = scan(&bytes[..bytes.len() - 2], 0);
        assert_eq!(records, vec![&b"one"[..], b"two"]);
        assert_eq!(end, good);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(scan(&bytes, 0).1, good);
    }

    #[test]
    fn begin_and_seal_frame_like_put() {
        let mut a = Vec::new();
        put(&mut a, b"payload");
        let mut b = Vec::new();
        let at = begin(&mut b);
        b.extend_from_slice(b"payload");
        seal(&mut b, at);
        assert_eq!(a, b);
    }
}
