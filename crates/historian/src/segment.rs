//! Segment files: immutable, one time partition each, holding one or more chunks per
//! series and the partition's events, with an index at the end.
//!
//! Layout: `"BPHSEG02"`, chunk bytes…, events block, index, footer
//! (`index offset u64 LE, index length u32 LE, index CRC32C u32 LE, "BPHE"`). The index
//! gives the segment's sequence number, its partition, the WAL segment it covers up to
//! (flushes) or the segments it replaces (merges), and per chunk the series, time range,
//! point count, byte range, CRC32C and the distinct context ids (up to 8) so context
//! filters skip chunks without decoding them.
//!
//! Files are written as `<seq>.seg.tmp`, fsynced, and renamed into place only when their
//! flush or merge commits (see `store.rs`); a `.seg` file is therefore always complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use backplane_model::Timestamp;
use backplane_model::wire::{self, Cursor, Error, put_blob, put_varint, put_varint_i64};

use crate::codec::{chunk, ints};
use crate::error::{IoContext, Result, StoreError, corrupt};
use crate::frame::{self, checksum};
use crate::point::{ContextId, Point, SeriesId, StoredEvent};

/// Version 02: CRC32C checksums (01 had CRC-32).
const MAGIC: &[u8; 8] = b"BPHSEG02";
const FOOTER_MAGIC: &[u8; 4] = b"BPHE";
const FOOTER: usize = 20;
const INDEX_FORMAT: u8 = 1;
/// Context ids listed per chunk; a chunk with more distinct contexts is always read.
const MAX_CONTEXTS: usize = 8;

/// Where one chunk is and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChunkMeta {
    pub series: SeriesId,
    pub min_t: i64,
    pub max_t: i64,
    pub count: u32,
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
    /// Distinct context ids, or `None` when there are more than [`MAX_CONTEXTS`].
    pub contexts: Option<Vec<ContextId>>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EventsMeta {
    pub offset: u64,
    pub len: u32,
    pub count: u32,
    pub min_t: i64,
    pub max_t: i64,
    pub crc: u32,
}

/// An open segment: its index in memory, its data on disk.
#[derive(Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    pub seq: u64,
    pub partition_start: i64,
    pub partition_len: i64,
    pub wal_upto: u64,
    pub replaces: Vec<u64>,
    pub chunks: Vec<ChunkMeta>,
    pub events: Option<EventsMeta>,
    pub size: u64,
    /// Set once the segment is no longer part of the store; the file is deleted when the
    /// last query holding it lets go.
    retired: AtomicBool,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Acquire)
            && let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "historian: cannot delete a retired segment");
        }
    }
}

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.seg"))
}

pub(crate) fn tmp_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.seg.tmp"))
}

impl Segment {
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub fn partition_end(&self) -> i64 {
        self.partition_start.saturating_add(self.partition_len)
    }

    /// Opens a segment file and reads its index.
    pub fn open(path: &Path) -> Result<Segment> {
        let file = File::open(path).at(path)?;
        let size = file.metadata().at(path)?.len();
        if size < (MAGIC.len() + FOOTER) as u64 {
            return Err(corrupt(path, "too short for a segment"));
        }
        let head = read_at(&file, 0, MAGIC.len()).at(path)?;
        frame::check_magic(path, &head, MAGIC, "segment file")?;
        let footer = read_at(&file, size - FOOTER as u64, FOOTER).at(path)?;
        if &footer[16..20] != FOOTER_MAGIC {
            return Err(corrupt(path, "footer missing (incomplete file)"));
        }
        let mut cur = Cursor::new(&footer);
        let (index_offset, index_len, index_crc) =
            (|| -> wire::Result<(u64, u32, u32)> { Ok((cur.u64_le()?, cur.u32_le()?, cur.u32_le()?)) })()
                .map_err(|e| corrupt(path, e.to_string()))?;
        if index_offset.checked_add(u64::from(index_len)) != Some(size - FOOTER as u64) {
            return Err(corrupt(path, "index out of place"));
        }
        let index = read_at(&file, index_offset, index_len as usize).at(path)?;
        if checksum(&index) != index_crc {
            return Err(corrupt(path, "index checksum mismatch"));
        }
        parse_index(&index, path, size).map_err(|e| corrupt(path, format!("index: {e}")))
    }

