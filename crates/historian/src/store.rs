//! The store: one directory, one writer, any number of readers in the same process.
//!
//! ```text
//! <dir>/catalog.log          series and contexts (ids), append-only
//! <dir>/checkpoint           WAL segments below this number are in segment files
//! <dir>/wal/<seq>.wal        write-ahead log
//! <dir>/segments/<seq>.seg   immutable chunk files, one time partition each
//! ```
//!
//! Write path: [`Store::append`] frames the batch into the current WAL segment (fsynced
//! per [`Fsync`]) and adds it to the in-memory head, where queries see it at once.
//!
//! Flush (WAL → chunks), run by [`Store::maintain`] every `flush_interval` or when the head
//! holds `flush_points` points:
//! 1. the WAL rotates to segment `N` and the head is frozen (still queried);
//! 2. its points are sorted by time per series and written as `<seq>.seg.tmp` files, one per
//!    partition touched, each recording "covers the WAL up to `N`", and fsynced;
//! 3. the checkpoint is atomically replaced by `N` — the commit point;
//! 4. the `.tmp` files are renamed into place, the frozen head is dropped, and WAL
//!    segments below `N` are deleted.
//!
//! Recovery on open: `.seg.tmp` files covered by the checkpoint are renamed into place
//! (the crash hit between 3 and 4), the others deleted (the WAL still has their data);
//! WAL segments from the checkpoint on are replayed, a torn tail truncated.
//!
//! Merge: the segments of a closed partition are rewritten as one (one chunk per series,
//! better compression, fewer files); the new file names the ones it replaces, so a crash
//! between its rename and their deletion cannot double the data.
//!
//! Retention: whole partitions are dropped when they end before `now - max_age`, and the
//! oldest closed partitions while the store is larger than `max_bytes`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backplane_model::wire::Cursor;
use backplane_model::{Context, Timestamp};
use parking_lot::{Mutex, RwLock};

use crate::catalog::Catalog;
use crate::error::{IoContext, Result, StoreError, corrupt};
use crate::frame;
use crate::point::{ContextId, Point, SeriesId, SeriesInfo, SeriesSpec, StoredEvent};
use crate::segment::{self, Segment, SegmentWriter};
use crate::wal::{self, Fsync, Wal};

/// Points per chunk at most; longer runs of one series in one partition are split.
pub const CHUNK_POINTS: usize = 1 << 16;
/// Partitions merged per maintenance pass, so one pass stays short.
const MERGES_PER_PASS: usize = 4;
/// Version 02: a CRC32C checksum (01 had CRC-32).
const CHECKPOINT_MAGIC: &[u8; 8] = b"BPHCKP02";

/// Points the head holds before a flush is due, by default. At ~70 bytes a point (56 for
/// the point, plus its vector's spare capacity) that is ~14 MB, twice that while a flush
/// runs (the frozen head and the next one): it fits a 1 GB Raspberry-Pi-class box beside
/// the gateway (docs/deployment.md#resource-budget). Larger values flush less often, which
/// only matters above ~670 points/s, where the 5-minute `flush_interval` stops coming first
/// (docs/historian.md#sizing).
pub const DEFAULT_FLUSH_POINTS: usize = 200_000;

/// How a store partitions, flushes, syncs and forgets.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreOptions {
    /// Time span of one partition (one segment file after merging). Retention drops
    /// whole partitions. Default 1 h.
    pub partition: Duration,
    /// How often the WAL is turned into chunks. Default 5 min.
    pub flush_interval: Duration,
    /// Flush earlier when the head holds this many points (bounds memory). Default
    /// [`DEFAULT_FLUSH_POINTS`].
    pub flush_points: usize,
    /// When appends reach the disk. Default [`Fsync::Batch`].
    pub fsync: Fsync,
    /// Drop partitions that ended longer ago than this. Default: keep.
    pub max_age: Option<Duration>,
    /// Drop the oldest closed partitions while the store is larger. Default 1 GiB.
    pub max_bytes: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            partition: Duration::from_secs(3600),
            flush_interval: Duration::from_secs(300),
            flush_points: DEFAULT_FLUSH_POINTS,
            fsync: Fsync::Batch,
            max_age: None,
            max_bytes: Some(1 << 30),
        }
    }
}

