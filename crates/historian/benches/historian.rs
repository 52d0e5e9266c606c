//! The historian side by side with SQLite on the same data.
//!
//! `cargo bench -p backplane-historian --bench historian`
//!
//! Two data sets, each `TAGS` tags × `HOURS` hours at 1 Hz (defaults 100 × 10 h = 3.6 M
//! points; override with the environment variables `HISTORIAN_BENCH_TAGS` and
//! `HISTORIAN_BENCH_HOURS`):
//! - float: a random walk per tag, steps ~ N(0, 0.05), rounded to 0.01;
//! - enum: a 5-state machine per tag (stopped/idle/running/fault/setup as strings), leaving
//!   its state with probability 1/30 each second.
//!
//! Both systems get the points in time order, all tags of one second after another, in
//! batches of 10 000 points, each batch made durable before the next (historian: WAL
//! fsync per append; SQLite: one transaction per batch, WAL journal, synchronous=FULL,
//! one row per point, index on (series, time)). Ingest time includes the historian's
//! flushes and merges. Bytes per point: the historian's segment files after merging; the
//! SQLite file after a WAL checkpoint. Query: 2 000 random one-hour ranges of one tag
//! (3 600 points), read into memory; p50 and p99 of the wall time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use backplane_historian::{ContextFilter, Point, Selector, SeriesSpec, Store, StoreOptions};
use backplane_model::{Quality, Timestamp, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000_000_000;
const SEC: i64 = 1_000_000_000;
const BATCH: usize = 10_000;
const QUERIES: usize = 2_000;
const STATES: [&str; 5] = ["stopped", "idle", "running", "fault", "setup"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Enum,
}

/// `data[tag][second]`.
enum Data {
    Float(Vec<Vec<f64>>),
    Enum(Vec<Vec<u8>>),
}

impl Data {
    fn tags(&self) -> usize {
        match self {
            Data::Float(d) => d.len(),
            Data::Enum(d) => d.len(),
        }
    }

    fn seconds(&self) -> usize {
        match self {
            Data::Float(d) => d.first().map_or(0, Vec::len),
            Data::Enum(d) => d.first().map_or(0, Vec::len),
        }
    }

    fn value(&self, tag: usize, second: usize) -> Value {
        match self {
            Data::Float(d) => Value::Float(d[tag][second]),
            Data::Enum(d) => Value::String(STATES[usize::from(d[tag][second])].into()),
        }
    }
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn generate(kind: Kind, tags: usize, seconds: usize) -> Data {
    let mut rng = StdRng::seed_from_u64(42);
    match kind {
        Kind::Float => Data::Float(
            (0..tags)
                .map(|_| {
                    let mut x = 20.0 + rng.random_range(0.0..60.0);
                    (0..seconds)
                        .map(|_| {
                            x += normal(&mut rng) * 0.05;
                            (x * 100.0).round() / 100.0
                        })
                        .collect()
                })
                .collect(),
        ),
        Kind::Enum => Data::Enum(
            (0..tags)
                .map(|_| {
                    let mut state = rng.random_range(0..5u8);
                    (0..seconds)
                        .map(|_| {
                            if rng.random_range(0..30) == 0 {
                                state = (state + rng.random_range(1..5u8)) % 5;
                            }
                            state
                        })
                        .collect()
                })
                .collect(),
        ),
    }
}

struct Figures {
    ingest_per_s: f64,
    bytes_per_point: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn query_ranges(data: &Data) -> Vec<(usize, i64)> {
    let mut rng = StdRng::seed_from_u64(7);
    let last_start = data.seconds().saturating_sub(3600).max(1);
    (0..QUERIES)
        .map(|_| {
            (
                rng.random_range(0..data.tags()),
                rng.random_range(0..last_start) as i64,
            )
        })
        .collect()
}

fn historian(data: &Data, kind: Kind, dir: &Path) -> Figures {
    let store = Store::open(
        dir,
        StoreOptions {
            max_bytes: None,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let data_type = if kind == Kind::Float { "float" } else { "string" };
    let ids: Vec<u32> = (0..data.tags())
        .map(|t| {
            let asset = format!("bench/plant/area/unit-{t}");
            store
                .series_id(&SeriesSpec {
                    asset: &asset,
                    attribute: "x",
                    model: "Bench",
                    data_type,
                    unit: None,
                })
                .unwrap()
        })
        .collect();
    let total = data.tags() * data.seconds();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for second in 0..data.seconds() {
        let time = Timestamp::from_unix_nanos(T0 + second as i64 * SEC);
        for (tag, id) in ids.iter().enumerate() {
            batch.push((
                *id,
                Point {
                    time,
                    source_time: None,
                    value: Some(data.value(tag, second)),
                    quality: Quality::Good,
                    context: 0,
                },
            ));
            if batch.len() == BATCH {
                store
                    .append(
                        std::mem::replace(&mut batch, Vec::with_capacity(BATCH)),
                        Vec::new(),
                    )
                    .unwrap();
                if store.needs_flush() {
                    store.maintain(time).unwrap();
                }
            }
        }
    }
    store.append(batch, Vec::new()).unwrap();
    store.flush().unwrap();
    let later = Timestamp::from_unix_nanos(T0 + (data.seconds() as i64 + 7200) * SEC);
    while store.maintain(later).unwrap().merged_partitions > 0 {}
    let elapsed = started.elapsed();
    let stats = store.stats();
    assert_eq!(stats.stored_points as usize, total);

    let series: Vec<_> = store.select(&Selector::All);
    let mut latencies = Vec::with_capacity(QUERIES);
    for (tag, start) in query_ranges(data) {
        let from = Timestamp::from_unix_nanos(T0 + start * SEC);
        let to = from.add_nanos(3600 * SEC);
        let t = Instant::now();
        let result = store
            .raw(
                std::slice::from_ref(&series[tag]),
                from,
                to,
                &ContextFilter::default(),
                usize::MAX,
            )
            .unwrap();
        latencies.push(t.elapsed());
        assert_eq!(result[0].points.len(), 3600);
    }
    latencies.sort();
    Figures {
        ingest_per_s: total as f64 / elapsed.as_secs_f64(),
        bytes_per_point: stats.segment_bytes as f64 / total as f64,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

fn sqlite(data: &Data, kind: Kind, dir: &Path) -> Figures {
    let path = dir.join("points.db");
    let mut db = rusqlite::Connection::open(&path).unwrap();
    let value_type = if kind == Kind::Float { "REAL" } else { "TEXT" };
    db.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE points (series INTEGER NOT NULL, time INTEGER NOT NULL, value {value_type},
                              quality INTEGER NOT NULL, context INTEGER NOT NULL);
         CREATE INDEX points_by_series_time ON points (series, time);"
    ))
    .unwrap();
    let total = data.tags() * data.seconds();
    let started = Instant::now();
    let mut pending = 0usize;
    let mut tx = db.transaction().unwrap();
    for second in 0..data.seconds() {
        let time = T0 + second as i64 * SEC;
        for tag in 0..data.tags() {
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO points (series, time, value, quality, context) VALUES (?1, ?2, ?3, 0, 0)")
                    .unwrap();
                match data.value(tag, second) {
                    Value::Float(x) => insert.execute(rusqlite::params![tag as i64, time, x]).unwrap(),
                    Value::String(s) => insert.execute(rusqlite::params![tag as i64, time, &*s]).unwrap(),
                    _ => unreachable!(),
                };
            }
            pending += 1;
            if pending == BATCH {
                tx.commit().unwrap();
                tx = db.transaction().unwrap();
                pending = 0;
            }
        }
    }
    tx.commit().unwrap();
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    let elapsed = started.elapsed();
    let bytes = std::fs::metadata(&path).unwrap().len()
        + std::fs::metadata(dir.join("points.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);

    let mut latencies = Vec::with_capacity(QUERIES);
    let mut select = db
        .prepare("SELECT time, value, quality, context FROM points WHERE series = ?1 AND time >= ?2 AND time < ?3 ORDER BY time")
        .unwrap();
    for (tag, start) in query_ranges(data) {
        let from = T0 + start * SEC;
        let to = from + 3600 * SEC;
        let t = Instant::now();
        let rows: Vec<(i64, rusqlite::types::Value, i64, i64)> = select
            .query_map(rusqlite::params![tag as i64, from, to], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        latencies.push(t.elapsed());
        assert_eq!(rows.len(), 3600);
    }
    latencies.sort();
    Figures {
        ingest_per_s: total as f64 / elapsed.as_secs_f64(),
        bytes_per_point: bytes as f64 / total as f64,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let tags = env_usize("HISTORIAN_BENCH_TAGS", if quick { 4 } else { 100 });
    let hours = env_usize("HISTORIAN_BENCH_HOURS", if quick { 2 } else { 10 });
    let seconds = hours * 3600;
    println!(
        "historian vs SQLite: {tags} tags × {hours} h at 1 Hz = {} points per data set, batches of {BATCH}, durable per batch",
        tags * seconds
    );
    // Other processes on the machine show in the tail latencies: say how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average at start: {}",
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
    }
    println!(
        "{:<8} {:<10} {:>14} {:>12} {:>12} {:>12}",
        "data", "system", "ingest pts/s", "bytes/point", "query p50", "query p99"
    );
    for (name, kind) in [("float", Kind::Float), ("enum", Kind::Enum)] {
        let data = generate(kind, tags, seconds);
        for system in ["historian", "sqlite"] {
            let dir = tempfile::tempdir().unwrap();
            let f = if system == "historian" {
                historian(&data, kind, dir.path())
            } else {
                sqlite(&data, kind, dir.path())
            };
            println!(
                "{:<8} {:<10} {:>14.0} {:>12.3} {:>10.1}µs {:>10.1}µs",
                name,
                system,
                f.ingest_per_s,
                f.bytes_per_point,
                f.p50.as_secs_f64() * 1e6,
                f.p99.as_secs_f64() * 1e6
            );
        }
    }
    println!(
        "budgets: ingest ≥ 1 000 000 points/s per core, ≤ 1 byte/point (float), one-hour one-tag query p99 ≤ 1 ms"
    );
}
