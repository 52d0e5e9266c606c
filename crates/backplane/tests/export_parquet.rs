//! `backplane export --format parquet`, read back by pyarrow (tests/peers/read_parquet.py,
//! with the peers' python: `BACKPLANE_PYTHON`, else `scripts/install-peers`): every stored
//! type as its own column type, values, qualities and the seven context columns, on a
//! historian store written here with known points.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

use backplane_historian::{Point, SeriesSpec, Store, StoreOptions};
use backplane_model::{BadReason, Context, Quality, Timestamp, UncertainReason, Value};
use backplane_testkit::peers;
use serde_json::{Value as Json, json};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");
/// 2026-11-27T06:00:00Z.
const T0: i64 = 1_795_759_200_000_000_000;
const SEC: i64 = 1_000_000_000;
const LINE_1: &str = "dairy/plant/packaging/line-1/filler";
const LINE_2: &str = "dairy/plant/packaging/line-2/filler";
/// Larger than i64::MAX: only an unsigned column holds it.
const BIG: u64 = 12_345_678_901_234_567_890;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_nanos(T0 + secs * SEC)
}

fn context(
    wo: &str,
    product: &str,
    batch: &str,
    lot: &str,
    shift: &str,
    operator: &str,
    state: &str,
) -> Context {
    Context {
        work_order: Some(wo.into()),
        product: Some(product.into()),
        batch: Some(batch.into()),
        lot: Some(lot.into()),
        shift: Some(shift.into()),
        operator: Some(operator.into()),
        machine_state: Some(state.into()),
    }
}

/// Line 1 from 0 s under WO-1, from 20 s under WO-2; line 2 from 11 s without context.
/// `batch` is also an attribute of the model (the batch number the PLC shows), as well as
/// a context column.
fn write_store(dir: &Path) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let series = |asset, attribute, data_type| {
        store
            .series_id(&SeriesSpec {
                asset,
                attribute,
                model: "Filler",
                data_type,
                unit: None,
            })
            .unwrap()
    };
    let wo1 = store
        .context_id(&context("WO-1", "Milk 1L", "B-7", "L-42", "A", "ann", "running"))
        .unwrap();
    let wo2 = store
        .context_id(&context(
            "WO-2",
            "Cream, 0.5L",
            "B-8",
            "L-43",
            "B",
            "bob",
            "stopped",
        ))
        .unwrap();
    let speed = series(LINE_1, "speed", "float");
    let count = series(LINE_1, "good_count", "uint");
    let offset = series(LINE_1, "offset", "int");
    let running = series(LINE_1, "running", "bool");
    let state = series(LINE_1, "state", "string");
    let since = series(LINE_1, "started", "timestamp");
    let heads = series(LINE_1, "head_temps", "float[]");
    let batch = series(LINE_1, "batch", "uint");
    let speed_2 = series(LINE_2, "speed", "float");
    let p = |secs, value, quality, context| Point {
        time: at(secs),
        source_time: None,
        value: Some(value),
        quality,
        context,
    };
    let good = Quality::Good;
    let f = Value::Float;
    store
        .append(
            vec![
                (speed, p(0, f(100.0), good, wo1)),
                (count, p(1, Value::UInt(BIG), good, wo1)),
                (offset, p(2, Value::Int(-5), good, wo1)),
                (running, p(3, Value::Bool(true), good, wo1)),
                (state, p(3, Value::String("running \"fast\"".into()), good, wo1)),
                (since, p(3, Value::Timestamp(at(-3600)), good, wo1)),
                (heads, p(4, Value::Array([f(71.5), f(72.25)].into()), good, wo1)),
                (batch, p(4, Value::UInt(7), good, wo1)),
                (speed, p(5, f(110.0), good, wo1)),
                (speed_2, p(11, f(50.0), good, 0)),
                (
                    speed,
                    p(
                        12,
                        f(120.0),
                        Quality::Uncertain(UncertainReason::SensorNotAccurate),
                        wo1,
                    ),
                ),
                (count, p(15, Value::UInt(BIG + 9), good, wo1)),
                (
                    speed,
                    p(21, f(999.0), Quality::Bad(BadReason::SensorFailure), wo2),
                ),
                (running, p(25, Value::Bool(false), good, wo2)),
                (heads, p(25, Value::Array([].into()), good, wo2)),
            ],
            Vec::new(),
        )
        .unwrap();
    store.flush().unwrap();
}

