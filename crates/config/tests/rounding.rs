//! Rounding of bound values: a scale of whole numbers by a short decimal gain is rounded to
//! the resolution it implies; an attribute's declared `decimals` rounds once at the end.

// Helpers outside `#[test]` functions are not covered by clippy's allow-*-in-tests.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use backplane_config::Plan;
use backplane_model::transform::apply_chain;
use backplane_model::{DataType, ScalarType, Transform, Value};
use common::{BASE, assert_at, errors, load, one_error};

/// `line-1/filler` on source `plc` (a simulator: it says nothing of its readings' types)
/// with `binding`, after `base`.
fn filler_in(base: &str, binding: &str) -> String {
    format!("{base}[[assets]]\npath = \"line-1/filler\"\nmodel = \"Filler\"\nsource = \"plc\"\n{binding}\n")
}

fn chain_of(plan: &Plan, attribute: &str) -> Vec<Transform> {
    let asset = plan.asset("acme/plant/line-1/filler").unwrap();
    let binding = asset
        .bindings
        .iter()
        .find(|b| &*b.attribute == attribute)
        .unwrap();
    binding.transforms.to_vec()
}

/// The chain of `attribute` bound by `binding` in `base`.
fn chain(base: &str, attribute: &str, binding: &str) -> Vec<Transform> {
    match load(&filler_in(base, binding)) {
        Ok(plan) => chain_of(&plan, attribute),
        Err(d) => panic!("does not load: {}", d[0].render(None)),
    }
}

fn rounds(chain: &[Transform]) -> Vec<u8> {
    chain
        .iter()
        .filter_map(|t| match t {
            Transform::Round { decimals } => Some(*decimals),
            _ => None,
        })
        .collect()
}

fn float(chain: &[Transform], raw: Value) -> f64 {
    match apply_chain(chain, &raw) {
        Ok(Value::Float(x)) => x,
        other => panic!("expected a float, got {other:?}"),
    }
}

#[test]
fn a_tenth_of_an_integer_register_is_published_as_its_decimal() {
    let c = chain(
        BASE,
        "speed",
        "bindings.speed = { address = \"hr:1\", decode = \"u16\", scale = { gain = 0.1 } }",
    );
    assert_eq!(c[2], Transform::Round { decimals: 1 });
    assert_eq!(
        c[3],
        Transform::Cast {
            to: DataType::Scalar(ScalarType::Float)
        }
    );
    assert_eq!(float(&c, Value::UInt(4042)), 404.2);
    assert_eq!(float(&c, Value::UInt(3)), 0.3);
}

#[test]
fn a_hundredth_with_an_offset_rounds_to_the_longer_of_the_two() {
    let c = chain(
        BASE,
        "speed",
        "bindings.speed = { address = \"hr:1\", decode = \"i16\", scale = { gain = 0.01, offset = -40.5 } }",
    );
    assert_eq!(rounds(&c), [2]);
    assert_eq!(float(&c, Value::UInt(12345)), 82.95);
    // -1 as an i16 register: -0.01 - 40.5.
    assert_eq!(float(&c, Value::UInt(0xFFFF)), -40.51);
    let c = chain(
        BASE,
        "speed",
        "bindings.speed = { address = \"hr:1\", decode = \"u16\", scale = { gain = 2, offset = 0.125 } }",
    );
    assert_eq!(rounds(&c), [3]);
}

#[test]
fn large_integer_readings_keep_every_digit_the_gain_implies() {
    let c = chain(
        BASE,
        "speed",
        "bindings.speed = { address = \"hr:1\", decode = \"u64\", scale = { gain = 0.001 } }",
    );
    assert_eq!(rounds(&c), [3]);
    let regs = |n: u64| {
        Value::Array(
            (0..4)
                .rev()
                .map(|i| Value::UInt((n >> (16 * i)) & 0xFFFF))
                .collect(),
        )
    };
    assert_eq!(float(&c, regs(123_456_789_012_345)), 123_456_789_012.345);
    assert_eq!(float(&c, regs(u64::MAX)), 18_446_744_073_709_552.0);
}

#[test]
fn a_scale_of_a_register_the_source_serves_as_an_integer_is_rounded() {
    // No `decode`: the Modbus source decodes, and says which addresses read integers.
    let base = BASE.replace(
        "[[sources]]\nname = \"plc\"\nkind = \"simulator\"\nperiod = \"1s\"\nsignals = { \"hr:1\" = {}, \"hr:2\" = {}, \"hr:3\" = {} }",
        "[[sources]]\nname = \"plc\"\nkind = \"modbus\"\nurl = \"tcp://127.0.0.1:502\"",
    );
    let c = chain(
        &base,
        "speed",
        "bindings.speed = { address = \"hr:101\", scale = { gain = 0.1 } }",
    );
    assert_eq!(rounds(&c), [1]);
    assert_eq!(float(&c, Value::UInt(4042)), 404.2);
    let c = chain(
        &base,
        "speed",
        "bindings.speed = { address = \"hr:101:i32\", scale = { gain = 0.1 } }",
    );
    assert_eq!(rounds(&c), [1]);
    let c = chain(
        &base,
        "speed",
        "bindings.speed = { address = \"hr:101:f32\", scale = { gain = 0.1 } }",
    );
    assert_eq!(rounds(&c), [] as [u8; 0]);
}

