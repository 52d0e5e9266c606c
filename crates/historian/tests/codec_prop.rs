//! Property tests: every codec returns exactly what it was given — NaN payloads, signed
//! zeros, infinities, huge gaps, out-of-order and duplicate timestamps included — and no
//! decoder panics on garbage. At the store level, out-of-order and duplicate times come
//! back sorted by time with duplicates in arrival order, before and after a flush.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use backplane_historian::codec::{chunk, floats, ints};
use backplane_historian::{ContextFilter, Point, Selector, SeriesSpec, Store, StoreOptions};
use backplane_model::wire::Cursor;
use backplane_model::{BadReason, Quality, Timestamp, UncertainReason, Value};
use proptest::prelude::*;

fn float_bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Floats as plants and failures produce them: decimals, random bits (any NaN payload),
/// and the special values.
fn any_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64 / 100.0),
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
    ]
}

/// Times that jump around: regular steps, duplicates, huge gaps both ways, extremes.
fn any_times() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(1_000_000_000i64),
            2 => Just(0i64),
            1 => any::<i64>(),
            1 => -1_000_000i64..1_000_000,
        ],
        0..300,
    )
    .prop_map(|steps| {
        let mut t = 1_795_000_000_000_000_000i64;
        steps
            .into_iter()
            .map(|s| {
                t = t.wrapping_add(s);
                t
            })
            .collect()
    })
}

fn any_quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        6 => Just(Quality::Good),
        1 => Just(Quality::Bad(BadReason::CommFailure)),
        1 => Just(Quality::Bad(BadReason::WaitingForInitialData)),
        1 => Just(Quality::Uncertain(UncertainReason::EngineeringUnitsExceeded)),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_float().prop_map(Value::Float),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec!["stopped", "idle", "running", "fault", "état ✓"])
            .prop_map(|s| Value::String(s.into())),
        any::<i64>().prop_map(|t| Value::Timestamp(Timestamp::from_unix_nanos(t))),
        prop::collection::vec(any::<i32>().prop_map(|i| Value::Int(i64::from(i))), 0..4)
            .prop_map(|v| Value::Array(v.into())),
    ]
}

/// One column type for the whole chunk (as the pipeline delivers), or mixed.
fn any_column() -> impl Strategy<Value = Vec<Option<Value>>> {
    let n = 0..300usize;
    prop_oneof![
        n.clone().prop_flat_map(|n| prop::collection::vec(
            prop::option::weighted(0.9, any_float().prop_map(Value::Float)),
            n
        )),
        n.clone().prop_flat_map(|n| prop::collection::vec(
            prop::option::weighted(0.9, any::<u64>().prop_map(Value::UInt)),
            n
        )),
        n.clone().prop_flat_map(|n| prop::collection::vec(
            prop::option::weighted(0.9, any::<bool>().prop_map(Value::Bool)),
            n
        )),
        n.prop_flat_map(|n| prop::collection::vec(prop::option::weighted(0.9, any_value()), n)),
    ]
}

/// Equality that compares floats by their bits (NaN == NaN with the same payload).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

