//! A whole gateway: the simulator feeds an engine whose `postgresql` sink reads through
//! the real store-and-forward log; a context change made through the engine reaches
//! both the samples after it and the events table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use backplane_model::{ContextField, ContextPatch};
use common::{TestDb, count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_writes_samples_and_context_events_with_their_context() {
    let db = TestDb::create("engine").await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(&db.url(), "").replace("period = \"1s\"", "period = \"20ms\"");
    let engine = backplane_testkit::engine::start(&config, dir.path(), &common::registry());
    let handle = engine.handle();
    let asset = handle
        .topology()
        .asset_index("acme/plant/line-1/probe-a")
        .unwrap();
    let c = db.client().await;
    // The sink created the schema; wait for the first rows.
    let mut tries = 0;
    loop {
        let ready = c
            .query_opt(
                "SELECT 1 FROM pg_tables WHERE schemaname = 'backplane' AND tablename = 'gateways'",
                &[],
            )
            .await
            .unwrap()
            .is_some();
        if ready && count(&c, "SELECT count(*) FROM samples").await > 0 {
            break;
        }
        tries += 1;
        assert!(tries < 2000, "no samples arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle
        .set_context(
            asset,
            &ContextPatch::default().set(ContextField::WorkOrder, "WO-7"),
            Some("test"),
        )
        .await
        .unwrap();
    let mut tries = 0;
    while count(
        &c,
        "SELECT count(*) FROM samples_with_context WHERE work_order = 'WO-7'",
    )
    .await
        < 5
    {
        tries += 1;
        assert!(tries < 2000, "no samples with the new context arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.shutdown().await;

    let event = c
        .query_one(
            "SELECT kind, payload ->> 'new', payload ->> 'by', context_id IS NOT NULL FROM events WHERE asset = 'acme/plant/line-1/probe-a'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(event.get::<_, String>(0), "context_changed");
    assert_eq!(event.get::<_, String>(1), "WO-7");
    assert_eq!(event.get::<_, String>(2), "test");
    assert!(event.get::<_, bool>(3));
    let interval = c
        .query_one(
            "SELECT value FROM context_intervals WHERE field = 'work_order' AND end_time IS NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(interval.get::<_, String>(0), "WO-7");
    // Samples before the change have no work order, those after have it; no seq twice.
    assert!(
        count(
            &c,
            "SELECT count(*) FROM samples_with_context WHERE work_order IS NULL"
        )
        .await
            > 0
    );
    assert_eq!(
        count(&c, "SELECT count(*) - count(DISTINCT seq) FROM samples").await,
        0
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM gateways WHERE name = 'gw-test'").await,
        1
    );
    drop(c);
    db.drop().await;
}
