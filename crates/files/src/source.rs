//! The running `files` source: scans the inbox every period and takes each complete file
//! through its lifecycle, one file at a time, oldest first:
//!
//! 1. over `max_file_bytes` → `quarantine/` with the reason, unread;
//! 2. read; changed while read → back to settling;
//! 3. digest in the ledger → already ingested before a crash: moved to `done/` only;
//! 4. mapped ([`map_file`]): rejected → `quarantine/` with `<name>.reason`, nothing emitted;
//! 5. emitted, then [`SourceIo::settled`] (the pipeline routed it and appended it to the
//!    store-and-forward log), then the digest is recorded in the ledger (fsynced), then the
//!    file is moved to `done/` (rename, directories fsynced).
//!
//! Cancellation is looked at between files only: a file being ingested is finished, so a
//! stop never leaves part of a file emitted and the file unrecorded.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backplane_connector::{ComponentError, Source, SourceIo};
use backplane_model::Timestamp;
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;

use crate::address::Address;
use crate::config::FilesSettings;
use crate::folder::Folder;
use crate::ledger::{self, Ledger};
use crate::map::{Mapped, map_file};
use crate::settle::{Listed, Settle};
use crate::throttle::Throttle;

/// Readings per emitted batch (a file's readings are emitted as a run of batches).
const CHUNK: usize = 5_000;
/// At most one log line per kind of trouble this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A `files` source, built by [`crate::FilesKind`].
#[derive(Debug)]
pub struct FilesSource {
    pub name: String,
    /// The inbox, resolved against the data directory.
    pub inbox: PathBuf,
    /// Where the ledger lives: `<data_dir>/files/<source>`.
    pub state_dir: PathBuf,
    pub settings: Arc<FilesSettings>,
    pub addresses: Arc<[Address]>,
}

impl Source for FilesSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        run(*self, io).boxed()
    }
}

/// What the source counts (`backplane_component_events_total{event=...}`).
#[derive(Debug)]
struct Counters {
    ingested: Counter,
    quarantined: Counter,
    repeated: Counter,
    records: Counter,
    io_errors: Counter,
}

/// What happened to one ready file before anything was emitted.
enum Prepared {
    /// Read and mapped: emit these, then record and move.
    Ingest { digest: String, mapped: Mapped },
    /// Already in the ledger: moved to `done/` only.
    Repeated,
    /// Moved to `quarantine/`; the reason.
    Quarantined(String),
    /// Changed while being read: settling again.
    Changed,
}

#[derive(Debug)]
struct Shared {
    name: String,
    folder: Folder,
    ledger: Mutex<Ledger>,
    settings: Arc<FilesSettings>,
    addresses: Arc<[Address]>,
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("file task failed: {e}"))))
}

async fn run(source: FilesSource, io: SourceIo) -> Result<(), ComponentError> {
    let FilesSource {
        name,
        inbox,
        state_dir,
        settings,
        addresses,
    } = source;
    let opened = {
        let inbox = inbox.clone();
        blocking(move || Ok((Folder::create(inbox)?, Ledger::open(&state_dir)?))).await
    };
    let (folder, ledger) = opened.map_err(|e| {
        ComponentError::io_because(
            format!(
                "files source `{name}`: cannot open the inbox {} or its ledger",
                inbox.display()
            ),
            e,
        )
    })?;
    let shared = Arc::new(Shared {
        name,
        folder,
        ledger: Mutex::new(ledger),
        settings,
        addresses,
    });
    let counters = Counters {
        ingested: io.status.counter("files_ingested"),
        quarantined: io.status.counter("files_quarantined"),
        repeated: io.status.counter("files_repeated"),
        records: io.status.counter("records"),
        io_errors: io.status.counter("io_errors"),
    };
    let mut runner = Runner {
        shared,
        counters,
        settle: Settle::default(),
        quarantine_log: Throttle::new(LOG_EVERY),
        error_log: Throttle::new(LOG_EVERY),
        degraded: false,
    };
    let mut ticker = tokio::time::interval(runner.shared.settings.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = io.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
            Some(write) = io.next_write() => {
                let refusal = "a drop folder is read only: the files source does not accept writes";
                let _ = write.reply.send(Err(ComponentError::config(refusal)));
                continue;
            }
        }
        if !runner.scan(&io).await {
            return Ok(());
        }
    }
}

#[derive(Debug)]
struct Runner {
    shared: Arc<Shared>,
    counters: Counters,
    settle: Settle,
    quarantine_log: Throttle,
    error_log: Throttle,
    degraded: bool,
}

