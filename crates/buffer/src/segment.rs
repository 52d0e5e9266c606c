//! Segment files: naming, buffered positional reads, and the scan that validates a segment
//! record by record and skips damage.
//!
//! A segment is an append-only file of records named after the sequence number of its first
//! record (`{seq:020}.log`). Bytes below a segment's committed length never change once
//! written, which is what lets readers cache them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::record::{HEADER_LEN, Header, checksum};

/// Size of a reader's buffer: large enough that a drain reads in big sequential chunks,
/// small enough that memory stays flat whatever the backlog.
const BUF_CAP: usize = 64 << 10;

pub(crate) fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(segment_file_name(first_seq))
}

/// The first sequence number a segment file name stands for, if it is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment opened for reading, with a read-ahead buffer. Reads take an explicit `limit`
/// (the committed length) and never buffer bytes past it, so a buffer never holds bytes a
/// concurrent append has not finished.
pub(crate) struct SegFile {
    pub seg: u64,
    pub path: PathBuf,
    file: File,
    buf: Vec<u8>,
    buf_off: u64,
}

impl std::fmt::Debug for SegFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SegFile {
    pub fn open(path: PathBuf, seg: u64) -> Result<SegFile> {
        let file = File::open(&path).at("open segment", &path)?;
        Ok(SegFile {
            seg,
            path,
            file,
            buf: Vec::new(),
            buf_off: 0,
        })
    }

