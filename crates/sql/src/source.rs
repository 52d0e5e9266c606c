//! The running source: one connection, a poll every `period` (at once again while a poll
//! comes back full), rows handed to the pipeline in key order, and the watermark saved
//! after each hand-over the pipeline accepted.
//!
//! Delivery: a row's readings (and context) are handed over with [`SourceIo::emit`] /
//! [`SourceIo::set_context`]; only once that returned `true` (the pipeline's input queue
//! took them) is the key of the last row handed over saved. A graceful stop drains that
//! queue into the sinks' buffers, so across restarts, reconnects and source failures
//! every row is read once, none skipped. A crash (kill -9, power loss) between the
//! hand-over and the sinks' buffers can lose the rows of the batch in flight; one between
//! the hand-over and the save reads that batch again (docs/connectors/sql.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_connector::{Backoff, ComponentError, RawReading, Source, SourceIo};
use backplane_model::{ContextField, ContextPatch, DataType, Timestamp};
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;

use crate::config::SqlSettings;
use crate::db::{Db, DbError, Rows};
use crate::rows::{CellError, Layout};
use crate::watermark::{self, Watermark};

/// Reconnect delays (the shared backoff, jittered).
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Cell errors logged per minute; the rest are counted only.
const CELL_LOG_LINES: u32 = 10;

/// One configured `sql` source.
#[derive(Debug)]
pub struct SqlSource {
    pub name: String,
    pub settings: Arc<SqlSettings>,
    pub addresses: Vec<Arc<str>>,
    /// The attribute type each address feeds (its first tag's).
    pub types: Vec<Option<DataType>>,
    /// The asset whose context the rows set.
    pub context_asset: Option<usize>,
    pub state: PathBuf,
}

struct Counters {
    rows: Counter,
    null_cells: Counter,
    bad_cells: Counter,
    failures: Counter,
}

/// The first lines of a minute, then a count.
struct LogLimit {
    since: Instant,
    lines: u32,
    suppressed: u64,
}

impl LogLimit {
    fn allow(&mut self) -> bool {
        if self.since.elapsed() >= Duration::from_secs(60) {
            if self.suppressed > 0 {
                tracing::warn!(
                    suppressed = self.suppressed,
                    "sql: more cell errors in the last minute (counted)"
                );
            }
            *self = LogLimit {
                since: Instant::now(),
                lines: 0,
                suppressed: 0,
            };
        }
        self.lines += 1;
        if self.lines > CELL_LOG_LINES {
            self.suppressed += 1;
        }
        self.lines <= CELL_LOG_LINES
    }
}

/// How a batch ended.
enum Handed {
    All,
    /// The engine is stopping.
    Stopped,
}

impl Source for SqlSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move { self.run_loop(io).await }.boxed()
    }
}

impl SqlSource {
    fn fail(&self, message: impl std::fmt::Display) -> String {
        format!("sql source `{}`: {message}", self.name)
    }