impl Runner {
    /// One scan; `false` once the engine stops.
    async fn scan(&mut self, io: &SourceIo) -> bool {
        let shared = self.shared.clone();
        let listing = match blocking(move || shared.folder.list()).await {
            Ok(l) => l,
            Err(e) => {
                let what = format!(
                    "cannot list the inbox {}: {e}",
                    self.shared.folder.inbox.display()
                );
                self.io_error(io, what);
                return true;
            }
        };
        let settings = &self.shared.settings;
        let ready = self.settle.ready(
            listing,
            Instant::now(),
            settings.settle,
            settings.layout.limits.max_files_per_scan,
        );
        let mut failed = false;
        for file in ready {
            if io.is_cancelled() {
                return true;
            }
            match self.file(io, file).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(what) => {
                    failed = true;
                    self.io_error(io, what);
                }
            }
        }
        if !failed && self.degraded {
            self.degraded = false;
            io.status.set_degraded(None);
        }
        true
    }

    /// Takes one ready file through its lifecycle. `Ok(false)` once the engine stops;
    /// `Err` with what failed on disk (the file stays where it is and is tried again).
    async fn file(&mut self, io: &SourceIo, file: Listed) -> Result<bool, String> {
        let shared = self.shared.clone();
        let name = file.name.clone();
        let prepared = match blocking(move || shared.prepare(&file)).await {
            Ok(p) => p,
            // Taken away (by an operator, or the writer's own rename) since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Prepared::Changed,
            Err(e) => return Err(format!("file {name}: {e}")),
        };
        let digest = match prepared {
            Prepared::Changed => {
                self.settle.changed(&name);
                return Ok(true);
            }
            Prepared::Repeated => {
                self.counters.repeated.inc();
                tracing::info!(source = %self.shared.name, file = %name, "file was ingested already (its digest is in the ledger, e.g. from before a crash): moved to done/ without ingesting it again");
                return Ok(true);
            }
            Prepared::Quarantined(reason) => {
                self.counters.quarantined.inc();
                if let Some(skipped) = self.quarantine_log.admit(Instant::now()) {
                    tracing::warn!(source = %self.shared.name, file = %name, reason = %reason, skipped, "file quarantined (skipped: quarantined since the last such line)");
                }
                return Ok(true);
            }
            Prepared::Ingest { digest, mapped } => {
                let records = mapped.records as u64;
                let gateway_time = Timestamp::now();
                let mut readings = mapped.readings;
                while !readings.is_empty() {
                    let rest = readings.split_off(readings.len().min(CHUNK));
                    if !io.emit(gateway_time, readings).await {
                        return Ok(false);
                    }
                    readings = rest;
                }
                if !io.settled().await {
                    return Ok(false);
                }
                self.counters.records.inc_by(records);
                digest
            }
        };
        let shared = self.shared.clone();
        let moved = blocking(move || {
            let recorded = shared.lock_ledger().record(&digest, &name);
            let moved = shared.folder.to_done(&name);
            Ok((recorded, moved, name))
        })
        .await
        .map_err(|e| e.to_string())?;
        let (recorded, moved, name) = moved;
        self.counters.ingested.inc();
        match (recorded, moved) {
            (Ok(()), Ok(_)) => Ok(true),
            (Err(e), _) => Err(format!(
                "file {name} was ingested but the ledger could not be written ({e}); after a restart it may be ingested again"
            )),
            (Ok(()), Err(e)) => Err(format!(
                "file {name} was ingested but could not be moved to done/ ({e}); it is moved on the next scan"
            )),
        }
    }

    fn io_error(&mut self, io: &SourceIo, what: String) {
        self.counters.io_errors.inc();
        self.degraded = true;
        io.status.set_degraded(Some(what.clone()));
        if let Some(skipped) = self.error_log.admit(Instant::now()) {
            tracing::warn!(source = %self.shared.name, error = %what, skipped, "drop folder I/O failed (skipped: failures since the last such line)");
        }
    }
}

impl Shared {
    fn lock_ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while holding it cannot leave the ledger half-updated in memory.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Steps 1–4 of the lifecycle (blocking).
    fn prepare(&self, file: &Listed) -> std::io::Result<Prepared> {
        let limits = &self.settings.layout.limits;
        let name = &file.name;
        if file.size > limits.max_file_bytes {
            let reason = format!(
                "the file is {} bytes, more than max_file_bytes = {}",
                file.size, limits.max_file_bytes
            );
            return self.quarantine(name, file.size, reason);
        }
        let content = self.folder.read(name, limits.max_file_bytes)?;
        let unchanged = |size: u64, modified: SystemTime| size == file.size && modified == file.modified;
        if !unchanged(content.size, content.modified)
            || content.bytes.len() as u64 != content.size
            || self.folder.stat(name).map(|(s, m)| !unchanged(s, m))?
        {
            return Ok(Prepared::Changed);
        }
        let digest = ledger::digest(&content.bytes);
        if self.lock_ledger().contains(&digest) {
            self.folder.to_done(name)?;
            return Ok(Prepared::Repeated);
        }
        let file_time = content
            .modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .map_or_else(Timestamp::now, Timestamp::from_unix_nanos);
        match map_file(&content.bytes, &self.settings.layout, &self.addresses, file_time) {
            Ok(mapped) => Ok(Prepared::Ingest { digest, mapped }),
            Err(rejection) => self.quarantine(name, content.size, rejection.to_string()),
        }
    }

    fn quarantine(&self, name: &str, size: u64, reason: String) -> std::io::Result<Prepared> {
        let text = format!(
            "{reason}\nfile: {name} ({size} bytes), source `{}`, quarantined at {}\n",
            self.name,
            jiff::Timestamp::now()
        );
        self.folder.to_quarantine(name, &text)?;
        Ok(Prepared::Quarantined(reason))
    }
}
