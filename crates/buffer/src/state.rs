//! The log's in-memory state, shared by the appender and the readers behind one mutex: the
//! segment index (a few numbers per segment, never record data), the active segment, and one
//! slot per reader with what the appender needs of it (its floor for quotas, its persisted
//! position for retention).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{IoContext, Result};
use crate::options::{Overflow, ReaderOptions};
use crate::position::PositionStore;
use crate::record::{HEADER_LEN, Header, encode};
use crate::segment::{segment_path, skip_holes};

/// A place in the log: the record starting at byte `off` of segment `seg` (named by its first
/// seq), whose seq is at least `seq`; or, at the end of a segment, the place after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seq: u64,
    pub seg: u64,
    /// Logical address of the segment's byte 0: the sum of the sizes of all segments before it.
    pub base: u64,
    pub off: u64,
}

impl Loc {
    /// Logical byte address; the difference of two is the bytes between them.
    pub fn addr(&self) -> u64 {
        self.base + self.off
    }
}

#[derive(Debug)]
pub(crate) struct SegmentMeta {
    pub first_seq: u64,
    pub base: u64,
    /// Committed length: bytes of whole, valid records (and holes between them).
    pub bytes: u64,
    /// The seq after the last record; `first_seq` while the segment is empty.
    pub end_seq: u64,
    /// Damaged byte ranges found by recovery; readers jump over them.
    pub holes: Vec<(u64, u64)>,
}

impl SegmentMeta {
    fn start(&self) -> Loc {
        Loc {
            seq: self.first_seq,
            seg: self.first_seq,
            base: self.base,
            off: 0,
        }
    }
}

/// Figures of a reader shared with its [`crate::ReaderMonitor`]s and the appender.
#[derive(Debug, Default)]
pub(crate) struct ReaderShared {
    pub name: String,
    pub delivered_seqs: AtomicU64,
    pub acked_seqs: AtomicU64,
    pub dropped_seqs: AtomicU64,
    /// Bumped each time the appender moves the reader's floor for overflow; the reader then
    /// forgets what lies below it.
    pub drop_epoch: AtomicU64,
    pub replaying: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct ReaderSlot {
    pub shared: Arc<ReaderShared>,
    pub options: ReaderOptions,
    /// Everything below is acknowledged (or dropped). Only moves forward.
    pub floor: Loc,
    /// The position on disk; segments wholly below every reader's are deleted.
    pub persisted_seq: u64,
    pub store: PositionStore,
}

/// Where a reader finds the record at a [`Loc`].
#[derive(Debug)]
pub(crate) enum Located {
    /// A record should start at `off` (holes skipped) in a segment committed up to `limit`.
    Data {
        off: u64,
        limit: u64,
        max_end: Option<u64>,
    },
    /// The segment is finished (or gone); go on at this place.
    Next(Loc),
    /// Nothing there yet: the head of the log.
    End,
}

#[derive(Clone, Debug)]
pub(crate) struct Active {
    pub file: Arc<File>,
    pub path: PathBuf,
}

#[derive(Debug)]
pub(crate) struct State {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    /// Never empty: the newest segment is always kept so sequence numbers continue.
    pub segments: VecDeque<SegmentMeta>,
    pub active: Active,
    /// Sealed segments not yet fsynced, and whether a segment was created since the directory
    /// was last fsynced: the next fsync round does both before the active segment, so sealing
    /// never stalls an append.
    pub unsynced: Vec<Active>,
    pub dir_dirty: bool,
    pub next_seq: u64,
    /// Appends so far (this process); the fsync machinery syncs up to a generation.
    pub write_gen: u64,
    pub readers: Vec<ReaderSlot>,
    pub appended_records: u64,
    pub appended_seqs: u64,
    /// A record with its header, assembled for one write; not kept at a burst's size
    /// ([`crate::scratch`]).
    pub scratch: Vec<u8>,
    /// The headers of the latest records appended by this process.
    pub appended: Appended,
}

/// Most headers [`Appended`] keeps: a sink that keeps up is at most a poll's burst of
/// records behind the head (80 records at 10 000 tags in blocks of 125).
pub(crate) const APPENDED_HEADERS: usize = 256;

/// The headers of the latest records this process appended, by place: a reader whose
/// caller holds a record's data already (the engine's own batch) needs only its header,
/// and finds it here without reading the file. A place never holds another record while
/// the log is open (segments are named by their first seq and only grow; a failed write is
/// not committed), so an entry stays true until it is pushed out.
#[derive(Debug, Default)]
pub(crate) struct Appended {
    /// In append order, so by (segment, offset).
    list: VecDeque<(u64, u64, Header)>,
}

impl Appended {
    fn push(&mut self, seg: u64, off: u64, header: Header) {
        if self.list.len() >= APPENDED_HEADERS {
            self.list.pop_front();
        }
        self.list.push_back((seg, off, header));
    }

