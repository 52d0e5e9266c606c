//! [`Log`]: open and recover, append, group commit, quotas.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::{Notify, watch};

use crate::error::{AppendError, BufferError, IoContext, Result};
use crate::options::{FsyncPolicy, LogOptions, ReaderOptions};
use crate::position::{self, Loaded, Manifest, PositionStore, sync_dir};
use crate::reader::Reader;
use crate::record::{HEADER_LEN, Header, MAX_PAYLOAD};
use crate::segment::{self, SegFile, segment_path};
use crate::state::{Active, Loc, ReaderShared, ReaderSlot, SegmentMeta, State};

/// Figures of the log as a whole.
#[derive(Clone, Debug, Default)]
pub struct LogStats {
    /// Segment files on disk.
    pub segments: usize,
    /// Bytes of valid records in them.
    pub bytes: u64,
    /// The seq the next record gets.
    pub next_seq: u64,
    /// Records and sequence numbers appended since the log was opened.
    pub appended_records: u64,
    pub appended_seqs: u64,
}

/// What recovery found on open; the engine logs it and exports counters.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Bytes cut from the end of the newest segment: a record whose write was interrupted
    /// (never acknowledged to the appender, so nothing acknowledged is lost).
    pub truncated_bytes: u64,
    /// Damaged regions inside the log (bad checksum, garbage length, a shortened older
    /// segment), each holding at least one lost record, and their bytes. Skipped, logged as
    /// errors, and reported again on every open until the segment is deleted.
    pub corrupted_records: u64,
    pub corrupted_bytes: u64,
    /// Reader names whose position file was damaged or missing and recovered conservatively
    /// (to the previous generation, or to the oldest retained data): duplicates, not gaps.
    pub damaged_positions: Vec<String>,
    /// Sequence numbers known to be missing: skipped over by damage, or between segments
    /// (also after a power loss that took data a reader had already acknowledged).
    pub lost_seqs: u64,
}

/// A failed fsync round, kept so that `sync()` callers waiting on it get the error.
#[derive(Clone, Debug)]
struct FailedSync {
    generation: u64,
    path: PathBuf,
    kind: std::io::ErrorKind,
    message: String,
}

#[derive(Clone, Debug, Default)]
struct SyncStatus {
    synced: u64,
    failed: Option<FailedSync>,
}

#[derive(Debug, Default)]
struct ThreadCtl {
    requested: bool,
    shutdown: bool,
}

#[derive(Debug)]
pub(crate) struct SyncShared {
    /// One fsync at a time; whoever holds it syncs for everyone waiting (group commit).
    leader: Mutex<()>,
    synced_gen: AtomicU64,
    status: watch::Sender<SyncStatus>,
    ctl: Mutex<ThreadCtl>,
    wake: Condvar,
}

/// Everything the appender, the fsync thread and the readers share.
#[derive(Debug)]
pub(crate) struct LogInner {
    pub dir: PathBuf,
    pub options: LogOptions,
    pub state: Mutex<State>,
    /// Woken on every append (readers waiting in `next`).
    pub appended: Notify,
    /// Woken when a blocking reader's floor moves (`space`).
    pub space: Notify,
    sync: SyncShared,
}

