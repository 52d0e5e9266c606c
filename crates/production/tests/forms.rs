//! Operator entries: an invalid submission is refused with every bad field named and
//! nothing recorded; a valid one becomes an `operator_entry` event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::sample::EventKind;
use backplane_production::{FieldError, Outcome};
use common::{asset, at, dairy, events};
use serde_json::{Map, Value, json};

fn values(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn an_invalid_entry_is_refused_with_every_bad_field_named_and_nothing_recorded() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let submission = values(json!({
        "protein": 4.6,            // out of range 2.8 to 4.0 %
        "antibiotic": "maybe",     // not a choice
        "temperature": "cold",     // wrong type
        "samples": 2.5,            // not a whole number
        "colour": "white",         // unknown field
        "note": null,              // null is absent: fine for an optional field
        // fat: missing, and required
    }));
    let errors = p
        .submit_form(
            "milk-lab",
            "reception/silo-1",
            "anna",
            &submission,
            at(7, 0),
            &mut out,
        )
        .unwrap_err();
    let by_field: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        by_field,
        [
            ("fat", "`fat` is required: a number in %"),
            ("protein", "`protein` is 4.6 %, outside the range 2.8 to 4 %"),
            (
                "antibiotic",
                "`antibiotic` must be one of pass, fail, found \"maybe\""
            ),
            (
                "temperature",
                "`temperature` must be a number in degC, found a string"
            ),
            ("samples", "`samples` must be a whole number, found 2.5"),
            (
                "colour",
                "unknown field `colour` in form `milk-lab`; its fields are fat, protein, antibiotic, temperature, samples, note"
            ),
        ]
    );
    assert!(out.is_empty(), "nothing published: {out:?}");
    assert_eq!(p.entries().count(), 0, "nothing recorded");
}

#[test]
fn the_submission_itself_is_checked_too_form_asset_and_user() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let ok = values(json!({ "fat": 4.0, "antibiotic": "pass" }));
    // The lab form is for the reception, not the filler; and the user is empty.
    let errors = p
        .submit_form(
            "milk-lab",
            "packaging/line-1/filler",
            " ",
            &ok,
            at(7, 0),
            &mut out,
        )
        .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["asset", "user"]);
    assert_eq!(
        errors[0].message,
        "form `milk-lab` is for acme-dairy/plant-a/reception (and below), not `acme-dairy/plant-a/packaging/line-1/filler`"
    );
    let errors = p
        .submit_form("milk-labb", "reception", "anna", &ok, at(7, 0), &mut out)
        .unwrap_err();
    assert_eq!(
        errors,
        [FieldError::new(
            "form",
            "unknown form `milk-labb`; forms are milk-lab"
        )]
    );
    let errors = p
        .submit_form("milk-lab", "nowhere", "anna", &ok, at(7, 0), &mut out)
        .unwrap_err();
    assert_eq!(errors[0].field, "asset");
    assert!(out.is_empty());
}

#[test]
fn a_valid_entry_is_an_operator_entry_event_stamped_with_user_asset_and_form() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let submission = values(json!({
        "fat": 4,                  // a whole number is a fine float
        "protein": 3.4,
        "antibiotic": "pass",
        "samples": 3.0,            // a whole float is a fine int
        "note": "tank 3, morning delivery",
    }));
    let record = p
        .submit_form(
            "milk-lab",
            "reception/silo-1",
            "anna",
            &submission,
            at(7, 0),
            &mut out,
        )
        .unwrap();
    assert_eq!(record.entry, 1);
    let entries = events(&out, |k| match k {
        EventKind::OperatorEntry(e) => Some(e),
        _ => None,
    });
    assert_eq!(entries.len(), 1);
    let (where_, when, entry) = entries[0];
    assert_eq!(where_, &asset("reception/silo-1"));
    assert_eq!(when, at(7, 0));
    assert_eq!((&*entry.form, &*entry.user, entry.entry), ("milk-lab", "anna", 1));
    assert_eq!(
        Value::Object(entry.values.clone()),
        json!({ "fat": 4, "protein": 3.4, "antibiotic": "pass", "samples": 3, "note": "tank 3, morning delivery" })
    );
    assert_eq!(p.entries().count(), 1);
    let second = p
        .submit_form(
            "milk-lab",
            "acme-dairy/plant-a/reception",
            "ben",
            &submission,
            at(8, 0),
            &mut out,
        )
        .unwrap();
    assert_eq!(second.entry, 2);
}

#[test]
fn forms_are_listed_for_a_ui_with_types_units_ranges_and_choices() {
    let p = dairy();
    let forms = serde_json::to_value(p.forms()).unwrap();
    assert_eq!(forms[0]["name"], "milk-lab");
    assert_eq!(forms[0]["assets"][0], "acme-dairy/plant-a/reception");
    let fat = &forms[0]["fields"][0];
    assert_eq!(
        fat,
        &json!({ "name": "fat", "type": "float", "unit": "%", "range": [2.5, 6.0], "required": true })
    );
    assert_eq!(forms[0]["fields"][2]["choices"], json!(["pass", "fail"]));
}
