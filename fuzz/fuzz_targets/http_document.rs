//! Documents the `http` source reads: a polled answer's body or a webhook post, through
//! JSON parsing, the webhook schema check and the JSONPath selection into readings. The
//! server polled, or any caller with the operator role, controls these bytes. No input
//! may panic.
#![no_main]

use std::sync::LazyLock;

use backplane_connector::InboundSchema;
use backplane_http::schema::{FieldSpec, FieldType, Schema};
use backplane_http::select::{EpochUnit, Missing, Selector, extract};
use libfuzzer_sys::fuzz_target;

static SELECTORS: LazyLock<Vec<Selector>> = LazyLock::new(|| {
    ["$.a", "$.a.b[0]", "$['x y']", "$.items[*].t", "$.items[?@.id == 2].t", "$..v"]
        .iter()
        .filter_map(|p| Selector::parse(p).ok())
        .collect()
});

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema {
    fields: [
        ("a", FieldType::Float),
        ("n", FieldType::Int),
        ("s", FieldType::String),
        ("t", FieldType::Time),
        ("b", FieldType::Bool),
    ]
    .into_iter()
    .map(|(name, field_type)| FieldSpec {
        name: name.into(),
        field_type,
        required: name == "a",
    })
    .collect(),
    timestamp_unit: EpochUnit::Nanos,
});

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let serde_json::Value::Object(map) = &document {
        let _ = SCHEMA.check(map);
    }
    let time = Selector::parse("$.t").ok();
    let _ = extract(&SELECTORS, time.as_ref(), EpochUnit::Nanos, Missing::Bad, &document);
});