    async fn run_loop(self, io: SourceIo) -> Result<(), ComponentError> {
        let mut after = watermark::load(&self.state).map_err(|e| ComponentError::config(self.fail(e)))?;
        let counters = Counters {
            rows: io.status.counter("rows"),
            null_cells: io.status.counter("null_cells"),
            bad_cells: io.status.counter("bad_cells"),
            failures: io.status.counter("failures"),
        };
        let mut limit = LogLimit {
            since: Instant::now(),
            lines: 0,
            suppressed: 0,
        };
        let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
        let mut last_failure = String::new();
        let mut context: Vec<(ContextField, Option<Arc<str>>)> = Vec::new();
        let columns: Vec<&str> = self.addresses.iter().map(|a| &**a).collect();
        loop {
            let failure = match self
                .session(
                    &io,
                    &columns,
                    &mut after,
                    &mut context,
                    &counters,
                    &mut limit,
                    &mut backoff,
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(DbError::Config(message)) => return Err(ComponentError::config(self.fail(message))),
                Err(DbError::State(message)) => return Err(ComponentError::io(self.fail(message))),
                Err(e) => self.fail(e),
            };
            counters.failures.inc();
            io.status.set_degraded(Some(failure.clone()));
            if failure != last_failure {
                tracing::warn!(source = %self.name, error = %failure, "sql: reconnecting after the backoff");
                last_failure = failure;
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = io.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection: polls until it fails (`Err`) or the engine stops (`Ok`).
    #[allow(clippy::too_many_arguments)]
    async fn session(
        &self,
        io: &SourceIo,
        columns: &[&str],
        after: &mut Option<Watermark>,
        context: &mut Vec<(ContextField, Option<Arc<str>>)>,
        counters: &Counters,
        limit: &mut LogLimit,
        backoff: &mut Backoff,
    ) -> Result<(), DbError> {
        let application = format!("backplane sql source {}", self.name);
        let mut db = tokio::select! {
            () = io.cancelled() => return Ok(()),
            db = Db::connect(&self.settings, &application) => db?,
        };
        loop {
            let statement = crate::query::statement(&self.settings, columns, after.as_ref());
            let rows = tokio::select! {
                () = io.cancelled() => return Ok(()),
                rows = db.fetch(&self.settings, &statement) => rows?,
            };
            backoff.reset();
            io.status.set_degraded(None);
            let full = rows.rows.len() >= self.settings.batch as usize;
            match self.hand_over(io, rows, after, context, counters, limit).await? {
                Handed::All => {}
                Handed::Stopped => return Ok(()),
            }
            if !full {
                tokio::select! {
                    () = io.cancelled() => return Ok(()),
                    () = tokio::time::sleep(self.settings.period) => {}
                }
            }
        }
    }

    /// Hands one poll's rows to the pipeline in order, saving the key after each accepted
    /// hand-over. A context change is handed over between the readings before and after it.
    async fn hand_over(
        &self,
        io: &SourceIo,
        rows: Rows,
        after: &mut Option<Watermark>,
        context: &mut Vec<(ContextField, Option<Arc<str>>)>,
        counters: &Counters,
        limit: &mut LogLimit,
    ) -> Result<Handed, DbError> {
        if rows.rows.is_empty() {
            return Ok(Handed::All);
        }
        let layout = Layout::new(&self.settings, &self.addresses, &self.types, &rows.columns)
            .map_err(DbError::Config)?;
        let mut readings: Vec<RawReading> = Vec::new();
        let mut pending: Option<Watermark> = None;
        for row in &rows.rows {
            let mapped = layout.row(row).map_err(DbError::Config)?;
            counters.rows.inc();
            for e in &mapped.errors {
                self.report(&mapped.key, e, counters, limit);
            }
            if let Some(asset) = self.context_asset
                && !mapped.context.is_empty()
                && mapped.context != *context
            {
                if !self.flush(io, &mut readings, &mut pending, after).await? {
                    return Ok(Handed::Stopped);
                }
                let mut patch = ContextPatch::default();
                for (field, value) in &mapped.context {
                    patch = match value {
                        Some(v) => patch.set(*field, v),
                        None => patch.clear(*field),
                    };
                }
                if !io
                    .set_context(asset, patch, Some(format!("sql source {}", self.name)))
                    .await
                {
                    return Ok(Handed::Stopped);
                }
                context.clone_from(&mapped.context);
            }
            readings.extend(mapped.readings);
            pending = Some(mapped.key);
        }
        Ok(if self.flush(io, &mut readings, &mut pending, after).await? {
            Handed::All
        } else {
            Handed::Stopped
        })
    }

    /// Emits the readings gathered and saves the key of the last row they cover. `false`
    /// once the engine stops (nothing saved then).
    async fn flush(
        &self,
        io: &SourceIo,
        readings: &mut Vec<RawReading>,
        pending: &mut Option<Watermark>,
        after: &mut Option<Watermark>,
    ) -> Result<bool, DbError> {
        if !readings.is_empty() && !io.emit(Timestamp::now(), std::mem::take(readings)).await {
            return Ok(false);
        }
        if let Some(mark) = pending.take() {
            // A key that cannot be saved would make a restart read rows again: stop.
            watermark::save(&self.state, &mark).map_err(|e| DbError::State(e.to_string()))?;
            *after = Some(mark);
        }
        Ok(true)
    }

    fn report(&self, key: &Watermark, e: &CellError, counters: &Counters, limit: &mut LogLimit) {
        match e.problem.counter() {
            "null_cells" => counters.null_cells.inc(),
            _ => counters.bad_cells.inc(),
        };
        if limit.allow() {
            tracing::warn!(
                source = %self.name,
                row = %key,
                column = %e.column,
                "sql: cell not passed on as good: {} (counted in {})",
                e.detail,
                e.problem.counter()
            );
        }
    }
}
