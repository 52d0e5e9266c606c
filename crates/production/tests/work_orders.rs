//! Work orders: the status life cycle with refusals that say why, context on the line
//! while one runs, one running order per asset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::sample::{EventKind, WorkOrderStatus};
use backplane_model::{ContextField, Value};
use backplane_production::{ErrorKind, NewWorkOrder, Outcome, Production};
use common::{asset, at, context, dairy, events, filler, text};

fn order(id: &str, line: &str) -> NewWorkOrder {
    NewWorkOrder {
        id: id.into(),
        product: "milk-1l".into(),
        asset: line.into(),
        planned_quantity: Some(10_000.0),
        ideal_rate_per_min: Some(600.0),
        ..NewWorkOrder::default()
    }
}

fn created(id: &str) -> (Production, Outcome) {
    let mut p = dairy();
    let mut out = Outcome::default();
    p.create_work_order(order(id, "packaging/line-1"), Some("mes"), at(6, 0), &mut out)
        .unwrap();
    (p, out)
}

#[test]
fn an_invalid_transition_is_refused_with_a_clear_message_and_changes_nothing() {
    let (mut p, mut out) = created("WO-1");
    out.clear();
    let e = p
        .start_work_order("WO-1", Some("mes"), at(6, 5), &mut out)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.field.as_deref(), Some("status"));
    assert_eq!(
        e.message,
        "work order `WO-1` cannot go from created to running: release it first"
    );
    assert!(out.is_empty());
    assert_eq!(p.work_order("WO-1").unwrap().status, WorkOrderStatus::Created);

    p.release_work_order("WO-1", None, at(6, 6), &mut out).unwrap();
    let e = p.hold_work_order("WO-1", None, at(6, 7), &mut out).unwrap_err();
    assert!(
        e.message.ends_with("only a running work order can be held"),
        "{e}"
    );
    p.start_work_order("WO-1", None, at(6, 8), &mut out).unwrap();
    p.complete_work_order("WO-1", None, at(7, 0), &mut out).unwrap();
    let e = p.start_work_order("WO-1", None, at(7, 1), &mut out).unwrap_err();
    assert_eq!(
        e.message,
        "work order `WO-1` cannot go from completed to running: it is completed, which is final"
    );
    let e = p.start_work_order("WO-9", None, at(7, 1), &mut out).unwrap_err();
    assert_eq!((e.kind, e.field.as_deref()), (ErrorKind::NotFound, Some("id")));
}

#[test]
fn the_full_life_cycle_records_history_and_actual_times() {
    let (mut p, mut out) = created("WO-1");
    p.release_work_order("WO-1", Some("mes"), at(6, 1), &mut out)
        .unwrap();
    p.start_work_order("WO-1", Some("anna"), at(6, 10), &mut out)
        .unwrap();
    p.hold_work_order("WO-1", Some("anna"), at(7, 0), &mut out)
        .unwrap();
    p.start_work_order("WO-1", Some("anna"), at(7, 30), &mut out)
        .unwrap();
    let wo = p
        .complete_work_order("WO-1", Some("anna"), at(9, 0), &mut out)
        .unwrap();
    let statuses: Vec<WorkOrderStatus> = wo.history.iter().map(|h| h.status).collect();
    use WorkOrderStatus::*;
    assert_eq!(statuses, [Created, Released, Running, Held, Running, Completed]);
    assert_eq!(
        (wo.actual_start, wo.actual_end),
        (Some(at(6, 10)), Some(at(9, 0)))
    );
    let changes = events(&out, |k| match k {
        EventKind::WorkOrder(w) => Some(w),
        _ => None,
    });
    let transitions: Vec<(Option<WorkOrderStatus>, WorkOrderStatus)> =
        changes.iter().map(|(_, _, w)| (w.previous, w.status)).collect();
    assert_eq!(
        transitions,
        [
            (None, Created),
            (Some(Created), Released),
            (Some(Released), Running),
            (Some(Running), Held),
            (Some(Held), Running),
            (Some(Running), Completed),
        ]
    );
    assert!(changes.iter().all(|(a, _, _)| **a == asset("packaging/line-1")));
}

#[test]
fn a_running_work_order_is_context_on_its_line_and_cleared_when_it_stops() {
    let (mut p, mut out) = created("WO-1");
    let line = asset("packaging/line-1");
    p.release_work_order("WO-1", None, at(6, 1), &mut out).unwrap();
    out.clear();
    p.start_work_order("WO-1", None, at(6, 2), &mut out).unwrap();
    assert_eq!(
        context(&out, &line, ContextField::WorkOrder),
        Some(Some("WO-1".into()))
    );
    assert_eq!(
        context(&out, &line, ContextField::Product),
        Some(Some("milk-1l".into()))
    );
    assert_eq!(p.state(&filler()).unwrap().work_order.as_deref(), Some("WO-1"));
    assert_eq!(p.state(&filler()).unwrap().ideal_rate_per_min, Some(600.0));
    out.clear();
    p.hold_work_order("WO-1", None, at(6, 3), &mut out).unwrap();
    assert_eq!(context(&out, &line, ContextField::WorkOrder), Some(None));
    assert_eq!(context(&out, &line, ContextField::Product), Some(None));
    // Back to the model's ideal rate while no order runs.
    assert_eq!(p.state(&filler()).unwrap().work_order, None);
    assert_eq!(p.state(&filler()).unwrap().ideal_rate_per_min, Some(500.0));
}