fn same_point(a: &Point, b: &Point) -> bool {
    a.time == b.time
        && a.source_time == b.source_time
        && a.quality == b.quality
        && a.context == b.context
        && match (&a.value, &b.value) {
            (Some(x), Some(y)) => same_value(x, y),
            (None, None) => true,
            _ => false,
        }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn integer_columns_round_trip_exactly(values in prop::collection::vec(any::<i64>(), 0..600), times in any_times()) {
        for column in [values, times] {
            let mut out = Vec::new();
            ints::encode(&column, &mut out);
            let mut decoded = Vec::new();
            let mut cur = Cursor::new(&out);
            ints::decode(&mut cur, column.len(), &mut decoded).unwrap();
            prop_assert_eq!(&decoded, &column);
            prop_assert!(cur.is_empty());
        }
    }

    #[test]
    fn float_columns_round_trip_bit_for_bit(values in prop::collection::vec(any_float(), 0..600)) {
        let mut out = Vec::new();
        floats::encode(&values, &mut out);
        let mut decoded = Vec::new();
        let mut cur = Cursor::new(&out);
        floats::decode(&mut cur, values.len(), &mut decoded).unwrap();
        prop_assert_eq!(float_bits(&decoded), float_bits(&values));
        prop_assert!(cur.is_empty());
    }

    #[test]
    fn float_columns_with_few_distinct_values_round_trip_bit_for_bit(
        palette in prop::collection::vec(any_float(), 1..12),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..600),
    ) {
        let values: Vec<f64> = picks.iter().map(|i| palette[i.index(palette.len())]).collect();
        let mut out = Vec::new();
        floats::encode(&values, &mut out);
        let mut decoded = Vec::new();
        let mut cur = Cursor::new(&out);
        floats::decode(&mut cur, values.len(), &mut decoded).unwrap();
        prop_assert_eq!(float_bits(&decoded), float_bits(&values));
        prop_assert!(cur.is_empty());
    }

    #[test]
    fn chunks_round_trip_every_column(
        times in any_times(),
        column in any_column(),
        qualities in prop::collection::vec(any_quality(), 300),
        contexts in prop::collection::vec(prop_oneof![Just(0u32), Just(1), Just(7), any::<u32>()], 300),
        offsets in prop::collection::vec(prop::option::of(any::<i64>()), 300),
    ) {
        let points: Vec<Point> = times
            .iter()
            .zip(column)
            .enumerate()
            .map(|(i, (&t, value))| Point {
                time: Timestamp::from_unix_nanos(t),
                source_time: offsets[i].map(|o| Timestamp::from_unix_nanos(t.wrapping_add(o))),
                value,
                quality: qualities[i],
                context: contexts[i],
            })
            .collect();
        let mut out = Vec::new();
        chunk::encode(&points, &mut out);
        let decoded = chunk::decode(&out).unwrap();
        prop_assert_eq!(decoded.len(), points.len());
        for (a, b) in decoded.iter().zip(&points) {
            prop_assert!(same_point(a, b), "{:?} != {:?}", a, b);
        }
    }

    #[test]
    fn decoders_reject_garbage_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400), n in 0usize..2000) {
        let _ = chunk::decode(&bytes);
        let _ = ints::decode(&mut Cursor::new(&bytes), n, &mut Vec::new());
        let _ = floats::decode(&mut Cursor::new(&bytes), n, &mut Vec::new());
    }

    #[test]
    fn damaged_chunks_fail_to_decode_or_decode_without_panicking(
        values in prop::collection::vec(any_float(), 1..200),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let points: Vec<Point> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                time: Timestamp::from_unix_nanos(i as i64 * 1_000_000_000),
                source_time: None,
                value: Some(Value::Float(*v)),
                quality: Quality::Good,
                context: 0,
            })
            .collect();
        let mut out = Vec::new();
        chunk::encode(&points, &mut out);
        let i = flip.index(out.len());
        out[i] ^= 1 << bit;
        let _ = chunk::decode(&out);
        let _ = chunk::decode(&out[..i]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_store_returns_points_sorted_by_time_with_duplicates_in_arrival_order(
        batches in prop::collection::vec(prop::collection::vec((0i64..50, any_float()), 1..40), 1..5),
        flush_after in prop::collection::vec(any::<bool>(), 5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions { max_bytes: None, ..StoreOptions::default() }).unwrap();
        let id = store
            .series_id(&SeriesSpec { asset: "a/b", attribute: "x", model: "M", data_type: "float", unit: None })
            .unwrap();
        let base = 1_700_000_000_000_000_000i64;
        let mut arrived: Vec<(i64, f64)> = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            let points = batch
                .iter()
                .map(|&(s, v)| {
                    arrived.push((s, v));
                    (id, Point {
                        time: Timestamp::from_unix_nanos(base + s * 1_000_000_000),
                        source_time: None,
                        value: Some(Value::Float(v)),
                        quality: Quality::Good,
                        context: 0,
                    })
                })
                .collect();
            store.append(points, Vec::new()).unwrap();
            if flush_after[i] {
                store.flush().unwrap();
            }
        }
        // What the documentation promises: a stable sort of the arrival order by time.
        let mut expected = arrived.clone();
        expected.sort_by_key(|(s, _)| *s);
        let expected: Vec<(i64, u64)> = expected.into_iter().map(|(s, v)| (s, v.to_bits())).collect();
        let read = |store: &Store| -> Vec<(i64, u64)> {
            let series = store.select(&Selector::All);
            store
                .raw(&series, Timestamp::from_unix_nanos(base), Timestamp::from_unix_nanos(base + 60_000_000_000), &ContextFilter::default(), usize::MAX)
                .unwrap()
                .remove(0)
                .points
                .into_iter()
                .map(|p| ((p.time.unix_nanos() - base) / 1_000_000_000, p.value.and_then(|v| v.as_f64()).unwrap().to_bits()))
                .collect()
        };
        prop_assert_eq!(read(&store), expected.clone());
        store.flush().unwrap();
        prop_assert_eq!(read(&store), expected.clone());
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        prop_assert_eq!(read(&store), expected);
    }
}
