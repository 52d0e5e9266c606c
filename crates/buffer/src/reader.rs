//! [`Reader`]: delivery in two lanes (live and replay), out-of-order acknowledgement, and the
//! position that follows it.
//!
//! A reader keeps only cursors into the segment files, the records it delivered and that are
//! not yet acknowledged (what the sink has in flight), and the acknowledged ranges above its
//! watermark (merged, so bounded by what was ever in flight at once). Records are read from
//! the files on demand through a small buffer per lane, so memory does not grow with the
//! backlog.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{BufferError, Result};
use crate::log::{LogInner, now_ns};
use crate::options::{Overflow, ReaderOptions};
use crate::record::Header;
use crate::segment::{SegFile, SeqBounds, record_at, resync, segment_path};
use crate::state::{Loc, Located, ReaderShared};

/// The longest a moved position waits before a reader writes it (while acks arrive).
const PERSIST_EVERY: Duration = Duration::from_millis(100);

/// One record as delivered to a sink.
#[derive(Clone, Debug)]
pub struct Record {
    pub seq: u64,
    pub count: u32,
    /// Unix nanoseconds when the record was appended.
    pub appended_at_ns: u64,
    pub payload: Vec<u8>,
    /// Delivered from the replay lane: after [`Reader::rewind`], after the reader fell more
    /// than `live_lag` behind, or after a restart with a backlog.
    pub replay: bool,
}

/// A reader's figures for metrics and health.
#[derive(Clone, Debug, Default)]
pub struct ReaderStats {
    /// Appended but not yet acknowledged (sequence numbers, i.e. samples).
    pub backlog_seqs: u64,
    pub backlog_bytes: u64,
    /// Age of the oldest record not yet acknowledged.
    pub oldest_unacked_age: Option<Duration>,
    /// Sequence numbers delivered (again after a rewind or restart) and acknowledged, since
    /// the log was opened.
    pub delivered_seqs: u64,
    pub acked_seqs: u64,
    /// Lost to DropOldest overflow.
    pub dropped_seqs: u64,
    /// The replay lane has records to deliver.
    pub replaying: bool,
}

/// Acknowledged sequence ranges above the watermark, merged: `start -> end`, disjoint and
/// never touching.
#[derive(Debug, Default)]
pub(crate) struct AckSet {
    ranges: BTreeMap<u64, u64>,
}

impl AckSet {
    pub fn insert(&mut self, start: u64, end: u64) {
        let (mut start, mut end) = (start, end);
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
            self.ranges.remove(&s);
        }
        while let Some((&s, &e)) = self.ranges.range(start..).next() {
            if s > end {
                break;
            }
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &e)| seq < e)
    }

    /// Forgets everything below `seq` (the watermark passed it).
    pub fn remove_below(&mut self, seq: u64) {
        let keep = self.ranges.split_off(&seq);
        let below = std::mem::replace(&mut self.ranges, keep);
        if let Some((_, &e)) = below.iter().next_back()
            && e > seq
        {
            self.ranges.insert(seq, e);
        }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }
}

/// Records `[next.seq, end)` still to be delivered again.
#[derive(Clone, Copy, Debug)]
struct Span {
    next: Loc,
    end: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    count: u32,
    loc: Loc,
}

/// What [`Reader::next_or_take`] hands out.
#[derive(Debug)]
pub enum Next<T> {
    /// A record read from the log.
    Read(Record),
    /// A record the caller's `take` gave its own copy of: only its header was looked at,
    /// its payload not read. Delivered like [`Next::Read`]: acknowledge `seq`.
    Taken {
        seq: u64,
        count: u32,
        replay: bool,
        item: T,
    },
}

enum Step {
    /// A record, where it starts, and the place after it; its payload was read unless it
    /// was found by header alone.
    Record(Header, Loc, Loc, Payload),
    /// Nothing (yet) at this place.
    End(Loc),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    Read,
    NotRead,
}

/// Whether [`read_step`] may give a record's header alone, when it is one of the latest
/// appended (no file read, no checksum: the header is the one this process wrote).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Payload,
    HeaderIfRecent,
}