impl LogInner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Makes every append up to generation `target` durable; concurrent callers share fsyncs.
    fn sync_to(&self, target: u64) -> Result<()> {
        if self.sync.synced_gen.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _leader = self.sync.leader.lock();
        if self.sync.synced_gen.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        // Everything up to `generation` is in the active segment or in segments sealed since
        // the last round (taken here, put back if their fsync fails).
        let (active, sealed, dir_dirty, generation) = {
            let mut st = self.lock();
            let sealed = std::mem::take(&mut st.unsynced);
            let dir_dirty = std::mem::take(&mut st.dir_dirty);
            (st.active.clone(), sealed, dir_dirty, st.write_gen)
        };
        let mut result = Ok(());
        for (i, seg) in sealed.iter().enumerate() {
            if let Err(e) = seg.file.sync_data() {
                let mut st = self.lock();
                st.unsynced.extend(sealed[i..].iter().cloned());
                st.dir_dirty |= dir_dirty;
                result = Err((e, seg.path.clone()));
                break;
            }
        }
        if result.is_ok()
            && dir_dirty
            && let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all())
        {
            self.lock().dir_dirty = true;
            result = Err((e, self.dir.clone()));
        }
        if result.is_ok() {
            result = active.file.sync_data().map_err(|e| (e, active.path.clone()));
        }
        match result {
            Ok(()) => {
                self.sync.synced_gen.fetch_max(generation, Ordering::AcqRel);
                self.sync
                    .status
                    .send_modify(|s| s.synced = s.synced.max(generation));
                Ok(())
            }
            Err((e, path)) => {
                // After a failed fsync the kernel may have dropped the dirty pages: say so
                // loudly; the waiters get the error.
                tracing::error!(path = %path.display(), error = %e, "fsync failed: recent appends may not be durable");
                let failed = FailedSync {
                    generation,
                    path: path.clone(),
                    kind: e.kind(),
                    message: e.to_string(),
                };
                self.sync.status.send_modify(|s| s.failed = Some(failed));
                Err(e).at("fsync", &path)
            }
        }
    }

    /// Writes every reader position that moved since it was last written.
    fn persist_floors(&self) {
        let mut st = self.lock();
        for idx in 0..st.readers.len() {
            if let Err(e) = st.persist(idx) {
                tracing::warn!(error = %e, "cannot persist reader position");
            }
        }
    }

    fn sync_now(&self) {
        let target = self.lock().write_gen;
        // Errors are logged by sync_to and reported to sync() callers.
        let _ = self.sync_to(target);
    }
}

/// How often reader positions that moved are written to disk by the background thread.
const PERSIST_TICK: Duration = Duration::from_millis(100);

/// The background thread: fsyncs the active segment every interval when there is new data
/// (group commit), whenever `sync()` asks, and writes reader positions that moved every
/// [`PERSIST_TICK`]. A std thread, so the log works with or without an async runtime.
fn background_thread(inner: Arc<LogInner>) {
    let interval = match inner.options.fsync {
        FsyncPolicy::Interval(d) => Some(d),
        FsyncPolicy::Always => None,
    };
    let tick = interval.map_or(PERSIST_TICK, |d| d.min(PERSIST_TICK));
    let mut last_fsync = Instant::now();
    let mut ctl = inner.sync.ctl.lock();
    loop {
        if !ctl.requested && !ctl.shutdown {
            inner.sync.wake.wait_for(&mut ctl, tick);
        }
        if ctl.shutdown {
            break;
        }
        let requested = std::mem::take(&mut ctl.requested);
        MutexGuard::unlocked(&mut ctl, || {
            if requested || interval.is_some_and(|d| last_fsync.elapsed() >= d) {
                inner.sync_now();
                last_fsync = Instant::now();
            }
            inner.persist_floors();
        });
    }
    drop(ctl);
    inner.sync_now();
    inner.persist_floors();
}

struct Handle {
    inner: Arc<LogInner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    /// The last [`Log`] clone is gone: no more appends, so stop the fsync thread (it syncs
    /// once more on its way out).
    fn drop(&mut self) {
        self.inner.sync.ctl.lock().shutdown = true;
        self.inner.sync.wake.notify_all();
        if let Some(thread) = self.thread.get_mut().take()
            && thread.join().is_err()
        {
            tracing::error!(dir = %self.inner.dir.display(), "fsync thread panicked");
        }
    }
}

