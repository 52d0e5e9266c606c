//! Every kind of event, as the MQTT sink publishes it (with its stream number, and as a
//! replay), validates against docs/schemas/event.schema.json (checked by the `jsonschema`
//! package, a peer nobody on this team wrote).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;

use backplane_engine::payload::EventPayload;
use backplane_model::{AssetPath, Context, Event, EventKind, Timestamp};
use common::validate_with_schemas;

#[test]
fn every_event_kind_matches_the_published_schema() {
    let context = Arc::new(Context {
        work_order: Some("WO-1".into()),
        shift: Some("A".into()),
        ..Context::default()
    });
    let pairs: Vec<(&str, serde_json::Value)> = EventKind::examples()
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let event = Event {
                asset: AssetPath::parse("acme/plant/packaging/line-1").unwrap(),
                time: Timestamp::from_unix_nanos(1_795_000_000_000_000_000),
                kind,
                context: context.clone(),
            };
            let payload = EventPayload::new(&event).with_seq(Some(i as u64), i % 2 == 0);
            ("event.schema.json", serde_json::to_value(&payload).unwrap())
        })
        .collect();
    assert!(pairs.len() >= 10, "one example of every kind");
    validate_with_schemas(&pairs);
}
