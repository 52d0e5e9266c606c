//! The store on its own: durability, recovery, merge, retention and every kind of query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backplane_historian::{
    AggregateQuery, ContextFilter, EventQuery, Point, Selector, SeriesId, SeriesInfo, SeriesSpec, Store,
    StoreOptions, StoredEvent,
};
use backplane_model::{BadReason, Context, ContextField, Quality, Timestamp, Value};

/// 2025-01-01T00:00:00Z: in the past, so values held "until now" reach the range's end.
const T0: i64 = 1_735_689_600_000_000_000;
const SEC: i64 = 1_000_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_nanos(T0 + secs * SEC)
}

fn options() -> StoreOptions {
    StoreOptions {
        max_bytes: None,
        ..StoreOptions::default()
    }
}

fn spec<'a>(asset: &'a str, attribute: &'a str, model: &'a str, data_type: &'a str) -> SeriesSpec<'a> {
    SeriesSpec {
        asset,
        attribute,
        model,
        data_type,
        unit: None,
    }
}

const PASTEURIZER: &str = "acme/plant/processing/pasteurizer";

fn temperature(store: &Store) -> SeriesId {
    store
        .series_id(&spec(PASTEURIZER, "hold_temperature", "Pasteurizer", "float"))
        .unwrap()
}

fn point(secs: i64, value: Value, context: u32) -> Point {
    Point {
        time: at(secs),
        source_time: None,
        value: Some(value),
        quality: Quality::Good,
        context,
    }
}

fn series(store: &Store, path: &str) -> Vec<Arc<SeriesInfo>> {
    store.select(&Selector::Tags(vec![path.to_owned()]))
}

fn values(store: &Store, path: &str, from: i64, to: i64, filter: &ContextFilter) -> Vec<Value> {
    store
        .raw(&series(store, path), at(from), at(to), filter, usize::MAX)
        .unwrap()
        .remove(0)
        .points
        .into_iter()
        .filter_map(|p| p.value)
        .collect()
}

const TEMP: &str = "acme/plant/processing/pasteurizer/hold_temperature";

fn floats(range: std::ops::Range<i64>) -> Vec<Value> {
    range.map(|i| Value::Float(i as f64 / 10.0)).collect()
}

fn append_seconds(store: &Store, id: SeriesId, range: std::ops::Range<i64>) {
    let points = range
        .map(|i| (id, point(i, Value::Float(i as f64 / 10.0), 0)))
        .collect();
    store.append(points, Vec::new()).unwrap();
}

#[test]
fn appended_points_are_queryable_before_and_after_flush_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let id = temperature(&store);
        append_seconds(&store, id, 0..100);
        assert_eq!(
            values(&store, TEMP, 0, 100, &ContextFilter::default()),
            floats(0..100)
        );
        assert_eq!(store.flush().unwrap(), 100);
        append_seconds(&store, id, 100..150);
        assert_eq!(
            values(&store, TEMP, 50, 120, &ContextFilter::default()),
            floats(50..120)
        );
        assert_eq!(store.stats().head_points, 50);
        assert_eq!(store.stats().stored_points, 100);
    }
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(
        values(&store, TEMP, 0, 150, &ContextFilter::default()),
        floats(0..150)
    );
}

#[test]
fn an_unflushed_wal_is_replayed_and_a_torn_tail_truncated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let id = temperature(&store);
        append_seconds(&store, id, 0..10);
        append_seconds(&store, id, 10..20);
    }
    // A crash in the middle of writing a third record leaves half of it.
    let wal = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&wal).unwrap();
    let whole = bytes.len() as u64;
    bytes.extend_from_slice(&[200, 0, 0, 0, 7, 7, 7, 7, 1, 2, 3]);
    std::fs::write(&wal, &bytes).unwrap();

    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(
        values(&store, TEMP, 0, 100, &ContextFilter::default()),
        floats(0..20)
    );
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), whole);
    // Appends after recovery land behind the last whole record and survive the next open.
    let id = temperature(&store);
    append_seconds(&store, id, 20..30);
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(
        values(&store, TEMP, 0, 100, &ContextFilter::default()),
        floats(0..30)
    );
}

