//! The historian on a slow disk never loses a value to a full queue: fsyncing every batch
//! with a queue of one batch, behind a source that counts as fast as it may, it stores
//! every value, once and in order (the pipeline and the source wait for it instead).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::time::Duration;

use backplane_engine::EngineOptions;
use backplane_historian::{ContextFilter, HistorianKind, Selector, Store};
use backplane_model::{Timestamp, Value};
use backplane_testkit::counter::{self, Counter};
use backplane_testkit::engine as support;

const COUNT: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_historian_slower_than_its_source_stores_every_value_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        counter::plan(COUNT) + "[[sinks]]\nname = \"history\"\nkind = \"historian\"\nfsync = \"batch\"\n";
    let mut registry = backplane_engine::builtins();
    registry.add_source("counter", Counter);
    registry.add_sink("historian", HistorianKind::new());
    let options = EngineOptions {
        sink_queue: 1,
        ..support::options()
    };
    let started = Timestamp::now();
    let engine = support::start_with(&config, dir.path(), &registry, options);
    let last = Some(Value::UInt(COUNT - 1));
    support::eventually(
        "the last value to pass the pipeline",
        Duration::from_secs(120),
        || support::latest(&engine.handle(), "acme/plant/meter/count").filter(|l| l.sample.value == last),
    )
    .await;
    let metrics = engine.handle().metrics_text();
    engine.shutdown().await;
    assert_eq!(
        support::metric(&metrics, "backplane_sink_dropped_total{name=\"history\"}"),
        Some(0.0),
        "{metrics}"
    );

    let store = Store::open_read_only(&dir.path().join("history")).unwrap();
    let series = store.select(&Selector::Tags(vec!["acme/plant/meter/count".into()]));
    let to = Timestamp::now().add_nanos(1_000_000_000);
    let points = store
        .raw(&series, started, to, &ContextFilter::default(), usize::MAX)
        .unwrap();
    let stored: Vec<u64> = points[0]
        .points
        .iter()
        .map(|p| match p.value {
            Some(Value::UInt(n)) => n,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(stored, (0..COUNT).collect::<Vec<_>>());
}
