//! Context derived from tags: a new batch number closes the running batch and opens the
//! next, and lot-opening rules record genealogy from silo to pasteurizer to filler.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::sample::{EventKind, LotStatus};
use backplane_model::{ContextField, Value};
use backplane_production::Outcome;
use common::{asset, at, context, dairy, events, filler, text};

#[test]
fn a_new_batch_number_closes_the_running_batch_and_opens_the_next() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let past = asset("processing/pasteurizer");
    p.observe(&past, "batch_number", &Value::UInt(4711), at(6, 0), &mut out);
    assert_eq!(
        context(&out, &past, ContextField::Batch),
        Some(Some("B4711".into()))
    );
    // The same number again changes nothing.
    out.clear();
    p.observe(&past, "batch_number", &Value::UInt(4711), at(6, 1), &mut out);
    assert!(out.is_empty());
    p.observe(&past, "batch_number", &Value::UInt(4712), at(7, 0), &mut out);
    assert_eq!(
        context(&out, &past, ContextField::Batch),
        Some(Some("B4712".into()))
    );
    let lots: Vec<(&str, LotStatus, Option<LotStatus>)> = events(&out, |k| match k {
        EventKind::Lot(l) => Some(l),
        _ => None,
    })
    .into_iter()
    .map(|(_, _, l)| (&*l.id, l.status, l.previous))
    .collect();
    assert_eq!(
        lots,
        [
            ("B4711", LotStatus::Complete, Some(LotStatus::Active)),
            ("B4712", LotStatus::Active, None),
        ]
    );
    assert_eq!(&*p.lot("B4712").unwrap().material, "pasteurized-milk");
}

#[test]
fn lot_rules_record_genealogy_from_silo_to_pasteurizer_to_filler() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let silo = asset("reception/silo-1");
    let past = asset("processing/pasteurizer");
    let f = filler();
    p.observe(&silo, "lot_number", &Value::UInt(1), at(5, 0), &mut out);
    p.observe(&past, "batch_number", &Value::UInt(10), at(6, 0), &mut out);
    p.observe(&f, "lot_number", &text("F-100"), at(6, 30), &mut out);
    // A new silo lot while batch B10 is still running: B10 consumed both.
    p.observe(&silo, "lot_number", &Value::UInt(2), at(7, 0), &mut out);
    p.observe(&past, "batch_number", &Value::UInt(11), at(8, 0), &mut out);
    let back = p.trace_backward("F-100", 5).unwrap();
    let lots: Vec<(&str, u32)> = back.lots.iter().map(|l| (&*l.lot, l.depth)).collect();
    assert_eq!(lots, [("B10", 1), ("B11", 1), ("S1", 2), ("S2", 2)]);
    let forward = p.trace_forward("S1", 5).unwrap();
    let lots: Vec<&str> = forward.lots.iter().map(|l| &*l.lot).collect();
    assert_eq!(lots, ["B10", "F-100"]);
    let links = events(&out, |k| match k {
        EventKind::Genealogy(g) => Some(g),
        _ => None,
    });
    assert_eq!(links.len(), 5);
    assert!(
        links
            .iter()
            .all(|(_, _, g)| g.by.as_deref() == Some("context-rule"))
    );
}

#[test]
fn an_empty_value_clears_the_field_and_completes_the_lot() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    p.observe(&f, "lot_number", &text("F-1"), at(6, 0), &mut out);
    out.clear();
    p.observe(&f, "lot_number", &text(""), at(7, 0), &mut out);
    assert_eq!(context(&out, &f, ContextField::Lot), Some(None));
    assert_eq!(p.lot("F-1").unwrap().status, LotStatus::Complete);
}
