//! Shared setup: a database of the test's own on the local PostgreSQL (dropped at the
//! end), a topology from TOML, a fake store-and-forward feed that records what the sink
//! acknowledged and replays what it did not, and counters the test can read.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use backplane_connector::kind::settings_of;
use backplane_connector::{Batch, Delivery, Services, Sink, SinkFeed, SinkIo, SinkKind, Topology};
use backplane_engine::Registry;
use backplane_postgres::{PostgresKind, PostgresSettings};
use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio_postgres::{Client, NoTls};

pub const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// A database of the test's own.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn create(what: &str) -> TestDb {
        let name = backplane_testkit::names::unique(&format!("bp_{what}"))
            .replace('-', "_")
            .to_lowercase();
        let admin = connect(ADMIN).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDb { name }
    }

    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:5432/{}", self.name)
    }

    pub async fn client(&self) -> Client {
        let c = connect(&format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={}",
            self.name
        ))
        .await;
        c.batch_execute("SET search_path TO backplane, public")
            .await
            .unwrap();
        c
    }

    pub async fn drop(self) {
        let admin = connect(ADMIN).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

pub async fn connect(conninfo: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

pub async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_sink("postgresql", PostgresKind);
    registry
}

/// The topology and the `postgresql` sink's settings of `config` (one sink).
pub fn load(config: &str, dir: &Path) -> (Arc<Topology>, PostgresSettings) {
    let plan = backplane_testkit::engine::plan(config, dir, &registry());
    let settings = settings_of::<PostgresKind>(&plan.sinks[0]).unwrap().clone();
    (Arc::new(Topology::new(plan)), settings)
}

/// A gateway with one model (`Probe`: a float, an int, a bool, a string) on two assets
/// of one line, and a postgresql sink writing to `url`.
pub fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
name = "gw-test"

[namespace]
enterprise = "acme"
site = "plant"

[models.Probe.attributes]
temp = {{ type = "float", unit = "degC" }}
count = {{ type = "int" }}
running = {{ type = "bool" }}
state = {{ type = "string" }}

[[assets]]
path = "line-1"
level = "line"

[[assets]]
path = "line-1/probe-a"
model = "Probe"
source = "sim"
bindings.temp = {{ address = "t" }}

[[assets]]
path = "line-1/probe-b"
model = "Probe"

[[sources]]
name = "sim"
kind = "simulator"
period = "1s"
signals.t = {{ signal = "ramp", from = 0, to = 100, period = "10s" }}

[[sinks]]
name = "db"
kind = "postgresql"
url = "{url}"
flush_interval = "20ms"
{extra}
"#
    )
}

/// Counters the sink reports, readable by the test.
pub use backplane_testkit::sink::Counters;

/// A store-and-forward log in memory: records are handed out in order, kept until
/// acknowledged, and handed out again (marked replay) after a rewind.
#[derive(Debug, Default)]
pub struct FakeFeed {
    state: Mutex<FeedState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct FeedState {
    records: BTreeMap<u64, (Arc<Batch>, Arc<[u64]>)>,
    queue: VecDeque<(u64, bool)>,
    delivered: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    next_record: u64,
    next_seq: u64,
    closed: bool,
    rewinds: u64,
}

impl FakeFeed {
    /// Appends a batch as one record; its rows get the next sequence numbers.
    pub fn push(&self, batch: Batch) -> u64 {
        self.append(batch, false)
    }

    /// Appends a batch handed out as a replay the first time already: backlog that was
    /// never stored (the log marks everything older than `live_lag` so).
    pub fn push_as_replay(&self, batch: Batch) -> u64 {
        self.append(batch, true)
    }

    fn append(&self, batch: Batch, replay: bool) -> u64 {
        let mut s = self.state.lock().unwrap();
        let seqs: Arc<[u64]> = (0..batch.len() as u64).map(|i| s.next_seq + i).collect();
        s.next_seq += batch.len() as u64;
        let record = s.next_record;
        s.next_record += 1;
        s.records.insert(record, (Arc::new(batch), seqs));
        s.queue.push_back((record, replay));
        drop(s);
        self.notify.notify_one();
        record
    }

    /// Hands `record` out once more, as a replay (what a rewind does after a lost commit).
    pub fn replay(&self, record: u64) {
        self.state.lock().unwrap().queue.push_back((record, true));
        self.notify.notify_one();
    }

    /// No more input: `next` answers `None` once the queue is empty.
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn acked(&self) -> usize {
        self.state.lock().unwrap().acked.len()
    }

    pub fn records(&self) -> usize {
        self.state.lock().unwrap().records.len()
    }

    pub fn rewinds(&self) -> u64 {
        self.state.lock().unwrap().rewinds
    }

    pub fn next_seq(&self) -> u64 {
        self.state.lock().unwrap().next_seq
    }
}

impl SinkFeed for FakeFeed {
    fn next(&self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            loop {
                let notified = self.notify.notified();
                {
                    let mut s = self.state.lock().unwrap();
                    if let Some((record, replay)) = s.queue.pop_front() {
                        s.delivered.insert(record);
                        let (batch, seqs) = s.records[&record].clone();
                        return Some(Delivery {
                            batch,
                            record: Some(record),
                            seqs: Some(seqs),
                            replay,
                        });
                    }
                    if s.closed {
                        return None;
                    }
                }
                notified.await;
            }
        })
    }

    fn is_buffered(&self) -> bool {
        true
    }

    fn ack(&self, record: u64) {
        let mut s = self.state.lock().unwrap();
        s.delivered.remove(&record);
        s.acked.insert(record);
    }

    fn rewind(&self) {
        let mut s = self.state.lock().unwrap();
        s.rewinds += 1;
        let again: Vec<u64> = std::mem::take(&mut s.delivered).into_iter().collect();
        // Behind what is queued, like the engine's log (replays after live data).
        let queued: BTreeSet<u64> = s.queue.iter().map(|(r, _)| *r).collect();
        for r in again {
            if !queued.contains(&r) && !s.acked.contains(&r) {
                s.queue.push_back((r, true));
            }
        }
        drop(s);
        self.notify.notify_one();
    }
}

/// A sink's I/O over `feed`, reporting to `counters`.
pub fn sink_io(topology: &Arc<Topology>, feed: Arc<FakeFeed>, counters: Arc<Counters>) -> SinkIo {
    // The command path is not used: its sender is dropped.
    backplane_testkit::sink::sink_io(topology, feed, counters).0
}

/// Builds and runs the sink like the supervisor does: a failed instance is replaced by
/// a new one after `pause` (the engine rewinds first). Returns how many instances failed.
pub async fn run_supervised(
    settings: &PostgresSettings,
    io: SinkIo,
    feed: Arc<FakeFeed>,
    pause: std::time::Duration,
) -> u64 {
    let mut failures = 0;
    loop {
        let sink: Box<dyn Sink> = SinkKind::build(
            &PostgresKind,
            &backplane_connector::SinkContext {
                gateway: "gw-test",
                name: "db",
                settings,
                data_dir: &std::env::temp_dir(),
                services: &Services::default(),
            },
        )
        .unwrap();
        match sink.run(io.clone()).await {
            Ok(()) => return failures,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                failures += 1;
                feed.rewind();
                tokio::time::sleep(pause).await;
            }
        }
    }
}
