//! The `postgresql` sink against the local PostgreSQL, each test in a database of its
//! own, fed through a fake store-and-forward log so deliveries, replays and acks are
//! under the test's control.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_connector::Batch;
use backplane_model::sample::{ConsumedLot, Downtime, Genealogy, Oee, OeePeriod, ReasonAssignment};
use backplane_model::{
    AssetPath, Context, ContextField, Event, EventKind, Quality, Sample, TagId, Timestamp, Value,
};
use backplane_postgres::migrate;
use common::{Counters, FakeFeed, TestDb, count, load, run_supervised, sink_io};

const A: &str = "acme/plant/line-1/probe-a";
const B: &str = "acme/plant/line-1/probe-b";
const WAIT: Duration = Duration::from_secs(20);

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn sample(tag: u32, value: Value, time: Timestamp, context: &Arc<Context>) -> Sample {
    Sample {
        tag: TagId(tag),
        value: Some(value),
        quality: Quality::Good,
        source_time: None,
        gateway_time: time,
        context: context.clone(),
    }
}

fn event(asset: &str, time: Timestamp, kind: EventKind) -> Event {
    Event {
        asset: AssetPath::parse(asset).unwrap(),
        time,
        kind,
        context: Arc::new(Context::default()),
    }
}

async fn wait(what: &str, mut check: impl FnMut() -> bool) {
    backplane_testkit::engine::eventually(what, WAIT, || check().then_some(())).await;
}

#[tokio::test]
async fn rows_land_typed_with_their_context_and_a_replay_inserts_nothing_but_counts_duplicates() {
    let db = TestDb::create("replay").await;
    let dir = tempfile::tempdir().unwrap();
    let (topology, settings) = load(&common::config(&db.url(), ""), dir.path());
    let feed = Arc::new(FakeFeed::default());
    let counters = Arc::new(Counters::default());
    let io = sink_io(&topology, feed.clone(), counters.clone());
    let task = tokio::spawn({
        let feed = feed.clone();
        async move { run_supervised(&settings, io, feed, Duration::from_millis(50)).await }
    });

    let context = Arc::new(Context {
        work_order: Some("WO-1".into()),
        shift: Some("A".into()),
        ..Context::default()
    });
    let t0 = Timestamp::now();
    let mut batch = Batch::default();
    for i in 0..25 {
        let t = t0.add_nanos(i * 1_000_000);
        batch
            .samples
            .push(sample(0, Value::Float(20.5 + i as f64), t, &context));
        batch.samples.push(sample(1, Value::Int(i), t, &context));
        batch
            .samples
            .push(sample(2, Value::Bool(i % 2 == 0), t, &context));
        batch
            .samples
            .push(sample(3, Value::String("run".into()), t, &context));
    }
    batch.events.push(Event {
        context: context.clone(),
        ..event(
            A,
            t0,
            EventKind::ContextChanged {
                field: ContextField::WorkOrder,
                old: None,
                new: Some("WO-1".into()),
                by: Some("mes".into()),
            },
        )
    });
    let record = feed.push(batch);
    wait("the first delivery acknowledged", || feed.acked() == 1).await;
    assert_eq!(counters.get("samples_written"), 100);
    assert_eq!(counters.get("samples_duplicate"), 0);

    // The log hands the same record out again (e.g. the ack was lost with the session).
    feed.replay(record);
    wait("the replay counted", || counters.get("samples_duplicate") == 100).await;
    assert_eq!(counters.get("events_duplicate"), 1);
    feed.close();
    assert_eq!(task.await.unwrap(), 0, "no instance failed");

    let c = db.client().await;
    assert_eq!(count(&c, "SELECT count(*) FROM samples").await, 100);
    assert_eq!(count(&c, "SELECT count(DISTINCT seq) FROM samples").await, 100);
    assert_eq!(count(&c, "SELECT count(*) FROM events").await, 1);
    assert_eq!(counters.get("samples_written"), 100, "the replay wrote nothing");
    // Every row carries its context, and the view names it.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM samples_with_context WHERE work_order = 'WO-1' AND shift = 'A' AND site = 'plant'"
        )
        .await,
        100
    );
    assert_eq!(count(&c, "SELECT count(*) FROM contexts").await, 1);
    let row = c
        .query_one(
            "SELECT value_text, value_numeric, unit, quality, model, attribute FROM samples_with_context
             WHERE path = $1 ORDER BY time LIMIT 1",
            &[&format!("{A}/temp")],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "20.5");
    assert_eq!(row.get::<_, f64>(1), 20.5);
    assert_eq!(row.get::<_, String>(2), "degC");
    assert_eq!(row.get::<_, String>(3), "good");
    assert_eq!(
        (row.get::<_, String>(4), row.get::<_, String>(5)),
        ("Probe".into(), "temp".into())
    );
    // Typed columns.
    assert_eq!(
        count(&c, "SELECT count(*) FROM samples WHERE value_bigint IS NOT NULL").await,
        25
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM samples WHERE value_bool").await,
        13
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM samples WHERE value_text = 'run'").await,
        25
    );
    // The wide model view: one row per asset and time, one column per attribute.
    let wide = c
        .query_one(
            "SELECT temp, count, running, state FROM model_probe WHERE asset = $1 ORDER BY time LIMIT 1",
            &[&A],
        )
        .await
        .unwrap();
    assert_eq!(wide.get::<_, Option<f64>>(0), Some(20.5));
    assert_eq!(wide.get::<_, Option<i64>>(1), Some(0));
    assert_eq!(wide.get::<_, Option<bool>>(2), Some(true));
    assert_eq!(wide.get::<_, Option<String>>(3).as_deref(), Some("run"));
    // The catalog came from the topology.
    assert_eq!(count(&c, "SELECT count(*) FROM tags").await, 8);
    assert_eq!(
        count(&c, "SELECT count(*) FROM attributes WHERE model = 'Probe'").await,
        4
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM assets WHERE level = 'line' AND site = 'plant'"
        )
        .await,
        1
    );
    drop(c);
    db.drop().await;
}

