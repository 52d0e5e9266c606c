//! The write-ahead log: every appended batch is one framed record in the current WAL
//! segment (`wal/<seq>.wal`) before it is visible to queries, and (with `fsync = "batch"`)
//! fsynced before [`crate::Store::append`] returns. Flushing turns the WAL into chunk
//! files; the checkpoint then says which segments are covered and they are deleted.
//!
//! Segment layout: `"BPHWAL02", seq u64 LE`, then records ([`crate::frame`]). A record's
//! payload: `points varint, point*, events varint, event*`, where a point is
//! `series varint, time delta (zigzag varint, from the previous point of the record),
//! flags u8 (1 = source time, 2 = value), [source - gateway zigzag varint],
//! quality status code varint, context id varint, [value ([`backplane_model::wire`])]`
//! and an event is `time zigzag varint, asset, kind, body (length-prefixed UTF-8),
//! context id varint`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_model::wire::{self, Cursor, Error, put_blob, put_value, put_varint, put_varint_i64};
use backplane_model::{Quality, Timestamp};

use crate::error::{IoContext, Result, StoreError};
use crate::frame;
use crate::point::{Point, SeriesId, StoredEvent};

/// Version 02: CRC32C record checksums (01 had CRC-32).
const MAGIC: &[u8; 8] = b"BPHWAL02";
const HEADER: usize = 16;

/// When appended records reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Every append is fsynced before it returns: an acknowledged batch survives a crash
    /// or a power loss.
    Batch,
    /// Appends return once written to the OS; the WAL is fsynced at most this long after.
    /// A process crash loses nothing; a power loss can lose up to this much.
    Interval(Duration),
}

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

/// WAL segments in `dir`, ascending by sequence number.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source: e,
            });
        }
    };
    for entry in entries {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    seq: u64,
    path: PathBuf,
    file: File,
    fsync: Fsync,
    dirty: bool,
    last_sync: Instant,
    bytes: u64,
    /// A write or fsync failed: the file may end in a partial record, so the next append
    /// starts a new segment (replay moves past a torn segment to the next one).
    broken: bool,
}

impl Wal {
    /// Starts a new segment `seq`, or continues an existing one after its valid records
    /// (`valid_len`, from [`replay`]).
    pub fn open(dir: &Path, seq: u64, valid_len: Option<u64>, fsync: Fsync) -> Result<Wal> {
        std::fs::create_dir_all(dir).at(dir)?;
        let path = segment_path(dir, seq);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        let bytes = match valid_len {
            Some(len) if len >= HEADER as u64 => {
                file.set_len(len).at(&path)?;
                len
            }
            _ => {
                file.set_len(0).at(&path)?;
                file.write_all(MAGIC).at(&path)?;
                file.write_all(&seq.to_le_bytes()).at(&path)?;
                HEADER as u64
            }
        };
        file.sync_all().at(&path)?;
        drop(file);
        let file = OpenOptions::new().append(true).open(&path).at(&path)?;
        frame::sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_owned(),
            seq,
            path,
            file,
            fsync,
            dirty: false,
            last_sync: Instant::now(),
            bytes,
            broken: false,
        })
    }

    /// Writes framed records; durable on return with [`Fsync::Batch`].
    pub fn append(&mut self, framed: &[u8]) -> Result<()> {
        if self.broken {
            self.rotate()?;
        }
        if let Err(e) = self.file.write_all(framed) {
            // Cut the partial record off so later records stay readable.
            if self.file.set_len(self.bytes).is_err() {
                self.broken = true;
            }
            return Err(StoreError::Io {
                path: self.path.clone(),
                source: e,
            });
        }
        self.bytes += framed.len() as u64;
        self.dirty = true;
        match self.fsync {
            Fsync::Batch => self.sync(),
            Fsync::Interval(every) if self.last_sync.elapsed() >= every => self.sync(),
            Fsync::Interval(_) => Ok(()),
        }
    }

    pub fn sync(&mut self) -> Result<()> {
        if self.dirty {
            if let Err(e) = self.file.sync_data() {
                // After a failed fsync the state of the file is unknown: do not append to it.
                self.broken = true;
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    source: e,
                });
            }
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Closes this segment (synced) and starts the next; returns the new sequence number.
    pub fn rotate(&mut self) -> Result<u64> {
        if !self.broken {
            self.sync()?;
        }
        let next = Wal::open(&self.dir, self.seq + 1, None, self.fsync)?;
        *self = next;
        Ok(self.seq)
    }
}

/// The record payloads of one segment and the length of its valid prefix. A torn or
/// corrupt tail ends the scan; a writer truncates the file to the returned length.
pub(crate) fn replay(path: &Path) -> Result<(Vec<Vec<u8>>, u64, bool)> {
    let bytes = std::fs::read(path).at(path)?;
    if bytes.len() < HEADER {
        // Created but the header never reached the disk: nothing was acknowledged in it.
        return Ok((Vec::new(), 0, !bytes.is_empty()));
    }
    frame::check_magic(path, &bytes, MAGIC, "WAL segment")?;
    let (records, end) = frame::scan(&bytes, HEADER);
    let torn = end < bytes.len();
    Ok((
        records.into_iter().map(<[u8]>::to_vec).collect(),
        end as u64,
        torn,
    ))
}