/// What [`Store::maintain`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Points moved from the WAL into chunks.
    pub flushed_points: usize,
    pub merged_partitions: usize,
    pub dropped_partitions: usize,
}

/// Sizes and counts, for health and docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    pub series: usize,
    pub contexts: usize,
    pub segments: usize,
    pub partitions: usize,
    /// Points in segment files.
    pub stored_points: u64,
    /// Points only in the WAL and memory, not flushed yet.
    pub head_points: usize,
    pub segment_bytes: u64,
    pub wal_bytes: u64,
    pub catalog_bytes: u64,
}

impl StoreStats {
    pub fn total_bytes(&self) -> u64 {
        self.segment_bytes + self.wal_bytes + self.catalog_bytes
    }
}

/// Points and events not yet in segment files.
#[derive(Debug, Default)]
pub(crate) struct HeadData {
    /// Indexed by series id, in arrival order.
    pub series: Vec<Vec<Point>>,
    pub events: Vec<StoredEvent>,
    pub points: usize,
}

impl HeadData {
    fn is_empty(&self) -> bool {
        self.points == 0 && self.events.is_empty()
    }

    fn push(&mut self, points: Vec<(SeriesId, Point)>, events: Vec<StoredEvent>) {
        self.points += points.len();
        for (id, p) in points {
            let i = id as usize;
            if i >= self.series.len() {
                self.series.resize_with(i + 1, Vec::new);
            }
            self.series[i].push(p);
        }
        self.events.extend(events);
    }
}

#[derive(Debug)]
pub(crate) struct Frozen {
    pub data: HeadData,
    /// WAL segments below this are entirely in `data`.
    pub wal_upto: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Head {
    pub active: HeadData,
    /// Heads being flushed, oldest first; still part of every query.
    pub frozen: Vec<Arc<Frozen>>,
}

/// The segments in use and, per series, where its chunks are.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Ascending by sequence number, which is arrival order within a partition.
    pub segments: Vec<Arc<Segment>>,
    /// Per series: `(index into segments, index into that segment's chunks)`.
    pub by_series: HashMap<SeriesId, Vec<(u32, u32)>>,
}

impl Snapshot {
    fn new(mut segments: Vec<Arc<Segment>>) -> Snapshot {
        segments.sort_by_key(|s| s.seq);
        let mut by_series: HashMap<SeriesId, Vec<(u32, u32)>> = HashMap::new();
        for (si, s) in segments.iter().enumerate() {
            for (ci, c) in s.chunks.iter().enumerate() {
                by_series
                    .entry(c.series)
                    .or_default()
                    .push((si as u32, ci as u32));
            }
        }
        Snapshot { segments, by_series }
    }
}

/// An open store. Share it as `Arc<Store>`: one writer (the historian sink), readers
/// anywhere in the process (the API, export).
#[derive(Debug)]
pub struct Store {
    pub(crate) dir: PathBuf,
    seg_dir: PathBuf,
    wal_dir: PathBuf,
    options: StoreOptions,
    pub(crate) catalog: RwLock<Catalog>,
    wal: Mutex<Option<Wal>>,
    pub(crate) head: RwLock<Head>,
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    maintenance: Mutex<()>,
    next_seq: AtomicU64,
    last_flush: Mutex<Instant>,
    /// Partitions whose merge failed; not tried again while the store is open.
    unmergeable: Mutex<HashSet<i64>>,
    /// Recently read segment files by sequence number, most recent last, so a query does
    /// not pay an open(2) per segment; bounded to stay far below the descriptor limit.
    files: Mutex<Vec<(u64, Arc<std::fs::File>)>>,
}

/// Segment files kept open for queries.
const OPEN_FILES: usize = 32;

fn read_checkpoint(dir: &Path) -> Result<u64> {
    let path = dir.join("checkpoint");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::Io { path, source: e }),
    };
    frame::check_magic(&path, &bytes, CHECKPOINT_MAGIC, "checkpoint").map_err(|e| match e {
        StoreError::Corrupt { .. } => corrupt(&path, "checkpoint is damaged"),
        other => other,
    })?;
    let mut cur = Cursor::new(&bytes[CHECKPOINT_MAGIC.len()..]);
    match (cur.u64_le(), cur.u32_le()) {
        (Ok(upto), Ok(crc)) if crc == frame::checksum(&bytes[..16]) => Ok(upto),
        _ => Err(corrupt(&path, "checkpoint is damaged")),
    }
}

