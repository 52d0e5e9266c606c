//! `postgresql` sink write throughput against the local PostgreSQL, COPY and INSERT side
//! by side in one run: the sink's own path (deliveries from a store-and-forward feed →
//! transactions of `batch_rows` rows → commit → records acknowledged), 1000 float tags
//! (100 assets × 10 attributes), deliveries of 1000 samples, each case in a schema of its
//! own in one fresh database (dropped at the end). Cases:
//!
//! - `copy, live`: new rows, the normal case;
//! - `copy, backlog replay`: new rows marked replay (what an outage leaves in the log);
//! - `copy, duplicate replay`: the live rows handed out again (all already stored);
//! - `insert, live`: `method = "insert"`, new rows (fewer of them: it is slow).
//!
//! Prints rows/s (wall clock, timed from the first delivery to the last acknowledgement)
//! and CPU-seconds per million rows of this process (client) and of the sink's server
//! backend (from `/proc`, so only when the server runs on this machine).
//!
//!     cargo bench -p backplane-postgres --bench copy_vs_insert
//!
//! `BENCH_BATCH` sets `batch_rows` (default: the sink's default), `BENCH_SAMPLES` the rows
//! of the COPY cases (default 500000), `BENCH_INSERT_SAMPLES` those of the INSERT case
//! (default 100000). Server: the trust user `postgres` on 127.0.0.1:5432.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark binary: failing loudly is the point

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_connector::{Batch, Sink, SinkKind};
use backplane_model::{Context, Quality, Sample, TagId, Timestamp, Value};
use backplane_postgres::PostgresKind;
use backplane_postgres::sink::PostgresSink;
use common::{Counters, FakeFeed, TestDb, sink_io};

const ASSETS: usize = 100;
const ATTRIBUTES: usize = 10;
const PER_DELIVERY: usize = ASSETS * ATTRIBUTES;

fn config(url: &str, schema: &str, method: &str, batch_rows: usize) -> String {
    let mut text = String::from(
        "[gateway]\nname = \"bench\"\n[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n[models.M.attributes]\n",
    );
    for a in 0..ATTRIBUTES {
        text.push_str(&format!("a{a} = {{ type = \"float\", unit = \"degC\" }}\n"));
    }
    text.push_str("[[assets]]\npath = \"area\"\nlevel = \"area\"\n");
    for i in 0..ASSETS {
        text.push_str(&format!("[[assets]]\npath = \"area/m-{i}\"\nmodel = \"M\"\n"));
    }
    let name = schema.replace('_', "-");
    text.push_str(&format!(
        "[[sinks]]\nname = \"{name}\"\nkind = \"postgresql\"\nurl = \"{url}\"\nschema = \"{schema}\"\n\
         method = \"{method}\"\nbatch_rows = {batch_rows}\nflush_interval = \"1s\"\n"
    ));
    text
}

/// User + system CPU time of a process (Linux, 100 ticks per second).
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')').map(|(_, r)| r)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Deliveries of `PER_DELIVERY` samples, one per second of gateway time, every tag once.
fn batches(n: usize, start: Timestamp, context: &Arc<Context>) -> Vec<Batch> {
    (0..n / PER_DELIVERY)
        .map(|d| Batch {
            samples: (0..PER_DELIVERY)
                .map(|i| Sample {
                    tag: TagId(i as u32),
                    value: Some(Value::Float((d * PER_DELIVERY + i) as f64 * 0.5)),
                    quality: Quality::Good,
                    source_time: None,
                    gateway_time: start.add_nanos((d as i64) * 1_000_000_000 + i as i64 * 1000),
                    context: context.clone(),
                })
                .collect(),
            events: vec![],
        })
        .collect()
}

struct Case {
    feed: Arc<FakeFeed>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
    backend: Option<String>,
}

impl Case {
    /// Starts the sink and writes one delivery, so the timing leaves out connecting,
    /// migrating and the first partition.
    async fn start(db: &TestDb, schema: &str, method: &str, batch_rows: usize, start: Timestamp) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let (topology, settings) = common::load(&config(&db.url(), schema, method, batch_rows), dir.path());
        assert_eq!(topology.tags.len(), PER_DELIVERY);
        let feed = Arc::new(FakeFeed::default());
        let counters = Arc::new(Counters::default());
        let io = sink_io(&topology, feed.clone(), counters.clone());
        let sink: Box<dyn Sink> = SinkKind::build(
            &PostgresKind,
            &backplane_connector::SinkContext {
                gateway: "bench",
                name: &schema.replace('_', "-"),
                settings: &settings,
                data_dir: &dir.path().to_path_buf(),
                services: &backplane_connector::Services::default(),
            },
        )
        .unwrap();
        let task = tokio::spawn(async move { sink.run(io).await.unwrap() });
        let warmup = batches(
            PER_DELIVERY,
            start.add_nanos(-10_000_000_000),
            &Arc::new(Context::default()),
        );
        feed.push(warmup.into_iter().next().unwrap());
        wait_acked(&feed, 1).await;
        let admin = common::connect(common::ADMIN).await;
        let backend = admin
            .query_opt(
                "SELECT pid::text FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
                &[
                    &PostgresSink::application_name("bench", &schema.replace('_', "-")),
                    &db.name,
                ],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        Case {
            feed,
            counters,
            task,
            backend,
        }
    }