    /// The header of the record at `off` of segment `seg`, if it is among the latest.
    pub fn at(&self, seg: u64, off: u64) -> Option<Header> {
        let i = self
            .list
            .binary_search_by_key(&(seg, off), |&(s, o, _)| (s, o))
            .ok()?;
        self.list.get(i).map(|&(_, _, h)| h)
    }
}

impl State {
    fn last(&self) -> Option<&SegmentMeta> {
        self.segments.back()
    }

    pub fn end_addr(&self) -> u64 {
        self.last().map_or(0, |s| s.base + s.bytes)
    }

    /// The place of the next record to be appended.
    pub fn head(&self) -> Loc {
        let (seg, base, off) = self
            .last()
            .map_or((self.next_seq, 0, 0), |s| (s.first_seq, s.base, s.bytes));
        Loc {
            seq: self.next_seq,
            seg,
            base,
            off,
        }
    }

    /// The oldest retained place.
    pub fn oldest(&self) -> Loc {
        self.segments
            .front()
            .map_or_else(|| self.head(), SegmentMeta::start)
    }

    fn index_of(&self, seg: u64) -> std::result::Result<usize, usize> {
        self.segments.binary_search_by_key(&seg, |s| s.first_seq)
    }

    pub fn locate(&self, loc: Loc) -> Located {
        match self.index_of(loc.seg) {
            Ok(i) => {
                let s = &self.segments[i];
                let off = skip_holes(&s.holes, loc.off);
                let next = self.segments.get(i + 1);
                if off < s.bytes {
                    Located::Data {
                        off,
                        limit: s.bytes,
                        max_end: next.map(|n| n.first_seq),
                    }
                } else {
                    next.map_or(Located::End, |n| Located::Next(n.start()))
                }
            }
            // Deleted (passed, or dropped for overflow): go on with the oldest segment after it.
            Err(i) => self
                .segments
                .get(i)
                .map_or(Located::End, |n| Located::Next(n.start())),
        }
    }

    /// Follows `loc` past finished segments to where a record is, if any.
    pub fn resolve(&self, mut loc: Loc) -> Option<(Loc, u64)> {
        for _ in 0..=self.segments.len() {
            match self.locate(loc) {
                Located::Data { off, limit, .. } => return Some((Loc { off, ..loc }, limit)),
                Located::Next(n) => loc = n,
                Located::End => return None,
            }
        }
        None
    }

    pub fn backlog_bytes(&self, slot: &ReaderSlot) -> u64 {
        self.end_addr().saturating_sub(slot.floor.addr())
    }

    /// The first reader with [`Overflow::Block`] at or over its quota.
    pub fn blocking_reader(&self) -> Option<&ReaderSlot> {
        self.readers
            .iter()
            .find(|r| r.options.overflow == Overflow::Block && self.backlog_bytes(r) >= r.options.quota_bytes)
    }

    /// Moves a reader's floor forward (never back) to what it has acknowledged.
    pub fn raise_floor(&mut self, idx: usize, floor: Loc) {
        if let Some(slot) = self.readers.get_mut(idx)
            && floor.seq >= slot.floor.seq
            && floor.addr() >= slot.floor.addr()
        {
            slot.floor = floor;
        }
    }

    /// Writes a reader's floor as its position, then deletes what every reader has passed.
    pub fn persist(&mut self, idx: usize) -> Result<()> {
        let Some(slot) = self.readers.get_mut(idx) else {
            return Ok(());
        };
        if slot.floor.seq == slot.persisted_seq {
            return Ok(());
        }
        slot.store.store(slot.floor.seq)?;
        slot.persisted_seq = slot.floor.seq;
        self.retain();
        Ok(())
    }

    /// Deletes the oldest segments while every reader's persisted position is past them,
    /// keeping the newest so the sequence continues after a restart.
    pub fn retain(&mut self) {
        let min = self
            .readers
            .iter()
            .map(|r| r.persisted_seq)
            .min()
            .unwrap_or(u64::MAX);
        while self.segments.len() > 1 {
            let Some(front) = self.segments.front() else { break };
            if front.end_seq > min {
                break;
            }
            let path = segment_path(&self.dir, front.first_seq);
            match fs::remove_file(&path) {
                Ok(()) => tracing::debug!(path = %path.display(), "segment passed by every reader: deleted"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Keep it in the index; the next pass tries again.
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete segment");
                    break;
                }
            }
            self.segments.pop_front();
        }
    }

    /// Seals the active segment (the next fsync round syncs it) and starts a new one named by
    /// the next seq.
    pub fn roll(&mut self) -> Result<()> {
        let (base, bytes) = self.last().map_or((0, 0), |s| (s.base, s.bytes));
        if bytes == 0 {
            return Ok(());
        }
        let first_seq = self.next_seq;
        let path = segment_path(&self.dir, first_seq);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .at("create segment", &path)?;
        self.dir_dirty = true;
        self.segments.push_back(SegmentMeta {
            first_seq,
            base: base + bytes,
            bytes: 0,
            end_seq: first_seq,
            holes: Vec::new(),
        });
        let sealed = std::mem::replace(
            &mut self.active,
            Active {
                file: Arc::new(file),
                path,
            },
        );
        self.unsynced.push(sealed);
        self.retain();
        Ok(())
    }