#[tokio::test]
async fn migrating_from_v1_to_latest_works_and_running_again_changes_nothing() {
    let db = TestDb::create("migrate").await;
    let mut c = db.client().await;
    migrate::lock(&c, "backplane").await.unwrap();
    let first = migrate::migrate(&mut c, "backplane", backplane_postgres::PartitionBy::Day, Some(1))
        .await
        .unwrap();
    assert_eq!(first, vec![1]);
    assert_eq!(
        count(&c, "SELECT count(*) FROM pg_views WHERE schemaname = 'backplane'").await,
        0,
        "version 1 has no views"
    );
    // Data written under version 1 survives the upgrade.
    c.batch_execute(
        "CREATE TABLE backplane.samples_d20260101 PARTITION OF backplane.samples
             FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00');
         INSERT INTO backplane.samples (time, tag_id, value_double, quality, gateway_id, seq)
             VALUES ('2026-01-01 10:00:00+00', 1, 1.5, 0, 1, 1);",
    )
    .await
    .unwrap();
    let rest = migrate::migrate(&mut c, "backplane", backplane_postgres::PartitionBy::Day, None)
        .await
        .unwrap();
    assert_eq!(rest, (2..=migrate::latest()).collect::<Vec<_>>());
    let applied_at: Vec<String> = c
        .query(
            "SELECT applied_at::text FROM backplane.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied_at.len() as i32, migrate::latest());
    let again = migrate::migrate(&mut c, "backplane", backplane_postgres::PartitionBy::Day, None)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let applied_again: Vec<String> = c
        .query(
            "SELECT applied_at::text FROM backplane.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied_at, applied_again);
    migrate::unlock(&c, "backplane").await.unwrap();
    for view in [
        "samples_with_context",
        "oee_by_line_shift",
        "oee_by_work_order",
        "downtime_by_reason",
        "lot_genealogy",
        "benchmark_oee",
        "benchmark_downtime",
        "context_intervals",
    ] {
        assert_eq!(
            count(
                &c,
                &format!(
                    "SELECT count(*) FROM pg_views WHERE schemaname = 'backplane' AND viewname = '{view}'"
                )
            )
            .await,
            1,
            "{view}"
        );
    }
    assert_eq!(count(&c, "SELECT count(*) FROM backplane.samples").await, 1);
    drop(c);
    db.drop().await;
}

#[tokio::test]
async fn partitions_are_made_for_the_rows_and_retention_drops_whole_old_ones() {
    let db = TestDb::create("retention").await;
    let dir = tempfile::tempdir().unwrap();
    let (topology, settings) = load(
        &common::config(&db.url(), "retention = \"90d\"\npartition = \"day\""),
        dir.path(),
    );
    let now = Timestamp::now();
    let old = now.add_nanos(-200 * 86_400 * 1_000_000_000);
    let context = Arc::new(Context::default());
    let run = |feed: Arc<FakeFeed>, counters: Arc<Counters>| {
        let io = sink_io(&topology, feed.clone(), counters);
        let settings = settings.clone();
        tokio::spawn(async move { run_supervised(&settings, io, feed, Duration::from_millis(50)).await })
    };

    let feed = Arc::new(FakeFeed::default());
    let counters = Arc::new(Counters::default());
    let task = run(feed.clone(), counters.clone());
    feed.push(Batch {
        samples: vec![
            sample(0, Value::Float(1.0), old, &context),
            sample(0, Value::Float(2.0), now, &context),
        ],
        events: vec![],
    });
    wait("written", || feed.acked() == 1).await;
    feed.close();
    assert_eq!(task.await.unwrap(), 0);
    let c = db.client().await;
    let old_name = backplane_postgres::PartitionBy::Day.of(old).table_name("samples");
    let new_name = backplane_postgres::PartitionBy::Day.of(now).table_name("samples");
    assert_eq!(
        partitions(&c, "samples").await,
        vec![old_name.clone(), new_name.clone()]
    );
    assert_eq!(counters.get("partitions_created"), 2);

    // The next start checks retention: the old day goes, whole; today stays.
    let feed = Arc::new(FakeFeed::default());
    let counters = Arc::new(Counters::default());
    let task = run(feed.clone(), counters.clone());
    feed.close();
    assert_eq!(task.await.unwrap(), 0);
    assert_eq!(partitions(&c, "samples").await, vec![new_name]);
    assert_eq!(counters.get("partitions_dropped"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM samples").await, 1);
    drop(c);
    db.drop().await;
}

async fn partitions(c: &tokio_postgres::Client, parent: &str) -> Vec<String> {
    c.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 ORDER BY 1",
        &[&parent],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect()
}

fn oee(period: OeePeriod, start: &str, end: &str, shift: Option<&str>, work_order: Option<&str>) -> Oee {
    Oee {
        period,
        period_start: at(start),
        period_end: at(end),
        shift: shift.map(Into::into),
        work_order: work_order.map(Into::into),
        availability: None,
        performance: None,
        quality: None,
        oee: None,
        planned_time_ms: 0,
        run_time_ms: 0,
        planned_stop_ms: 0,
        downtime_ms: 0,
        good: 0,
        reject: 0,
        total: 0,
        ideal_rate_per_min: Some(25.0),
        revised: false,
    }
}

/// Fills the derived figures the way the production stage does.
fn figures(mut o: Oee, planned: u64, run: u64, good: u64, reject: u64, ideal_ms: f64) -> Oee {
    o.planned_time_ms = planned;
    o.run_time_ms = run;
    o.downtime_ms = planned - run;
    o.good = good;
    o.reject = reject;
    o.total = good + reject;
    o.availability = Some(run as f64 / planned as f64);
    o.performance = Some(ideal_ms / run as f64);
    o.quality = Some(good as f64 / (good + reject) as f64);
    o.oee = Some(o.availability.unwrap() * o.performance.unwrap() * o.quality.unwrap());
    o
}

fn downtime(id: u64, start: &str, end: Option<&str>, reason: Option<&str>) -> Downtime {
    let (s, e) = (at(start), end.map(at));
    Downtime {
        id,
        start: s,
        end: e,
        duration_ms: e.map_or(0, |e| ((e.unix_nanos() - s.unix_nanos()) / 1_000_000) as u64),
        state: "stopped".into(),
        reason: reason.map(Into::into),
        reason_description: None,
        planned: false,
        by: None,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn the_views_answer_the_numbers_of_hand_built_oee_downtime_genealogy_and_context_events() {
    let db = TestDb::create("views").await;
    let dir = tempfile::tempdir().unwrap();
    let (topology, settings) = load(&common::config(&db.url(), ""), dir.path());
    let feed = Arc::new(FakeFeed::default());
    let counters = Arc::new(Counters::default());
    let io = sink_io(&topology, feed.clone(), counters.clone());
    let task = tokio::spawn({
        let feed = feed.clone();
        async move { run_supervised(&settings, io, feed, Duration::from_millis(50)).await }
    });

    let shift_a = || {
        oee(
            OeePeriod::Shift,
            "2026-11-27T06:00:00Z",
            "2026-11-27T14:00:00Z",
            Some("A"),
            None,
        )
    };
    let t = |s: &str| at(s);
    let events = vec![
        // probe-a, shift A: first figures, then a revision (the latest wins).
        event(
            A,
            t("2026-11-27T14:00:01Z"),
            EventKind::Oee(figures(shift_a(), 3_600_000, 3_000_000, 900, 100, 2_400_000.0)),
        ),
        event(
            A,
            t("2026-11-27T15:00:00Z"),
            EventKind::Oee(Oee {
                revised: true,
                ..figures(shift_a(), 3_600_000, 3_000_000, 950, 50, 2_400_000.0)
            }),
        ),
        // probe-b on the same line, same shift.
        event(
            B,
            t("2026-11-27T14:00:02Z"),
            EventKind::Oee(figures(shift_a(), 3_600_000, 1_800_000, 500, 0, 900_000.0)),
        ),
        // A work order period.
        event(
            A,
            t("2026-11-27T12:00:00Z"),
            EventKind::Oee(figures(
                oee(
                    OeePeriod::WorkOrder,
                    "2026-11-27T08:00:00Z",
                    "2026-11-27T12:00:00Z",
                    None,
                    Some("WO-1"),
                ),
                1_000_000,
                800_000,
                300,
                100,
                400_000.0,
            )),
        ),
        // Downtime 1 opens, closes with a reason, then gets another one assigned.
        event(
            A,
            t("2026-11-27T09:00:00Z"),
            EventKind::Downtime(downtime(1, "2026-11-27T09:00:00Z", None, None)),
        ),
        event(
            A,
            t("2026-11-27T09:10:00Z"),
            EventKind::Downtime(downtime(
                1,
                "2026-11-27T09:00:00Z",
                Some("2026-11-27T09:10:00Z"),
                Some("mechanical/jam"),
            )),
        ),
        event(
            A,
            t("2026-11-27T09:20:00Z"),
            EventKind::DowntimeReasonAssigned(ReasonAssignment {
                id: 1,
                reason: "electrical".into(),
                previous: Some("mechanical/jam".into()),
                planned: false,
                by: Some("anna".into()),
            }),
        ),
        event(
            B,
            t("2026-11-27T10:05:00Z"),
            EventKind::Downtime(downtime(
                2,
                "2026-11-27T10:00:00Z",
                Some("2026-11-27T10:05:00Z"),
                Some("mechanical/jam"),
            )),
        ),
        // Genealogy: S-1 + S-2 -> B-1 -> C-1.
        event(
            A,
            t("2026-11-27T11:00:00Z"),
            EventKind::Genealogy(Genealogy {
                consumed: vec![
                    ConsumedLot {
                        lot: "S-1".into(),
                        quantity: Some(10.0),
                        unit: Some("L".into()),
                    },
                    ConsumedLot {
                        lot: "S-2".into(),
                        quantity: None,
                        unit: None,
                    },
                ],
                produced: "B-1".into(),
                by: None,
            }),
        ),
        event(
            A,
            t("2026-11-27T11:30:00Z"),
            EventKind::Genealogy(Genealogy {
                consumed: vec![ConsumedLot {
                    lot: "B-1".into(),
                    quantity: None,
                    unit: None,
                }],
                produced: "C-1".into(),
                by: None,
            }),
        ),
        // Context: WO-1 from 08:00, WO-2 from 12:00.
        event(
            A,
            t("2026-11-27T08:00:00Z"),
            EventKind::ContextChanged {
                field: ContextField::WorkOrder,
                old: None,
                new: Some("WO-1".into()),
                by: None,
            },
        ),
        event(
            A,
            t("2026-11-27T12:00:00Z"),
            EventKind::ContextChanged {
                field: ContextField::WorkOrder,
                old: Some("WO-1".into()),
                new: Some("WO-2".into()),
                by: None,
            },
        ),
    ];
    let n = events.len();
    feed.push(Batch {
        samples: vec![],
        events,
    });
    wait("the events written", || feed.acked() == 1).await;
    feed.close();
    assert_eq!(task.await.unwrap(), 0);
    assert_eq!(counters.get("events_written"), n as u64);
    let c = db.client().await;

    // OEE by line and shift: recomputed from the sums, the revision replacing the first.
    let r = c
        .query_one(
            "SELECT periods, planned_time_ms, run_time_ms, good, total, availability, performance, quality, oee
             FROM oee_by_line_shift WHERE line = 'acme/plant/line-1' AND shift = 'A' AND day = '2026-11-27'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i64>(0), 2);
    assert_eq!(r.get::<_, i64>(1), 7_200_000);
    assert_eq!(r.get::<_, i64>(2), 4_800_000);
    assert_eq!((r.get::<_, i64>(3), r.get::<_, i64>(4)), (1450, 1500));
    let (a, p, q) = (4.8 / 7.2, 3_300_000.0 / 4_800_000.0, 1450.0 / 1500.0);
    assert!(close(r.get(5), a), "{}", r.get::<_, f64>(5));
    assert!(close(r.get(6), p), "{}", r.get::<_, f64>(6));
    assert!(close(r.get(7), q), "{}", r.get::<_, f64>(7));
    assert!(close(r.get(8), a * p * q), "{}", r.get::<_, f64>(8));

    let r = c
        .query_one(
            "SELECT good, reject, availability, performance FROM oee_by_work_order WHERE work_order = 'WO-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (300, 100));
    assert!(close(r.get(2), 0.8));
    assert!(close(r.get(3), 0.5));

    // Downtime by reason: the assigned reason replaced the first one.
    let rows = c
        .query(
            "SELECT asset, reason, downtimes, downtime_ms FROM downtime_by_reason ORDER BY asset",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            (A.to_owned(), "electrical".to_owned(), 1, 600_000),
            (B.to_owned(), "mechanical/jam".to_owned(), 1, 300_000),
        ]
    );

    // Benchmarks: every Probe of the site, speed per run minute, downtime per model.
    let r = c
        .query_one(
            "SELECT speed_per_run_min, reject, downtime_ms, availability FROM benchmark_oee
             WHERE model = 'Probe' AND asset = $1 AND period = 'shift' AND shift = 'A'",
            &[&A],
        )
        .await
        .unwrap();
    assert!(close(r.get(0), 1000.0 / 50.0));
    assert_eq!((r.get::<_, i64>(1), r.get::<_, i64>(2)), (50, 600_000));
    assert!(close(r.get(3), 3.0 / 3.6));
    assert_eq!(
        count(
            &c,
            "SELECT sum(downtime_ms)::bigint FROM benchmark_downtime WHERE model = 'Probe' AND site = 'plant'"
        )
        .await,
        900_000
    );

    // Genealogy both ways, at any depth.
    let backward: Vec<(String, i32)> = c
        .query(
            "SELECT related_lot, depth FROM lot_genealogy WHERE lot = 'C-1' AND direction = 'backward' ORDER BY depth, related_lot",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        backward,
        vec![("B-1".into(), 1), ("S-1".into(), 2), ("S-2".into(), 2)]
    );
    let forward: Vec<(String, i32)> = c
        .query(
            "SELECT related_lot, depth FROM lot_genealogy WHERE lot = 'S-1' AND direction = 'forward' ORDER BY depth",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(forward, vec![("B-1".into(), 1), ("C-1".into(), 2)]);

    // Context intervals: the second change closed the first interval.
    let intervals: Vec<(String, Option<String>)> = c
        .query(
            "SELECT value, end_time::text FROM context_intervals WHERE asset = $1 AND field = 'work_order' ORDER BY start_time",
            &[&A],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        intervals,
        vec![
            ("WO-1".into(), Some("2026-11-27 12:00:00+00".into())),
            ("WO-2".into(), None)
        ]
    );
    drop(c);
    db.drop().await;
}