    /// Times `push` (which hands out `rows` rows) until `done` holds.
    async fn time(
        &self,
        what: &str,
        rows: usize,
        push: impl FnOnce(&FakeFeed),
        done: impl Fn(&Case) -> bool,
    ) -> Figure {
        let server0 = self.backend.as_deref().and_then(cpu_time);
        let client0 = cpu_time("self").unwrap_or_default();
        let t0 = Instant::now();
        push(&self.feed);
        while !done(self) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let wall = t0.elapsed();
        let client = cpu_time("self").unwrap_or_default() - client0;
        let server = match (server0, self.backend.as_deref().and_then(cpu_time)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Figure {
            what: what.to_owned(),
            rows,
            wall,
            client,
            server,
        }
    }

    async fn stop(self) {
        self.feed.close();
        self.task.await.unwrap();
    }
}

async fn wait_acked(feed: &FakeFeed, n: usize) {
    backplane_testkit::engine::eventually("the deliveries acknowledged", Duration::from_secs(600), || {
        (feed.acked() >= n).then_some(())
    })
    .await;
}

struct Figure {
    what: String,
    rows: usize,
    wall: Duration,
    client: Duration,
    server: Option<Duration>,
}

impl Figure {
    fn print(&self) {
        let per_million = |d: Duration| d.as_secs_f64() / (self.rows as f64 / 1e6);
        println!(
            "{:<32} {:>8} {:>8.2} {:>10.0} {:>12.2} {:>12}",
            self.what,
            self.rows,
            self.wall.as_secs_f64(),
            self.rows as f64 / self.wall.as_secs_f64(),
            per_million(self.client),
            self.server
                .map_or_else(|| "n/a".to_owned(), |s| format!("{:.2}", per_million(s))),
        );
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let batch_rows = env("BENCH_BATCH", backplane_postgres::config::DEFAULT_BATCH_ROWS);
    let samples = env("BENCH_SAMPLES", 500_000).max(PER_DELIVERY);
    let insert_samples = env("BENCH_INSERT_SAMPLES", 100_000).max(PER_DELIVERY);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let db = TestDb::create("bench").await;
        let version: String = db
            .client()
            .await
            .query_one("SHOW server_version", &[])
            .await
            .unwrap()
            .get(0);
        let context = Arc::new(Context {
            work_order: Some("WO-1".into()),
            ..Context::default()
        });
        let now = Timestamp::now();
        let mut figures = Vec::new();

        let case = Case::start(&db, "bench_copy", "copy", batch_rows, now).await;
        let live = batches(samples, now, &context);
        let records = live.len();
        let rows = records * PER_DELIVERY;
        figures.push(
            case.time(
                "copy, live",
                rows,
                |feed| {
                    for b in live {
                        feed.push(b);
                    }
                },
                |c| c.feed.acked() > records,
            )
            .await,
        );
        assert_eq!(case.counters.get("samples_written") as usize, rows + PER_DELIVERY);
        figures.push(
            case.time(
                "copy, duplicate replay",
                rows,
                |feed| {
                    for r in 1..=records as u64 {
                        feed.replay(r);
                    }
                },
                |c| c.counters.get("samples_duplicate") as usize >= rows,
            )
            .await,
        );
        assert_eq!(case.counters.get("samples_written") as usize, rows + PER_DELIVERY);
        case.stop().await;

        let case = Case::start(&db, "bench_backlog", "copy", batch_rows, now).await;
        let backlog = batches(samples, now, &context);
        figures.push(
            case.time(
                "copy, backlog replay",
                rows,
                |feed| {
                    for b in backlog {
                        feed.push_as_replay(b);
                    }
                },
                |c| c.feed.acked() > records,
            )
            .await,
        );
        assert_eq!(case.counters.get("samples_written") as usize, rows + PER_DELIVERY);
        case.stop().await;

        let case = Case::start(&db, "bench_insert", "insert", batch_rows, now).await;
        let live = batches(insert_samples, now, &context);
        let records = live.len();
        figures.push(
            case.time(
                "insert, live",
                records * PER_DELIVERY,
                |feed| {
                    for b in live {
                        feed.push(b);
                    }
                },
                |c| c.feed.acked() > records,
            )
            .await,
        );
        case.stop().await;
        db.drop().await;

        println!(
            "PostgreSQL {version} on 127.0.0.1:5432; {ASSETS} assets × {ATTRIBUTES} float attributes; \
             deliveries of {PER_DELIVERY} samples; batch_rows = {batch_rows}; load average before: {}",
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
        println!(
            "{:<32} {:>8} {:>8} {:>10} {:>12} {:>12}",
            "case", "rows", "wall s", "rows/s", "client CPU-s/M", "server CPU-s/M"
        );
        for f in &figures {
            f.print();
        }
    });
}
