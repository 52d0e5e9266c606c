//! The hub's mirror decoder (`Mirror::ingest`) over arbitrary input: no subject or payload
//! makes it panic; what is not a message of the namespace (a foreign subject, bytes that
//! are not JSON, a truncated payload, a value of the wrong type, a broken schema) is
//! refused, never turned into a reading; and what an edge's sink really publishes comes
//! back as the same readings. No server needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;

use backplane_connector::{Batch, Delivery, Topology};
use backplane_model::{
    AssetPath, Context, ContextField, DataType, Event, EventKind, Quality, Sample, ScalarType, Timestamp,
    Value,
};
use backplane_nats::PayloadForm;
use backplane_nats::messages::{Messages, Outgoing};
use backplane_nats::mirror::{Action, Mirror, Refusal};
use common::harness::Harness;
use proptest::prelude::*;
use serde_json::json;

const PREFIX: &str = "uns";

const MODEL: &str = r#"
[models.Mixed.attributes]
level = { type = "float", unit = "%" }
count = { type = "uint", unit = "bottle" }
offset = { type = "int" }
running = { type = "bool" }
recipe = { type = "string" }
started = { type = "timestamp" }
profile = { type = "float[]", unit = "%" }
"#;

const ATTRIBUTES: [&str; 7] = [
    "level", "count", "offset", "running", "recipe", "started", "profile",
];

fn edge_config() -> String {
    format!(
        r#"
[gateway]
name = "edge-b"
[namespace]
enterprise = "acme"
site = "plant-b"
{MODEL}
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/mixer-1"
model = "Mixed"
[[sinks]]
name = "js"
kind = "nats"
url = "nats://127.0.0.1:4222"
stream = {{ name = "UNUSED" }}
"#
    )
}

fn hub_config() -> String {
    let mut text = format!(
        r#"
[gateway]
name = "hub"
[namespace]
enterprise = "acme"
site = "hub"
sites = ["plant-b"]
{MODEL}
[[assets]]
path = "plant-b/area"
level = "area"
[[assets]]
path = "plant-b/area/mixer-1"
model = "Mixed"
source = "plants"
"#
    );
    for a in ATTRIBUTES {
        text.push_str(&format!(
            "bindings.{a} = {{ address = \"acme/plant-b/area/mixer-1/{a}\" }}\n"
        ));
    }
    text.push_str(
        "[[sources]]\nname = \"plants\"\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nstream = \"UNS\"\n",
    );
    text
}

struct Hub {
    harness: Harness,
}

impl Hub {
    fn new() -> Hub {
        Hub {
            harness: Harness::new(&hub_config()),
        }
    }

    fn topology(&self) -> &Arc<Topology> {
        &self.harness.topology
    }

    fn mirror(&self) -> Mirror {
        let t = self.topology();
        let source = t.sources.iter().find(|s| s.name == "plants").unwrap();
        Mirror::new(t.clone(), "plants", &source.addresses, PREFIX)
    }

    /// The hub attribute's type behind a reading's address.
    fn data_type(&self, address: u32) -> DataType {
        let t = self.topology();
        let source = t.sources.iter().find(|s| s.name == "plants").unwrap();
        let tag = source.routes[address as usize][0];
        t.tag(tag).unwrap().attribute.data_type
    }
}

fn ingest(mirror: &mut Mirror, subject: &str, payload: &[u8]) -> Vec<Action> {
    let mut out = Vec::new();
    mirror.ingest(subject, "edge-b", payload, &mut out);
    out
}

/// Whether `v` is a value of type `t` (what an accepted reading must be).
fn of_type(v: &Value, t: DataType) -> bool {
    let scalar = |v: &Value, s: ScalarType| {
        matches!(
            (v, s),
            (Value::Bool(_), ScalarType::Bool)
                | (Value::Int(_), ScalarType::Int)
                | (Value::UInt(_), ScalarType::UInt)
                | (Value::Float(_), ScalarType::Float)
                | (Value::String(_), ScalarType::String)
                | (Value::Timestamp(_), ScalarType::Timestamp)
        )
    };
    match t {
        DataType::Scalar(s) => scalar(v, s),
        DataType::Array(s) => matches!(v, Value::Array(items) if items.iter().all(|i| scalar(i, s))),
    }
}