/// Encodes one batch as a record payload.
pub(crate) fn encode_batch(points: &[(SeriesId, Point)], events: &[StoredEvent], out: &mut Vec<u8>) {
    put_varint(out, points.len() as u64);
    let mut previous = 0i64;
    for (series, p) in points {
        put_varint(out, u64::from(*series));
        let t = p.time.unix_nanos();
        put_varint_i64(out, t.wrapping_sub(previous));
        previous = t;
        let flags = u8::from(p.source_time.is_some()) | (u8::from(p.value.is_some()) << 1);
        out.push(flags);
        if let Some(s) = p.source_time {
            put_varint_i64(out, s.unix_nanos().wrapping_sub(t));
        }
        put_varint(out, u64::from(p.quality.to_status_code()));
        put_varint(out, u64::from(p.context));
        if let Some(v) = &p.value {
            put_value(out, v);
        }
    }
    put_varint(out, events.len() as u64);
    for e in events {
        put_varint_i64(out, e.time.unix_nanos());
        put_blob(out, e.asset.as_bytes());
        put_blob(out, e.kind.as_bytes());
        put_blob(out, e.body.as_bytes());
        put_varint(out, u64::from(e.context));
    }
}

pub(crate) type DecodedBatch = (Vec<(SeriesId, Point)>, Vec<StoredEvent>);

pub(crate) fn decode_batch(payload: &[u8]) -> wire::Result<DecodedBatch> {
    let mut cur = Cursor::new(payload);
    let n = cur.count(usize::MAX, 5)?;
    let mut points = Vec::with_capacity(n);
    let mut previous = 0i64;
    for _ in 0..n {
        let series = u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("series id"))?;
        let t = previous.wrapping_add(cur.varint_i64()?);
        previous = t;
        let flags = cur.u8()?;
        if flags > 3 {
            return Err(Error::Invalid("unknown point flags"));
        }
        let source_time = if flags & 1 != 0 {
            Some(Timestamp::from_unix_nanos(t.wrapping_add(cur.varint_i64()?)))
        } else {
            None
        };
        let code = u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("quality"))?;
        let context = u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("context id"))?;
        let value = if flags & 2 != 0 { Some(cur.value()?) } else { None };
        points.push((
            series,
            Point {
                time: Timestamp::from_unix_nanos(t),
                source_time,
                value,
                quality: Quality::from_status_code(code),
                context,
            },
        ));
    }
    let n = cur.count(usize::MAX, 5)?;
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        let time = Timestamp::from_unix_nanos(cur.varint_i64()?);
        let asset: Arc<str> = cur.str()?.into();
        let kind: Arc<str> = cur.str()?.into();
        let body: Arc<str> = cur.str()?.into();
        let context = u32::try_from(cur.varint()?).map_err(|_| Error::Invalid("context id"))?;
        events.push(StoredEvent {
            time,
            asset,
            kind,
            body,
            context,
        });
    }
    if !cur.is_empty() {
        return Err(Error::Invalid("bytes after the batch"));
    }
    Ok((points, events))
}

#[cfg(test)]
mod tests {
    use backplane_model::{BadReason, Value};

    use super::*;

    #[test]
    fn batches_round_trip_through_a_record() {
        let points = vec![
            (
                3,
                Point {
                    time: Timestamp::from_unix_nanos(1_000),
                    source_time: Some(Timestamp::from_unix_nanos(990)),
                    value: Some(Value::Float(72.5)),
                    quality: Quality::Good,
                    context: 2,
                },
            ),
            (
                0,
                Point {
                    time: Timestamp::from_unix_nanos(500),
                    source_time: None,
                    value: None,
                    quality: Quality::Bad(BadReason::CommFailure),
                    context: 0,
                },
            ),
        ];
        let events = vec![StoredEvent {
            time: Timestamp::from_unix_nanos(700),
            asset: "acme/plant".into(),
            kind: "context_changed".into(),
            body: r#"{"event":"context_changed","field":"batch"}"#.into(),
            context: 2,
        }];
        let mut out = Vec::new();
        encode_batch(&points, &events, &mut out);
        assert_eq!(decode_batch(&out).unwrap(), (points, events));
    }

    #[test]
    fn a_segment_with_a_torn_tail_replays_its_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 7, None, Fsync::Batch).unwrap();
        let mut framed = Vec::new();
        frame::put(&mut framed, b"first");
        wal.append(&framed).unwrap();
        let path = segment_path(dir.path(), 7);
        let mut bytes = std::fs::read(&path).unwrap();
        let good = bytes.len() as u64;
        bytes.extend_from_slice(&[9, 0, 0, 0, 1]);
        std::fs::write(&path, &bytes).unwrap();
        let (records, valid, torn) = replay(&path).unwrap();
        assert_eq!(records, vec![b"first".to_vec()]);
        assert_eq!(valid, good);
        assert!(torn);
        assert_eq!(list(dir.path()).unwrap(), vec![(7, path)]);
    }
}