fn write_checkpoint(dir: &Path, upto: u64) -> Result<()> {
    let mut bytes = CHECKPOINT_MAGIC.to_vec();
    bytes.extend_from_slice(&upto.to_le_bytes());
    let crc = frame::checksum(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    frame::write_atomic(&dir.join("checkpoint"), &bytes)
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Start of the partition holding `t`.
pub(crate) fn partition_of(t: i64, len: i64) -> i64 {
    t.div_euclid(len).saturating_mul(len)
}

impl Store {
    /// Opens (creating if needed) the store in `dir` for writing, recovering from a crash:
    /// see the module documentation. One writer per directory: two processes writing the
    /// same store corrupt it.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Arc<Store>> {
        Store::open_mode(dir, options, true)
    }

    /// Opens a store for queries only (e.g. `backplane export`): nothing on disk is
    /// changed; data still in the WAL is read too. While another process writes the
    /// store, the view is the one at opening time.
    pub fn open_read_only(dir: &Path) -> Result<Arc<Store>> {
        if !dir.join("catalog.log").exists() {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no historian store here"),
            });
        }
        Store::open_mode(dir, StoreOptions::default(), false)
    }

    fn open_mode(dir: &Path, options: StoreOptions, writable: bool) -> Result<Arc<Store>> {
        if options.partition < Duration::from_secs(1) {
            return Err(StoreError::Invalid("the partition must be at least 1 s".into()));
        }
        let seg_dir = dir.join("segments");
        let wal_dir = dir.join("wal");
        if writable {
            for d in [dir, &seg_dir, &wal_dir] {
                std::fs::create_dir_all(d).at(d)?;
            }
        }
        // The WAL first, then checkpoint and segments: if another process flushes
        // meanwhile, records it moved into segments are dropped below instead of lost.
        // The catalog last: everything read before refers only to entries already in it.
        struct Replayed {
            seq: u64,
            path: PathBuf,
            records: Vec<Vec<u8>>,
            valid: u64,
            torn: bool,
        }
        let mut replayed = Vec::new();
        for (seq, path) in wal::list(&wal_dir)? {
            match wal::replay(&path) {
                Ok((records, valid, torn)) => replayed.push(Replayed {
                    seq,
                    path,
                    records,
                    valid,
                    torn,
                }),
                Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let checkpoint = read_checkpoint(dir)?;

        let (segments, max_seq) = load_segments(&seg_dir, checkpoint, writable)?;
        let catalog = Catalog::open(dir, writable)?;
        let mut head = Head::default();
        let mut wal_tail: Option<(u64, u64)> = None;
        let mut skipped = 0usize;
        for Replayed {
            seq,
            path,
            records,
            valid,
            torn,
        } in replayed
        {
            if seq < checkpoint {
                if writable {
                    remove_file(&path);
                }
                continue;
            }
            for record in records {
                match wal::decode_batch(&record) {
                    Ok((points, events)) => {
                        let known = catalog.series().len();
                        let (ok, bad): (Vec<_>, Vec<_>) =
                            points.into_iter().partition(|(id, _)| (*id as usize) < known);
                        skipped += bad.len();
                        head.active.push(ok, events);
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "historian: WAL record does not decode; skipped");
                    }
                }
            }
            if torn {
                tracing::warn!(path = %path.display(), valid, "historian: WAL tail was torn (cut by a crash); truncated to the last whole record");
            }
            wal_tail = Some((seq, valid));
        }
        if skipped > 0 {
            tracing::error!(skipped, "historian: WAL points name unknown series; skipped");
        }

        let wal = if writable {
            let (seq, valid) = match wal_tail {
                Some((seq, valid)) => (seq, Some(valid)),
                None => (checkpoint.max(1), None),
            };
            Some(Wal::open(&wal_dir, seq, valid, options.fsync)?)
        } else {
            None
        };
        Ok(Arc::new(Store {
            dir: dir.to_owned(),
            seg_dir,
            wal_dir,
            options,
            catalog: RwLock::new(catalog),
            wal: Mutex::new(wal),
            head: RwLock::new(head),
            snapshot: RwLock::new(Arc::new(Snapshot::new(segments))),
            maintenance: Mutex::new(()),
            next_seq: AtomicU64::new(max_seq + 1),
            last_flush: Mutex::new(Instant::now()),
            unmergeable: Mutex::new(HashSet::new()),
            files: Mutex::new(Vec::new()),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    pub fn is_read_only(&self) -> bool {
        self.wal.lock().is_none()
    }

    fn read_only(&self) -> StoreError {
        StoreError::ReadOnly {
            path: self.dir.clone(),
        }
    }

    /// The id of a series, registering it (durably) when new.
    pub fn series_id(&self, spec: &SeriesSpec<'_>) -> Result<SeriesId> {
        if let Some(id) = self.catalog.read().find_series(spec) {
            return Ok(id);
        }
        if self.is_read_only() {
            return Err(self.read_only());
        }
        self.catalog.write().series_id(spec)
    }

    /// The id of a context, registering it (durably) when new.
    pub fn context_id(&self, context: &Context) -> Result<ContextId> {
        if let Some(id) = self.catalog.read().find_context(context) {
            return Ok(id);
        }
        if self.is_read_only() {
            return Err(self.read_only());
        }
        self.catalog.write().context_id(context)
    }

    pub fn series_info(&self, id: SeriesId) -> Option<Arc<SeriesInfo>> {
        self.catalog.read().series_info(id).cloned()
    }

    pub fn context(&self, id: ContextId) -> Option<Arc<Context>> {
        self.catalog.read().context(id).cloned()
    }

    /// Appends points and events. With [`Fsync::Batch`] they are on disk when this returns
    /// `Ok` — that is what "acknowledged" means — and visible to queries at once.
    /// Series and context ids must come from [`Store::series_id`] / [`Store::context_id`].
    pub fn append(&self, points: Vec<(SeriesId, Point)>, events: Vec<StoredEvent>) -> Result<()> {
        if points.is_empty() && events.is_empty() {
            return Ok(());
        }
        let known = self.catalog.read().series().len();
        if let Some((id, _)) = points.iter().find(|(id, _)| *id as usize >= known) {
            return Err(StoreError::Invalid(format!(
                "series id {id} is not in the catalog"
            )));
        }
        let mut record = Vec::with_capacity(points.len() * 20 + 32);
        let at = frame::begin(&mut record);
        wal::encode_batch(&points, &events, &mut record);
        frame::seal(&mut record, at);
        let mut guard = self.wal.lock();
        let wal = guard.as_mut().ok_or_else(|| self.read_only())?;
        wal.append(&record)?;
        self.head.write().active.push(points, events);
        Ok(())
    }

    /// Fsyncs the WAL (with [`Fsync::Interval`], to bound what a power loss can take).
    pub fn sync(&self) -> Result<()> {
        match self.wal.lock().as_mut() {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
    }

    /// True when the head has grown to `flush_points` and a flush should run soon.
    pub fn needs_flush(&self) -> bool {
        self.head.read().active.points >= self.options.flush_points
    }

    /// Flushes due data, merges closed partitions and applies retention. Call it
    /// periodically (the sink does, every second) from a thread that may block.
    pub fn maintain(&self, now: Timestamp) -> Result<Maintenance> {
        let _m = self.maintenance.lock();
        let mut report = Maintenance::default();
        let Some(fsync) = self.wal.lock().as_ref().map(|_| self.options.fsync) else {
            return Ok(report);
        };
        if let Fsync::Interval(_) = fsync {
            self.sync()?;
        }
        let due = {
            let head = self.head.read();
            !head.frozen.is_empty()
                || head.active.points >= self.options.flush_points
                || (!head.active.is_empty()
                    && self.last_flush.lock().elapsed() >= self.options.flush_interval)
        };
        if due {
            report.flushed_points = self.flush_locked()?;
        }
        // A partition that cannot be merged (a damaged chunk) stays as it is; that is no
        // reason to stop storing new data.
        report.merged_partitions = match self.merge_locked(now) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "historian: merge failed; the partition is left unmerged");
                0
            }
        };
        report.dropped_partitions = self.retention_locked(now)?;
        Ok(report)
    }

    /// Moves everything in the WAL into segment files now (e.g. before shutdown, so the
    /// next start replays nothing). Returns the number of points flushed.
    pub fn flush(&self) -> Result<usize> {
        let _m = self.maintenance.lock();
        self.flush_locked()
    }

    fn flush_locked(&self) -> Result<usize> {
        {
            let mut guard = self.wal.lock();
            let wal = guard.as_mut().ok_or_else(|| self.read_only())?;
            let mut head = self.head.write();
            if !head.active.is_empty() {
                let upto = wal.rotate()?;
                let data = std::mem::take(&mut head.active);
                head.frozen.push(Arc::new(Frozen { data, wal_upto: upto }));
            }
        }
        *self.last_flush.lock() = Instant::now();
        let frozen: Vec<Arc<Frozen>> = self.head.read().frozen.clone();
        let Some(upto) = frozen.last().map(|f| f.wal_upto) else {
            return Ok(0);
        };
        let plen = nanos(self.options.partition).max(1);
        type Part = (BTreeMap<SeriesId, Vec<Point>>, Vec<StoredEvent>);
        let mut parts: BTreeMap<i64, Part> = BTreeMap::new();
        let mut count = 0;
        for f in &frozen {
            for (id, points) in f.data.series.iter().enumerate() {
                for p in points {
                    let part = parts.entry(partition_of(p.time.unix_nanos(), plen)).or_default();
                    part.0.entry(id as SeriesId).or_default().push(p.clone());
                    count += 1;
                }
            }
            for e in &f.data.events {
                let part = parts.entry(partition_of(e.time.unix_nanos(), plen)).or_default();
                part.1.push(e.clone());
            }
        }
        let mut written: Vec<Segment> = Vec::new();
        let result = (|| -> Result<()> {
            for (start, (series, mut events)) in parts {
                let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
                let mut w = SegmentWriter::create(&self.seg_dir, seq, start, plen, upto, Vec::new())?;
                for (id, mut points) in series {
                    // Stable: points at the same instant keep their arrival order.
                    points.sort_by_key(|p| p.time);
                    for chunk in points.chunks(CHUNK_POINTS) {
                        w.add_chunk(id, chunk)?;
                    }
                }
                events.sort_by_key(|e| e.time);
                w.add_events(&events)?;
                written.push(w.finish()?);
            }
            frame::sync_dir(&self.seg_dir)?;
            write_checkpoint(&self.dir, upto)
        })();
        if let Err(e) = result {
            for s in &written {
                remove_file(&s.path);
            }
            return Err(e);
        }
        // Committed: from here on a crash is repaired by recovery, so errors only log.
        for s in &mut written {
            if let Err(e) = segment::commit(&self.seg_dir, s) {
                tracing::error!(error = %e, "historian: renaming a flushed segment failed; recovery will finish it");
            }
        }
        if let Err(e) = frame::sync_dir(&self.seg_dir) {
            tracing::warn!(error = %e, "historian: directory sync after flush failed");
        }
        {
            let mut head = self.head.write();
            let mut snapshot = self.snapshot.write();
            let mut segments = snapshot.segments.clone();
            segments.extend(written.into_iter().map(Arc::new));
            *snapshot = Arc::new(Snapshot::new(segments));
            head.frozen.drain(..frozen.len());
        }
        for (seq, path) in wal::list(&self.wal_dir)? {
            if seq < upto {
                remove_file(&path);
            }
        }
        Ok(count)
    }

    fn merge_locked(&self, now: Timestamp) -> Result<usize> {
        let snapshot = self.snapshot.read().clone();
        let closed_before = now
            .unix_nanos()
            .saturating_sub(nanos(self.options.flush_interval));
        let mut groups: BTreeMap<(i64, i64), Vec<Arc<Segment>>> = BTreeMap::new();
        for s in &snapshot.segments {
            if s.partition_end() <= closed_before {
                groups
                    .entry((s.partition_start, s.partition_len))
                    .or_default()
                    .push(s.clone());
            }
        }
        let mut merged = 0;
        let skip = self.unmergeable.lock().clone();
        for ((start, len), group) in groups
            .into_iter()
            .filter(|((start, _), g)| g.len() > 1 && !skip.contains(start))
        {
            if merged >= MERGES_PER_PASS {
                break;
            }
            self.unmergeable.lock().insert(start);
            let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
            let replaces: Vec<u64> = group.iter().map(|s| s.seq).collect();
            let mut series: BTreeMap<SeriesId, Vec<Point>> = BTreeMap::new();
            let mut events = Vec::new();
            for s in &group {
                let Some(file) = s.reader()? else {
                    // Deleted under us (retention); try again next pass.
                    self.unmergeable.lock().remove(&start);
                    return Ok(merged);
                };
                for c in &s.chunks {
                    series
                        .entry(c.series)
                        .or_default()
                        .extend(s.read_chunk(&file, c)?);
                }
                events.extend(s.read_events(&file)?);
            }
            let mut w = SegmentWriter::create(&self.seg_dir, seq, start, len, 0, replaces)?;
            let write = (|| -> Result<Segment> {
                for (id, mut points) in series {
                    points.sort_by_key(|p| p.time);
                    for chunk in points.chunks(CHUNK_POINTS) {
                        w.add_chunk(id, chunk)?;
                    }
                }
                events.sort_by_key(|e: &StoredEvent| e.time);
                w.add_events(&events)?;
                let mut segment = w.finish()?;
                segment::commit(&self.seg_dir, &mut segment)?;
                frame::sync_dir(&self.seg_dir)?;
                Ok(segment)
            })();
            let segment = match write {
                Ok(s) => s,
                Err(e) => {
                    remove_file(&segment::tmp_path(&self.seg_dir, seq));
                    return Err(e);
                }
            };
            {
                let _head = self.head.write();
                let mut current = self.snapshot.write();
                let gone: HashSet<u64> = group.iter().map(|s| s.seq).collect();
                let mut segments: Vec<Arc<Segment>> = current
                    .segments
                    .iter()
                    .filter(|s| !gone.contains(&s.seq))
                    .cloned()
                    .collect();
                segments.push(Arc::new(segment));
                *current = Arc::new(Snapshot::new(segments));
            }
            // Deleted when the last query using them finishes.
            for s in &group {
                s.retire();
            }
            self.forget_files(&group.iter().map(|s| s.seq).collect());
            self.unmergeable.lock().remove(&start);
            merged += 1;
        }
        Ok(merged)
    }

    fn retention_locked(&self, now: Timestamp) -> Result<usize> {
        let snapshot = self.snapshot.read().clone();
        let now = now.unix_nanos();
        let mut partitions: BTreeMap<i64, (u64, Vec<u64>)> = BTreeMap::new();
        for s in &snapshot.segments {
            // Only closed partitions are candidates: the current one is being written.
            if s.partition_end() <= now {
                let entry = partitions.entry(s.partition_start).or_default();
                entry.0 += s.size;
                entry.1.push(s.seq);
            }
        }
        let mut drop: Vec<u64> = Vec::new();
        let mut dropped = 0;
        if let Some(max_age) = self.options.max_age {
            let cutoff = now.saturating_sub(nanos(max_age));
            let old: Vec<i64> = snapshot
                .segments
                .iter()
                .filter(|s| s.partition_end() <= cutoff)
                .map(|s| s.partition_start)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            for start in old {
                if let Some((_, seqs)) = partitions.remove(&start) {
                    drop.extend(seqs);
                    dropped += 1;
                }
            }
        }
        if let Some(max_bytes) = self.options.max_bytes {
            let stats = self.stats();
            let freed: u64 = snapshot
                .segments
                .iter()
                .filter(|s| drop.contains(&s.seq))
                .map(|s| s.size)
                .sum();
            let mut total = stats.total_bytes().saturating_sub(freed);
            while total > max_bytes {
                let Some((_, (size, seqs))) = partitions.pop_first() else {
                    tracing::warn!(
                        total,
                        max_bytes,
                        "historian: above max_bytes but only the current partition is left"
                    );
                    break;
                };
                total = total.saturating_sub(size);
                drop.extend(seqs);
                dropped += 1;
            }
        }
        if drop.is_empty() {
            return Ok(0);
        }
        {
            let _head = self.head.write();
            let mut current = self.snapshot.write();
            let (gone, kept): (Vec<Arc<Segment>>, Vec<Arc<Segment>>) = current
                .segments
                .iter()
                .cloned()
                .partition(|s| drop.contains(&s.seq));
            *current = Arc::new(Snapshot::new(kept));
            for s in &gone {
                s.retire();
            }
            self.forget_files(&gone.iter().map(|s| s.seq).collect());
        }
        tracing::info!(
            partitions = dropped,
            "historian: retention dropped old partitions"
        );
        Ok(dropped)
    }

    /// The open data file of a segment; `None` when it was deleted meanwhile.
    pub(crate) fn segment_file(&self, segment: &Segment) -> Result<Option<Arc<std::fs::File>>> {
        {
            let mut files = self.files.lock();
            if let Some(i) = files.iter().position(|(seq, _)| *seq == segment.seq) {
                let entry = files.remove(i);
                let file = entry.1.clone();
                files.push(entry);
                return Ok(Some(file));
            }
        }
        let Some(file) = segment.reader()? else {
            return Ok(None);
        };
        let file = Arc::new(file);
        let mut files = self.files.lock();
        files.push((segment.seq, file.clone()));
        if files.len() > OPEN_FILES {
            files.remove(0);
        }
        Ok(Some(file))
    }

    /// Closes cached descriptors of retired segments, so their space is freed.
    fn forget_files(&self, seqs: &HashSet<u64>) {
        self.files.lock().retain(|(seq, _)| !seqs.contains(seq));
    }

    pub fn stats(&self) -> StoreStats {
        let catalog = self.catalog.read();
        let head_points = {
            let head = self.head.read();
            head.active.points + head.frozen.iter().map(|f| f.data.points).sum::<usize>()
        };
        let snapshot = self.snapshot.read().clone();
        let wal_bytes = wal::list(&self.wal_dir)
            .unwrap_or_default()
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        StoreStats {
            series: catalog.series().len(),
            contexts: catalog.contexts().len(),
            segments: snapshot.segments.len(),
            partitions: snapshot
                .segments
                .iter()
                .map(|s| s.partition_start)
                .collect::<HashSet<_>>()
                .len(),
            stored_points: snapshot
                .segments
                .iter()
                .flat_map(|s| s.chunks.iter())
                .map(|c| u64::from(c.count))
                .sum(),
            head_points,
            segment_bytes: snapshot.segments.iter().map(|s| s.size).sum(),
            wal_bytes,
            catalog_bytes: catalog.len_bytes(),
        }
    }
}

fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "historian: cannot delete a file");
    }
}

