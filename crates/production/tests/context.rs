//! Context patches: the calendar's shift on the site, operators on their asset, and
//! nothing at all for attributes production does not use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::{AssetPath, ContextField, Value};
use backplane_production::{ErrorKind, Outcome};
use common::{asset, at, context, dairy, filler};

fn site() -> AssetPath {
    AssetPath::parse("acme-dairy/plant-a").unwrap()
}

#[test]
fn ticks_set_the_shift_on_the_site_when_it_changes() {
    let mut p = dairy();
    let mut out = Outcome::default();
    p.tick(at(13, 59), &mut out);
    assert_eq!(
        context(&out, &site(), ContextField::Shift),
        Some(Some("A".into()))
    );
    out.clear();
    p.tick(at(13, 59).add_nanos(30_000_000_000), &mut out);
    assert!(out.is_empty(), "no change within a shift: {out:?}");
    p.tick(at(14, 0), &mut out);
    assert_eq!(
        context(&out, &site(), ContextField::Shift),
        Some(Some("B".into()))
    );
    assert_eq!(p.shift(), Some("B"));
    // The night shift runs across midnight: one change at 22:00, none at midnight.
    out.clear();
    p.tick(at(23, 0), &mut out);
    p.tick(at(24 + 3, 0), &mut out);
    assert_eq!(
        context(&out, &site(), ContextField::Shift),
        Some(Some("C".into()))
    );
    assert_eq!(
        out.context.len(),
        1,
        "C started at 22:00 and is still on at 03:00"
    );
}

#[test]
fn operators_sign_in_and_out_as_context_on_their_asset() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let line = asset("packaging/line-1");
    p.sign_in("anna", Some("Anna Berg"), "packaging/line-1", at(6, 0), &mut out)
        .unwrap();
    p.sign_in("ben", None, "packaging/line-1", at(6, 5), &mut out)
        .unwrap();
    assert_eq!(
        context(&out, &line, ContextField::Operator),
        Some(Some("ben".into()))
    );
    out.clear();
    p.sign_out("ben", at(7, 0), &mut out).unwrap();
    assert_eq!(
        context(&out, &line, ContextField::Operator),
        Some(Some("anna".into()))
    );
    out.clear();
    // Anna moves to line 2: line 1 has nobody left.
    p.sign_in("anna", None, "packaging/line-2", at(8, 0), &mut out)
        .unwrap();
    assert_eq!(context(&out, &line, ContextField::Operator), Some(None));
    assert_eq!(
        context(&out, &asset("packaging/line-2"), ContextField::Operator),
        Some(Some("anna".into()))
    );
    assert_eq!(p.operators().len(), 1);
    let e = p.sign_out("ben", at(9, 0), &mut out).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::NotFound, Some("operator"))
    );
}

#[test]
fn attributes_production_does_not_use_cost_nothing_and_change_nothing() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    assert!(p.watch(&f, "speed").is_none());
    assert!(p.watch(&f, "state").is_some());
    assert!(p.watch(&asset("reception/silo-1"), "level").is_none());
    p.observe(&f, "speed", &Value::Float(550.0), at(6, 0), &mut out);
    p.observe(
        &asset("reception/silo-1"),
        "level",
        &Value::Float(40.0),
        at(6, 0),
        &mut out,
    );
    assert!(out.is_empty());
    let watched: usize = p.watched().count();
    // Two fillers × (state, good, reject, fault code) + filler 1's lot number + the silo's
    // lot number + the pasteurizer's batch number.
    assert_eq!(watched, 11);
}
