//! The stable suite's counterpart of the `http_document` fuzz target: arbitrary JSON
//! documents (and arbitrary bytes) through the webhook schema check and the JSONPath
//! selection never panic, and every selector gets at most one reading.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use backplane_connector::InboundSchema;
use backplane_http::schema::{FieldSpec, FieldType, Schema};
use backplane_http::select::{EpochUnit, Missing, Selector, extract};
use proptest::prelude::*;

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z0-9:.TZ -]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("a".to_owned()),
                    Just("b".to_owned()),
                    Just("t".to_owned()),
                    "[a-z]{1,3}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn selectors() -> Vec<Selector> {
    ["$.a", "$.a.b[0]", "$.b[*]", "$..t", "$.a[?@.b > 1]"]
        .iter()
        .map(|p| Selector::parse(p).unwrap())
        .collect()
}

fn schema() -> Schema {
    Schema {
        fields: vec![
            FieldSpec {
                name: "a".into(),
                field_type: FieldType::Float,
                required: true,
            },
            FieldSpec {
                name: "b".into(),
                field_type: FieldType::Int,
                required: false,
            },
            FieldSpec {
                name: "t".into(),
                field_type: FieldType::Time,
                required: false,
            },
        ],
        timestamp_unit: EpochUnit::Nanos,
    }
}

proptest! {
    #[test]
    fn any_document_gives_at_most_one_reading_per_selector(document in json()) {
        let s = selectors();
        let time = Selector::parse("$.t").ok();
        for missing in [Missing::Bad, Missing::Skip] {
            let out = extract(&s, time.as_ref(), EpochUnit::Nanos, missing, &document);
            prop_assert!(out.readings.len() <= s.len());
        }
        if let serde_json::Value::Object(map) = &document {
            let _ = schema().check(map);
        }
    }

    #[test]
    fn any_bytes_are_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(document) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let _ = extract(&selectors(), None, EpochUnit::Millis, Missing::Bad, &document);
        }
    }
}
