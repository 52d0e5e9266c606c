//! Lot genealogy across three levels (silo lot → pasteurizer batch → filler lot →
//! pallet), with fan-in, fan-out and a cycle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::sample::{ConsumedLot, EventKind, LotStatus};
use backplane_production::{Direction, NewLot, Outcome, Production, Trace};
use common::{at, dairy, events};

fn lot(p: &mut Production, id: &str, material: &str, asset: &str) {
    let new = NewLot {
        id: id.into(),
        material: material.into(),
        quantity: Some(1000.0),
        unit: Some("L".into()),
        asset: Some(asset.into()),
        status: Some(LotStatus::Complete),
    };
    p.create_lot(new, Some("mes"), at(6, 0), &mut Outcome::default())
        .unwrap();
}

fn link(p: &mut Production, consumed: &[&str], produced: &str) {
    let consumed: Vec<ConsumedLot> = consumed
        .iter()
        .map(|l| ConsumedLot {
            lot: (*l).into(),
            quantity: Some(500.0),
            unit: Some("L".into()),
        })
        .collect();
    p.record_genealogy(
        &consumed,
        produced,
        Some("mes"),
        at(7, 0),
        &mut Outcome::default(),
    )
    .unwrap();
}

/// ```text
/// S1 ─┐            ┌─ F1 ─┐
///     ├─ B1 ───────┤      ├─ P1
/// S2 ─┘            └─ F2 ─┘
/// S2 ─── B2 ────────── F3 ─── P2
/// ```
/// Silo lots S1 and S2 go into batch B1 (fan-in); S2 also into B2 (fan-out); B1 is
/// bottled as filler lots F1 and F2 (fan-out), which both end on pallet P1 (fan-in).
fn plant() -> Production {
    let mut p = dairy();
    for s in ["S1", "S2"] {
        lot(&mut p, s, "raw-milk", "reception/silo-1");
    }
    for b in ["B1", "B2"] {
        lot(&mut p, b, "pasteurized-milk", "processing/pasteurizer");
    }
    for f in ["F1", "F2", "F3"] {
        lot(&mut p, f, "bottled-milk", "packaging/line-1/filler");
    }
    for pallet in ["P1", "P2"] {
        lot(&mut p, pallet, "pallet", "packaging/line-1");
    }
    link(&mut p, &["S1", "S2"], "B1");
    link(&mut p, &["S2"], "B2");
    link(&mut p, &["B1"], "F1");
    link(&mut p, &["B1"], "F2");
    link(&mut p, &["B2"], "F3");
    link(&mut p, &["F1", "F2"], "P1");
    link(&mut p, &["F3"], "P2");
    p
}

fn lots(trace: &Trace) -> Vec<(&str, u32)> {
    trace.lots.iter().map(|l| (&*l.lot, l.depth)).collect()
}

#[test]
fn tracing_forward_from_a_silo_lot_reaches_every_pallet_it_went_into() {
    let p = plant();
    let t = p.trace_forward("S1", 10).unwrap();
    assert_eq!(t.direction, Direction::Forward);
    assert_eq!(lots(&t), [("B1", 1), ("F1", 2), ("F2", 2), ("P1", 3)]);
    assert!(!t.truncated);
    // P1 is reached twice (from F1 and F2): listed once, both links kept.
    let into_p1 = t.links.iter().filter(|l| &*l.to == "P1").count();
    assert_eq!(into_p1, 2);
    let t = p.trace_forward("S2", 10).unwrap();
    assert_eq!(
        lots(&t),
        [
            ("B1", 1),
            ("B2", 1),
            ("F1", 2),
            ("F2", 2),
            ("F3", 2),
            ("P1", 3),
            ("P2", 3)
        ]
    );
}

#[test]
fn tracing_backward_from_a_pallet_reaches_every_silo_lot_in_it() {
    let p = plant();
    let t = p.trace_backward("P1", 10).unwrap();
    assert_eq!(lots(&t), [("F1", 1), ("F2", 1), ("B1", 2), ("S1", 3), ("S2", 3)]);
    let t = p.trace_backward("P2", 10).unwrap();
    assert_eq!(lots(&t), [("F3", 1), ("B2", 2), ("S2", 3)]);
    assert_eq!(t.links[0].quantity, Some(500.0));
}

#[test]
fn depth_limits_the_trace_and_says_it_was_cut() {
    let p = plant();
    let t = p.trace_forward("S1", 1).unwrap();
    assert_eq!(lots(&t), [("B1", 1)]);
    assert!(t.truncated);
    let t = p.trace_backward("P1", 0).unwrap();
    assert!(t.lots.is_empty() && t.truncated);
    // A lot with nothing further is not truncated.
    assert!(!p.trace_forward("P1", 0).unwrap().truncated);
}

#[test]
fn a_cycle_in_the_recorded_data_does_not_trap_the_trace() {
    let mut p = plant();
    // Rework: pallet P1 was fed back into batch B1 (wrong data or real rework).
    link(&mut p, &["P1"], "B1");
    let t = p.trace_forward("S1", u32::MAX).unwrap();
    assert_eq!(lots(&t), [("B1", 1), ("F1", 2), ("F2", 2), ("P1", 3)]);
    assert!(t.links.iter().any(|l| &*l.from == "P1" && &*l.to == "B1"));
    let t = p.trace_backward("B1", u32::MAX).unwrap();
    assert_eq!(lots(&t), [("S1", 1), ("S2", 1), ("P1", 1), ("F1", 2), ("F2", 2)]);
}

#[test]
fn genealogy_names_the_bad_lot_and_records_nothing() {
    let mut p = plant();
    let mut out = Outcome::default();
    let consumed = |l: &str| ConsumedLot {
        lot: l.into(),
        quantity: None,
        unit: None,
    };
    let e = p
        .record_genealogy(&[consumed("S1"), consumed("S9")], "B2", None, at(8, 0), &mut out)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("consumed[1].lot"));
    assert_eq!(e.message, "no lot `S9`: create it first");
    let e = p
        .record_genealogy(&[consumed("B2")], "B2", None, at(8, 0), &mut out)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("consumed[0].lot"));
    let e = p
        .record_genealogy(&[], "B2", None, at(8, 0), &mut out)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("consumed"));
    assert!(out.is_empty());
    assert_eq!(p.trace_backward("B2", 5).unwrap().lots.len(), 1);
    assert!(p.trace_forward("nope", 5).is_err());
}

#[test]
fn recording_genealogy_publishes_one_event_on_the_produced_lots_asset() {
    let mut p = plant();
    let mut out = Outcome::default();
    lot(&mut p, "P3", "pallet", "packaging/line-1");
    p.record_genealogy(
        &[ConsumedLot {
            lot: "F3".into(),
            quantity: Some(240.0),
            unit: Some("bottle".into()),
        }],
        "P3",
        Some("wms"),
        at(9, 0),
        &mut out,
    )
    .unwrap();
    let g = events(&out, |k| match k {
        EventKind::Genealogy(g) => Some(g),
        _ => None,
    });
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].0, &common::asset("packaging/line-1"));
    assert_eq!(&*g[0].2.produced, "P3");
    assert_eq!(g[0].2.consumed[0].unit.as_deref(), Some("bottle"));
    assert_eq!(g[0].2.by.as_deref(), Some("wms"));
}