#[test]
fn a_flush_interrupted_after_its_commit_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let id = temperature(&store);
        append_seconds(&store, id, 0..50);
        store.flush().unwrap();
    }
    // As if the crash hit after the checkpoint but before the rename.
    let segments = dir.path().join("segments");
    let seg = std::fs::read_dir(&segments)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::rename(&seg, seg.with_extension("seg.tmp")).unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(
        values(&store, TEMP, 0, 50, &ContextFilter::default()),
        floats(0..50)
    );
    assert!(seg.exists(), "the committed segment was renamed into place");
}

#[test]
fn out_of_order_and_duplicate_times_are_kept_sorted_with_duplicates_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let id = temperature(&store);
    let batch = |pairs: &[(i64, f64)]| {
        pairs
            .iter()
            .map(|&(t, v)| (id, point(t, Value::Float(v), 0)))
            .collect::<Vec<_>>()
    };
    store
        .append(batch(&[(5, 1.0), (3, 2.0), (5, 3.0)]), Vec::new())
        .unwrap();
    store.flush().unwrap();
    store.append(batch(&[(5, 4.0), (1, 5.0)]), Vec::new()).unwrap();
    let expected = vec![5.0, 2.0, 1.0, 3.0, 4.0];
    let got = |store: &Store| -> Vec<f64> {
        values(store, TEMP, 0, 10, &ContextFilter::default())
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    assert_eq!(got(&store), expected);
    let latest = store
        .latest(&series(&store, TEMP), at(5), &ContextFilter::default())
        .unwrap();
    assert_eq!(
        latest[0].1.as_ref().unwrap().value,
        Some(Value::Float(4.0)),
        "the last arrival wins"
    );
    store.flush().unwrap();
    assert_eq!(got(&store), expected);
}

#[test]
fn merging_a_closed_partition_keeps_every_point_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            flush_interval: Duration::from_secs(1),
            ..options()
        },
    )
    .unwrap();
    let id = temperature(&store);
    for part in 0..4 {
        append_seconds(&store, id, part * 100..part * 100 + 100);
        store.flush().unwrap();
    }
    assert_eq!(store.stats().segments, 4);
    let report = store.maintain(at(2 * 3600)).unwrap();
    assert_eq!(report.merged_partitions, 1);
    assert_eq!(store.stats().segments, 1);
    assert_eq!(
        values(&store, TEMP, 0, 400, &ContextFilter::default()),
        floats(0..400)
    );
    drop(store);
    let files = std::fs::read_dir(dir.path().join("segments")).unwrap().count();
    assert_eq!(files, 1, "replaced segments are deleted");
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(
        values(&store, TEMP, 0, 400, &ContextFilter::default()),
        floats(0..400)
    );
}

#[test]
fn retention_drops_whole_partitions_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            max_age: Some(Duration::from_secs(3 * 3600)),
            ..options()
        },
    )
    .unwrap();
    let id = temperature(&store);
    for hour in 0..5 {
        append_seconds(&store, id, hour * 3600..hour * 3600 + 600);
    }
    store.flush().unwrap();
    assert_eq!(store.stats().partitions, 5);
    // At 06:30 the partitions ending at 01:00, 02:00 and 03:00 are older than 3 h.
    let report = store.maintain(at(6 * 3600 + 1800)).unwrap();
    assert_eq!(report.dropped_partitions, 3);
    let left = values(&store, TEMP, 0, 5 * 3600, &ContextFilter::default());
    assert_eq!(left.first(), Some(&Value::Float(3.0 * 360.0)));
    drop(store);

    let total = Store::open(dir.path(), options()).unwrap().stats().total_bytes();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            // One byte too many: the oldest partition has to go, and only that one.
            max_bytes: Some(total - 1),
            ..options()
        },
    )
    .unwrap();
    let report = store.maintain(at(6 * 3600)).unwrap();
    assert_eq!(report.dropped_partitions, 1);
    let left = values(&store, TEMP, 0, 5 * 3600, &ContextFilter::default());
    assert_eq!(
        left.first(),
        Some(&Value::Float(4.0 * 360.0)),
        "the oldest went first"
    );
}

fn batch_context(batch: &str) -> Context {
    Context {
        batch: Some(batch.into()),
        shift: Some("A".into()),
        ..Context::default()
    }
}

