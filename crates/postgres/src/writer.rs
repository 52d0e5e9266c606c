//! One session's writing: prepares the schema at start (migrations, catalog, model
//! views, staging tables), then writes deliveries in one transaction per flush and
//! reports how many rows were new and how many the database already had.
//!
//! Idempotency: every row carries its gateway's stream sequence number, and the unique
//! keys `samples (tag_id, time, gateway_id, seq)` and `events (gateway_id, seq, time)`
//! refuse the same row twice. With `method = "copy"` each flush first asks which of its
//! deliveries the database holds (one statement, one index lookup per delivery): the
//! others are binary-COPYed straight into the tables (the fast path: no `ON CONFLICT`,
//! no second pass), the held ones into a temporary staging table and moved with `INSERT
//! … SELECT … ON CONFLICT DO NOTHING`. Should a straight COPY still meet a stored row
//! (one written between the check and the COPY, or a delivery held only in part), the
//! unique key refuses it, the transaction rolls back whole and the flush is written
//! again through staging. With `"insert"` each row is its own `INSERT … ON CONFLICT DO
//! NOTHING`. Either way a replayed delivery adds nothing, and `rows − inserted` is the
//! number of duplicates.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::time::{Duration, SystemTime};

use backplane_connector::{ComponentError, Delivery, Topology};
use backplane_model::Timestamp;
use bytes::Bytes;
use futures::SinkExt;
use futures::future::try_join_all;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use crate::catalog::{self, CatalogIds};
use crate::config::{Method, PostgresSettings};
use crate::connect::classify;
use crate::copy::CopyBuf;
use crate::migrate;
use crate::partition::{Partition, PartitionBy};
use crate::rows::{self, ContextKey, EventRow, SampleRef, SampleRow};

pub const SAMPLE_COLUMNS: &str = "time, source_time, tag_id, value_double, value_bigint, value_bool, value_text, \
                              value_json, quality, quality_reason, context_id, gateway_id, seq";
pub const SAMPLE_TYPES: [Type; 13] = [
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT4,
    Type::FLOAT8,
    Type::INT8,
    Type::BOOL,
    Type::TEXT,
    Type::JSONB,
    Type::INT2,
    Type::TEXT,
    Type::INT8,
    Type::INT4,
    Type::INT8,
];
pub const EVENT_COLUMNS: &str = "time, asset, kind, payload, context_id, gateway_id, seq";
pub const EVENT_TYPES: [Type; 7] = [
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::INT8,
    Type::INT4,
    Type::INT8,
];

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub samples: u64,
    pub samples_inserted: u64,
    pub events: u64,
    pub events_inserted: u64,
    /// Samples of tags the catalog does not know (not written).
    pub unknown_tags: u64,
    /// Rows without a stream sequence number (not written: they could not be deduplicated).
    pub without_seq: u64,
    pub partitions_created: u64,
}

impl Written {
    pub fn sample_duplicates(&self) -> u64 {
        self.samples - self.samples_inserted
    }

    pub fn event_duplicates(&self) -> u64 {
        self.events - self.events_inserted
    }
}

/// The session and what it caches of the database.
#[derive(Debug)]
pub struct Writer {
    client: Client,
    schema: String,
    method: Method,
    partition: PartitionBy,
    /// `samples` is a TimescaleDB hypertable (no partitions of ours to manage).
    timescale: bool,
    ids: CatalogIds,
    /// Committed contexts and their ids.
    contexts: HashMap<ContextKey, i64>,
    /// Partitions known to exist, by table name.
    partitions: HashSet<String>,
}

