//! The writer against the local PostgreSQL (a database of the test's own): new deliveries
//! are COPYed straight in, deliveries the database holds go through staging, and a
//! delivery held only in part is completed whichever part is held, without a row twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use backplane_connector::{Batch, Delivery};
use backplane_model::sample::ReasonAssignment;
use backplane_model::{AssetPath, Context, Event, EventKind, Quality, Sample, TagId, Timestamp, Value};
use backplane_postgres::Writer;
use common::{TestDb, count, load};

/// Samples of tags 0..8 in turn, one millisecond apart, numbered from `first_seq`.
fn samples(first_seq: u64, n: u64, t0: Timestamp) -> Vec<(u64, Sample)> {
    let context = Arc::new(Context {
        lot: Some("L-1".into()),
        ..Context::default()
    });
    (0..n)
        .map(|i| {
            let seq = first_seq + i;
            let sample = Sample {
                tag: TagId((seq % 8) as u32),
                value: Some(Value::Float(seq as f64)),
                quality: Quality::Good,
                source_time: None,
                gateway_time: t0.add_nanos(seq as i64 * 1_000_000),
                context: context.clone(),
            };
            (seq, sample)
        })
        .collect()
}

fn delivery(rows: &[(u64, Sample)], events: Vec<(u64, Event)>) -> Delivery {
    let seqs: Vec<u64> = rows
        .iter()
        .map(|(s, _)| *s)
        .chain(events.iter().map(|(s, _)| *s))
        .collect();
    Delivery {
        batch: Arc::new(Batch {
            samples: rows.iter().map(|(_, s)| s.clone()).collect(),
            events: events.into_iter().map(|(_, e)| e).collect(),
        }),
        record: Some(0),
        seqs: Some(seqs.into()),
        replay: false,
    }
}

fn event(seq: u64, t0: Timestamp) -> (u64, Event) {
    let event = Event {
        asset: AssetPath::parse("acme/plant/line-1/probe-a").unwrap(),
        time: t0.add_nanos(seq as i64 * 1_000_000),
        kind: EventKind::DowntimeReasonAssigned(ReasonAssignment {
            id: seq,
            reason: "jam".into(),
            previous: None,
            planned: false,
            by: None,
        }),
        context: Arc::new(Context::default()),
    };
    (seq, event)
}

#[tokio::test]
async fn held_deliveries_add_nothing_and_partly_held_ones_are_completed_once() {
    let db = TestDb::create("writer").await;
    let dir = tempfile::tempdir().unwrap();
    let (topology, settings) = load(&common::config(&db.url(), ""), dir.path());
    let client = backplane_postgres::connect::connect(&settings, "writer-test")
        .await
        .unwrap();
    let mut writer = Writer::start(client, &settings, &topology).await.unwrap();
    let t0 = Timestamp::now();

    // New: straight in.
    let first = samples(100, 10, t0);
    let w = writer
        .write(&[delivery(&first, vec![event(110, t0)])])
        .await
        .unwrap();
    assert_eq!((w.samples, w.samples_inserted), (10, 10));
    assert_eq!((w.events, w.events_inserted), (1, 1));

    // The same delivery again (a replay, or a restart before the ack): nothing added.
    let w = writer
        .write(&[delivery(&first, vec![event(110, t0)])])
        .await
        .unwrap();
    assert_eq!((w.samples, w.samples_inserted), (10, 0));
    assert_eq!((w.events, w.events_inserted), (1, 0));

    // Events only, twice.
    let w = writer
        .write(&[delivery(&[], vec![event(150, t0)])])
        .await
        .unwrap();
    assert_eq!(w.events_inserted, 1);
    let w = writer
        .write(&[delivery(&[], vec![event(150, t0)])])
        .await
        .unwrap();
    assert_eq!((w.events, w.events_inserted), (1, 0));

    // Held in part, its first rows: completed through staging.
    let second = samples(200, 10, t0);
    writer.write(&[delivery(&second[..5], vec![])]).await.unwrap();
    let w = writer.write(&[delivery(&second, vec![])]).await.unwrap();
    assert_eq!((w.samples, w.samples_inserted), (10, 5));

    // Held in part, its last rows: the straight COPY meets them, the transaction rolls
    // back and the flush is written again through staging.
    let third = samples(300, 10, t0);
    writer.write(&[delivery(&third[5..], vec![])]).await.unwrap();
    let w = writer.write(&[delivery(&third, vec![])]).await.unwrap();
    assert_eq!((w.samples, w.samples_inserted), (10, 5));

    // One flush of a held delivery and a new one.
    let fourth = samples(400, 10, t0);
    let w = writer
        .write(&[delivery(&first, vec![]), delivery(&fourth, vec![])])
        .await
        .unwrap();
    assert_eq!((w.samples, w.samples_inserted), (20, 10));
    drop(writer);

    let c = db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM samples").await, 40);
    assert_eq!(count(&c, "SELECT count(DISTINCT seq) FROM samples").await, 40);
    assert_eq!(count(&c, "SELECT count(*) FROM events").await, 2);
    assert_eq!(
        count(&c, "SELECT count(*) FROM samples_with_context WHERE lot = 'L-1'").await,
        40
    );
    drop(c);
    db.drop().await;
}