#[test]
fn only_one_work_order_runs_on_an_asset_at_a_time() {
    let (mut p, mut out) = created("WO-1");
    p.create_work_order(
        order("WO-2", "acme-dairy/plant-a/packaging/line-1"),
        None,
        at(6, 0),
        &mut out,
    )
    .unwrap();
    p.create_work_order(order("WO-3", "packaging/line-2"), None, at(6, 0), &mut out)
        .unwrap();
    for id in ["WO-1", "WO-2", "WO-3"] {
        p.release_work_order(id, None, at(6, 1), &mut out).unwrap();
    }
    p.start_work_order("WO-1", None, at(6, 2), &mut out).unwrap();
    let e = p.start_work_order("WO-2", None, at(6, 3), &mut out).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(
        e.message,
        "work order `WO-1` is already running on `acme-dairy/plant-a/packaging/line-1`; hold or complete it first"
    );
    // Another line is free; and a held order frees its line.
    p.start_work_order("WO-3", None, at(6, 3), &mut out).unwrap();
    p.hold_work_order("WO-1", None, at(6, 4), &mut out).unwrap();
    p.start_work_order("WO-2", None, at(6, 5), &mut out).unwrap();
    let e = p.start_work_order("WO-1", None, at(6, 6), &mut out).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
}

#[test]
fn bad_work_order_fields_are_named() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let cases: [(NewWorkOrder, &str); 5] = [
        (
            NewWorkOrder {
                id: " ".into(),
                ..order("x", "packaging/line-1")
            },
            "id",
        ),
        (
            NewWorkOrder {
                product: "a\nb".into(),
                ..order("WO-5", "packaging/line-1")
            },
            "product",
        ),
        (order("WO-5", "packaging/line-9"), "asset"),
        (
            NewWorkOrder {
                ideal_rate_per_min: Some(0.0),
                ..order("WO-5", "packaging/line-1")
            },
            "ideal_rate_per_min",
        ),
        (
            NewWorkOrder {
                planned_quantity: Some(-1.0),
                ..order("WO-5", "packaging/line-1")
            },
            "planned_quantity",
        ),
    ];
    for (new, field) in cases {
        let e = p.create_work_order(new, None, at(6, 0), &mut out).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
    }
    p.create_work_order(order("WO-5", "packaging/line-1"), None, at(6, 0), &mut out)
        .unwrap();
    let e = p
        .create_work_order(order("WO-5", "packaging/line-1"), None, at(6, 0), &mut out)
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Conflict, "work order `WO-5` exists already")
    );
    assert_eq!(p.work_orders().count(), 1);
}

#[test]
fn new_work_orders_read_from_json_reject_unknown_fields() {
    let ok: NewWorkOrder = serde_json::from_str(
        r#"{"id":"WO-7","product":"milk","asset":"packaging/line-1","ideal_rate_per_min":600,"scheduled_start":"2026-11-23T06:00:00+01:00"}"#,
    )
    .unwrap();
    assert_eq!(ok.scheduled_start, Some(at(6, 0)));
    let err = serde_json::from_str::<NewWorkOrder>(r#"{"id":"WO-7","product":"milk","asset":"x","qty":5}"#)
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `qty`"), "{err}");
}

#[test]
fn counts_while_an_order_is_held_belong_to_no_order() {
    let (mut p, mut out) = created("WO-1");
    let f = filler();
    p.release_work_order("WO-1", None, at(6, 1), &mut out).unwrap();
    p.start_work_order("WO-1", None, at(6, 2), &mut out).unwrap();
    p.observe(&f, "state", &text("running"), at(6, 2), &mut out);
    p.observe(&f, "good_count", &Value::UInt(0), at(6, 2), &mut out);
    p.observe(&f, "good_count", &Value::UInt(100), at(6, 10), &mut out);
    p.hold_work_order("WO-1", None, at(6, 11), &mut out).unwrap();
    p.observe(&f, "good_count", &Value::UInt(130), at(6, 12), &mut out);
    let counts: Vec<(u64, Option<String>)> = events(&out, |k| match k {
        EventKind::Counts(c) => Some(c),
        _ => None,
    })
    .into_iter()
    .map(|(_, _, c)| (c.delta, c.work_order.as_deref().map(str::to_owned)))
    .collect();
    assert_eq!(counts, [(100, Some("WO-1".to_owned())), (30, None)]);
}