fn export(store: &Path, out: &Path, extra: &[&str]) {
    let output = Command::new(BIN)
        .arg("export")
        .arg("--store")
        .arg(store)
        .args(["--model", "Filler", "--every", "10s", "--format", "parquet"])
        .args(["--from", &at(0).to_rfc3339(), "--to", &at(30).to_rfc3339()])
        .args(extra)
        .arg("--output")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What pyarrow reads from `file`.
fn pyarrow(file: &Path) -> Json {
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/read_parquet.py");
    let output = Command::new(peers::python())
        .arg(script)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyarrow could not read {}:\n{}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

const TIME: &str = "timestamp[ns, tz=UTC]";

/// (name, pyarrow type, nullable) of every column, in order.
fn expected_schema() -> Vec<(String, String, bool)> {
    let column = |name: &str, kind: &str, nullable| (name.to_owned(), kind.to_owned(), nullable);
    let mut columns = vec![column("time", TIME, false), column("asset", "string", false)];
    for (name, kind) in [
        ("speed", "double"),
        ("good_count", "uint64"),
        ("offset", "int64"),
        ("running", "bool"),
        ("state", "string"),
        ("started", TIME),
        ("head_temps", "list<item: double>"),
        // `batch` is taken by the context column of that name.
        ("attribute_batch", "uint64"),
    ] {
        columns.push(column(name, kind, true));
        columns.push(column(&format!("{name}_quality"), "string", true));
    }
    for name in [
        "work_order",
        "product",
        "batch",
        "lot",
        "shift",
        "operator",
        "machine_state",
    ] {
        columns.push(column(name, "string", true));
    }
    columns
}

#[test]
fn pyarrow_reads_typed_columns_values_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("history");
    write_store(&store);
    let file = dir.path().join("fillers.parquet");
    export(&store, &file, &[]);
    let table = pyarrow(&file);

    let schema: Vec<(String, String, bool)> = table["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["type"].as_str().unwrap().to_owned(),
                f["nullable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(schema, expected_schema());
    assert_eq!(table["rows"], 5);

    // Rows by time, then asset: 0 s line 1; 10 s lines 1 and 2; 20 s lines 1 and 2.
    let column = |name: &str| table["columns"][name].clone();
    let t = |secs: i64| json!(T0 + secs * SEC);
    assert_eq!(column("time"), json!([t(0), t(10), t(10), t(20), t(20)]));
    assert_eq!(column("asset"), json!([LINE_1, LINE_1, LINE_2, LINE_1, LINE_2]));
    // Floats: the mean of the usable points; held when the interval has none (20 s: only
    // a bad point), with the worst quality of the interval.
    assert_eq!(column("speed"), json!([105.0, 120.0, 50.0, 120.0, 50.0]));
    assert_eq!(
        column("speed_quality"),
        json!(["good", "uncertain", "good", "bad", "good"])
    );
    // Other types: the last usable value, held.
    assert_eq!(column("good_count"), json!([BIG, BIG + 9, null, BIG + 9, null]));
    assert_eq!(column("offset"), json!([-5, -5, null, -5, null]));
    assert_eq!(column("running"), json!([true, true, null, false, null]));
    assert_eq!(
        column("state"),
        json!([
            "running \"fast\"",
            "running \"fast\"",
            null,
            "running \"fast\"",
            null
        ])
    );
    assert_eq!(
        column("started"),
        json!([t(-3600), t(-3600), null, t(-3600), null])
    );
    assert_eq!(
        column("head_temps"),
        json!([[71.5, 72.25], [71.5, 72.25], null, [], null])
    );
    assert_eq!(column("attribute_batch"), json!([7, 7, null, 7, null]));
    assert_eq!(
        column("good_count_quality"),
        json!(["good", "good", null, "good", null])
    );
    // Context at the end of each interval (that of the asset's latest point); line 2 has none.
    for (name, one, two) in [
        ("work_order", "WO-1", "WO-2"),
        ("product", "Milk 1L", "Cream, 0.5L"),
        ("batch", "B-7", "B-8"),
        ("lot", "L-42", "L-43"),
        ("shift", "A", "B"),
        ("operator", "ann", "bob"),
        ("machine_state", "running", "stopped"),
    ] {
        assert_eq!(column(name), json!([one, one, null, two, null]), "{name}");
    }
}

#[test]
fn an_export_with_no_matching_rows_is_an_empty_typed_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("history");
    write_store(&store);
    let file = dir.path().join("none.parquet");
    export(&store, &file, &["--batch", "B-404"]);
    let table = pyarrow(&file);
    assert_eq!(table["rows"], 0);
    let types: Vec<&str> = table["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = expected_schema().into_iter().map(|c| c.1).collect();
    assert_eq!(types, expected);
    assert_eq!(table["columns"]["speed"], json!([]));
}