#[test]
fn context_filters_select_the_points_of_one_batch_in_chunks_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let id = temperature(&store);
    let b76 = store.context_id(&batch_context("B-76")).unwrap();
    let b77 = store.context_id(&batch_context("B-77")).unwrap();
    let during = |range: std::ops::Range<i64>, ctx| {
        range
            .map(|i| (id, point(i, Value::Float(72.0 + i as f64 / 100.0), ctx)))
            .collect::<Vec<_>>()
    };
    store.append(during(0..100, b76), Vec::new()).unwrap();
    store.append(during(100..200, b77), Vec::new()).unwrap();
    store.flush().unwrap();
    store.append(during(200..250, b77), Vec::new()).unwrap();
    store.append(during(250..300, 0), Vec::new()).unwrap();

    let b77_filter = ContextFilter::default().with(ContextField::Batch, "B-77");
    let got = values(&store, TEMP, 0, 1000, &b77_filter);
    assert_eq!(got.len(), 150);
    assert_eq!(got[0], Value::Float(73.0));
    assert!((got[149].as_f64().unwrap() - 74.49).abs() < 1e-9);
    let shift_and_batch = b77_filter.clone().with(ContextField::Shift, "A");
    assert_eq!(values(&store, TEMP, 0, 1000, &shift_and_batch).len(), 150);
    let unknown = ContextFilter::default().with(ContextField::Batch, "B-99");
    assert!(values(&store, TEMP, 0, 1000, &unknown).is_empty());
    let raw = store
        .raw(&series(&store, TEMP), at(0), at(1000), &b77_filter, 10)
        .unwrap();
    assert_eq!(raw[0].points.len(), 10);
    assert!(raw[0].truncated);
    assert_eq!(
        store.context(raw[0].points[0].context).unwrap().batch.as_deref(),
        Some("B-77")
    );

    // The latest B-77 reading, although later readings exist without a batch.
    let latest = store
        .latest(&series(&store, TEMP), at(1000), &b77_filter)
        .unwrap();
    assert_eq!(latest[0].1.as_ref().unwrap().time, at(249));
}

#[test]
fn selectors_find_tags_assets_and_every_instance_of_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    for line in ["line-1", "line-10", "line-2"] {
        let asset = format!("acme/plant/packaging/{line}/filler");
        for attribute in ["state", "speed"] {
            store
                .series_id(&spec(
                    &asset,
                    attribute,
                    "Filler",
                    if attribute == "speed" { "float" } else { "string" },
                ))
                .unwrap();
        }
    }
    temperature(&store);
    let paths = |sel: Selector| {
        store
            .select(&sel)
            .iter()
            .map(|s| s.path.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths(Selector::Model {
            model: "Filler".into(),
            attribute: Some("speed".into())
        }),
        [
            "acme/plant/packaging/line-1/filler/speed",
            "acme/plant/packaging/line-10/filler/speed",
            "acme/plant/packaging/line-2/filler/speed"
        ]
    );
    // Prefixes match on segment boundaries: line-1 is not line-10.
    assert_eq!(
        paths(Selector::Asset {
            prefix: "acme/plant/packaging/line-1".into(),
            attribute: None
        }),
        [
            "acme/plant/packaging/line-1/filler/state",
            "acme/plant/packaging/line-1/filler/speed"
        ]
    );
    assert_eq!(paths(Selector::Tags(vec![TEMP.into()])), [TEMP]);
    assert_eq!(paths(Selector::All).len(), 7);
}

#[test]
fn aggregates_compute_each_function_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let id = temperature(&store);
    // 10 at 0 s, 20 at 30 s, a bad reading at 40 s, 40 at 50 s, then 60 at 90 s.
    let mut bad = point(40, Value::Float(999.0), 0);
    bad.quality = Quality::Bad(BadReason::SensorFailure);
    let points = vec![
        (id, point(0, Value::Float(10.0), 0)),
        (id, point(30, Value::Float(20.0), 0)),
        (id, bad),
        (id, point(50, Value::Float(40.0), 0)),
        (id, point(90, Value::Float(60.0), 0)),
    ];
    store.append(points, Vec::new()).unwrap();
    store.flush().unwrap();
    let q = AggregateQuery {
        from: at(0),
        to: at(120),
        every: Duration::from_secs(60),
        context: ContextFilter::default(),
    };
    let result = store.aggregate(&series(&store, TEMP), &q).unwrap();
    let buckets = &result[0].buckets;
    assert_eq!(buckets.len(), 2);
    let first = &buckets[0];
    assert_eq!(first.count, 3, "the bad reading does not count");
    assert_eq!((first.min, first.max), (Some(10.0), Some(40.0)));
    assert!((first.mean.unwrap() - 70.0 / 3.0).abs() < 1e-9);
    // 10 for 30 s, 20 for 10 s, unknown for 10 s (bad), 40 for 10 s: 900 / 50.
    assert!((first.twa.unwrap() - 18.0).abs() < 1e-9, "{:?}", first.twa);
    assert_eq!(first.first, Some((at(0), Value::Float(10.0))));
    assert_eq!(first.last, Some((at(50), Value::Float(40.0))));
    let second = &buckets[1];
    assert_eq!(second.count, 1);
    // 40 held from 60 s to 90 s, then 60 until the end of the range: (1200 + 1800) / 60.
    assert!((second.twa.unwrap() - 50.0).abs() < 1e-9);
    assert!(second.durations.is_empty(), "no durations for floats");
}

