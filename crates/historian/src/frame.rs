//! The pieces every file of the store shares:
//! - checksummed records in append-only files (the WAL and the catalog):
//!   `payload length u32 LE, CRC32C of the payload u32 LE, payload`. A crash can leave the
//!   last record cut short or half written; [`scan`] stops at the first record that is
//!   incomplete or fails its checksum and says where the good prefix ends, so the writer
//!   can truncate the torn tail;
//! - the 8-byte magic that opens each file: 6 bytes naming the file type and 2 ASCII
//!   digits of its format version ([`check_magic`]);
//! - atomic replacement and directory fsync.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result, StoreError, corrupt};

pub const HEADER: usize = 8;
/// A record larger than this is taken as garbage (a torn length field), not allocated.
pub const MAX_RECORD: usize = 256 << 20;

/// Appends a framed record to `out`.
pub fn put(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(payload).to_le_bytes());
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
    let crc = checksum(payload).to_le_bytes();
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
        if checksum(payload) != crc {
            break;
        }
        records.push(payload);
        pos += HEADER + len;
    }
    (records, pos)
}

/// The CRC32C (Castagnoli) every checksum of the store uses.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Checks that `head` (a file's first bytes) starts with `magic`. Another file type is
/// corrupt (`not a {what}`); the same type in another format version is refused with
/// [`StoreError::Version`], so an older or newer file is never misread, moved aside or
/// deleted.
pub fn check_magic(path: &Path, head: &[u8], magic: &[u8; 8], what: &str) -> Result<()> {
    let Some(head) = head.get(..8) else {
        return Err(corrupt(path, format!("not a {what}")));
    };
    if head == magic {
        return Ok(());
    }
    let version = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|v| v.parse::<u32>().ok());
    match (version(&head[6..]), version(&magic[6..])) {
        (Some(found), Some(expected)) if head[..6] == magic[..6] => Err(StoreError::Version {
            path: path.to_owned(),
            found,
            expected,
        }),
        _ => Err(corrupt(path, format!("not a {what}"))),
    }
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
    fn another_version_of_the_same_file_type_is_refused_naming_both_versions() {
        let path = Path::new("/data/history/wal/0000000000000001.wal");
        assert!(check_magic(path, b"BPHWAL02rest", b"BPHWAL02", "WAL segment").is_ok());
        let e = check_magic(path, b"BPHWAL01rest", b"BPHWAL02", "WAL segment").unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Version {
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(
            message.starts_with("/data/history/wal/0000000000000001.wal: "),
            "{message}"
        );
        assert!(message.contains("format version 1"), "{message}");
        assert!(message.contains("reads only version 2"), "{message}");
        for other in [&b"BPHCAT02"[..], b"BPHWALxx", b"BPH"] {
            let e = check_magic(path, other, b"BPHWAL02", "WAL segment").unwrap_err();
            assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
            assert!(e.to_string().ends_with("not a WAL segment"), "{e}");
        }
    }

    #[test]
    fn records_are_checked_with_crc32c() {
        let mut bytes = Vec::new();
        put(&mut bytes, b"123456789");
        // The CRC32C check value of "123456789".
        assert_eq!(bytes[4..8], 0xe306_9283u32.to_le_bytes());
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