    /// Opens the data file for reading chunks; `None` if it was deleted meanwhile
    /// (retention or a merge replaced it after the caller took its snapshot).
    pub fn reader(&self) -> Result<Option<File>> {
        match File::open(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    pub fn read_chunk(&self, file: &File, meta: &ChunkMeta) -> Result<Vec<Point>> {
        self.read_chunk_range(file, meta, i64::MIN, i64::MAX)
    }

    /// The chunk's points in `[from, to)`, checksum verified.
    pub fn read_chunk_range(&self, file: &File, meta: &ChunkMeta, from: i64, to: i64) -> Result<Vec<Point>> {
        let bytes = read_at(file, meta.offset, meta.len as usize).at(&self.path)?;
        if checksum(&bytes) != meta.crc {
            return Err(corrupt(
                &self.path,
                format!("chunk at {} fails its checksum", meta.offset),
            ));
        }
        chunk::decode_range(&bytes, from, to)
            .map_err(|e| corrupt(&self.path, format!("chunk at {}: {e}", meta.offset)))
    }

    pub fn read_events(&self, file: &File) -> Result<Vec<StoredEvent>> {
        let Some(meta) = &self.events else {
            return Ok(Vec::new());
        };
        let bytes = read_at(file, meta.offset, meta.len as usize).at(&self.path)?;
        if checksum(&bytes) != meta.crc {
            return Err(corrupt(&self.path, "events block fails its checksum"));
        }
        decode_events(&bytes).map_err(|e| corrupt(&self.path, format!("events block: {e}")))
    }
}

fn parse_index(index: &[u8], path: &Path, size: u64) -> wire::Result<Segment> {
    let mut cur = Cursor::new(index);
    if cur.u8()? != INDEX_FORMAT {
        return Err(Error::Invalid("unknown index format"));
    }
    let seq = cur.varint()?;
    let partition_start = cur.varint_i64()?;
    let partition_len = i64::try_from(cur.varint()?).map_err(|_| Error::Invalid("partition length"))?;
    let wal_upto = cur.varint()?;
    let n = cur.count(usize::MAX, 1)?;
    let mut replaces = Vec::with_capacity(n);
    for _ in 0..n {
        replaces.push(cur.varint()?);
    }
    let n = cur.count(usize::MAX, 12)?;
    let mut chunks = Vec::with_capacity(n);
    for _ in 0..n {
        let series = u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("series id"))?;
        let min_t = cur.varint_i64()?;
        let max_t = cur.varint_i64()?;
        let count = u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("count"))?;
        let offset = cur.varint()?;
        let len = u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("length"))?;
        let crc = cur.u32_le()?;
        let contexts = match cur.u8()? {
            0 => None,
            _ => {
                let k = cur.count(MAX_CONTEXTS, 1)?;
                let mut ids = Vec::with_capacity(k);
                for _ in 0..k {
                    ids.push(u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("context id"))?);
                }
                Some(ids)
            }
        };
        if offset.saturating_add(u64::from(len)) > size {
            return Err(Error::Invalid("chunk past the end of the file"));
        }
        chunks.push(ChunkMeta {
            series,
            min_t,
            max_t,
            count,
            offset,
            len,
            crc,
            contexts,
        });
    }
    let events = match cur.u8()? {
        0 => None,
        _ => Some(EventsMeta {
            offset: cur.varint()?,
            len: u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("length"))?,
            count: u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("count"))?,
            min_t: cur.varint_i64()?,
            max_t: cur.varint_i64()?,
            crc: cur.u32_le()?,
        }),
    };
    Ok(Segment {
        path: path.to_owned(),
        seq,
        partition_start,
        partition_len,
        wal_upto,
        replaces,
        chunks,
        events,
        size,
        retired: AtomicBool::new(false),
    })
}

/// Writes one segment file (as `.seg.tmp`).
pub(crate) struct SegmentWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    seq: u64,
    partition_start: i64,
    partition_len: i64,
    wal_upto: u64,
    replaces: Vec<u64>,
    chunks: Vec<ChunkMeta>,
    events: Option<EventsMeta>,
    scratch: Vec<u8>,
}

impl SegmentWriter {
    pub fn create(
        dir: &Path,
        seq: u64,
        partition_start: i64,
        partition_len: i64,
        wal_upto: u64,
        replaces: Vec<u64>,
    ) -> Result<SegmentWriter> {
        let path = tmp_path(dir, seq);
        let file = File::create(&path).at(&path)?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        out.write_all(MAGIC).at(&path)?;
        Ok(SegmentWriter {
            path,
            out,
            offset: MAGIC.len() as u64,
            seq,
            partition_start,
            partition_len,
            wal_upto,
            replaces,
            chunks: Vec::new(),
            events: None,
            scratch: Vec::new(),
        })
    }