    pub fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().at("stat segment", &self.path)?.len())
    }

    /// Fills `out` from the file at `off`; returns how many bytes were there.
    fn fill(&self, off: u64, out: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < out.len() {
            match self.file.read_at(&mut out[filled..], off + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// Reads exactly `out.len()` bytes at `off`, none at or past `limit`. `Ok(false)` when
    /// they are not all there (past the limit, or the file is shorter than it should be).
    pub fn read_at(&mut self, off: u64, limit: u64, out: &mut [u8]) -> Result<bool> {
        let n = out.len() as u64;
        let Some(end) = off.checked_add(n) else {
            return Ok(false);
        };
        if end > limit {
            return Ok(false);
        }
        let buf_end = self.buf_off + self.buf.len() as u64;
        if off >= self.buf_off && end <= buf_end {
            let at = (off - self.buf_off) as usize;
            out.copy_from_slice(&self.buf[at..at + out.len()]);
            return Ok(true);
        }
        if out.len() >= BUF_CAP {
            let got = self.fill(off, out).at("read segment", &self.path)?;
            return Ok(got == out.len());
        }
        let want = usize::try_from(limit - off).unwrap_or(BUF_CAP).min(BUF_CAP);
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(want, 0);
        let got = self.fill(off, &mut buf);
        let got = match got {
            Ok(got) => got,
            Err(e) => {
                buf.clear();
                self.buf = buf;
                return Err(e).at("read segment", &self.path);
            }
        };
        buf.truncate(got);
        self.buf = buf;
        self.buf_off = off;
        if got < out.len() {
            return Ok(false);
        }
        out.copy_from_slice(&self.buf[..out.len()]);
        Ok(true)
    }

    /// [`read_at`](Self::read_at) of `len` bytes into `out`, replacing its contents. Copied
    /// straight from the read buffer when they are in it (the usual case: reading a
    /// record's header fills the buffer from there on), without zeroing `out` first.
    pub fn read_vec_at(&mut self, off: u64, limit: u64, len: usize, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        let buf_end = self.buf_off + self.buf.len() as u64;
        if let Some(end) = off.checked_add(len as u64)
            && end <= limit
            && off >= self.buf_off
            && end <= buf_end
        {
            let at = (off - self.buf_off) as usize;
            out.extend_from_slice(&self.buf[at..at + len]);
            return Ok(true);
        }
        out.resize(len, 0);
        self.read_at(off, limit, out)
    }

    /// Reads just the header at `off` (no checksum: for figures, not for delivery).
    pub fn header_at(&mut self, off: u64, limit: u64) -> Result<Option<Header>> {
        let mut hb = [0u8; HEADER_LEN];
        if !self.read_at(off, limit, &mut hb)? {
            return Ok(None);
        }
        let h = Header::parse(&hb);
        Ok(h.plausible().then_some(h))
    }
}

/// Where a record may be: its seq must be at least `min_seq` (the sequence continues), and its
/// end at most `max_end` (the next segment's first seq) when there is a next segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeqBounds {
    pub min_seq: u64,
    pub max_end: Option<u64>,
}

impl SeqBounds {
    /// Whether the record of header `h` may start at `off` of a segment committed up to
    /// `limit`: plausible, in sequence, and whole before the limit.
    pub fn admit(&self, h: &Header, off: u64, limit: u64) -> bool {
        let (Some(end), Some(rec_end)) = (h.end_seq(), off.checked_add(h.record_len())) else {
            return false;
        };
        h.plausible()
            && h.seq >= self.min_seq
            && self.max_end.is_none_or(|max| end <= max)
            && rec_end <= limit
    }
}

/// Reads and checks the record at `off` into `payload`. `Ok(None)` when no valid record starts
/// there: short, implausible header, out-of-sequence, or checksum mismatch.
pub(crate) fn record_at(
    f: &mut SegFile,
    off: u64,
    limit: u64,
    bounds: SeqBounds,
    payload: &mut Vec<u8>,
) -> Result<Option<Header>> {
    let mut hb = [0u8; HEADER_LEN];
    if !f.read_at(off, limit, &mut hb)? {
        return Ok(None);
    }
    let h = Header::parse(&hb);
    if !bounds.admit(&h, off, limit) {
        return Ok(None);
    }
    if !f.read_vec_at(off + HEADER_LEN as u64, limit, h.len as usize, payload)? {
        return Ok(None);
    }
    if checksum(&hb, payload) != h.crc {
        return Ok(None);
    }
    Ok(Some(h))
}

/// After damage at `bad`, finds the next offset below `limit` where a valid record starts.
/// A candidate must pass the checksum and continue the sequence plausibly: its seq may jump
/// ahead of `bounds.min_seq` only by what the skipped bytes could have held.
pub(crate) fn resync(
    f: &mut SegFile,
    bad: u64,
    limit: u64,
    bounds: SeqBounds,
    payload: &mut Vec<u8>,
) -> Result<Option<u64>> {
    let mut hb = [0u8; HEADER_LEN];
    let mut off = bad + 1;
    while off + HEADER_LEN as u64 <= limit {
        if !f.read_at(off, limit, &mut hb)? {
            break;
        }
        let h = Header::parse(&hb);
        // At most one record per header's worth of skipped bytes, each at most u32::MAX seqs.
        let max_jump = ((off - bad) / HEADER_LEN as u64 + 1).saturating_mul(u64::from(u32::MAX));
        if h.plausible()
            && h.seq >= bounds.min_seq
            && h.seq - bounds.min_seq <= max_jump
            && off.saturating_add(h.record_len()) <= limit
            && record_at(f, off, limit, bounds, payload)?.is_some()
        {
            return Ok(Some(off));
        }
        off += 1;
    }
    Ok(None)
}

/// Byte ranges of a segment that hold no valid record; readers jump over them.
pub(crate) fn skip_holes(holes: &[(u64, u64)], off: u64) -> u64 {
    holes
        .iter()
        .find(|&&(start, end)| start <= off && off < end)
        .map_or(off, |&(_, end)| end)
}

/// What scanning one segment found.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    /// End of the last valid record; everything after it is `tail`.
    pub valid_end: u64,
    /// The seq after the last valid record (the segment's first seq when it has none).
    pub end_seq: u64,
    /// Damaged ranges with valid records after them: `(start, end)` byte offsets.
    pub holes: Vec<(u64, u64)>,
    /// Sequence numbers skipped over by holes.
    pub hole_lost_seqs: u64,
    /// Bytes after the last valid record that are not a valid record.
    pub tail: u64,
}