#[test]
fn state_durations_add_up_per_value_including_the_state_held_into_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let asset = "acme/plant/packaging/line-1/filler";
    let id = store
        .series_id(&spec(asset, "state", "Filler", "string"))
        .unwrap();
    let s = |t, v: &str| (id, point(t, Value::String(v.into()), 0));
    store
        .append(
            vec![s(-30, "idle"), s(20, "running"), s(50, "fault"), s(55, "running")],
            Vec::new(),
        )
        .unwrap();
    let q = AggregateQuery {
        from: at(0),
        to: at(60),
        every: Duration::from_secs(60),
        context: ContextFilter::default(),
    };
    let result = store
        .aggregate(&series(&store, &format!("{asset}/state")), &q)
        .unwrap();
    assert_eq!(
        result[0].buckets[0].durations,
        vec![
            ("fault".into(), 5.0),
            ("idle".into(), 20.0),
            ("running".into(), 35.0)
        ]
    );
    assert_eq!(result[0].buckets[0].mean, None);
}

#[test]
fn events_are_filtered_by_asset_kind_time_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let b77 = store.context_id(&batch_context("B-77")).unwrap();
    let event = |secs, asset: &str, context| StoredEvent {
        time: at(secs),
        asset: asset.into(),
        kind: "context_changed".into(),
        body: r#"{"event":"context_changed","field":"batch","old":null,"new":"B-77"}"#.into(),
        context,
    };
    store
        .append(
            Vec::new(),
            vec![
                event(10, PASTEURIZER, b77),
                event(20, "acme/plant/packaging/line-1", 0),
            ],
        )
        .unwrap();
    store.flush().unwrap();
    store
        .append(Vec::new(), vec![event(30, "acme/plant/processing", b77)])
        .unwrap();
    let query = |asset: Option<&str>, context: ContextFilter| EventQuery {
        from: at(0),
        to: at(100),
        asset: asset.map(str::to_owned),
        kinds: vec!["context_changed".into()],
        context,
        limit: 100,
    };
    let (all, truncated) = store.events(&query(None, ContextFilter::default())).unwrap();
    assert_eq!(
        all.iter().map(|e| e.time).collect::<Vec<_>>(),
        [at(10), at(20), at(30)]
    );
    assert!(!truncated);
    let (processing, _) = store
        .events(&query(Some("acme/plant/processing"), ContextFilter::default()))
        .unwrap();
    assert_eq!(processing.len(), 2);
    let (b77_events, _) = store
        .events(&query(
            None,
            ContextFilter::default().with(ContextField::Batch, "B-77"),
        ))
        .unwrap();
    assert_eq!(b77_events.len(), 2);
    let mut other = query(None, ContextFilter::default());
    other.kinds = vec!["alarm".into()];
    assert!(store.events(&other).unwrap().0.is_empty());
}

#[test]
fn a_read_only_store_sees_unflushed_data_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open(dir.path(), options()).unwrap();
    let id = temperature(&writer);
    append_seconds(&writer, id, 0..30);
    writer.flush().unwrap();
    append_seconds(&writer, id, 30..40);

    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(
        values(&reader, TEMP, 0, 100, &ContextFilter::default()),
        floats(0..40)
    );
    assert!(
        reader
            .append(vec![(id, point(50, Value::Float(1.0), 0))], Vec::new())
            .is_err()
    );
    assert!(Store::open_read_only(Path::new("/nonexistent/historian")).is_err());
}
