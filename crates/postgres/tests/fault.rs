//! The database session dies under load, again and again (`pg_terminate_backend` on the
//! sink's backends while batches keep coming): after recovery every sequence number is
//! stored exactly once, nothing lost and nothing doubled, and replays of committed
//! deliveries are counted as duplicates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_connector::Batch;
use backplane_model::{Context, Quality, Sample, TagId, Timestamp, Value};
use backplane_postgres::sink::PostgresSink;
use common::{Counters, FakeFeed, TestDb, count, load, run_supervised, sink_io};

const BATCHES: u64 = 300;
const PER_BATCH: u64 = 400;
const KILLS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seq_is_stored_exactly_once_when_the_session_is_killed_repeatedly_under_load() {
    let db = TestDb::create("fault").await;
    let dir = tempfile::tempdir().unwrap();
    let (topology, settings) = load(&common::config(&db.url(), "batch_rows = 2000"), dir.path());
    let feed = Arc::new(FakeFeed::default());
    let counters = Arc::new(Counters::default());
    let io = sink_io(&topology, feed.clone(), counters.clone());
    let sink = tokio::spawn({
        let feed = feed.clone();
        async move { run_supervised(&settings, io, feed, Duration::from_millis(50)).await }
    });

    let producer = tokio::spawn({
        let feed = feed.clone();
        async move {
            let context = Arc::new(Context {
                batch: Some("B-7".into()),
                ..Context::default()
            });
            let start = Timestamp::now();
            for b in 0..BATCHES {
                let samples = (0..PER_BATCH)
                    .map(|i| Sample {
                        tag: TagId((i % 8) as u32),
                        value: Some(Value::Float(i as f64)),
                        quality: Quality::Good,
                        source_time: None,
                        gateway_time: start.add_nanos(((b * PER_BATCH + i) * 1000) as i64),
                        context: context.clone(),
                    })
                    .collect();
                feed.push(Batch {
                    samples,
                    events: vec![],
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    // Kill the sink's sessions while the load runs.
    let admin = common::connect(common::ADMIN).await;
    let app = PostgresSink::application_name("gw-test", "db");
    let mut kills = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = $1 AND datname = $2",
                &[&app, &db.name],
            )
            .await
            .unwrap()
            .get(0);
        if killed > 0 {
            kills += 1;
        }
    }
    producer.await.unwrap();
    let total = BATCHES * PER_BATCH;
    backplane_testkit::engine::eventually("every record acknowledged", Duration::from_secs(60), || {
        (feed.acked() as u64 == BATCHES).then_some(())
    })
    .await;

    // Replays of committed deliveries (an ack lost with the session) add nothing and are
    // counted.
    let before = counters.get("samples_duplicate");
    for record in 0..3 {
        feed.replay(record);
    }
    backplane_testkit::engine::eventually("the replays counted", Duration::from_secs(20), || {
        (counters.get("samples_duplicate") == before + 3 * PER_BATCH).then_some(())
    })
    .await;
    feed.close();
    let failures = sink.await.unwrap();
    assert!(
        failures >= KILLS as u64 / 2,
        "the kills hit the sink: {failures} failures"
    );
    assert!(feed.rewinds() >= failures);

    let c = db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM samples").await as u64, total);
    assert_eq!(
        count(&c, "SELECT count(DISTINCT seq) FROM samples").await as u64,
        total
    );
    assert_eq!(count(&c, "SELECT min(seq) FROM samples").await, 0);
    assert_eq!(count(&c, "SELECT max(seq) FROM samples").await as u64, total - 1);
    assert_eq!(
        counters.get("samples_written"),
        total,
        "each row counted written once"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM samples_with_context WHERE batch = 'B-7'"
        )
        .await as u64,
        total
    );
    println!(
        "{KILLS} sessions killed, {failures} sink instances failed, {} duplicate rows counted",
        counters.get("samples_duplicate")
    );
    drop(c);
    db.drop().await;
}
