//! A snapshot carries work orders, lots, genealogy, open downtimes, counter baselines
//! and open periods across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::Value;
use backplane_model::sample::{ConsumedLot, CounterChange, EventKind, LotStatus, OeePeriod};
use backplane_production::{NewLot, NewWorkOrder, Outcome, Production, Snapshot, SnapshotError};
use common::{DAIRY, at, events, filler, plan, text};

/// A morning on line 1: an order running, a jam being fixed, lots and their genealogy.
fn morning() -> (Production, Outcome) {
    let mut p = Production::new(&plan(DAIRY));
    let mut out = Outcome::default();
    let f = filler();
    p.create_work_order(
        NewWorkOrder {
            id: "WO-1".into(),
            product: "milk-1l".into(),
            asset: "packaging/line-1".into(),
            ideal_rate_per_min: Some(600.0),
            ..NewWorkOrder::default()
        },
        Some("mes"),
        at(6, 0),
        &mut out,
    )
    .unwrap();
    p.release_work_order("WO-1", None, at(6, 0), &mut out).unwrap();
    p.start_work_order("WO-1", None, at(6, 0), &mut out).unwrap();
    p.tick(at(6, 0), &mut out);
    p.observe(&f, "state", &text("running"), at(6, 0), &mut out);
    p.observe(&f, "good_count", &Value::UInt(65_000), at(6, 0), &mut out);
    p.observe(&f, "good_count", &Value::UInt(71_000), at(6, 10), &mut out);
    p.observe(&f, "state", &text("fault"), at(6, 10), &mut out);
    for (id, material) in [("S1", "raw-milk"), ("B1", "pasteurized-milk")] {
        let lot = NewLot {
            id: id.into(),
            material: material.into(),
            quantity: Some(20_000.0),
            unit: Some("L".into()),
            ..NewLot::default()
        };
        p.create_lot(lot, None, at(6, 5), &mut out).unwrap();
    }
    let consumed = [ConsumedLot {
        lot: "S1".into(),
        quantity: Some(20_000.0),
        unit: Some("L".into()),
    }];
    p.record_genealogy(&consumed, "B1", None, at(6, 6), &mut out)
        .unwrap();
    p.tick(at(6, 12), &mut out);
    (p, out)
}

#[test]
fn a_snapshot_round_trips_through_json_unchanged() {
    let (p, _) = morning();
    let snapshot = p.snapshot();
    let json = serde_json::to_string(&snapshot).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snapshot);
    let again = serde_json::to_string(&back).unwrap();
    assert_eq!(again, json);
}

#[test]
fn a_restored_core_continues_where_the_old_one_stopped() {
    let (p, _) = morning();
    let json = serde_json::to_string(&p.snapshot()).unwrap();
    let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
    let mut q = Production::restore(&plan(DAIRY), snapshot).unwrap();
    let f = filler();
    let mut out = Outcome::default();

    // Work orders, lots and genealogy are back.
    assert_eq!(q.work_order("WO-1").unwrap().actual_start, Some(at(6, 0)));
    assert_eq!(q.lot("B1").unwrap().status, LotStatus::Active);
    assert_eq!(q.trace_backward("B1", 3).unwrap().lots[0].lot.as_ref(), "S1");
    assert_eq!(q.state(&f).unwrap().work_order.as_deref(), Some("WO-1"));

    // The counter baseline survived: 71000 → 71100 counts 100, not a new baseline.
    q.observe(&f, "good_count", &Value::UInt(71_100), at(6, 20), &mut out);
    let counts = events(&out, |k| match k {
        EventKind::Counts(c) => Some(c),
        _ => None,
    });
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].2.delta, counts[0].2.change),
        (100, CounterChange::Increment)
    );
    assert_eq!(counts[0].2.work_order_count, Some(6_100));

    // The open downtime closes when the filler runs again, with its whole duration.
    q.observe(&f, "state", &text("running"), at(6, 25), &mut out);
    let closed = events(&out, |k| match k {
        EventKind::Downtime(d) => Some(d),
        _ => None,
    });
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].2.start, closed[0].2.end), (at(6, 10), Some(at(6, 25))));

    // The hour goes on: 06:00–07:00 has 10 + 35 min of running and 15 min of fault.
    q.tick(at(7, 0), &mut out);
    let hour = events(&out, |k| match k {
        EventKind::Oee(o) if o.period == OeePeriod::Hour => Some(o),
        _ => None,
    });
    assert_eq!(hour.len(), 1);
    assert_eq!(
        (hour[0].2.run_time_ms, hour[0].2.downtime_ms),
        (45 * 60_000, 15 * 60_000)
    );
    assert_eq!(hour[0].2.good, 6_100);
}

#[test]
fn restoring_into_a_configuration_without_the_asset_drops_its_state() {
    let (p, _) = morning();
    let smaller = DAIRY.replace(
        "[[assets]]\npath = \"packaging/line-2/filler\"\nmodel = \"Filler\"\n",
        "",
    );
    let q = Production::restore(&plan(&smaller), p.snapshot()).unwrap();
    assert_eq!(q.machines().count(), 1);
    assert!(q.work_order("WO-1").is_some());
}

#[test]
fn a_snapshot_of_another_version_is_refused() {
    let (p, _) = morning();
    let mut json: serde_json::Value = serde_json::to_value(p.snapshot()).unwrap();
    json["version"] = 99.into();
    let snapshot: Snapshot = serde_json::from_value(json).unwrap();
    let e = Production::restore(&plan(DAIRY), snapshot).unwrap_err();
    assert_eq!(
        e,
        SnapshotError::Version {
            found: 99,
            supported: 1
        }
    );
}