/// A durable, append-only log of records with one position per reader. Cheap to clone; all
/// clones are the same log. See the crate documentation.
#[derive(Clone)]
pub struct Log {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.handle.inner.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn validate(options: &LogOptions, readers: &[(&str, ReaderOptions)]) -> Result<()> {
    if options.segment_bytes == 0 {
        return Err(BufferError::InvalidOptions(
            "segment_bytes must be at least 1".into(),
        ));
    }
    if options.fsync == FsyncPolicy::Interval(Duration::ZERO) {
        return Err(BufferError::InvalidOptions(
            "the fsync interval must be longer than zero (use FsyncPolicy::Always)".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for (name, reader) in readers {
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.len() > 64 {
            Some("longer than 64 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Some("only letters, digits, '-' and '_' are allowed")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(BufferError::InvalidReaderName {
                name: (*name).to_owned(),
                reason,
            });
        }
        if !seen.insert(*name) {
            return Err(BufferError::DuplicateReader {
                name: (*name).to_owned(),
            });
        }
        if reader.quota_bytes < options.segment_bytes.saturating_mul(2) {
            tracing::warn!(
                reader = name,
                quota_bytes = reader.quota_bytes,
                segment_bytes = options.segment_bytes,
                "quota below two segments: overflow drops or blocks in coarse steps"
            );
        }
    }
    Ok(())
}

/// Where a reader starts on open.
enum Start {
    New,
    Oldest,
    At(u64),
}

struct Listing {
    segments: Vec<u64>,
    position_names: BTreeSet<String>,
    stray: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing> {
    let mut out = Listing {
        segments: Vec::new(),
        position_names: BTreeSet::new(),
        stray: Vec::new(),
    };
    for entry in fs::read_dir(dir).at("list log directory", dir)? {
        let entry = entry.at("list log directory", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = segment::parse_segment_file_name(name) {
            out.segments.push(seq);
        } else if let Some(reader) = position::parse_pos_file_name(name) {
            out.position_names.insert(reader.to_owned());
        } else if position::is_manifest_tmp(name) {
            out.stray.push(entry.path());
        }
    }
    out.segments.sort_unstable();
    Ok(out)
}

impl Log {
    /// Opens (creating if missing) the log in `dir`, recovers it, and returns one Reader per
    /// name (in the given order). Reader names are short slugs (sink names). Position files of
    /// names not given are deleted. A reader seen for the first time starts at the head (it
    /// gets only data appended from now on).
    ///
    /// Recovery reads every retained segment once (sequentially, checking every checksum), so
    /// opening takes about as long as reading the backlog from disk.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        readers: &[(&str, ReaderOptions)],
    ) -> std::result::Result<(Log, Vec<Reader>, Recovery), BufferError> {
        validate(&options, readers)?;
        fs::create_dir_all(dir).at("create log directory", dir)?;
        let listing = list_dir(dir)?;
        let manifest = position::load_manifest(dir)?;
        let mut recovery = Recovery::default();

        // Positions first: recovery resolves them while it scans.
        let mut starts = Vec::with_capacity(readers.len());
        let mut stores = Vec::with_capacity(readers.len());
        for (name, _) in readers {
            let (start, store) = match position::load(dir, name)? {
                Loaded::Valid {
                    seq,
                    generation,
                    slot,
                    fell_back,
                } => {
                    if fell_back {
                        tracing::warn!(
                            reader = name,
                            seq,
                            "newest position file damaged: using the previous one (some data is delivered again)"
                        );
                        recovery.damaged_positions.push((*name).to_owned());
                    }
                    (Start::At(seq), PositionStore::new(dir, name, generation, slot))
                }
                loaded => {
                    let known = match &manifest {
                        Manifest::Names(names) => names.iter().any(|n| n == name),
                        // No reliable list: a log with data must have known its readers.
                        Manifest::Missing | Manifest::Damaged => !listing.segments.is_empty(),
                    };
                    let start = if loaded == Loaded::Damaged || known {
                        tracing::error!(
                            reader = name,
                            "position files damaged or missing: the reader restarts from the oldest retained data (duplicates, no gap)"
                        );
                        recovery.damaged_positions.push((*name).to_owned());
                        Start::Oldest
                    } else {
                        Start::New
                    };
                    (start, PositionStore::new(dir, name, 0, 1))
                }
            };
            starts.push(start);
            stores.push(store);
        }

        // Scan every segment, resolving each position to the first record that ends past it.
        let mut targets: Vec<(u64, usize)> = starts
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Start::At(p) => Some((*p, i)),
                _ => None,
            })
            .collect();
        targets.sort_unstable();
        let mut resolved: Vec<Option<Loc>> = vec![None; readers.len()];
        let mut next_target = 0;
        let mut metas: VecDeque<SegmentMeta> = VecDeque::new();
        let mut base = 0u64;
        for (i, &first) in listing.segments.iter().enumerate() {
            let path = segment_path(dir, first);
            let mut f = SegFile::open(path.clone(), first)?;
            let len = f.len()?;
            let max_end = listing.segments.get(i + 1).copied();
            let is_last = i + 1 == listing.segments.len();
            let mut visit = |off: u64, h: &Header| {
                let end = h.end_seq().unwrap_or(h.seq);
                while let Some(&(p, r)) = targets.get(next_target) {
                    if p >= end {
                        break;
                    }
                    if let Some(slot) = resolved.get_mut(r) {
                        *slot = Some(Loc {
                            seq: h.seq,
                            seg: first,
                            base,
                            off,
                        });
                    }
                    next_target += 1;
                }
            };
            let scanned = segment::scan(&mut f, len, first, max_end, &mut visit)?;
            for &(start, end) in &scanned.holes {
                tracing::error!(segment = %path.display(), offset = start, bytes = end - start, "corrupted record(s) skipped: checksum or length damaged");
                recovery.corrupted_records += 1;
                recovery.corrupted_bytes += end - start;
            }
            recovery.lost_seqs += scanned.hole_lost_seqs;
            if scanned.tail > 0 {
                if is_last {
                    tracing::warn!(segment = %path.display(), offset = scanned.valid_end, bytes = scanned.tail, "torn tail truncated (a write interrupted by a crash)");
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .at("open segment", &path)?;
                    file.set_len(scanned.valid_end)
                        .at("truncate torn tail of", &path)?;
                    file.sync_all().at("fsync segment", &path)?;
                    recovery.truncated_bytes += scanned.tail;
                } else {
                    tracing::error!(segment = %path.display(), offset = scanned.valid_end, bytes = scanned.tail, "damaged end of an older segment skipped (shortened or overwritten)");
                    recovery.corrupted_records += 1;
                    recovery.corrupted_bytes += scanned.tail;
                }
            }
            if let Some(prev) = metas.back()
                && first > prev.end_seq
            {
                tracing::warn!(
                    from_seq = prev.end_seq,
                    to_seq = first,
                    "sequence numbers missing between segments"
                );
                recovery.lost_seqs += first - prev.end_seq;
            }
            metas.push_back(SegmentMeta {
                first_seq: first,
                base,
                bytes: scanned.valid_end,
                end_seq: scanned.end_seq,
                holes: scanned.holes,
            });
            base += scanned.valid_end;
        }

        // The sequence never goes back: not below the data, nor below any reader's position
        // (after a power loss a position may be ahead of the data that survived).
        let data_end = metas.back().map_or(0, |s| s.end_seq);
        let max_position = starts
            .iter()
            .filter_map(|s| match s {
                Start::At(p) => Some(*p),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let next_seq = data_end.max(max_position);
        if metas.is_empty() || next_seq > data_end {
            if !metas.is_empty() {
                tracing::warn!(
                    data_end,
                    next_seq,
                    "a reader position is ahead of the data: the log continues after it"
                );
                recovery.lost_seqs += next_seq - data_end;
            }
            let path = segment_path(dir, next_seq);
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .at("create segment", &path)?;
            sync_dir(dir)?;
            metas.push_back(SegmentMeta {
                first_seq: next_seq,
                base,
                bytes: 0,
                end_seq: next_seq,
                holes: Vec::new(),
            });
        }
        let Some(last_first) = metas.back().map(|s| s.first_seq) else {
            return Err(BufferError::InvalidOptions("no segment after recovery".into()));
        };
        let active_path = segment_path(dir, last_first);
        let active_file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&active_path)
            .at("open segment", &active_path)?;
        // What a killed predecessor appended is in the page cache only: make it durable now.
        active_file.sync_data().at("fsync segment", &active_path)?;

        let mut state = State {
            dir: dir.to_owned(),
            segment_bytes: options.segment_bytes,
            segments: metas,
            active: Active {
                file: Arc::new(active_file),
                path: active_path,
            },
            unsynced: Vec::new(),
            dir_dirty: false,
            next_seq,
            write_gen: 0,
            readers: Vec::with_capacity(readers.len()),
            appended_records: 0,
            appended_seqs: 0,
            scratch: Vec::new(),
        };

        let head = state.head();
        let oldest = state.oldest();
        let mut wrote_new_positions = false;
        for (i, (((name, reader_options), start), mut store)) in
            readers.iter().zip(starts).zip(stores).enumerate()
        {
            let (floor, persisted) = match start {
                Start::At(p) => (resolved.get(i).copied().flatten().unwrap_or(head), p),
                Start::New | Start::Oldest => {
                    let floor = if matches!(start, Start::New) { head } else { oldest };
                    // Persist at once: a new reader restarted before its first ack must not
                    // come back as new and skip what was appended meanwhile.
                    store.store_durable(floor.seq)?;
                    wrote_new_positions = true;
                    (floor, floor.seq)
                }
            };
            state.readers.push(ReaderSlot {
                shared: Arc::new(ReaderShared {
                    name: (*name).to_owned(),
                    ..ReaderShared::default()
                }),
                options: reader_options.clone(),
                floor,
                persisted_seq: persisted,
                store,
            });
        }
        if wrote_new_positions {
            sync_dir(dir)?;
        }
        let names: Vec<&str> = readers.iter().map(|(n, _)| *n).collect();
        if manifest != Manifest::Names(names.iter().map(|n| (*n).to_owned()).collect()) {
            position::store_manifest(dir, &names)?;
        }
        for gone in listing
            .position_names
            .iter()
            .filter(|n| !names.contains(&n.as_str()))
        {
            tracing::info!(reader = %gone, "reader no longer configured: its position is deleted");
            for slot in 0..2 {
                let path = position::pos_path(dir, gone, slot);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).at("delete position file", &path),
                }
            }
        }
        for stray in &listing.stray {
            let _ = fs::remove_file(stray);
        }
        state.retain();

        tracing::info!(
            dir = %dir.display(),
            segments = state.segments.len(),
            next_seq = state.next_seq,
            truncated_bytes = recovery.truncated_bytes,
            corrupted_records = recovery.corrupted_records,
            "store-and-forward log opened"
        );

        let reader_starts: Vec<(usize, Arc<ReaderShared>, ReaderOptions, Loc)> = state
            .readers
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.shared.clone(), r.options.clone(), r.floor))
            .collect();
        let inner = Arc::new(LogInner {
            dir: dir.to_owned(),
            options,
            state: Mutex::new(state),
            appended: Notify::new(),
            space: Notify::new(),
            sync: SyncShared {
                leader: Mutex::new(()),
                synced_gen: AtomicU64::new(0),
                status: watch::Sender::new(SyncStatus::default()),
                ctl: Mutex::new(ThreadCtl::default()),
                wake: Condvar::new(),
            },
        });
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("buffer-fsync".into())
            .spawn(move || background_thread(thread_inner))
            .at("start the fsync thread for", dir)?;
        let readers = reader_starts
            .into_iter()
            .map(|(idx, shared, options, floor)| Reader::new(inner.clone(), idx, shared, options, floor))
            .collect();
        let log = Log {
            handle: Arc::new(Handle {
                inner,
                thread: Mutex::new(Some(thread)),
            }),
        };
        Ok((log, readers, recovery))
    }

    fn inner(&self) -> &LogInner {
        &self.handle.inner
    }

    /// Appends one record covering `count` sequence numbers (count >= 1; e.g. a batch of
    /// `count` samples). Returns the record's first sequence number; the next record starts at
    /// first + count.
    ///
    /// Synchronous: the record is handed to the operating system (page cache) before this
    /// returns, so it survives kill -9 once append returned. With [`FsyncPolicy::Always`] it is
    /// also fsynced before this returns (concurrent appenders share fsyncs); should that fsync
    /// fail the error is returned although the record was written (it may be delivered: at
    /// least once).
    ///
    /// Returns [`AppendError::Full`] without writing anything while a reader with
    /// [`crate::Overflow::Block`] is at or over its quota (so such a reader's backlog exceeds
    /// its quota by at most one record). A reader with [`crate::Overflow::DropOldest`] over
    /// quota instead loses its oldest data (its position moves forward, a whole oldest segment
    /// at a time), counted in its stats and logged with a warning as data loss.
    pub fn append(&self, count: u32, payload: &[u8]) -> std::result::Result<u64, AppendError> {
        if count == 0 {
            return Err(BufferError::InvalidRecord("count must be at least 1".into()).into());
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(BufferError::InvalidRecord(format!(
                "payload of {} bytes is over the limit of {MAX_PAYLOAD}",
                payload.len()
            ))
            .into());
        }
        let inner = self.inner();
        let appended_at_ns = now_ns();
        let rec_len = (HEADER_LEN + payload.len()) as u64;
        let mut st = inner.lock();
        if let Some(full) = st.blocking_reader() {
            return Err(AppendError::Full {
                reader: full.shared.name.clone(),
            });
        }
        let active_bytes = st.segments.back().map_or(0, |s| s.bytes);
        if active_bytes > 0 && active_bytes + rec_len > st.segment_bytes {
            st.roll()?;
        }
        st.drop_for_overflow(rec_len)?;
        let (seq, _) = st.write_record(count, appended_at_ns, payload)?;
        let generation = st.write_gen;
        drop(st);
        inner.appended.notify_waiters();
        if inner.options.fsync == FsyncPolicy::Always {
            inner.sync_to(generation)?;
        }
        Ok(seq)
    }

    /// Resolves once an append would no longer be refused as Full (a Block reader
    /// acknowledged enough).
    pub async fn space(&self) {
        let inner = self.inner();
        loop {
            let notified = inner.space.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if inner.lock().blocking_reader().is_none() {
                return;
            }
            notified.await;
        }
    }

    /// Makes everything appended so far durable now (fsync), whatever the policy. Concurrent
    /// callers share one fsync (group commit): the fsync thread does it for all of them.
    pub async fn sync(&self) -> std::result::Result<(), BufferError> {
        let inner = self.inner();
        let target = inner.lock().write_gen;
        if inner.sync.synced_gen.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let mut rx = inner.sync.status.subscribe();
        inner.sync.ctl.lock().requested = true;
        inner.sync.wake.notify_all();
        let outcome = rx
            .wait_for(|s| s.synced >= target || s.failed.as_ref().is_some_and(|f| f.generation >= target))
            .await
            .map(|s| (s.synced, s.failed.clone()));
        match outcome {
            Ok((synced, _)) if synced >= target => Ok(()),
            Ok((_, Some(f))) => Err(BufferError::Io {
                op: "fsync",
                path: f.path,
                source: std::io::Error::new(f.kind, f.message),
            }),
            // The sender lives as long as `inner`; fall back to syncing here.
            _ => inner.sync_to(target),
        }
    }

    pub fn stats(&self) -> LogStats {
        let st = self.inner().lock();
        LogStats {
            segments: st.segments.len(),
            bytes: st.segments.iter().map(|s| s.bytes).sum(),
            next_seq: st.next_seq,
            appended_records: st.appended_records,
            appended_seqs: st.appended_seqs,
        }
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.inner().dir
    }
}