    /// Adds one chunk; `points` are sorted by time and not empty.
    pub fn add_chunk(&mut self, series: SeriesId, points: &[Point]) -> Result<()> {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return Ok(());
        };
        self.scratch.clear();
        chunk::encode(points, &mut self.scratch);
        let mut contexts: Vec<ContextId> = Vec::new();
        for p in points {
            if !contexts.contains(&p.context) {
                contexts.push(p.context);
                if contexts.len() > MAX_CONTEXTS {
                    break;
                }
            }
        }
        let meta = ChunkMeta {
            series,
            min_t: first.time.unix_nanos(),
            max_t: last.time.unix_nanos(),
            count: points.len() as u32,
            offset: self.offset,
            len: self.scratch.len() as u32,
            crc: checksum(&self.scratch),
            contexts: (contexts.len() <= MAX_CONTEXTS).then_some(contexts),
        };
        self.out.write_all(&self.scratch).at(&self.path)?;
        self.offset += self.scratch.len() as u64;
        self.chunks.push(meta);
        Ok(())
    }

    /// Adds the partition's events (sorted by time).
    pub fn add_events(&mut self, events: &[StoredEvent]) -> Result<()> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        self.scratch.clear();
        encode_events(events, &mut self.scratch);
        self.events = Some(EventsMeta {
            offset: self.offset,
            len: self.scratch.len() as u32,
            count: events.len() as u32,
            min_t: first.time.unix_nanos(),
            max_t: last.time.unix_nanos(),
            crc: checksum(&self.scratch),
        });
        self.out.write_all(&self.scratch).at(&self.path)?;
        self.offset += self.scratch.len() as u64;
        Ok(())
    }

    /// Writes the index and footer and fsyncs; the segment is complete but still a
    /// `.seg.tmp` until [`commit`] renames it.
    pub fn finish(mut self) -> Result<Segment> {
        let mut index = vec![INDEX_FORMAT];
        put_varint(&mut index, self.seq);
        put_varint_i64(&mut index, self.partition_start);
        put_varint(&mut index, self.partition_len as u64);
        put_varint(&mut index, self.wal_upto);
        put_varint(&mut index, self.replaces.len() as u64);
        for r in &self.replaces {
            put_varint(&mut index, *r);
        }
        put_varint(&mut index, self.chunks.len() as u64);
        for c in &self.chunks {
            put_varint(&mut index, u64::from(c.series));
            put_varint_i64(&mut index, c.min_t);
            put_varint_i64(&mut index, c.max_t);
            put_varint(&mut index, u64::from(c.count));
            put_varint(&mut index, c.offset);
            put_varint(&mut index, u64::from(c.len));
            index.extend_from_slice(&c.crc.to_le_bytes());
            match &c.contexts {
                None => index.push(0),
                Some(ids) => {
                    index.push(1);
                    put_varint(&mut index, ids.len() as u64);
                    for id in ids {
                        put_varint(&mut index, u64::from(*id));
                    }
                }
            }
        }
        match &self.events {
            None => index.push(0),
            Some(e) => {
                index.push(1);
                put_varint(&mut index, e.offset);
                put_varint(&mut index, u64::from(e.len));
                put_varint(&mut index, u64::from(e.count));
                put_varint_i64(&mut index, e.min_t);
                put_varint_i64(&mut index, e.max_t);
                index.extend_from_slice(&e.crc.to_le_bytes());
            }
        }
        let index_offset = self.offset;
        self.out.write_all(&index).at(&self.path)?;
        let mut footer = Vec::with_capacity(FOOTER);
        footer.extend_from_slice(&index_offset.to_le_bytes());
        footer.extend_from_slice(&(index.len() as u32).to_le_bytes());
        footer.extend_from_slice(&checksum(&index).to_le_bytes());
        footer.extend_from_slice(FOOTER_MAGIC);
        self.out.write_all(&footer).at(&self.path)?;
        let file = self.out.into_inner().map_err(|e| StoreError::Io {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().at(&self.path)?;
        let size = index_offset + index.len() as u64 + FOOTER as u64;
        Ok(Segment {
            path: self.path,
            seq: self.seq,
            partition_start: self.partition_start,
            partition_len: self.partition_len,
            wal_upto: self.wal_upto,
            replaces: self.replaces,
            chunks: self.chunks,
            events: self.events,
            size,
            retired: AtomicBool::new(false),
        })
    }
}

/// Renames a finished `.seg.tmp` into place. The caller fsyncs the directory.
pub(crate) fn commit(dir: &Path, segment: &mut Segment) -> Result<()> {
    let final_path = segment_path(dir, segment.seq);
    std::fs::rename(&segment.path, &final_path).at(&final_path)?;
    segment.path = final_path;
    Ok(())
}

fn encode_events(events: &[StoredEvent], out: &mut Vec<u8>) {
    put_varint(out, events.len() as u64);
    let times: Vec<i64> = events.iter().map(|e| e.time.unix_nanos()).collect();
    ints::encode(&times, out);
    let contexts: Vec<i64> = events.iter().map(|e| i64::from(e.context)).collect();
    ints::encode(&contexts, out);
    for column in [
        events.iter().map(|e| &*e.asset).collect::<Vec<&str>>(),
        events.iter().map(|e| &*e.kind).collect(),
    ] {
        let mut entries: Vec<&str> = Vec::new();
        let ids: Vec<i64> = column
            .iter()
            .map(|s| match entries.iter().position(|e| e == s) {
                Some(i) => i as i64,
                None => {
                    entries.push(s);
                    entries.len() as i64 - 1
                }
            })
            .collect();
        put_varint(out, entries.len() as u64);
        for e in &entries {
            put_blob(out, e.as_bytes());
        }
        ints::encode(&ids, out);
    }
    for e in events {
        put_blob(out, e.body.as_bytes());
    }
}

fn decode_events(bytes: &[u8]) -> wire::Result<Vec<StoredEvent>> {
    let mut cur = Cursor::new(bytes);
    let n = cur.count(usize::MAX, 1)?;
    let mut times = Vec::with_capacity(n);
    ints::decode(&mut cur, n, &mut times)?;
    let mut contexts = Vec::with_capacity(n);
    ints::decode(&mut cur, n, &mut contexts)?;
    let mut columns: Vec<Vec<std::sync::Arc<str>>> = Vec::with_capacity(2);
    for _ in 0..2 {
        let k = cur.count(n, 1)?;
        let mut entries: Vec<std::sync::Arc<str>> = Vec::with_capacity(k);
        for _ in 0..k {
            entries.push(cur.str()?.into());
        }
        let mut ids = Vec::with_capacity(n);
        ints::decode(&mut cur, n, &mut ids)?;
        columns.push(
            ids.into_iter()
                .map(|i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| entries.get(i).cloned())
                        .ok_or(Error::Invalid("dictionary id out of range"))
                })
                .collect::<wire::Result<_>>()?,
        );
    }
    let kinds = columns.pop().unwrap_or_default();
    let assets = columns.pop().unwrap_or_default();
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        events.push(StoredEvent {
            time: Timestamp::from_unix_nanos(times[i]),
            asset: assets
                .get(i)
                .cloned()
                .ok_or(Error::Invalid("asset column short"))?,
            kind: kinds.get(i).cloned().ok_or(Error::Invalid("kind column short"))?,
            body: cur.str()?.into(),
            context: u32::try_from(contexts[i]).map_err(|_| Error::Invalid("context id"))?,
        });
    }
    Ok(events)
}

