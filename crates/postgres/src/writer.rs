//! One session's writing: prepares the schema at start (migrations, catalog, model
//! views, staging tables), then writes deliveries in one transaction per flush and
//! reports how many rows were new and how many the database already had.
//!
//! Idempotency: every row carries `(gateway_id, seq, time)`, unique in `samples` and
//! `events`. With `method = "copy"` the rows are binary-COPYed into a temporary staging
//! table and moved with `INSERT … SELECT … ON CONFLICT DO NOTHING`; with `"insert"` each
//! row is its own `INSERT … ON CONFLICT DO NOTHING`. Either way a replayed delivery adds
//! nothing, and `staged − inserted` is the number of duplicates.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::time::{Duration, SystemTime};

use backplane_connector::{ComponentError, Delivery, Topology};
use backplane_model::Timestamp;
use futures::future::try_join_all;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use crate::catalog::{self, CatalogIds};
use crate::config::{Method, PostgresSettings};
use crate::connect::classify;
use crate::migrate;
use crate::partition::{Partition, PartitionBy};
use crate::rows::{self, ContextKey, ValueColumns};

const SAMPLE_COLUMNS: &str = "time, source_time, tag_id, value_double, value_bigint, value_bool, value_text, \
                              value_json, quality, quality_reason, context_id, gateway_id, seq";
const SAMPLE_TYPES: [Type; 13] = [
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
const EVENT_COLUMNS: &str = "time, asset, kind, payload, context_id, gateway_id, seq";
const EVENT_TYPES: [Type; 7] = [
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
        Ok(writer)
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
        let mut written = Written::default();
        let (sample_times, event_times) = times(deliveries);
        written.partitions_created += self.ensure_partitions("samples", &sample_times).await?;
        written.partitions_created += self.ensure_partitions("events", &event_times).await?;

        let gateway_id = self.ids.gateway_id;
        let tx = self.client.transaction().await?;
        let new_contexts = context_ids(&tx, &self.contexts, deliveries).await?;
        let context_of = |c: &backplane_model::Context| -> Option<i64> {
            let key = rows::context_key(c)?;
            self.contexts
                .get(&key)
                .or_else(|| new_contexts.get(&key))
                .copied()
        };

        // Samples.
        let mut sample_rows = Vec::new();
        for d in deliveries {
            for (i, s) in d.batch.samples.iter().enumerate() {
                let Some(seq) = d.sample_seq(i) else {
                    written.without_seq += 1;
                    continue;
                };
                let Some(tag_id) = self.ids.tag_ids.get(s.tag.index()).copied().filter(|id| *id >= 0) else {
                    written.unknown_tags += 1;
                    continue;
                };
                let v = ValueColumns::of(s.value.as_ref());
                sample_rows.push(SampleRow {
                    time: rows::system_time(s.gateway_time),
                    source_time: s.source_time.map(rows::system_time),
                    tag_id,
                    double: v.double,
                    bigint: v.bigint,
                    boolean: v.boolean,
                    text: v.text,
                    json: v.json,
                    quality: rows::quality_code(s.quality),
                    quality_reason: s.quality.reason(),
                    context_id: context_of(&s.context),
                    gateway_id,
                    seq: rows::seq(seq),
                });
            }
        }
        written.samples = sample_rows.len() as u64;
        written.samples_inserted = match self.method {
            Method::Copy => copy_samples(&tx, &self.schema, &sample_rows).await?,
            Method::Insert => insert_samples(&tx, &self.schema, &sample_rows).await?,
        };

        // Events: their JSON is the payload.
        let mut event_rows = Vec::new();
        for d in deliveries {
            for (j, e) in d.batch.events.iter().enumerate() {
                let Some(seq) = d.event_seq(j) else {
                    written.without_seq += 1;
                    continue;
                };
                let payload = serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
                let kind = payload
                    .get("event")
                    .and_then(|k| k.as_str())
                    .unwrap_or("unknown")
                    .to_owned();
                event_rows.push(EventRow {
                    time: rows::system_time(e.time),
                    asset: e.asset.as_str().to_owned(),
                    kind,
                    payload,
                    context_id: context_of(&e.context),
                    gateway_id,
                    seq: rows::seq(seq),
                });
            }
        }
        written.events = event_rows.len() as u64;
        written.events_inserted = match self.method {
            Method::Copy => copy_events(&tx, &self.schema, &event_rows).await?,
            Method::Insert => insert_events(&tx, &self.schema, &event_rows).await?,
        };
        tx.commit().await?;
        self.contexts.extend(new_contexts);
        Ok(written)
    }
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
        let fields: Vec<Option<&str>> = key.iter().map(|f| f.as_deref()).collect();
        let params: Vec<&(dyn ToSql + Sync)> = fields.iter().map(|f| f as &(dyn ToSql + Sync)).collect();
        let id: i64 = tx.query_one(&statement, &params).await?.get(0);
        new.insert(key, id);
    }
    Ok(new)
}

/// One row of `samples`, typed for the wire.
#[derive(Debug)]
pub struct SampleRow {
    pub time: SystemTime,
    pub source_time: Option<SystemTime>,
    pub tag_id: i32,
    pub double: Option<f64>,
    pub bigint: Option<i64>,
    pub boolean: Option<bool>,
    pub text: Option<String>,
    pub json: Option<serde_json::Value>,
    pub quality: i16,
    pub quality_reason: Option<&'static str>,
    pub context_id: Option<i64>,
    pub gateway_id: i32,
    pub seq: i64,
}

impl SampleRow {
    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.time,
            &self.source_time,
            &self.tag_id,
            &self.double,
            &self.bigint,
            &self.boolean,
            &self.text,
            &self.json,
            &self.quality,
            &self.quality_reason,
            &self.context_id,
            &self.gateway_id,
            &self.seq,
        ]
    }
}

#[derive(Debug)]
struct EventRow {
    time: SystemTime,
    asset: String,
    kind: String,
    payload: serde_json::Value,
    context_id: Option<i64>,
    gateway_id: i32,
    seq: i64,
}

impl EventRow {
    fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.time,
            &self.asset,
            &self.kind,
            &self.payload,
            &self.context_id,
            &self.gateway_id,
            &self.seq,
        ]
    }
}

/// Binary COPY into the staging table, then the idempotent move; the rows inserted.
pub async fn copy_samples(
    tx: &Transaction<'_>,
    schema: &str,
    rows: &[SampleRow],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sink = tx
        .copy_in(&format!(
            "COPY pg_temp.samples_staging ({SAMPLE_COLUMNS}) FROM STDIN BINARY"
        ))
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &SAMPLE_TYPES));
    for row in rows {
        writer.as_mut().write(&row.params()).await?;
    }
    writer.finish().await?;
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
    rows: &[SampleRow],
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
    let params: Vec<_> = rows.iter().map(SampleRow::params).collect();
    let counts = try_join_all(params.iter().map(|p| tx.execute(&statement, p))).await?;
    Ok(counts.iter().sum())
}

async fn copy_events(
    tx: &Transaction<'_>,
    schema: &str,
    rows: &[EventRow],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sink = tx
        .copy_in(&format!(
            "COPY pg_temp.events_staging ({EVENT_COLUMNS}) FROM STDIN BINARY"
        ))
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &EVENT_TYPES));
    for row in rows {
        writer.as_mut().write(&row.params()).await?;
    }
    writer.finish().await?;
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
    let params: Vec<_> = rows.iter().map(EventRow::params).collect();
    let counts = try_join_all(params.iter().map(|p| tx.execute(&statement, p))).await?;
    Ok(counts.iter().sum())
}