#[test]
fn float_readings_and_readings_of_unknown_type_are_not_rounded() {
    for binding in [
        // A float decode: rounding would drop real digits.
        "bindings.speed = { address = \"hr:1\", decode = \"f32\", scale = { gain = 0.1 } }",
        // The simulator does not say its readings are whole numbers.
        "bindings.speed = { address = \"hr:1\", scale = { gain = 0.1 } }",
        // Whole gains and offsets need no rounding.
        "bindings.speed = { address = \"hr:1\", decode = \"u16\", scale = { gain = 4, offset = -1 } }",
        // A gain that is not a short decimal implies no resolution.
        "bindings.speed = { address = \"hr:1\", decode = \"u16\", scale = { gain = 0.3333333 } }",
        "bindings.speed = { address = \"hr:1\", decode = \"u16\", scale = { raw = [0, 27648], eng = [0, 100] } }",
    ] {
        assert_eq!(rounds(&chain(BASE, "speed", binding)), [] as [u8; 0], "{binding}");
    }
    let c = chain(
        BASE,
        "speed",
        "bindings.speed = { address = \"hr:1\", decode = \"f32\", scale = { gain = 0.1 } }",
    );
    let bits = u64::from(1234.5f32.to_bits());
    let raw = Value::Array(vec![Value::UInt(bits >> 16), Value::UInt(bits & 0xFFFF)].into());
    assert_eq!(float(&c, raw), 0.1 * 1234.5);
    // Ranges that give a short decimal gain imply its resolution.
    let c = chain(
        BASE,
        "speed",
        "bindings.speed = { address = \"hr:1\", decode = \"u16\", scale = { raw = [0, 1000], eng = [0, 100] } }",
    );
    assert_eq!(rounds(&c), [1]);
}

#[test]
fn declared_decimals_round_once_at_the_end_instead_of_the_implied_rounding() {
    let base = BASE.replace(
        "temperature = { type = \"float\", unit = \"degC\" }",
        "temperature = { type = \"float\", unit = \"degC\", decimals = 2 }",
    );
    let c = chain(
        &base,
        "temperature",
        "bindings.temperature = { address = \"hr:1\", decode = \"i16\", scale = { gain = 0.1 }, unit = \"degF\" }",
    );
    assert_eq!(rounds(&c), [2]);
    assert_eq!(c.last(), Some(&Transform::Round { decimals: 2 }));
    assert!(matches!(c[c.len() - 2], Transform::Cast { .. }));
    // 40.5 °F = 4.7222… °C.
    assert_eq!(float(&c, Value::UInt(405)), 4.72);
    // Without a scale (a float source) the declared rounding applies all the same.
    let c = chain(
        &base,
        "temperature",
        "bindings.temperature = { address = \"hr:1\" }",
    );
    assert_eq!(c.last(), Some(&Transform::Round { decimals: 2 }));
    assert_eq!(float(&c, Value::Float(4.725)), 4.73);
    let plan = load(&filler_in(&base, "")).unwrap();
    let model = &plan.models[0];
    assert_eq!(model.attribute("temperature").unwrap().decimals, Some(2));
    assert_eq!(model.attribute("speed").unwrap().decimals, None);
}

#[test]
fn negative_halves_round_away_from_zero() {
    let base = BASE.replace(
        "temperature = { type = \"float\", unit = \"degC\" }",
        "temperature = { type = \"float\", unit = \"degC\", decimals = 0 }",
    );
    let c = chain(
        &base,
        "temperature",
        "bindings.temperature = { address = \"hr:1\", decode = \"i16\", scale = { gain = 0.5 } }",
    );
    // -5 as an i16 register: -2.5 → -3; +5: 2.5 → 3.
    assert_eq!(float(&c, Value::UInt(0xFFFB)), -3.0);
    assert_eq!(float(&c, Value::UInt(5)), 3.0);
}

#[test]
fn decimals_out_of_range_or_on_other_types_are_errors_where_written() {
    let line = BASE.lines().position(|l| l.starts_with("temperature")).unwrap() + 1;
    let d = one_error(&BASE.replace("unit = \"degC\" }", "unit = \"degC\", decimals = 10 }"));
    assert_eq!(d.message, "`decimals = 10` is out of range");
    assert_eq!(d.hint.as_deref(), Some("decimals are 0 to 9"));
    assert_at(&d, line, 59, "models.Filler.attributes.temperature.decimals");
    let d = one_error(&BASE.replace("unit = \"degC\" }", "unit = \"degC\", decimals = -1 }"));
    assert_eq!(d.message, "`decimals = -1` is out of range");
    let d = one_error(&BASE.replace(
        "count = { type = \"uint\", unit = \"bottle\" }",
        "count = { type = \"uint\", unit = \"bottle\", decimals = 1 }",
    ));
    assert_eq!(
        d.message,
        "`decimals` is only allowed on float attributes, and `count` is uint"
    );
    let messages: Vec<String> =
        errors(&BASE.replace("unit = \"degC\" }", "unit = \"degC\", decimals = \"2\" }"))
            .into_iter()
            .map(|d| d.message)
            .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
}