/// Reads `len` bytes at `offset` without moving a shared file position.
pub(crate) fn read_at(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut buf, offset)?;
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < len {
            let n = file.seek_read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use backplane_model::{Quality, Value};

    use super::*;

    #[test]
    fn a_written_segment_reopens_with_its_chunks_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let points: Vec<Point> = (0..100)
            .map(|i| Point {
                time: Timestamp::from_unix_nanos(i * 1_000_000_000),
                source_time: None,
                value: Some(Value::Float(i as f64 / 4.0)),
                quality: Quality::Good,
                context: (i / 50) as u32,
            })
            .collect();
        let events = vec![StoredEvent {
            time: Timestamp::from_unix_nanos(5),
            asset: "a/b".into(),
            kind: "context_changed".into(),
            body: "{}".into(),
            context: 1,
        }];
        let mut w = SegmentWriter::create(dir.path(), 3, 0, 3_600_000_000_000, 9, vec![1, 2]).unwrap();
        w.add_chunk(4, &points).unwrap();
        w.add_events(&events).unwrap();
        let mut written = w.finish().unwrap();
        commit(dir.path(), &mut written).unwrap();

        let segment = Segment::open(&segment_path(dir.path(), 3)).unwrap();
        assert_eq!(
            (segment.seq, segment.wal_upto, segment.replaces.clone()),
            (3, 9, vec![1, 2])
        );
        assert_eq!(segment.chunks, written.chunks);
        assert_eq!(segment.chunks[0].contexts, Some(vec![0, 1]));
        let file = segment.reader().unwrap().unwrap();
        assert_eq!(segment.read_chunk(&file, &segment.chunks[0]).unwrap(), points);
        assert_eq!(segment.read_events(&file).unwrap(), events);
    }

    #[test]
    fn a_cut_file_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let w = SegmentWriter::create(dir.path(), 1, 0, 1, 0, vec![]).unwrap();
        let s = w.finish().unwrap();
        let bytes = std::fs::read(&s.path).unwrap();
        std::fs::write(&s.path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(Segment::open(&s.path), Err(StoreError::Corrupt { .. })));
    }
}
