//! Operator entries: an invalid submission is refused with every bad field named and
//! nothing recorded; a valid one becomes an `operator_entry` event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::sample::EventKind;
use backplane_production::{
    ErrorKind, FieldError, MAX_ENTRY_AGE_SECS, MAX_ENTRY_AHEAD_SECS, Outcome, Production, Refusal, Snapshot,
    Submission,
};
use common::{DAIRY, asset, at, dairy, events, plan};
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

const UUID: &str = "6f1c2e0a-9b7d-4c3e-8a21-5d4f3b2a1c00";

fn lab() -> Map<String, Value> {
    values(json!({ "fat": 4.1, "protein": 3.4, "antibiotic": "pass" }))
}

fn submission<'a>(
    values: &'a Map<String, Value>,
    id: Option<&'a str>,
    time: Option<&'a str>,
) -> Submission<'a> {
    Submission {
        form: "milk-lab",
        asset: "reception/silo-1",
        user: "anna",
        values,
        id,
        time,
    }
}

fn operator_entry_times(out: &Outcome) -> Vec<backplane_model::Timestamp> {
    events(out, |k| match k {
        EventKind::OperatorEntry(e) => Some(e),
        _ => None,
    })
    .into_iter()
    .map(|(_, time, _)| time)
    .collect()
}

#[test]
fn an_entry_with_a_client_id_is_recorded_once_and_a_retry_answers_the_first_record() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let values = lab();
    let made = at(7, 0).to_rfc3339();
    let first = p
        .submit_entry(&submission(&values, Some(UUID), Some(&made)), at(7, 30), &mut out)
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.record.id.as_deref(), Some(UUID));
    // The entry and its event are at the time it was made, not when it arrived.
    assert_eq!(first.record.time, at(7, 0));
    assert_eq!(operator_entry_times(&out), [at(7, 0)]);

    let mut again = Outcome::default();
    let retry = p
        .submit_entry(
            &submission(&values, Some(UUID), Some(&made)),
            at(7, 45),
            &mut again,
        )
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.record, first.record);
    assert!(again.is_empty(), "a retry publishes nothing: {again:?}");
    // A retry long after (the answer was lost, the tablet went offline) is still answered,
    // though an entry that old could not be recorded new.
    let week_later = at(7, 0).add_nanos((MAX_ENTRY_AGE_SECS + 3600) * 1_000_000_000);
    let late = p
        .submit_entry(
            &submission(&values, Some(UUID), Some(&made)),
            week_later,
            &mut again,
        )
        .unwrap();
    assert!(late.duplicate);
    let refusal = p
        .submit_entry(
            &submission(&values, Some("other"), Some(&made)),
            week_later,
            &mut again,
        )
        .unwrap_err();
    assert_eq!(field_errors(refusal)[0].field, "time");
    // A retry without its time is the same entry too.
    let retry = p
        .submit_entry(&submission(&values, Some(UUID), None), at(7, 50), &mut again)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(p.entries().count(), 1);
    // Another id is another entry.
    let other = p
        .submit_entry(
            &submission(&values, Some("tablet-2:17"), None),
            at(8, 0),
            &mut again,
        )
        .unwrap();
    assert_eq!((other.duplicate, other.record.entry), (false, 2));
    assert_eq!(p.entries().count(), 2);
}

#[test]
fn a_client_id_is_still_recognised_after_a_snapshot_and_restore() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let values = lab();
    let first = p
        .submit_entry(&submission(&values, Some(UUID), None), at(7, 0), &mut out)
        .unwrap();
    let json = serde_json::to_string(&p.snapshot()).unwrap();
    let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
    let mut q = Production::restore(&plan(DAIRY), snapshot).unwrap();
    let mut again = Outcome::default();
    let retry = q
        .submit_entry(&submission(&values, Some(UUID), None), at(9, 0), &mut again)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.record, first.record);
    assert!(again.is_empty());
    assert_eq!(q.entries().count(), 1);
}