impl Writer {
    /// Migrates the schema, syncs the catalog and makes the model views (under the
    /// schema's advisory lock), then prepares the session's staging tables.
    pub async fn start(
        mut client: Client,
        settings: &PostgresSettings,
        topology: &Topology,
    ) -> Result<Writer, ComponentError> {
        let schema = settings.schema.clone();
        let prepared = async {
            migrate::lock(&client, &schema).await?;
            let result = async {
                migrate::migrate(&mut client, &schema, settings.partition, None).await?;
                let ids = catalog::sync(&mut client, topology).await?;
                catalog::model_views(&mut client, topology).await?;
                Ok::<_, tokio_postgres::Error>(ids)
            }
            .await;
            let unlocked = migrate::unlock(&client, &schema).await;
            let ids = result?;
            unlocked?;
            let kind: String = client
                .query_one(
                    "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = 'samples'",
                    &[&schema],
                )
                .await?
                .get(0);
            client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE IF NOT EXISTS samples_staging (LIKE {schema}.samples) ON COMMIT DELETE ROWS;
                     CREATE TEMP TABLE IF NOT EXISTS events_staging (LIKE {schema}.events) ON COMMIT DELETE ROWS;"
                ))
                .await?;
            Ok::<_, tokio_postgres::Error>((ids, kind != "p"))
        }
        .await;
        let (ids, timescale) = match prepared {
            Ok(v) => v,
            Err(e) => return Err(classify(&client, &e, "preparing the schema")),
        };
        let mut writer = Writer {
            client,
            schema,
            method: settings.method,
            partition: settings.partition,
            timescale,
            ids,
            contexts: HashMap::new(),
            partitions: HashSet::new(),
        };
        if !timescale && let Err(e) = writer.load_partitions().await {
            return Err(classify(&writer.client, &e, "listing partitions"));
        }
        writer.check_partition_width()?;
        Ok(writer)
    }

    /// Partitions of another width than `partition` would overlap the new ones (every
    /// flush would fail), so a changed `partition` on a schema that has partitions is
    /// refused at start, naming both.
    fn check_partition_width(&self) -> Result<(), ComponentError> {
        for parent in ["samples", "events"] {
            let other = self.partitions.iter().find_map(|name| {
                Partition::from_table_name(parent, name)
                    .filter(|p| p.by != self.partition)
                    .map(|p| (name, p.by))
            });
            if let Some((name, by)) = other {
                return Err(ComponentError::config(format!(
                    "postgresql: schema `{}` is partitioned by {} (e.g. `{name}`), not by {}: \
                     keep `partition = \"{}\"` or write to a new schema",
                    self.schema,
                    by.name(),
                    self.partition.name(),
                    by.name()
                )));
            }
        }
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn is_timescale(&self) -> bool {
        self.timescale
    }

    pub fn gateway_id(&self) -> i32 {
        self.ids.gateway_id
    }

    async fn partitions_of(&self, parent: &str) -> Result<Vec<String>, tokio_postgres::Error> {
        Ok(self
            .client
            .query(
                "SELECT c.relname::text FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 JOIN pg_namespace n ON n.oid = p.relnamespace
                 WHERE n.nspname = $1 AND p.relname = $2",
                &[&self.schema, &parent],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn load_partitions(&mut self) -> Result<(), tokio_postgres::Error> {
        self.partitions.clear();
        for parent in ["samples", "events"] {
            let names = self.partitions_of(parent).await?;
            self.partitions.extend(names);
        }
        Ok(())
    }

    /// Creates the partitions `times` need that are not known to exist, each table under
    /// the schema's partition lock.
    async fn ensure_partitions(
        &mut self,
        parent: &str,
        times: &[Timestamp],
    ) -> Result<u64, tokio_postgres::Error> {
        if self.timescale {
            return Ok(0);
        }
        let mut wanted: Vec<Partition> = times.iter().map(|t| self.partition.of(*t)).collect();
        wanted.sort();
        wanted.dedup();
        let mut created = 0;
        for p in wanted {
            let name = p.table_name(parent);
            if self.partitions.contains(&name) {
                continue;
            }
            let schema = &self.schema;
            self.client
                .batch_execute(&format!(
                    "BEGIN;
                     SELECT pg_advisory_xact_lock(hashtext('backplane-partitions:{schema}'));
                     CREATE TABLE IF NOT EXISTS {schema}.{name} PARTITION OF {schema}.{parent}
                         FOR VALUES FROM ('{}') TO ('{}');
                     COMMIT;",
                    p.from_literal(),
                    p.to_literal()
                ))
                .await?;
            tracing::info!(schema = %self.schema, partition = %name, "postgresql: partition created");
            self.partitions.insert(name);
            created += 1;
        }
        Ok(created)
    }

    /// Drops every partition of `samples` and `events` whose whole range is older than
    /// `retention` at `now` (TimescaleDB: `drop_chunks`). Returns the tables dropped.
    pub async fn drop_expired(
        &mut self,
        now: Timestamp,
        retention: Duration,
    ) -> Result<Vec<String>, tokio_postgres::Error> {
        let schema = self.schema.clone();
        if self.timescale {
            let secs = retention.as_secs_f64();
            for parent in ["samples", "events"] {
                self.client
                    .execute(
                        &format!(
                            "SELECT drop_chunks('{schema}.{parent}', older_than => now() - make_interval(secs => $1))"
                        ),
                        &[&secs],
                    )
                    .await?;
            }
            return Ok(Vec::new());
        }
        let mut dropped = Vec::new();
        for parent in ["samples", "events"] {
            for name in self.partitions_of(parent).await? {
                let Some(p) = Partition::from_table_name(parent, &name) else {
                    continue;
                };
                if !p.expired(now, retention) {
                    continue;
                }
                self.client
                    .batch_execute(&format!(
                        "BEGIN;
                         SELECT pg_advisory_xact_lock(hashtext('backplane-partitions:{schema}'));
                         DROP TABLE IF EXISTS {schema}.{name};
                         COMMIT;"
                    ))
                    .await?;
                tracing::info!(schema = %schema, partition = %name, "postgresql: retention dropped a partition");
                self.partitions.remove(&name);
                dropped.push(name);
            }
        }
        Ok(dropped)
    }

    /// Writes every row of `deliveries` in one transaction. When this returns `Ok` the
    /// transaction has committed: the deliveries may be acknowledged.
    pub async fn write(&mut self, deliveries: &[Delivery]) -> Result<Written, tokio_postgres::Error> {
        let (sample_times, event_times) = times(deliveries);
        let created = self.ensure_partitions("samples", &sample_times).await?
            + self.ensure_partitions("events", &event_times).await?;
        let mut written = match self.write_routed(deliveries, Route::AsStored).await {
            Err(e) if self.method == Method::Copy && e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // Rolled back whole; the idempotent path adds only what is missing.
                tracing::info!(schema = %self.schema, "postgresql: rows of the flush were stored already; writing it through staging");
                self.write_routed(deliveries, Route::AllStaged).await
            }
            other => other,
        }?;
        written.partitions_created = created;
        Ok(written)
    }

    /// One transaction; the partitions exist already.
    async fn write_routed(
        &mut self,
        deliveries: &[Delivery],
        route: Route,
    ) -> Result<Written, tokio_postgres::Error> {
        let mut written = Written::default();
        let gateway_id = self.ids.gateway_id;
        let schema = &self.schema;
        let tx = self.client.transaction().await?;
        let new_contexts = context_ids(&tx, &self.contexts, deliveries).await?;
        let context_of = |c: &backplane_model::Context| -> Option<i64> {
            let key = rows::context_key(c)?;
            self.contexts
                .get(&key)
                .or_else(|| new_contexts.get(&key))
                .copied()
        };
        // Which deliveries may have rows stored already (a replay, or a restart before
        // the ack): those go through staging and `ON CONFLICT`, the rest straight in.
        let stored = match (self.method, route) {
            (Method::Insert, _) | (Method::Copy, Route::AllStaged) => vec![true; deliveries.len()],
            (Method::Copy, Route::AsStored) => {
                stored_deliveries(&tx, schema, gateway_id, deliveries, &self.ids.tag_ids).await?
            }
        };

        // Samples.
        let mut fresh = Vec::new();
        let mut again = Vec::new();
        for (d, stored) in deliveries.iter().zip(&stored) {
            for (i, s) in d.batch.samples.iter().enumerate() {
                let Some(seq) = d.sample_seq(i) else {
                    written.without_seq += 1;
                    continue;
                };
                let Some(tag_id) = self.ids.tag_ids.get(s.tag.index()).copied().filter(|id| *id >= 0) else {
                    written.unknown_tags += 1;
                    continue;
                };
                let row = SampleRef {
                    sample: s,
                    tag_id,
                    context_id: context_of(&s.context),
                    seq: rows::seq(seq),
                };
                if *stored { again.push(row) } else { fresh.push(row) }
            }
        }
        written.samples = (fresh.len() + again.len()) as u64;
        // In key order, each tag's rows of the flush land together in the unique key's
        // index (fewer pages touched per row).
        for rows in [&mut fresh, &mut again] {
            rows.sort_unstable_by_key(|r| (r.tag_id, r.sample.gateway_time, r.seq));
        }
        written.samples_inserted = match self.method {
            Method::Copy => {
                copy_samples(&tx, &format!("{schema}.samples"), &fresh, gateway_id).await?
                    + copy_samples_staged(&tx, schema, &again, gateway_id).await?
            }
            Method::Insert => insert_samples(&tx, schema, &again, gateway_id).await?,
        };

        // Events: their JSON is the payload.
        let mut fresh = Vec::new();
        let mut again = Vec::new();
        for (d, stored) in deliveries.iter().zip(&stored) {
            for (j, e) in d.batch.events.iter().enumerate() {
                let Some(seq) = d.event_seq(j) else {
                    written.without_seq += 1;
                    continue;
                };
                let mut payload = serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
                rows::json(&mut payload);
                let kind = payload
                    .get("event")
                    .and_then(|k| k.as_str())
                    .unwrap_or("unknown")
                    .to_owned();
                let row = EventRow {
                    time: e.time,
                    asset: e.asset.as_str().to_owned(),
                    kind,
                    payload,
                    context_id: context_of(&e.context),
                    gateway_id,
                    seq: rows::seq(seq),
                };
                if *stored { again.push(row) } else { fresh.push(row) }
            }
        }
        written.events = (fresh.len() + again.len()) as u64;
        written.events_inserted = match self.method {
            Method::Copy => {
                copy_events(&tx, &format!("{schema}.events"), &fresh).await?
                    + copy_events_staged(&tx, schema, &again).await?
            }
            Method::Insert => insert_events(&tx, schema, &again).await?,
        };
        tx.commit().await?;
        self.contexts.extend(new_contexts);
        Ok(written)
    }
}

/// How a flush decides which rows go straight in and which through staging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Ask the database which deliveries it holds.
    AsStored,
    /// Every row through staging (after a straight COPY met a stored row).
    AllStaged,
}

/// For each delivery, whether the database holds its rows. A delivery is written whole in
/// one transaction, so one row tells: its first sample (a point lookup on the unique
/// key, in the one partition of its time) or, without samples, its first event. Should a
/// delivery be held only in part (retention dropped some of its partitions), the COPY
/// meets the rest and the flush falls back to staging.
async fn stored_deliveries(
    tx: &Transaction<'_>,
    schema: &str,
    gateway_id: i32,
    deliveries: &[Delivery],
    tag_ids: &[i32],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let mut tag = Vec::with_capacity(deliveries.len());
    let mut time = Vec::with_capacity(deliveries.len());
    let mut seq = Vec::with_capacity(deliveries.len());
    let mut index = Vec::with_capacity(deliveries.len());
    for (k, d) in deliveries.iter().enumerate() {
        let sample = d.batch.samples.iter().enumerate().find_map(|(i, s)| {
            let tag = tag_ids.get(s.tag.index()).copied().filter(|id| *id >= 0)?;
            Some((tag, s.gateway_time, d.sample_seq(i)?))
        });
        // Events have no tag: -1 marks the probe as one of `events`.
        let probe = sample.or_else(|| {
            let e = d.batch.events.first()?;
            Some((-1, e.time, d.event_seq(0)?))
        });
        if let Some((t, at, n)) = probe {
            tag.push(t);
            time.push(rows::system_time(at));
            seq.push(rows::seq(n));
            index.push(i64::try_from(k).unwrap_or(i64::MAX));
        }
    }
    let mut stored = vec![false; deliveries.len()];
    if index.is_empty() {
        return Ok(stored);
    }
    let hits = tx
        .query(
            &format!(
                "SELECT r.k FROM unnest($2::int4[], $3::timestamptz[], $4::int8[], $5::int8[]) AS r (tag, at, seq, k)
                 WHERE CASE WHEN r.tag >= 0
                     THEN EXISTS (SELECT 1 FROM {schema}.samples s WHERE s.tag_id = r.tag AND s.time = r.at
                                      AND s.gateway_id = $1 AND s.seq = r.seq)
                     ELSE EXISTS (SELECT 1 FROM {schema}.events e WHERE e.gateway_id = $1 AND e.seq = r.seq
                                      AND e.time = r.at)
                 END"
            ),
            &[&gateway_id, &tag, &time, &seq, &index],
        )
        .await?;
    for row in hits {
        let k: i64 = row.get(0);
        if let Some(s) = usize::try_from(k).ok().and_then(|k| stored.get_mut(k)) {
            *s = true;
        }
    }
    Ok(stored)
}

/// The distinct days (or coarser) of the samples and of the events: enough to find
/// their partitions.
fn times(deliveries: &[Delivery]) -> (Vec<Timestamp>, Vec<Timestamp>) {
    const HOUR: i64 = 3_600_000_000_000;
    let mut samples: Vec<Timestamp> = Vec::new();
    let mut events: Vec<Timestamp> = Vec::new();
    for d in deliveries {
        for s in &d.batch.samples {
            let t = Timestamp::from_unix_nanos(s.gateway_time.unix_nanos().div_euclid(HOUR) * HOUR);
            if samples.last() != Some(&t) {
                samples.push(t);
            }
        }
        for e in &d.batch.events {
            events.push(e.time);
        }
    }
    (samples, events)
}

/// The ids of the contexts of `deliveries` not yet cached, upserted in `tx` (cached by
/// the caller only once `tx` has committed).
async fn context_ids(
    tx: &Transaction<'_>,
    known: &HashMap<ContextKey, i64>,
    deliveries: &[Delivery],
) -> Result<HashMap<ContextKey, i64>, tokio_postgres::Error> {
    let mut new = HashMap::new();
    let contexts = deliveries.iter().flat_map(|d| {
        d.batch
            .samples
            .iter()
            .map(|s| &s.context)
            .chain(d.batch.events.iter().map(|e| &e.context))
    });
    let mut missing: Vec<ContextKey> = Vec::new();
    let mut last: Option<usize> = None;
    for c in contexts {
        // Samples of one batch share their asset's context: skip the same Arc quickly.
        let ptr = std::sync::Arc::as_ptr(c) as usize;
        if last == Some(ptr) {
            continue;
        }
        last = Some(ptr);
        if let Some(key) = rows::context_key(c)
            && !known.contains_key(&key)
            && !missing.contains(&key)
        {
            missing.push(key);
        }
    }
    if missing.is_empty() {
        return Ok(new);
    }
    let statement = tx
        .prepare(
            "INSERT INTO contexts (work_order, product, batch, lot, shift, operator, machine_state)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT ON CONSTRAINT contexts_tuple DO UPDATE SET work_order = EXCLUDED.work_order
             RETURNING id",
        )
        .await?;
    for key in missing {
        let fields: Vec<Option<std::borrow::Cow<'_, str>>> =
            key.iter().map(|f| f.as_deref().map(rows::text)).collect();
        let params: Vec<&(dyn ToSql + Sync)> = fields.iter().map(|f| f as &(dyn ToSql + Sync)).collect();
        let id: i64 = tx.query_one(&statement, &params).await?.get(0);
        new.insert(key, id);
    }
    Ok(new)
}

/// Sends rows as one binary COPY, a chunk at a time while encoding; the rows copied.
async fn copy_in<T>(
    tx: &Transaction<'_>,
    statement: &str,
    rows: &[T],
    mut encode: impl FnMut(&mut CopyBuf, &T),
) -> Result<u64, tokio_postgres::Error> {
    const CHUNK: usize = 128 * 1024;
    let sink = tx.copy_in::<_, Bytes>(statement).await?;
    let mut sink = pin!(sink);
    let mut buf = CopyBuf::new();
    for row in rows {
        encode(&mut buf, row);
        if buf.len() >= CHUNK {
            sink.send(buf.take()).await?;
        }
    }
    buf.finish();
    sink.send(buf.take()).await?;
    sink.finish().await
}

/// Binary COPY straight into `table` (rows known not to be stored); the rows inserted.
pub async fn copy_samples(
    tx: &Transaction<'_>,
    table: &str,
    rows: &[SampleRef<'_>],
    gateway_id: i32,
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    copy_in(
        tx,
        &format!("COPY {table} ({SAMPLE_COLUMNS}) FROM STDIN BINARY"),
        rows,
        |buf, row| buf.sample(row, gateway_id),
    )
    .await
}

/// Binary COPY into the staging table, then the idempotent move; the rows inserted.
pub async fn copy_samples_staged(
    tx: &Transaction<'_>,
    schema: &str,
    rows: &[SampleRef<'_>],
    gateway_id: i32,
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    copy_samples(tx, "pg_temp.samples_staging", rows, gateway_id).await?;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.samples ({SAMPLE_COLUMNS}) SELECT {SAMPLE_COLUMNS} FROM pg_temp.samples_staging
             ON CONFLICT DO NOTHING"
        ),
        &[],
    )
    .await
}

/// One pipelined `INSERT … ON CONFLICT DO NOTHING` per row; the rows inserted.
pub async fn insert_samples(
    tx: &Transaction<'_>,
    schema: &str,
    rows: &[SampleRef<'_>],
    gateway_id: i32,
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let statement = tx
        .prepare_typed(
            &format!(
                "INSERT INTO {schema}.samples ({SAMPLE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"
            ),
            &SAMPLE_TYPES,
        )
        .await?;
    let typed: Vec<_> = rows.iter().map(|r| SampleRow::of(r, gateway_id)).collect();
    let params: Vec<_> = typed.iter().map(SampleRow::params).collect();
    let counts = try_join_all(params.iter().map(|p| tx.execute(&statement, p))).await?;
    Ok(counts.iter().sum())
}

async fn copy_events(
    tx: &Transaction<'_>,
    table: &str,
    rows: &[EventRow],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    copy_in(
        tx,
        &format!("COPY {table} ({EVENT_COLUMNS}) FROM STDIN BINARY"),
        rows,
        CopyBuf::event,
    )
    .await
}

async fn copy_events_staged(
    tx: &Transaction<'_>,
    schema: &str,
    rows: &[EventRow],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    copy_events(tx, "pg_temp.events_staging", rows).await?;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM pg_temp.events_staging
             ORDER BY seq ON CONFLICT DO NOTHING"
        ),
        &[],
    )
    .await
}

async fn insert_events(
    tx: &Transaction<'_>,
    schema: &str,
    rows: &[EventRow],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let statement = tx
        .prepare_typed(
            &format!(
                "INSERT INTO {schema}.events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT DO NOTHING"
            ),
            &EVENT_TYPES,
        )
        .await?;
    let times: Vec<SystemTime> = rows.iter().map(|r| rows::system_time(r.time)).collect();
    let params: Vec<_> = rows.iter().zip(&times).map(|(r, t)| r.params(t)).collect();
    let counts = try_join_all(params.iter().map(|p| tx.execute(&statement, p))).await?;
    Ok(counts.iter().sum())
}