/// Opens every segment, finishing or undoing interrupted flushes and merges (writers
/// only; a reader takes committed `.tmp` files as they are). Returns the segments in use
/// and the highest sequence number seen.
fn load_segments(dir: &Path, checkpoint: u64, writable: bool) -> Result<(Vec<Arc<Segment>>, u64)> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut max_seq = 0u64;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source: e,
            });
        }
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in entries {
        names.push(entry.at(dir)?.path());
    }
    names.sort();
    let mut renamed = false;
    for path in names {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let (seq_text, tmp) = if let Some(s) = name.strip_suffix(".seg.tmp") {
            (s, true)
        } else if let Some(s) = name.strip_suffix(".seg") {
            (s, false)
        } else {
            continue;
        };
        let Ok(seq) = seq_text.parse::<u64>() else {
            continue;
        };
        max_seq = max_seq.max(seq);
        let opened = match Segment::open(&path) {
            // Another format version: refuse the store, never delete or move the file.
            Err(e @ StoreError::Version { .. }) => return Err(e),
            opened => opened,
        };
        if tmp {
            match opened {
                Ok(mut s) if s.wal_upto != 0 && s.wal_upto <= checkpoint => {
                    if writable {
                        segment::commit(dir, &mut s)?;
                        renamed = true;
                    }
                    segments.push(s);
                }
                _ if writable => remove_file(&path),
                _ => {}
            }
            continue;
        }
        match opened {
            Ok(s) => segments.push(s),
            Err(StoreError::Corrupt { message, .. }) => {
                tracing::error!(path = %path.display(), %message, "historian: segment is corrupt; moved aside, its data is not queried");
                if writable {
                    let aside = dir.join("corrupt");
                    std::fs::create_dir_all(&aside).at(&aside)?;
                    std::fs::rename(&path, aside.join(name)).at(&path)?;
                }
            }
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // A merge that committed but crashed before deleting what it replaced.
    let replaced: HashSet<u64> = segments.iter().flat_map(|s| s.replaces.iter().copied()).collect();
    let (gone, kept): (Vec<Segment>, Vec<Segment>) =
        segments.into_iter().partition(|s| replaced.contains(&s.seq));
    for s in gone {
        if writable {
            s.retire();
        }
    }
    if renamed {
        frame::sync_dir(dir)?;
    }
    Ok((kept.into_iter().map(Arc::new).collect(), max_seq))
}

#[cfg(test)]
mod tests {
    use backplane_model::{Quality, Value};

    use super::*;

    /// The memory bound docs/deployment.md promises for the default head: 16 MB steady,
    /// 32 MB while a flush runs, with a vector's spare capacity counted at its worst
    /// average (a quarter of the length) on top of each point's own size.
    #[test]
    fn the_default_head_fits_a_raspberry_pi_class_budget() {
        let per_point = std::mem::size_of::<Point>() * 5 / 4;
        let steady = StoreOptions::default().flush_points * per_point;
        assert!(steady <= 16_000_000, "{steady} bytes at {per_point} B/point");
        assert!(2 * steady <= 32_000_000);
    }

    /// A store with every kind of file: catalog, checkpoint, a WAL segment and a segment file.
    fn store_with_every_file(dir: &Path) {
        let store = Store::open(dir, StoreOptions::default()).unwrap();
        let spec = SeriesSpec {
            asset: "acme/plant/line-1/filler",
            attribute: "speed",
            model: "Filler",
            data_type: "float",
            unit: None,
        };
        let id = store.series_id(&spec).unwrap();
        let point = |secs: i64| Point {
            time: Timestamp::from_unix_nanos(secs * 1_000_000_000),
            source_time: None,
            value: Some(Value::Float(secs as f64)),
            quality: Quality::Good,
            context: 0,
        };
        store.append(vec![(id, point(1))], Vec::new()).unwrap();
        assert_eq!(store.flush().unwrap(), 1);
        store.append(vec![(id, point(2))], Vec::new()).unwrap();
    }

    /// Rewrites the format version in the magic at the start of `path`.
    fn set_version(path: &Path, version: &[u8; 2]) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[6..8].copy_from_slice(version);
        std::fs::write(path, bytes).unwrap();
    }

    fn only_file(dir: &Path, extension: &str) -> PathBuf {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == extension))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.remove(0)
    }

    #[test]
    fn files_written_in_format_version_1_are_refused_naming_the_file_and_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        store_with_every_file(dir.path());
        let files = [
            dir.path().join("catalog.log"),
            dir.path().join("checkpoint"),
            only_file(&dir.path().join("wal"), "wal"),
            only_file(&dir.path().join("segments"), "seg"),
        ];
        for file in &files {
            let before = std::fs::read(file).unwrap();
            assert_eq!(&before[6..8], b"02", "{}", file.display());
            // What the build before CRC32C wrote: the same layout under magic "...01".
            set_version(file, b"01");
            for writable in [true, false] {
                let e = match Store::open_mode(dir.path(), StoreOptions::default(), writable) {
                    Ok(_) => panic!("{} in version 1 was accepted", file.display()),
                    Err(e) => e,
                };
                assert!(
                    matches!(&e, StoreError::Version { path, found: 1, expected: 2 } if path == file),
                    "{e:?}"
                );
                let message = e.to_string();
                assert!(message.starts_with(&format!("{}: ", file.display())), "{message}");
                assert!(
                    message.contains(
                        "written in format version 1, but this version of Backplane reads only version 2"
                    ),
                    "{message}"
                );
            }
            // Nothing was repaired, moved aside or deleted.
            assert!(file.exists());
            assert!(!dir.path().join("segments/corrupt").exists());
            set_version(file, b"02");
            assert_eq!(std::fs::read(file).unwrap(), before);
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.stats().stored_points + store.stats().head_points as u64, 2);
    }
}