/// Validates a whole segment, calling `visit(offset, header)` for each valid record in order.
pub(crate) fn scan(
    f: &mut SegFile,
    len: u64,
    first_seq: u64,
    max_end: Option<u64>,
    visit: &mut dyn FnMut(u64, &Header),
) -> Result<Scanned> {
    let mut out = Scanned {
        end_seq: first_seq,
        ..Scanned::default()
    };
    let mut payload = Vec::new();
    let mut off = 0;
    while off < len {
        let bounds = SeqBounds {
            min_seq: out.end_seq,
            max_end,
        };
        if let Some(h) = record_at(f, off, len, bounds, &mut payload)? {
            visit(off, &h);
            out.end_seq = h.end_seq().unwrap_or(out.end_seq);
            off += h.record_len();
            continue;
        }
        match resync(f, off, len, bounds, &mut payload)? {
            Some(next) => {
                let mut hb = [0u8; HEADER_LEN];
                if f.read_at(next, len, &mut hb)? {
                    out.hole_lost_seqs += Header::parse(&hb).seq.saturating_sub(out.end_seq);
                }
                out.holes.push((off, next));
                off = next;
            }
            None => {
                out.tail = len - off;
                break;
            }
        }
    }
    out.valid_end = off.min(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::record::encode;

    fn write_records(dir: &Path, records: &[(u64, u32, &[u8])]) -> (PathBuf, Vec<u64>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for &(seq, count, payload) in records {
            offsets.push(buf.len() as u64);
            encode(&mut buf, seq, count, 1, payload);
        }
        let path = segment_path(dir, records.first().map_or(0, |r| r.0));
        std::fs::write(&path, &buf).unwrap();
        (path, offsets)
    }

    fn scan_file(path: &Path, first: u64) -> (Scanned, Vec<u64>) {
        let mut f = SegFile::open(path.to_owned(), first).unwrap();
        let len = f.len().unwrap();
        let mut seen = Vec::new();
        let s = scan(&mut f, len, first, None, &mut |_, h| seen.push(h.seq)).unwrap();
        (s, seen)
    }

    #[test]
    fn segment_names_round_trip_and_reject_others() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(parse_segment_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_file_name("sink.pos0"), None);
    }

    #[test]
    fn clean_segment_scans_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_records(dir.path(), &[(10, 2, b"a"), (12, 1, b"bb"), (13, 5, b"ccc")]);
        let (s, seen) = scan_file(&path, 10);
        assert_eq!(seen, vec![10, 12, 13]);
        assert_eq!((s.end_seq, s.tail, s.holes.len()), (18, 0, 0));
        assert_eq!(s.valid_end, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn bit_flip_in_the_middle_becomes_a_hole_and_scanning_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, offs) = write_records(
            dir.path(),
            &[(0, 1, b"first"), (1, 1, b"second"), (2, 1, b"third")],
        );
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offs[1] as usize + HEADER_LEN + 2] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let (s, seen) = scan_file(&path, 0);
        assert_eq!(seen, vec![0, 2]);
        assert_eq!(s.holes, vec![(offs[1], offs[2])]);
        assert_eq!(s.hole_lost_seqs, 1);
        assert_eq!(s.tail, 0);
    }

    #[test]
    fn garbage_after_the_last_record_is_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_records(dir.path(), &[(0, 1, b"only")]);
        let good = std::fs::metadata(&path).unwrap().len();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 100]);
        bytes.extend_from_slice(&[0xabu8; 57]);
        std::fs::write(&path, &bytes).unwrap();
        let (s, seen) = scan_file(&path, 0);
        assert_eq!(seen, vec![0]);
        assert_eq!((s.valid_end, s.tail), (good, 157));
    }

    #[test]
    fn reads_into_a_vector_give_the_file_s_bytes_from_the_buffer_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut f = SegFile::open(path, 0).unwrap();
        let mut out = vec![0xAA; 5];
        // Not buffered yet, then buffered from offset 100 on, then past the file.
        for (off, len) in [(100, 40), (120, 30), (130, 0), (2990, 10), (10, 2000)] {
            assert!(f.read_vec_at(off, 3000, len, &mut out).unwrap(), "{off}+{len}");
            assert_eq!(out, bytes[off as usize..off as usize + len], "{off}+{len}");
        }
        assert!(
            !f.read_vec_at(2995, 3000, 10, &mut out).unwrap(),
            "past the limit"
        );
        assert!(!f.read_vec_at(2995, 4000, 10, &mut out).unwrap(), "past the file");
        // Buffered under a higher limit: the bytes past a lower one are not served.
        assert!(f.read_vec_at(0, 3000, 50, &mut out).unwrap());
        assert!(
            !f.read_vec_at(40, 50, 20, &mut out).unwrap(),
            "past the limit, buffered"
        );
    }

    #[test]
    fn reads_never_cross_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let mut f = SegFile::open(path, 0).unwrap();
        let mut out = [0u8; 10];
        assert!(f.read_at(0, 10, &mut out).unwrap());
        assert!(!f.read_at(5, 10, &mut out).unwrap());
        // The buffer filled under limit 10 must not serve bytes that were past it.
        assert!(f.read_at(5, 1000, &mut out).unwrap());
        assert_eq!(out, [7u8; 10]);
        assert!(
            !f.read_at(995, 2000, &mut out).unwrap(),
            "file is shorter than the limit"
        );
    }
}