/// Reads the next valid record at or after `at`, moving across segments and over damage.
fn read_step(
    inner: &LogInner,
    file: &mut Option<SegFile>,
    mut at: Loc,
    payload: &mut Vec<u8>,
    reader: &str,
    want: Want,
) -> Result<Step> {
    // Each pass either returns or moves `at` forward; bound it anyway.
    for _ in 0..1_000_000 {
        let (located, recent) = {
            let st = inner.lock();
            let located = st.locate(at);
            let recent = match located {
                Located::Data { off, .. } if want == Want::HeaderIfRecent => st.appended.at(at.seg, off),
                _ => None,
            };
            (located, recent)
        };
        let (off, limit, max_end) = match located {
            Located::End => return Ok(Step::End(at)),
            Located::Next(n) => {
                at = Loc {
                    seq: n.seq.max(at.seq),
                    ..n
                };
                continue;
            }
            Located::Data { off, limit, max_end } => (off, limit, max_end),
        };
        at.off = off;
        let bounds = SeqBounds {
            min_seq: at.seq,
            max_end,
        };
        if let Some(h) = recent
            && bounds.admit(&h, off, limit)
        {
            let (start, next) = places(&h, at);
            return Ok(Step::Record(h, start, next, Payload::NotRead));
        }
        if file.as_ref().is_none_or(|f| f.seg != at.seg) {
            match SegFile::open(segment_path(&inner.dir, at.seg), at.seg) {
                Ok(f) => *file = Some(f),
                Err(BufferError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && !matches!(inner.lock().locate(at), Located::Data { .. }) =>
                {
                    // Deleted meanwhile (passed or dropped): locate again.
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let Some(f) = file.as_mut() else { continue };
        if let Some(h) = record_at(f, off, limit, bounds, payload)? {
            let (start, next) = places(&h, at);
            return Ok(Step::Record(h, start, next, Payload::Read));
        }
        // Recovery checked this on open: the file was damaged while the log was open.
        let resumed = resync(f, off, limit, bounds, payload)?;
        tracing::error!(
            reader,
            segment = %f.path.display(),
            offset = off,
            resumed_at = resumed,
            "record damaged since the log was opened: skipped"
        );
        at.off = resumed.unwrap_or(limit);
    }
    Ok(Step::End(at))
}

/// Where the record of header `h`, found at `at`, starts, and the place after it.
fn places(h: &Header, at: Loc) -> (Loc, Loc) {
    let start = Loc { seq: h.seq, ..at };
    let next = Loc {
        seq: h.end_seq().unwrap_or(h.seq),
        off: at.off + h.record_len(),
        ..at
    };
    (start, next)
}

fn record(h: &Header, payload: Vec<u8>, replay: bool) -> Record {
    Record {
        seq: h.seq,
        count: h.count,
        appended_at_ns: h.appended_at_ns,
        payload,
        replay,
    }
}

/// One sink's view of the log: delivers records, takes acknowledgements, keeps the position.
/// Owned by one sink task.
///
/// Two lanes: the live lane follows the head; the replay lane redelivers older data (after
/// [`Reader::rewind`], after a restart, or once the record at the live cursor is older than
/// `live_lag`, when everything unread up to the head moves to the replay lane and the live
/// cursor jumps to the head). [`Reader::next`] returns a live record whenever one is
/// available, so a new record waits at most for the one replay record being handed out before
/// it; each lane delivers in sequence order.
pub struct Reader {
    inner: Arc<LogInner>,
    idx: usize,
    shared: Arc<ReaderShared>,
    live_lag_ns: u64,
    block: bool,
    live: Loc,
    replay: VecDeque<Span>,
    live_file: Option<SegFile>,
    replay_file: Option<SegFile>,
    /// Delivered and not acknowledged, by seq: what the sink has in flight.
    unacked: BTreeMap<u64, Pending>,
    acked: AckSet,
    /// The watermark last published to the log: everything below is acknowledged.
    floor: Loc,
    drop_epoch: u64,
    last_persist: Instant,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("name", &self.shared.name)
            .field("live_seq", &self.live.seq)
            .field("replay_spans", &self.replay.len())
            .field("in_flight", &self.unacked.len())
            .field("acked_ranges", &self.acked.len())
            .field("floor_seq", &self.floor.seq)
            .finish()
    }
}

impl Reader {
    pub(crate) fn new(
        inner: Arc<LogInner>,
        idx: usize,
        shared: Arc<ReaderShared>,
        options: ReaderOptions,
        floor: Loc,
    ) -> Reader {
        let drop_epoch = shared.drop_epoch.load(Ordering::Acquire);
        Reader {
            inner,
            idx,
            shared,
            live_lag_ns: u64::try_from(options.live_lag.as_nanos()).unwrap_or(u64::MAX),
            block: options.overflow == Overflow::Block,
            live: floor,
            replay: VecDeque::new(),
            live_file: None,
            replay_file: None,
            unacked: BTreeMap::new(),
            acked: AckSet::default(),
            floor,
            drop_epoch,
            last_persist: Instant::now(),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The next record to deliver; waits until one is appended. Cancel-safe (may be used in
    /// `tokio::select!`; a cancelled call loses nothing).
    pub async fn next(&mut self) -> Result<Record> {
        match self.wait(|_, _| None::<Infallible>, Want::Payload).await? {
            Next::Read(record) => Ok(record),
            Next::Taken { item, .. } => match item {},
        }
    }

    /// As [`Reader::next`], but each record about to be delivered is first offered to
    /// `take(seq, count)`: a caller that keeps its own copy of the latest records (the
    /// engine keeps the batches it appended) returns it, and the record is delivered as
    /// [`Next::Taken`]. A live record among the latest appended is then not read from its
    /// file at all; positions, acknowledgements and replays are the same either way.
    /// `take` must not return `Some` for a record it does not hold.
    pub async fn next_or_take<T>(&mut self, take: impl FnMut(u64, u32) -> Option<T>) -> Result<Next<T>> {
        self.wait(take, Want::HeaderIfRecent).await
    }

    /// Waits for the next record; `want`: whether a header alone may be offered to `take`
    /// (not for a caller that holds nothing: it would only be read afterwards).
    async fn wait<T>(&mut self, mut take: impl FnMut(u64, u32) -> Option<T>, want: Want) -> Result<Next<T>> {
        let inner = self.inner.clone();
        loop {
            let notified = std::pin::pin!(inner.appended.notified());
            let mut notified = notified;
            // Registered before looking, so an append in between is not missed.
            notified.as_mut().enable();
            // No await between `take` and returning: a cancelled call has taken nothing.
            if let Some(next) = self.step(&mut take, want)? {
                return Ok(next);
            }
            notified.await;
        }
    }

    /// The next record to deliver, if one is there now.
    pub fn try_next(&mut self) -> Result<Option<Record>> {
        Ok(self
            .step(&mut |_, _| None::<Infallible>, Want::Payload)?
            .map(|next| match next {
                Next::Read(record) => record,
                Next::Taken { item, .. } => match item {},
            }))
    }

    /// As [`Reader::try_next`], with `take` as in [`Reader::next_or_take`].
    pub fn try_next_or_take<T>(
        &mut self,
        mut take: impl FnMut(u64, u32) -> Option<T>,
    ) -> Result<Option<Next<T>>> {
        self.step(&mut take, Want::HeaderIfRecent)
    }

    fn step<T>(
        &mut self,
        take: &mut impl FnMut(u64, u32) -> Option<T>,
        mut want: Want,
    ) -> Result<Option<Next<T>>> {
        self.sync_drops();
        let mut payload = Vec::new();
        loop {
            match read_step(
                &self.inner,
                &mut self.live_file,
                self.live,
                &mut payload,
                &self.shared.name,
                want,
            )? {
                Step::End(at) => {
                    self.live = at;
                    break;
                }
                Step::Record(h, at, next, read) => {
                    if self.acked.contains(h.seq) {
                        self.live = next;
                        continue;
                    }
                    if now_ns().saturating_sub(h.appended_at_ns) >= self.live_lag_ns {
                        // Behind by more than live_lag: the unread rest goes to the replay
                        // lane, and the live lane starts again at the newest data.
                        let head = self.inner.lock().head();
                        tracing::debug!(reader = %self.shared.name, from_seq = h.seq, to_seq = head.seq, "live lane fell behind: backlog moves to the replay lane");
                        self.replay.push_back(Span {
                            next: at,
                            end: head.seq,
                        });
                        self.live = head;
                        break;
                    }
                    if let Some(item) = take(h.seq, h.count) {
                        self.live = next;
                        self.deliver(&h, at);
                        return Ok(Some(Next::Taken {
                            seq: h.seq,
                            count: h.count,
                            replay: false,
                            item,
                        }));
                    }
                    if read == Payload::NotRead {
                        // The caller has no copy after all: read it from the file.
                        self.live = at;
                        want = Want::Payload;
                        continue;
                    }
                    self.live = next;
                    self.deliver(&h, at);
                    return Ok(Some(Next::Read(record(&h, payload, false))));
                }
            }
        }
        while let Some(span) = self.replay.front().copied() {
            match read_step(
                &self.inner,
                &mut self.replay_file,
                span.next,
                &mut payload,
                &self.shared.name,
                Want::Payload,
            )? {
                Step::End(_) => {
                    self.replay.pop_front();
                }
                Step::Record(h, at, next, _) => {
                    if h.seq >= span.end {
                        self.replay.pop_front();
                        continue;
                    }
                    if let Some(front) = self.replay.front_mut() {
                        front.next = next;
                    }
                    if self.acked.contains(h.seq) {
                        continue;
                    }
                    self.deliver(&h, at);
                    if let Some(item) = take(h.seq, h.count) {
                        return Ok(Some(Next::Taken {
                            seq: h.seq,
                            count: h.count,
                            replay: true,
                            item,
                        }));
                    }
                    return Ok(Some(Next::Read(record(&h, payload, true))));
                }
            }
        }
        self.shared.replaying.store(false, Ordering::Relaxed);
        self.publish_floor();
        Ok(None)
    }

    /// Counts the record starting at `at` as delivered: in flight until acknowledged.
    fn deliver(&mut self, h: &Header, at: Loc) {
        self.unacked.insert(
            h.seq,
            Pending {
                count: h.count,
                loc: at,
            },
        );
        self.shared
            .delivered_seqs
            .fetch_add(u64::from(h.count), Ordering::Relaxed);
        self.shared
            .replaying
            .store(!self.replay.is_empty(), Ordering::Relaxed);
        self.publish_floor();
    }

    /// Acknowledges the record that starts at `seq` (acks may come in any order). The
    /// persisted position only moves past a record once it and all records before it are
    /// acknowledged. An ack for a record not in flight (acknowledged already, or dropped for
    /// overflow) is ignored.
    pub fn ack(&mut self, seq: u64) {
        self.sync_drops();
        let Some(p) = self.unacked.remove(&seq) else {
            tracing::debug!(reader = %self.shared.name, seq, "ack for a record not in flight ignored");
            return;
        };
        self.acked.insert(seq, seq.saturating_add(u64::from(p.count)));
        self.shared
            .acked_seqs
            .fetch_add(u64::from(p.count), Ordering::Relaxed);
        self.publish_floor();
    }

    /// Delivers every unacknowledged record again (the sink lost its connection): they come
    /// back with `replay = true`, and live data keeps priority.
    pub fn rewind(&mut self) {
        self.sync_drops();
        let from = self.watermark();
        let head = self.inner.lock().head();
        self.replay.clear();
        if from.seq < head.seq {
            self.replay.push_back(Span {
                next: from,
                end: head.seq,
            });
        }
        self.live = head;
        self.shared
            .replaying
            .store(!self.replay.is_empty(), Ordering::Relaxed);
        self.publish_floor();
    }

    /// Forces the position to disk now (also done automatically, at most every 100 ms while
    /// acks arrive, and on drop).
    pub fn persist(&mut self) -> Result<()> {
        self.sync_drops();
        self.publish_floor();
        let mut st = self.inner.lock();
        st.raise_floor(self.idx, self.floor);
        st.persist(self.idx)?;
        self.last_persist = Instant::now();
        Ok(())
    }

    /// Shared, cheap view of this reader's figures for metrics/health from other tasks.
    pub fn monitor(&self) -> ReaderMonitor {
        ReaderMonitor {
            inner: self.inner.clone(),
            idx: self.idx,
            shared: self.shared.clone(),
        }
    }

    /// The lowest place not yet acknowledged: the oldest record in flight, or the next one
    /// either lane would read.
    fn watermark(&self) -> Loc {
        let mut w = self.live;
        if let Some(s) = self.replay.front()
            && s.next.addr() <= w.addr()
        {
            w = s.next;
        }
        if let Some((_, p)) = self.unacked.first_key_value()
            && p.loc.addr() <= w.addr()
        {
            w = p.loc;
        }
        w
    }

    /// Publishes a watermark that moved to the log (quota, retention, stats), and writes it
    /// when the last write is older than [`PERSIST_EVERY`].
    fn publish_floor(&mut self) {
        let w = self.watermark();
        if w.addr() <= self.floor.addr() && w.seq <= self.floor.seq {
            return;
        }
        self.acked.remove_below(w.seq);
        self.floor = w;
        {
            let mut st = self.inner.lock();
            st.raise_floor(self.idx, w);
            if self.last_persist.elapsed() >= PERSIST_EVERY {
                self.last_persist = Instant::now();
                if let Err(e) = st.persist(self.idx) {
                    tracing::warn!(reader = %self.shared.name, error = %e, "cannot persist position");
                }
            }
        }
        if self.block {
            self.inner.space.notify_waiters();
        }
    }

    /// After the appender dropped data for overflow, forgets everything below the new floor.
    fn sync_drops(&mut self) {
        let epoch = self.shared.drop_epoch.load(Ordering::Acquire);
        if epoch == self.drop_epoch {
            return;
        }
        self.drop_epoch = epoch;
        let Some(floor) = self.inner.lock().readers.get(self.idx).map(|s| s.floor) else {
            return;
        };
        self.unacked = self.unacked.split_off(&floor.seq);
        self.acked.remove_below(floor.seq);
        self.replay.retain(|s| s.end > floor.seq);
        for span in &mut self.replay {
            if span.next.addr() < floor.addr() {
                span.next = floor;
            }
        }
        if self.live.addr() < floor.addr() {
            self.live = floor;
        }
        if floor.addr() > self.floor.addr() {
            self.floor = floor;
        }
        // What was acknowledged just above the drop may let the watermark move further.
        self.publish_floor();
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Err(e) = self.persist() {
            tracing::warn!(reader = %self.shared.name, error = %e, "cannot persist position on drop");
        }
    }
}

/// Shared, cheap view of one reader's figures (metrics, health), usable from any task.
#[derive(Clone)]
pub struct ReaderMonitor {
    inner: Arc<LogInner>,
    idx: usize,
    shared: Arc<ReaderShared>,
}

impl std::fmt::Debug for ReaderMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderMonitor")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl ReaderMonitor {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn stats(&self) -> ReaderStats {
        let (floor_seq, next_seq, backlog_bytes, oldest) = {
            let st = self.inner.lock();
            match st.readers.get(self.idx) {
                Some(slot) => (
                    slot.floor.seq,
                    st.next_seq,
                    st.backlog_bytes(slot),
                    st.resolve(slot.floor),
                ),
                None => (0, 0, 0, None),
            }
        };
        // The oldest unacknowledged record's header is read from disk here, on demand, so the
        // delivery path keeps no timestamps.
        let oldest_unacked_age = oldest.and_then(|(loc, limit)| {
            let mut f = SegFile::open(segment_path(&self.inner.dir, loc.seg), loc.seg).ok()?;
            let h = f.header_at(loc.off, limit).ok()??;
            Some(Duration::from_nanos(now_ns().saturating_sub(h.appended_at_ns)))
        });
        ReaderStats {
            backlog_seqs: next_seq.saturating_sub(floor_seq),
            backlog_bytes,
            oldest_unacked_age,
            delivered_seqs: self.shared.delivered_seqs.load(Ordering::Relaxed),
            acked_seqs: self.shared.acked_seqs.load(Ordering::Relaxed),
            dropped_seqs: self.shared.dropped_seqs.load(Ordering::Relaxed),
            replaying: self.shared.replaying.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn ack_ranges_merge_and_stay_small() {
        let mut a = AckSet::default();
        a.insert(10, 12);
        a.insert(14, 15);
        a.insert(12, 14);
        assert_eq!(a.len(), 1);
        assert!(a.contains(10) && a.contains(14) && !a.contains(15) && !a.contains(9));
        a.insert(20, 21);
        a.insert(30, 31);
        a.insert(19, 35);
        assert_eq!(a.len(), 2);
        assert!(a.contains(25));
    }

    #[test]
    fn ack_ranges_are_trimmed_at_the_watermark() {
        let mut a = AckSet::default();
        a.insert(0, 5);
        a.insert(8, 12);
        a.remove_below(10);
        assert_eq!(a.len(), 1);
        assert!(!a.contains(9) && a.contains(10) && a.contains(11) && !a.contains(12));
        a.remove_below(12);
        assert_eq!(a.len(), 0);
    }
}