    /// Makes room for a record of `rec_len` bytes in every [`Overflow::DropOldest`] reader's
    /// quota by moving its floor past its oldest segment(s).
    pub fn drop_for_overflow(&mut self, rec_len: u64) -> Result<()> {
        let mut moved = false;
        for idx in 0..self.readers.len() {
            let slot = &self.readers[idx];
            if slot.options.overflow != Overflow::DropOldest {
                continue;
            }
            let quota = slot.options.quota_bytes;
            let old = slot.floor;
            loop {
                let slot = &self.readers[idx];
                let backlog = self.backlog_bytes(slot);
                if backlog == 0 || backlog + rec_len <= quota {
                    break;
                }
                // A floor in a deleted segment is at the start of the segment after it.
                let (Ok(i) | Err(i)) = self.index_of(slot.floor.seg);
                if i + 1 >= self.segments.len() {
                    // The backlog is all in the active segment: seal it so it can go whole.
                    let active = self.last().map(|s| s.first_seq);
                    self.roll()?;
                    if self.last().map(|s| s.first_seq) == active {
                        break;
                    }
                    continue;
                }
                let Some(next) = self.segments.get(i + 1).map(SegmentMeta::start) else {
                    break;
                };
                if let Some(slot) = self.readers.get_mut(idx) {
                    slot.floor = next;
                }
            }
            let slot = &mut self.readers[idx];
            if slot.floor != old {
                let dropped = slot.floor.seq.saturating_sub(old.seq);
                slot.shared.dropped_seqs.fetch_add(dropped, Ordering::Relaxed);
                slot.shared.drop_epoch.fetch_add(1, Ordering::Release);
                tracing::warn!(
                    reader = %slot.shared.name,
                    dropped_seqs = dropped,
                    from_seq = old.seq,
                    to_seq = slot.floor.seq,
                    quota_bytes = quota,
                    "data loss: reader over its quota (overflow: drop oldest), oldest data dropped"
                );
                if let Err(e) = slot.store.store(slot.floor.seq) {
                    // Without the new position on disk the segments must stay.
                    tracing::error!(reader = %slot.shared.name, error = %e, "cannot persist position after drop");
                } else {
                    slot.persisted_seq = slot.floor.seq;
                    moved = true;
                }
            }
        }
        if moved {
            self.retain();
        }
        Ok(())
    }

    /// Takes the place of the next record at the end of the active segment, to be written
    /// without the lock ([`Pending::write`]) and then committed ([`State::commit`]). The one
    /// appender at a time (`LogInner::appending`) keeps the place its own until then:
    /// readers stop at the committed length, so they never see the record half written.
    pub fn reserve(&mut self, count: u32) -> Result<Pending> {
        let seq = self.next_seq;
        let end_seq = seq
            .checked_add(u64::from(count))
            .ok_or(crate::BufferError::SequenceOverflow)?;
        Ok(Pending {
            seq,
            end_seq,
            count,
            off: self.last().map_or(0, |s| s.bytes),
            file: self.active.file.clone(),
            buf: std::mem::take(&mut self.scratch),
        })
    }

    /// Makes a written record visible to readers and the fsync rounds; on a failed write
    /// only takes the scratch buffer back, naming the segment in the error.
    pub fn commit(&mut self, mut pending: Pending, written: std::io::Result<()>) -> Result<u64> {
        let len = pending.buf.len() as u64;
        let header = pending.buf.first_chunk::<HEADER_LEN>().map(Header::parse);
        pending.buf.clear();
        crate::scratch::release_after(&mut pending.buf, crate::scratch::RECORD_KEEP);
        self.scratch = pending.buf;
        written.at("write record to", &self.active.path)?;
        if let Some(last) = self.segments.back_mut() {
            last.bytes += len;
            last.end_seq = pending.end_seq;
            if let Some(header) = header {
                self.appended.push(last.first_seq, pending.off, header);
            }
        }
        self.next_seq = pending.end_seq;
        self.write_gen += 1;
        self.appended_records += 1;
        self.appended_seqs += u64::from(pending.count);
        Ok(pending.seq)
    }
}

/// A record's reserved place ([`State::reserve`]).
#[derive(Debug)]
pub(crate) struct Pending {
    seq: u64,
    end_seq: u64,
    count: u32,
    off: u64,
    file: Arc<File>,
    buf: Vec<u8>,
}

impl Pending {
    /// Encodes and writes the record with one positional write at the committed length: a
    /// failed, partial write is cut off again (best effort) and overwritten by the next.
    pub fn write(&mut self, appended_at_ns: u64, payload: &[u8]) -> std::io::Result<()> {
        self.buf.clear();
        encode(&mut self.buf, self.seq, self.count, appended_at_ns, payload);
        let written = self.file.write_all_at(&self.buf, self.off);
        if written.is_err() {
            let _ = self.file.set_len(self.off);
        }
        written
    }
}
