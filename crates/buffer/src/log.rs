//! [`Log`]: open (the recovery steps are in `recover.rs`), append, group commit, quotas.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::{Notify, watch};

use crate::error::{AppendError, BufferError, IoContext, Result};
use crate::options::{FsyncPolicy, LogOptions, ReaderOptions};
use crate::position;
use crate::reader::Reader;
use crate::record::{HEADER_LEN, MAX_PAYLOAD};
use crate::recover::{self, Recovery};
use crate::state::{Loc, ReaderShared, State};

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
    /// Held by the one appender at a time for its whole append: the record is written
    /// without `state`'s lock, so readers locating the next record do not wait for the
    /// write, and nothing rolls the segment or takes the place meanwhile.
    appending: Mutex<()>,
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
        recover::validate(&options, readers)?;
        fs::create_dir_all(dir).at("create log directory", dir)?;
        let listing = recover::list_dir(dir)?;
        let manifest = position::load_manifest(dir)?;
        let mut recovery = Recovery::default();
        // Positions first: recovery resolves them while it scans.
        let positions = recover::load_positions(dir, readers, &manifest, &listing, &mut recovery)?;
        let scanned = recover::scan_segments(dir, &listing, &positions, &mut recovery)?;
        let (mut state, resolved) = recover::open_writer(dir, &options, scanned, &positions, &mut recovery)?;
        recover::reconcile_readers(&mut state, dir, readers, positions, resolved)?;
        recover::forget_unconfigured(dir, readers, &manifest, &listing)?;
        state.retain();
        tracing::info!(
            dir = %dir.display(),
            segments = state.segments.len(),
            next_seq = state.next_seq,
            truncated_bytes = recovery.truncated_bytes,
            corrupted_records = recovery.corrupted_records,
            "store-and-forward log opened"
        );
        let (log, readers) = Log::start(dir, options, state)?;
        Ok((log, readers, recovery))
    }

    /// Shares the recovered state, starts the background (fsync) thread, and hands out one
    /// [`Reader`] per reader slot.
    fn start(dir: &Path, options: LogOptions, state: State) -> Result<(Log, Vec<Reader>)> {
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
            appending: Mutex::new(()),
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
        Ok((log, readers))
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
        let _appending = inner.appending.lock();
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
        let mut pending = st.reserve(count)?;
        drop(st);
        let written = pending.write(appended_at_ns, payload);
        let mut st = inner.lock();
        let seq = st.commit(pending, written)?;
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