#[tokio::test]
async fn text_with_nul_characters_is_stored_with_replacement_characters_instead_of_failing_forever() {
    let db = TestDb::create("writer_nul").await;
    let dir = tempfile::tempdir().unwrap();
    let (topology, settings) = load(&common::config(&db.url(), ""), dir.path());
    let client = backplane_postgres::connect::connect(&settings, "writer-test")
        .await
        .unwrap();
    let mut writer = Writer::start(client, &settings, &topology).await.unwrap();
    let t0 = Timestamp::now();
    let context = Arc::new(Context {
        operator: Some("ann\0".into()),
        ..Context::default()
    });
    // Tag 3 is probe-a's `state`, a string.
    let sample = Sample {
        tag: TagId(3),
        value: Some(Value::String("run\0\0".into())),
        quality: Quality::Good,
        source_time: None,
        gateway_time: t0,
        context,
    };
    let (seq, mut e) = event(2, t0);
    if let EventKind::DowntimeReasonAssigned(r) = &mut e.kind {
        r.reason = "jam\0".into();
    }
    let w = writer
        .write(&[delivery(&[(1, sample)], vec![(seq, e)])])
        .await
        .unwrap();
    assert_eq!((w.samples_inserted, w.events_inserted), (1, 1));
    drop(writer);

    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT value_text, operator FROM samples_with_context WHERE attribute = 'state'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "run\u{FFFD}\u{FFFD}");
    assert_eq!(row.get::<_, String>(1), "ann\u{FFFD}");
    let reason: String = c
        .query_one("SELECT payload ->> 'reason' FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "jam\u{FFFD}");
    drop(c);
    db.drop().await;
}

#[tokio::test]
async fn a_changed_partition_width_is_refused_at_start_naming_the_existing_one() {
    let db = TestDb::create("writer_width").await;
    let dir = tempfile::tempdir().unwrap();
    let (topology, settings) = load(&common::config(&db.url(), "partition = \"day\""), dir.path());
    let client = backplane_postgres::connect::connect(&settings, "writer-test")
        .await
        .unwrap();
    let mut writer = Writer::start(client, &settings, &topology).await.unwrap();
    let rows = samples(1, 1, Timestamp::now());
    writer.write(&[delivery(&rows, vec![])]).await.unwrap();
    drop(writer);

    let (topology, settings) = load(&common::config(&db.url(), "partition = \"month\""), dir.path());
    let client = backplane_postgres::connect::connect(&settings, "writer-test")
        .await
        .unwrap();
    let e = Writer::start(client, &settings, &topology).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("partitioned by day"), "{e}");
    assert!(e.to_string().contains("samples_d"), "{e}");
    db.drop().await;
}
