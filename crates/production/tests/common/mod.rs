//! A dairy plant configuration for the production tests, and helpers to drive it.

// Each test binary uses a different subset of these helpers, and helpers outside
// `#[test]` functions are not covered by clippy's allow-*-in-tests settings.
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use backplane_config::{Catalog, Plan};
use backplane_model::sample::EventKind;
use backplane_model::{AssetPath, ContextField, Timestamp, Value};
use backplane_production::{Outcome, Production};

/// Shifts A/B/C at +01:00 with a daily cleaning stop 13:30–14:00; a reason tree; a
/// filler model with PackML states, a 32-bit good and a 16-bit reject counter, an ideal
/// rate of 500/min and a fault code; lot-opening context rules from silo to pasteurizer
/// to filler; a lab form for the reception.
pub const DAIRY: &str = r#"
[namespace]
enterprise = "acme-dairy"
site = "plant-a"

[calendar]
utc_offset = "+01:00"
shifts = [
  { name = "A", start = "06:00", end = "14:00" },
  { name = "B", start = "14:00", end = "22:00" },
  { name = "C", start = "22:00", end = "06:00" },
]
planned_stops = [{ name = "cleaning", start = "13:30", end = "14:00" }]

[downtime_reasons]
mechanical = { description = "Mechanical", reasons = { jam = "Bottle jam", changeover = { description = "Format changeover", planned = true } } }
material = { description = "Material", reasons = { shortage = "Material shortage" } }

[models.Silo.attributes]
level = { type = "float", unit = "%" }
lot_number = { type = "uint" }

[models.Pasteurizer.attributes]
batch_number = { type = "uint" }

[models.Filler.attributes]
state = { type = "string", enum = ["stopped", "idle", "running", "fault", "cleaning", "held"] }
good_count = { type = "uint", unit = "bottle" }
reject_count = { type = "uint", unit = "bottle" }
fault_code = { type = "uint" }
lot_number = { type = "string" }

[models.Filler.production]
state = { attribute = "state", map = { running = "execute", idle = "idle", stopped = "stopped", fault = "aborted", cleaning = "stopped", held = "held" } }
counts = { good = { attribute = "good_count", rollover = 4294967296 }, reject = { attribute = "reject_count", rollover = 65536 } }
ideal_rate = "500/min"
reason_codes = { attribute = "fault_code", map = { 17 = "mechanical/jam" } }

[forms.milk-lab]
description = "Milk reception lab check"
assets = ["reception"]
fields.fat = { type = "float", unit = "%", range = [2.5, 6.0], required = true }
fields.protein = { type = "float", unit = "%", range = [2.8, 4.0] }
fields.antibiotic = { type = "choice", choices = ["pass", "fail"], required = true }
fields.temperature = { type = "float", unit = "degC", range = [0, 8] }
fields.samples = { type = "int", range = [1, 10] }
fields.note = { type = "string" }

[[assets]]
path = "reception"

[[assets]]
path = "reception/silo-1"
model = "Silo"

[[assets]]
path = "processing"

[[assets]]
path = "processing/pasteurizer"
model = "Pasteurizer"

[[assets]]
path = "packaging"

[[assets]]
path = "packaging/line-1"
level = "line"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"

[[assets]]
path = "packaging/line-2"
level = "line"

[[assets]]
path = "packaging/line-2/filler"
model = "Filler"

[[context_rules]]
asset = "reception/silo-1"
attribute = "lot_number"
field = "lot"
format = "S{value}"
material = "raw-milk"

[[context_rules]]
asset = "processing/pasteurizer"
attribute = "batch_number"
field = "batch"
format = "B{value}"
material = "pasteurized-milk"
consumes = ["reception/silo-1"]

[[context_rules]]
asset = "packaging/line-1/filler"
attribute = "lot_number"
field = "lot"
material = "bottled-milk"
consumes = ["processing/pasteurizer"]
"#;

pub fn plan(text: &str) -> Plan {
    match backplane_config::load_str(text, Path::new("test.toml"), &Catalog::default()) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            let shown: Vec<String> = diagnostics.iter().map(|d| d.render(Some(text))).collect();
            panic!("configuration does not load:\n{}", shown.join("\n"));
        }
    }
}

pub fn dairy() -> Production {
    Production::new(&plan(DAIRY))
}

pub fn asset(rel: &str) -> AssetPath {
    AssetPath::parse(&format!("acme-dairy/plant-a/{rel}")).unwrap()
}

pub fn filler() -> AssetPath {
    asset("packaging/line-1/filler")
}

pub const MINUTE: i64 = 60_000_000_000;
pub const HOUR: i64 = 60 * MINUTE;

/// Monday 2026-11-23, `h:m` local time (+01:00).
pub fn at(h: i64, m: i64) -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T00:00:00+01:00")
        .unwrap()
        .add_nanos(h * HOUR + m * MINUTE)
}

pub fn text(s: &str) -> Value {
    Value::String(s.into())
}

/// The events of one kind, as `(asset, time, kind)`.
pub fn events<'a, T>(
    out: &'a Outcome,
    pick: impl Fn(&'a EventKind) -> Option<&'a T>,
) -> Vec<(&'a AssetPath, Timestamp, &'a T)> {
    out.events
        .iter()
        .filter_map(|(a, t, k)| pick(k).map(|v| (a, *t, v)))
        .collect()
}

/// The value the context patches of `out` set last for `field` on `asset`: `None` if
/// never touched, `Some(None)` if cleared.
pub fn context(out: &Outcome, asset: &AssetPath, field: ContextField) -> Option<Option<String>> {
    out.context
        .iter()
        .filter(|(a, _)| a == asset)
        .flat_map(|(_, p)| p.changes.iter())
        .filter(|(f, _)| *f == field)
        .map(|(_, v)| v.as_deref().map(str::to_owned))
        .next_back()
}

#[track_caller]
pub fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.unwrap_or_else(|| panic!("expected {expected}, found no figure"));
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

pub fn asset_in(path: &str) -> AssetPath {
    AssetPath::parse(path).unwrap()
}