/// The documented outcomes: one refusal, one duplicate, a skipped event, events,
/// definitions, or readings (each possibly after a context change, drift marked).
fn well_formed(hub: &Hub, subject: &str, actions: &[Action]) -> Result<(), String> {
    if actions.is_empty() && !subject.ends_with("._batch") {
        return Err("no outcome".into());
    }
    let refusals = actions.iter().filter(|a| matches!(a, Action::Refused(_))).count();
    if refusals > 0 && actions.len() > 1 && !subject.ends_with("._batch") {
        return Err(format!("a refusal among other outcomes: {actions:?}"));
    }
    for (i, a) in actions.iter().enumerate() {
        match a {
            Action::Reading(r) => {
                let t = hub.data_type(r.address);
                if let Some(v) = &r.value
                    && !of_type(v, t)
                {
                    return Err(format!("accepted a {v:?} for a {t} attribute"));
                }
                if r.value.is_some() && r.quality == Quality::Bad(backplane_model::BadReason::ConfigError) {
                    return Err("a drift reading with a value".into());
                }
            }
            Action::Drift if !matches!(actions.get(i.wrapping_sub(1)), Some(Action::Reading(r)) if r.value.is_none()) =>
            {
                return Err("drift without its empty reading".into());
            }
            Action::Context { .. } if !matches!(actions.get(i + 1), Some(Action::Reading(_))) => {
                return Err("a context change not followed by its reading".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Subjects: the namespace's own (each kind), near misses, and anything.
fn subject() -> impl Strategy<Value = String> {
    let attribute = prop::sample::select(ATTRIBUTES.to_vec());
    prop_oneof![
        attribute.prop_map(|a| format!("{PREFIX}.acme.plant-b.area.mixer-1.{a}")),
        Just(format!("{PREFIX}.acme.plant-b.area.mixer-1._batch")),
        Just(format!(
            "{PREFIX}.acme.plant-b.area.mixer-1._events.state_changed"
        )),
        Just(format!("{PREFIX}.acme.plant-b._definitions")),
        Just(format!("{PREFIX}.other.plant-b.area.mixer-1.level")),
        Just(format!("{PREFIX}.acme.plant-b.area.unknown.level")),
        Just(format!("{PREFIX}.acme")),
        Just(format!("{PREFIX}.")),
        Just(String::new()),
        "[a-z._>*-]{0,40}".prop_map(|t| format!("{PREFIX}.{t}")),
        ".{0,40}",
    ]
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
        // Values the schema knows, so deeper checks are reached.
        prop::sample::select(vec![
            "sample",
            "event",
            "definitions",
            "good",
            "uncertain",
            "bad",
            "timeout",
            "float",
            "uint",
            "int",
            "bool",
            "string",
            "timestamp",
            "float[]",
            "%",
            "bottle",
            "NaN",
            "inf",
            "acme/plant-b/area/mixer-1",
            "acme/plant-b/area/mixer-1/level",
            "acme/plant-b/area/mixer-1/recipe",
            "acme/other/area/mixer-1/level",
            "2026-11-27T10:00:00Z",
            "@-9223372036854775808ns",
            "state_changed",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    json_leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((schema_key(), inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn schema_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "kind",
            "path",
            "asset",
            "attribute",
            "model",
            "value",
            "type",
            "unit",
            "quality",
            "quality_reason",
            "source_time",
            "gateway_time",
            "context",
            "seq",
            "replay",
            "event",
            "time",
            "from",
            "to",
            "since",
            "duration_ms",
            "work_order",
            "gateway",
            "enterprise",
            "site",
            "config_version",
            "models",
            "assets",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

/// An object with the sample schema's fields, some of them replaced by arbitrary JSON.
fn sample_like() -> impl Strategy<Value = serde_json::Value> {
    let attribute = prop::sample::select(ATTRIBUTES.to_vec());
    (
        attribute,
        prop::collection::vec((schema_key(), json_value()), 0..4),
        any::<u64>(),
    )
        .prop_map(|(a, replaced, seq)| {
            let mut object = json!({
                "kind": "sample",
                "path": format!("acme/plant-b/area/mixer-1/{a}"),
                "asset": "acme/plant-b/area/mixer-1",
                "attribute": a,
                "model": "Mixed",
                "value": 1.5,
                "type": "float",
                "unit": "%",
                "quality": "good",
                "gateway_time": "2026-11-27T10:00:00Z",
                "context": {},
                "seq": seq,
            });
            for (k, v) in replaced {
                object[k] = v;
            }
            object
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        sample_like().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(sample_like(), 0..4).prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

/// An edge sample of tag `attribute` with a value of its type.
fn edge_value(attribute: &str) -> BoxedStrategy<Value> {
    let timestamp = any::<i64>().prop_map(|t| Value::Timestamp(Timestamp::from_unix_nanos(t)));
    match attribute {
        "level" => any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))).boxed(),
        "count" => any::<u64>().prop_map(Value::UInt).boxed(),
        "offset" => any::<i64>().prop_map(Value::Int).boxed(),
        "running" => any::<bool>().prop_map(Value::Bool).boxed(),
        "recipe" => ".{0,16}".prop_map(|s| Value::String(s.into())).boxed(),
        "started" => timestamp.boxed(),
        _ => prop::collection::vec(any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))), 0..4)
            .prop_map(|v| Value::Array(v.into()))
            .boxed(),
    }
}

#[derive(Clone, Debug)]
struct EdgeSample {
    attribute: &'static str,
    value: Option<Value>,
    quality: Quality,
    source_time: Option<Timestamp>,
    gateway_time: Timestamp,
    work_order: Option<String>,
}

fn edge_sample() -> impl Strategy<Value = EdgeSample> {
    prop::sample::select(ATTRIBUTES.to_vec()).prop_flat_map(|attribute| {
        (
            prop::option::weighted(0.9, edge_value(attribute)),
            prop_oneof![
                Just(Quality::Good),
                any::<u32>().prop_map(Quality::from_status_code),
            ],
            prop::option::of(any::<i64>().prop_map(Timestamp::from_unix_nanos)),
            any::<i64>().prop_map(Timestamp::from_unix_nanos),
            prop::option::of(prop::sample::select(vec!["WO-1", "WO-2", "a \"quoted\" order"])),
        )
            .prop_map(
                move |(value, quality, source_time, gateway_time, work_order)| EdgeSample {
                    attribute,
                    value,
                    quality,
                    source_time,
                    gateway_time,
                    work_order: work_order.map(str::to_owned),
                },
            )
    })
}

/// What the edge's sink publishes for these samples (consecutive seqs from `first_seq`).
fn publish(edge: &Harness, form: PayloadForm, samples: &[EdgeSample], first_seq: u64) -> Vec<Outgoing> {
    let samples: Vec<Sample> = samples
        .iter()
        .map(|s| Sample {
            tag: edge.tag(&format!("acme/plant-b/area/mixer-1/{}", s.attribute)),
            value: s.value.clone(),
            quality: s.quality,
            source_time: s.source_time,
            gateway_time: s.gateway_time,
            context: Arc::new(Context {
                work_order: s.work_order.as_deref().map(Arc::from),
                ..Context::default()
            }),
        })
        .collect();
    let n = samples.len() as u64;
    let delivery = Delivery {
        batch: Arc::new(Batch {
            samples,
            events: Vec::new(),
        }),
        record: Some(1),
        seqs: Some((first_seq..first_seq + n).collect::<Vec<u64>>().into()),
        replay: false,
    };
    let mut out = Vec::new();
    Messages::new(edge.topology.clone(), PREFIX, "edge-b", "js", form, true).build(&delivery, &mut out);
    out
}

/// Equality with floats compared as the JSON form carries them (NaN is NaN).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn no_subject_or_payload_panics_and_every_outcome_is_a_documented_one(
        messages in prop::collection::vec((subject(), payload()), 1..8),
    ) {
        let hub = Hub::new();
        let mut mirror = hub.mirror();
        for (subject, payload) in &messages {
            let actions = ingest(&mut mirror, subject, payload);
            if let Err(why) = well_formed(&hub, subject, &actions) {
                prop_assert!(false, "{subject} {:?}: {why}", String::from_utf8_lossy(payload));
            }
            let namespace = backplane_nats::subjects::parse(PREFIX, subject).is_some();
            if !namespace {
                prop_assert_eq!(&actions, &vec![Action::Refused(Refusal::Subject)]);
            } else if serde_json::from_slice::<serde_json::Value>(payload).is_err() {
                prop_assert_eq!(&actions, &vec![Action::Refused(Refusal::Garbage)], "not JSON: refused");
            }
        }
    }

    #[test]
    fn truncated_payloads_are_refused_as_garbage(
        samples in prop::collection::vec(edge_sample(), 1..6),
        batch in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let edge = Harness::new(&edge_config());
        let hub = Hub::new();
        let form = if batch { PayloadForm::Batch } else { PayloadForm::Sample };
        for m in publish(&edge, form, &samples, 1) {
            let mut mirror = hub.mirror();
            let payload = &m.payload[..cut.index(m.payload.len())];
            prop_assert_eq!(
                ingest(&mut mirror, m.subject.as_str(), payload),
                vec![Action::Refused(Refusal::Garbage)]
            );
        }
    }

    #[test]
    fn a_value_of_another_type_is_refused(
        attribute in prop::sample::select(ATTRIBUTES.to_vec()),
        value in json_value(),
    ) {
        let hub = Hub::new();
        let mut mirror = hub.mirror();
        let t = DataType::parse(match attribute {
            "level" => "float", "count" => "uint", "offset" => "int", "running" => "bool",
            "recipe" => "string", "started" => "timestamp", _ => "float[]",
        }).unwrap();
        let unit = match attribute { "level" | "profile" => Some("%"), "count" => Some("bottle"), _ => None };
        let payload = json!({
            "kind": "sample",
            "path": format!("acme/plant-b/area/mixer-1/{attribute}"),
            "asset": "acme/plant-b/area/mixer-1",
            "attribute": attribute,
            "model": "Mixed",
            "value": value,
            "type": t.to_string(),
            "unit": unit,
            "quality": "good",
            "gateway_time": "2026-11-27T10:00:00Z",
        });
        let actions = ingest(
            &mut mirror,
            &format!("{PREFIX}.acme.plant-b.area.mixer-1.{attribute}"),
            &serde_json::to_vec(&payload).unwrap(),
        );
        match actions.as_slice() {
            [Action::Refused(Refusal::Garbage)] => {}
            [Action::Reading(r)] => match &r.value {
                None => prop_assert!(value.is_null()),
                Some(v) => prop_assert!(of_type(v, t), "accepted {v:?} for {t}"),
            },
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn what_an_edge_publishes_comes_back_as_the_same_readings(
        samples in prop::collection::vec(edge_sample(), 1..8),
        batch in any::<bool>(),
        first_seq in 1u64..1_000_000,
    ) {
        let edge = Harness::new(&edge_config());
        let hub = Hub::new();
        let mut mirror = hub.mirror();
        let form = if batch { PayloadForm::Batch } else { PayloadForm::Sample };
        let published = publish(&edge, form, &samples, first_seq);
        let mut readings = Vec::new();
        let mut work_order: Option<String> = None;
        for m in &published {
            for action in ingest(&mut mirror, m.subject.as_str(), &m.payload) {
                match action {
                    Action::Reading(r) => readings.push(r),
                    Action::Context { patch, .. } => {
                        for (field, value) in patch.changes {
                            if field == ContextField::WorkOrder {
                                work_order = value.map(|v| v.to_string());
                            }
                        }
                    }
                    other => prop_assert!(false, "{other:?} for {}", String::from_utf8_lossy(&m.payload)),
                }
            }
            // Delivered again: a duplicate, dropped.
            let again = ingest(&mut mirror, m.subject.as_str(), &m.payload);
            prop_assert!(again.iter().all(|a| *a == Action::Duplicate), "{again:?}");
        }
        // Batches group by asset; with one asset the order is the samples' order.
        prop_assert_eq!(readings.len(), samples.len());
        for (r, s) in readings.iter().zip(&samples) {
            let path = format!("acme/plant-b/area/mixer-1/{}", s.attribute);
            let t = hub.topology();
            let source = t.sources.iter().find(|x| x.name == "plants").unwrap();
            prop_assert_eq!(&*source.addresses[r.address as usize], path.as_str());
            match (&r.value, &s.value) {
                (Some(a), Some(b)) => prop_assert!(same(a, b), "{a:?} != {b:?}"),
                (a, b) => prop_assert_eq!(a, b),
            }
            prop_assert_eq!(r.quality, s.quality);
            prop_assert_eq!(r.source_time, Some(s.source_time.unwrap_or(s.gateway_time)));
        }
        prop_assert_eq!(work_order, samples.last().unwrap().work_order.clone());
    }
}

#[test]
fn events_and_definitions_of_the_edge_are_taken_and_foreign_ones_refused() {
    let edge = Harness::new(&edge_config());
    let hub = Hub::new();
    let mut mirror = hub.mirror();
    let defs = Messages::new(
        edge.topology.clone(),
        PREFIX,
        "edge-b",
        "js",
        PayloadForm::Sample,
        true,
    )
    .definitions("edge-b")
    .unwrap();
    let actions = ingest(&mut mirror, defs.subject.as_str(), &defs.payload);
    assert!(
        matches!(actions.as_slice(), [Action::Definitions(_)]),
        "{actions:?}"
    );

    let event = |asset: &str| Event {
        asset: AssetPath::parse(asset).unwrap(),
        time: Timestamp::from_unix_nanos(1),
        kind: EventKind::ContextChanged {
            field: ContextField::Lot,
            old: None,
            new: Some("L-1".into()),
            by: None,
        },
        context: Arc::new(Context::default()),
    };
    let payload = |e: &Event, seq: u64| {
        serde_json::to_vec(&backplane_connector::payload::EventPayload::new(e).with_seq(Some(seq), false))
            .unwrap()
    };
    let subject = format!("{PREFIX}.acme.plant-b.area.mixer-1._events.context_changed");
    let ours = event("acme/plant-b/area/mixer-1");
    assert_eq!(
        ingest(&mut mirror, &subject, &payload(&ours, 1)),
        vec![Action::Skipped]
    );
    assert_eq!(
        ingest(&mut mirror, &subject, &payload(&ours, 1)),
        vec![Action::Duplicate]
    );
    assert_eq!(
        ingest(
            &mut mirror,
            &subject,
            &payload(&event("other/plant-b/area/mixer-1"), 2)
        ),
        vec![Action::Refused(Refusal::OtherEnterprise)]
    );
    assert_eq!(
        ingest(
            &mut mirror,
            &subject,
            &payload(&event("acme/plant-b/area/mixer-9"), 3)
        ),
        vec![Action::Refused(Refusal::Unknown)]
    );
}