#[test]
fn an_entry_without_an_id_from_an_older_snapshot_still_restores() {
    let mut p = dairy();
    let mut out = Outcome::default();
    p.submit_form("milk-lab", "reception/silo-1", "anna", &lab(), at(7, 0), &mut out)
        .unwrap();
    let json = serde_json::to_string(&p.snapshot()).unwrap();
    assert!(
        !json.contains("\"id\":"),
        "no id written for an entry without one: {json}"
    );
    let q = Production::restore(&plan(DAIRY), serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(q.entries().next().unwrap().id, None);
}

#[test]
fn a_client_id_reused_with_other_content_is_a_conflict_and_records_nothing() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let values = lab();
    let made = at(7, 0).to_rfc3339();
    p.submit_entry(&submission(&values, Some(UUID), Some(&made)), at(7, 5), &mut out)
        .unwrap();
    let other = values_with_fat(4.5);
    let refusal = p
        .submit_entry(&submission(&other, Some(UUID), Some(&made)), at(7, 6), &mut out)
        .unwrap_err();
    assert_eq!(refusal.kind(), ErrorKind::Conflict);
    let Refusal::Command(e) = &refusal else {
        panic!("not a conflict: {refusal:?}")
    };
    assert_eq!(e.field.as_deref(), Some("id"));
    assert!(e.message.contains("entry 1"), "{}", e.message);
    // The same values at another time are other content too.
    let later = at(7, 1).to_rfc3339();
    let refusal = p
        .submit_entry(&submission(&values, Some(UUID), Some(&later)), at(7, 6), &mut out)
        .unwrap_err();
    assert_eq!(refusal.kind(), ErrorKind::Conflict);
    assert_eq!(p.entries().count(), 1);
}

fn values_with_fat(fat: f64) -> Map<String, Value> {
    values(json!({ "fat": fat, "protein": 3.4, "antibiotic": "pass" }))
}

fn field_errors(refusal: Refusal) -> Vec<FieldError> {
    match refusal {
        Refusal::Fields { errors } => errors,
        other => panic!("not field errors: {other:?}"),
    }
}

#[test]
fn an_entry_time_too_far_ahead_or_too_old_or_not_rfc_3339_is_refused_by_field() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let values = lab();
    let now = at(12, 0);
    let secs = 1_000_000_000_i64;
    let ahead = now.add_nanos((MAX_ENTRY_AHEAD_SECS + 1) * secs).to_rfc3339();
    let errors = field_errors(
        p.submit_entry(&submission(&values, None, Some(&ahead)), now, &mut out)
            .unwrap_err(),
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "time");
    assert!(
        errors[0].message.contains("ahead of the gateway's clock"),
        "{}",
        errors[0].message
    );
    let old = now.add_nanos(-(MAX_ENTRY_AGE_SECS + 1) * secs).to_rfc3339();
    let errors = field_errors(
        p.submit_entry(&submission(&values, None, Some(&old)), now, &mut out)
            .unwrap_err(),
    );
    assert!(errors[0].message.contains("too old"), "{}", errors[0].message);
    // Every problem at once: the time, the id and a field.
    let bad = values_with_fat(9.0);
    let errors = field_errors(
        p.submit_entry(
            &submission(&bad, Some("no spaces"), Some("yesterday")),
            now,
            &mut out,
        )
        .unwrap_err(),
    );
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["id", "time", "fat"]);
    let long = "x".repeat(65);
    let errors = field_errors(
        p.submit_entry(&submission(&values, Some(&long), None), now, &mut out)
            .unwrap_err(),
    );
    assert_eq!(errors[0].field, "id");
    assert!(out.is_empty());
    assert_eq!(p.entries().count(), 0);
    // Within the bounds: a little ahead (clock skew) and six days back.
    let skew = now.add_nanos((MAX_ENTRY_AHEAD_SECS - 1) * secs).to_rfc3339();
    p.submit_entry(&submission(&values, None, Some(&skew)), now, &mut out)
        .unwrap();
    let week = now.add_nanos(-6 * 86_400 * secs).to_rfc3339();
    let done = p
        .submit_entry(&submission(&values, None, Some(&week)), now, &mut out)
        .unwrap();
    assert_eq!(done.record.time, now.add_nanos(-6 * 86_400 * secs));
    assert_eq!(p.entries().count(), 2);
}
