//! The wide export table on hand-made data: means for floats, held values for the rest,
//! worst quality per interval, context at the end of the interval, filters, and Parquet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use backplane_historian::export::{TableSpec, write_table};
use backplane_historian::{ContextFilter, ExportError, ExportFormat, Point, SeriesSpec, Store, StoreOptions};
use backplane_model::{BadReason, Context, ContextField, Quality, Timestamp, Value};

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000_000_000;
const SEC: i64 = 1_000_000_000;
const OVEN_1: &str = "acme/plant/bakery/oven-1";
const OVEN_2: &str = "acme/plant/bakery/oven-2";

fn at(secs: f64) -> Timestamp {
    Timestamp::from_unix_nanos(T0 + (secs * SEC as f64) as i64)
}

fn point(secs: f64, value: Value, quality: Quality, context: u32) -> Point {
    Point {
        time: at(secs),
        source_time: None,
        value: Some(value),
        quality,
        context,
    }
}

/// Oven 1: temperature 100, 110 (0–2 s), a bad 999 at 2.5 s, 130 at 4.5 s; state idle then
/// running at 1.5 s. Oven 2 starts at 2 s. Work order WO-1 on oven 1 from 3 s.
fn store(dir: &Path) -> std::sync::Arc<Store> {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let id = |asset, attribute, data_type| {
        store
            .series_id(&SeriesSpec {
                asset,
                attribute,
                model: "Oven",
                data_type,
                unit: None,
            })
            .unwrap()
    };
    let (t1, s1, t2) = (
        id(OVEN_1, "temperature", "float"),
        id(OVEN_1, "state", "string"),
        id(OVEN_2, "temperature", "float"),
    );
    let wo = store
        .context_id(&Context {
            work_order: Some("WO-1".into()),
            ..Context::default()
        })
        .unwrap();
    let good = Quality::Good;
    let f = Value::Float;
    let s = |v: &str| Value::String(v.into());
    store
        .append(
            vec![
                (t1, point(0.0, f(100.0), good, 0)),
                (s1, point(0.0, s("idle"), good, 0)),
                (t1, point(0.5, f(110.0), good, 0)),
                (s1, point(1.5, s("running"), good, 0)),
                (t2, point(2.0, f(50.0), good, 0)),
                (
                    t1,
                    point(2.5, f(999.0), Quality::Bad(BadReason::SensorFailure), 0),
                ),
                (t1, point(4.5, f(130.0), good, wo)),
            ],
            Vec::new(),
        )
        .unwrap();
    store
}

fn spec() -> TableSpec {
    TableSpec {
        model: "Oven".into(),
        from: at(0.0),
        to: at(6.0),
        every: Duration::from_secs(2),
        asset: None,
        context: ContextFilter::default(),
    }
}

fn csv(store: &Store, spec: &TableSpec) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    write_table(
        store,
        spec,
        ExportFormat::Csv,
        &mut out,
        Path::new("memory"),
        &mut |_, _, _| {},
    )
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn rows_hold_means_last_values_worst_quality_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let rows = csv(&store, &spec());
    assert_eq!(
        rows[0].join(","),
        "time,asset,temperature,temperature_quality,state,state_quality,\
         work_order,product,batch,lot,shift,operator,machine_state"
    );
    let t = |s: f64| at(s).to_rfc3339();
    let expected: Vec<Vec<String>> = [
        // Interval 0–2 s: mean of 100 and 110; state last = running. Oven 2 has no data yet.
        [&t(0.0), OVEN_1, "105", "good", "running", "good", ""],
        // 2–4 s: only a bad reading: the last usable value is held, quality says bad.
        [&t(2.0), OVEN_1, "110", "bad", "running", "good", ""],
        [&t(2.0), OVEN_2, "50", "good", "", "", ""],
        // 4–6 s: 130 under WO-1; oven 2 holds 50 with its last quality.
        [&t(4.0), OVEN_1, "130", "good", "running", "good", "WO-1"],
        [&t(4.0), OVEN_2, "50", "good", "", "", ""],
    ]
    .iter()
    .map(|r| {
        let mut row: Vec<String> = r.iter().map(|c| c.to_string()).collect();
        row.extend(std::iter::repeat_n(String::new(), 6));
        row
    })
    .collect();
    assert_eq!(rows[1..], expected[..]);
}

#[test]
fn asset_and_context_options_narrow_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let only_2 = TableSpec {
        asset: Some(OVEN_2.into()),
        ..spec()
    };
    let rows = csv(&store, &only_2);
    assert_eq!(rows.len(), 3);
    assert!(rows[1..].iter().all(|r| r[1] == OVEN_2));
    let wo = TableSpec {
        context: ContextFilter::default().with(ContextField::WorkOrder, "WO-1"),
        ..spec()
    };
    let rows = csv(&store, &wo);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], at(4.0).to_rfc3339());
}

#[test]
fn a_model_that_is_not_stored_is_an_error_naming_the_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let spec = TableSpec {
        model: "Fryer".into(),
        ..spec()
    };
    let err = write_table(
        &store,
        &spec,
        ExportFormat::Csv,
        Vec::new(),
        Path::new("x"),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::NoData { .. }));
    assert!(err.to_string().contains("stored models: Oven"), "{err}");
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_export_has_typed_columns_and_the_same_rows() {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let path = dir.path().join("ovens.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let summary = write_table(
        &store,
        &spec(),
        ExportFormat::Parquet,
        file,
        &path,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(summary.rows, 5);
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 5);
    let schema = reader.metadata().file_metadata().schema_descr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(
        &names[..6],
        [
            "time",
            "asset",
            "temperature",
            "temperature_quality",
            "state",
            "state_quality"
        ]
    );
    assert_eq!(schema.column(2).physical_type(), parquet::basic::Type::DOUBLE);
}

#[test]
fn attribute_columns_that_would_repeat_a_name_are_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    // In this order: `speed_quality` takes the name of speed's quality column first.
    for attribute in [
        "speed_quality",
        "speed",
        "time",
        "batch",
        "attribute_batch",
        "lot",
    ] {
        let id = store
            .series_id(&SeriesSpec {
                asset: OVEN_1,
                attribute,
                model: "Oven",
                data_type: "uint",
                unit: None,
            })
            .unwrap();
        store
            .append(
                vec![(id, point(0.0, Value::UInt(1), Quality::Good, 0))],
                Vec::new(),
            )
            .unwrap();
    }
    let rows = csv(&store, &spec());
    assert_eq!(
        rows[0].join(","),
        "time,asset,speed_quality,speed_quality_quality,attribute_speed,attribute_speed_quality,\
         attribute_time,attribute_time_quality,attribute_batch,attribute_batch_quality,\
         attribute_attribute_batch,attribute_attribute_batch_quality,attribute_lot,attribute_lot_quality,\
         work_order,product,batch,lot,shift,operator,machine_state"
    );
}
