//! `limits` of a model attribute: read into the model, and each mistake reported at its
//! line and column.
#![allow(clippy::unwrap_used)]

mod common;

use backplane_model::LimitLevel;
use common::{BASE, assert_at, load, one_error};

const TEMPERATURE: &str = "temperature = { type = \"float\", unit = \"degC\" }";

fn with_temperature(line: &str) -> String {
    BASE.replace(TEMPERATURE, line)
}

/// The 1-based column of `needle` on line 11 (the temperature attribute's line).
fn column(line: &str, needle: &str) -> usize {
    line.find(needle).unwrap() + 1
}

#[test]
fn limits_with_a_deadband_and_severities_are_read_into_the_model() {
    let plan = load(&with_temperature(
        "temperature = { type = \"float\", unit = \"degC\", limits = { hihi = 95.0, hi = 85, lo = 2.0, lolo = 1.0, deadband = 0.5, severity = { hihi = 1000 } } }",
    ))
    .unwrap();
    let model = plan.model("Filler").unwrap();
    let limits = model.attribute("temperature").unwrap().limits.clone().unwrap();
    assert_eq!(
        (limits.lolo, limits.lo, limits.hi, limits.hihi, limits.deadband),
        (Some(1.0), Some(2.0), Some(85.0), Some(95.0), 0.5)
    );
    assert_eq!(limits.severity(LimitLevel::Hihi), 1000);
    assert_eq!(
        limits.severity(LimitLevel::Hi),
        700,
        "the default of an inner level"
    );
    assert!(model.attribute("speed").unwrap().limits.is_none());
}

#[test]
fn rejects_limits_out_of_order_at_the_later_limit() {
    let line = "temperature = { type = \"float\", limits = { lo = 10.0, hi = 80.0, hihi = 70.0 } }";
    let d = one_error(&with_temperature(line));
    assert_eq!(d.message, "limit `hihi` = 70 is not above `hi` = 80");
    assert_eq!(
        d.hint.as_deref(),
        Some("limits are ordered lolo < lo < hi < hihi")
    );
    assert_at(
        &d,
        11,
        column(line, "70.0"),
        "models.Filler.attributes.temperature.limits.hihi",
    );
}

#[test]
fn rejects_limits_on_a_non_numeric_attribute() {
    let line = "temperature = { type = \"string\", limits = { hi = 1.0 } }";
    let d = one_error(&with_temperature(line));
    assert_eq!(
        d.message,
        "limits are only allowed on numeric attributes, and `temperature` is string"
    );
    assert_at(
        &d,
        11,
        column(line, "{ hi"),
        "models.Filler.attributes.temperature.limits",
    );
}

#[test]
fn rejects_a_negative_deadband_an_unknown_level_and_an_empty_limits_table() {
    let line = "temperature = { type = \"float\", limits = { hi = 1.0, deadband = -1 } }";
    let d = one_error(&with_temperature(line));
    assert_eq!(d.message, "deadband -1 is negative");
    assert_at(
        &d,
        11,
        column(line, "-1"),
        "models.Filler.attributes.temperature.limits.deadband",
    );

    let line = "temperature = { type = \"float\", limits = { high = 1.0 } }";
    let diagnostics = common::errors(&with_temperature(line));
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message == "unknown key `high` in models.Filler.attributes.temperature.limits"),
        "{diagnostics:?}"
    );
    assert!(
        diagnostics.iter().any(|d| d.message == "limits set no level"),
        "{diagnostics:?}"
    );

    let line = "temperature = { type = \"float\", limits = { hi = 1.0, severity = { hi = 0 } } }";
    let d = one_error(&with_temperature(line));
    assert_eq!(d.message, "severity 0 is out of range");
    assert_at(
        &d,
        11,
        column(line, "0 }"),
        "models.Filler.attributes.temperature.limits.severity.hi",
    );
}
