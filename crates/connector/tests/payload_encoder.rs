//! `SampleEncoder` writes byte for byte what `serde_json` makes of `SamplePayload` (the
//! reference form), for every value type (arrays too), strings needing escapes, NaN and
//! infinite floats, every quality and reason, with and without source time, unit, stream
//! number and replay, empty and full contexts; and so for a topology whose own strings
//! need escaping (which configuration never makes, but a topology built otherwise may).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::sync::Arc;

use backplane_config::Catalog;
use backplane_connector::Topology;
use backplane_connector::payload::{SampleEncoder, SamplePayload, json};
use backplane_model::{Attribute, Context, Model, Quality, Sample, TagId, Timestamp, Value};
use proptest::prelude::*;

const CONFIG: &str = r#"
[gateway]
name = "edge-gw"
[namespace]
enterprise = "acme"
site = "plant"
[models.Mixed.attributes]
temperature = { type = "float", unit = "degC" }
count = { type = "uint", unit = "bottle" }
rate = { type = "float", unit = "bottle/min" }
offset = { type = "int" }
running = { type = "bool" }
recipe = { type = "string" }
started = { type = "timestamp" }
profile = { type = "float[]", unit = "%" }
flags = { type = "bool[]" }
names = { type = "string[]" }
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/mixer-1"
model = "Mixed"
[[assets]]
path = "area/mixer-2"
model = "Mixed"
"#;

/// Tags in [`CONFIG`]: 10 attributes on 2 assets.
const TAGS: usize = 20;

fn topology() -> Topology {
    let plan =
        backplane_config::load_str(CONFIG, Path::new("t.toml"), &Catalog::default()).unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
            )
        });
    let topology = Topology::new(plan);
    assert_eq!(topology.tags.len(), TAGS);
    topology
}

/// The topology with strings no configuration accepts: quotes, backslashes, control
/// characters, DEL and non-ASCII in model and attribute names, and so in tag paths.
fn unclean_topology() -> Topology {
    let mut topology = topology();
    for asset in &mut topology.assets {
        if let Some(model) = &asset.model {
            let mut model = Model::clone(model);
            model.name = "Mo\u{7f}\"del\té".into();
            asset.model = Some(Arc::new(model));
        }
    }
    for (i, tag) in topology.tags.iter_mut().enumerate() {
        let mut attribute = Attribute::clone(&tag.attribute);
        attribute.name = format!("at\u{1f}tr\\{i}\u{8}\u{c}\r");
        tag.attribute = Arc::new(attribute);
    }
    topology
}

/// Every reason of docs/payloads.md.
const REASONS: [(&str, &str); 18] = [
    ("bad", "comm_failure"),
    ("bad", "not_connected"),
    ("bad", "timeout"),
    ("bad", "config_error"),
    ("bad", "type_mismatch"),
    ("bad", "out_of_range"),
    ("bad", "device_failure"),
    ("bad", "sensor_failure"),
    ("bad", "out_of_service"),
    ("bad", "waiting_for_initial_data"),
    ("bad", "bad"),
    ("uncertain", "last_usable_value"),
    ("uncertain", "sensor_not_accurate"),
    ("uncertain", "engineering_units_exceeded"),
    ("uncertain", "sub_normal"),
    ("uncertain", "initial_value"),
    ("uncertain", "source_time_invalid"),
    ("uncertain", "uncertain"),
];

fn all_qualities() -> Vec<Quality> {
    let mut all = vec![Quality::Good];
    for (class, reason) in REASONS {
        let q = Quality::from_names(class, Some(reason)).unwrap();
        assert_eq!(q.reason(), Some(reason), "the list of reasons is out of date");
        all.push(q);
    }
    all
}

/// Strings with whatever JSON escapes: quotes, backslashes, every control character, DEL,
/// non-ASCII.
fn text() -> impl Strategy<Value = String> {
    "(.|[\"\\\\\u{0}-\u{1f}\u{7f}])*"
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        // Any bit pattern: NaN payloads, infinities, -0.0, subnormals.
        any::<u64>().prop_map(|bits| Value::Float(f64::from_bits(bits))),
        any::<f64>().prop_map(Value::Float),
        prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            1e21,
            1e-7,
            4.1666
        ])
        .prop_map(Value::Float),
        text().prop_map(|s| Value::String(s.into())),
        any::<i64>().prop_map(|t| Value::Timestamp(Timestamp::from_unix_nanos(t))),
    ]
}

fn value() -> impl Strategy<Value = Option<Value>> {
    let value = scalar().prop_recursive(3, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(|v| Value::Array(v.into()))
    });
    prop::option::weighted(0.9, value)
}

fn quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        prop::sample::select(all_qualities()),
        // Unknown codes: their class's unspecified reason.
        any::<u32>().prop_map(Quality::from_status_code),
    ]
}

fn context() -> impl Strategy<Value = Context> {
    let field = || prop::option::of(text().prop_map(Arc::<str>::from));
    prop_oneof![
        Just(Context::default()),
        (field(), field(), field(), field(), field(), field(), field()).prop_map(
            |(work_order, product, batch, lot, shift, operator, machine_state)| Context {
                work_order,
                product,
                batch,
                lot,
                shift,
                operator,
                machine_state,
            }
        ),
    ]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (1_700_000_000i64..1_900_000_000, 0i64..1_000_000_000)
            .prop_map(|(s, n)| Timestamp::from_unix_nanos(s * 1_000_000_000 + n)),
        (1_700_000_000i64..1_900_000_000).prop_map(|s| Timestamp::from_unix_nanos(s * 1_000_000_000)),
        any::<i64>().prop_map(Timestamp::from_unix_nanos),
    ]
}

prop_compose! {
    fn sample()(
        tag in 0..TAGS as u32,
        value in value(),
        quality in quality(),
        source_time in prop::option::of(timestamp()),
        gateway_time in timestamp(),
        context in context(),
    ) -> Sample {
        Sample { tag: TagId(tag), value, quality, source_time, gateway_time, context: Arc::new(context) }
    }
}

fn reference(topology: &Topology, sample: &Sample, seq: Option<u64>, replay: bool) -> String {
    let payload = SamplePayload::new(topology, sample)
        .unwrap()
        .with_seq(seq, replay);
    serde_json::to_string(&payload).unwrap()
}

fn encoded(encoder: &SampleEncoder, sample: &Sample, seq: Option<u64>, replay: bool) -> String {
    let mut out = Vec::new();
    assert!(encoder.write(sample, seq, replay, &mut out));
    String::from_utf8(out).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_encoder_writes_what_serde_json_writes_of_sample_payload(
        sample in sample(),
        seq in prop::option::of(any::<u64>()),
        replay in any::<bool>(),
    ) {
        let topology = Arc::new(topology());
        let encoder = SampleEncoder::new(topology.clone());
        prop_assert_eq!(encoded(&encoder, &sample, seq, replay), reference(&topology, &sample, seq, replay));
    }

    #[test]
    fn topology_strings_that_need_escaping_are_escaped_as_serde_json_does(
        sample in sample(),
        seq in prop::option::of(any::<u64>()),
        replay in any::<bool>(),
    ) {
        let topology = Arc::new(unclean_topology());
        let encoder = SampleEncoder::new(topology.clone());
        prop_assert_eq!(encoded(&encoder, &sample, seq, replay), reference(&topology, &sample, seq, replay));
    }

    /// The encoder reuses the text of the last gateway time and context it wrote: a run of
    /// samples that share one and not the other, in any order, each gets its own.
    #[test]
    fn samples_sharing_a_time_or_a_context_each_get_their_own(
        picks in prop::collection::vec((0..3usize, 0..3usize, any::<u64>()), 1..40),
        contexts in prop::collection::vec(context(), 3),
    ) {
        let topology = Arc::new(topology());
        let encoder = SampleEncoder::new(topology.clone());
        // Two empty contexts that are different `Arc`s, and one drawn.
        let contexts = [
            Arc::new(Context::default()),
            Arc::new(Context::default()),
            Arc::new(contexts[0].clone()),
        ];
        let times = [1_795_000_000_500_183_000, 1_795_000_001_500_183_000, 0].map(Timestamp::from_unix_nanos);
        for (time, context, value) in picks {
            let sample = Sample {
                tag: TagId((value % TAGS as u64) as u32),
                value: Some(Value::UInt(value)),
                quality: Quality::Good,
                source_time: None,
                gateway_time: times[time],
                context: contexts[context].clone(),
            };
            prop_assert_eq!(encoded(&encoder, &sample, Some(value), false), reference(&topology, &sample, Some(value), false));
        }
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_does(s in text()) {
        let mut out = Vec::new();
        json::string(&mut out, &s);
        let want = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(json::needs_escape(&s), want.len() != s.len() + 2);
        prop_assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

#[test]
fn every_quality_every_tag_and_both_contexts_match_serde_json() {
    let topology = Arc::new(topology());
    let encoder = SampleEncoder::new(topology.clone());
    let full = Context {
        work_order: Some("WO-1001".into()),
        product: Some("milk-1l".into()),
        batch: Some("B\"7\\".into()),
        lot: Some("L-1".into()),
        shift: Some("A".into()),
        operator: Some("Zoë\n".into()),
        machine_state: Some("running".into()),
    };
    for context in [Context::default(), full] {
        let context = Arc::new(context);
        for tag in &topology.tags {
            for quality in all_qualities() {
                for source_time in [None, Some(Timestamp::from_unix_nanos(1_795_000_000_500_000_000))] {
                    let sample = Sample {
                        tag: tag.id,
                        value: Some(Value::Float(4.1666)),
                        quality,
                        source_time,
                        gateway_time: Timestamp::from_unix_nanos(1_795_000_000_500_183_000),
                        context: context.clone(),
                    };
                    for (seq, replay) in [(None, false), (Some(7), false), (Some(u64::MAX), true)] {
                        assert_eq!(
                            encoded(&encoder, &sample, seq, replay),
                            reference(&topology, &sample, seq, replay)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_sample_of_an_unknown_tag_writes_nothing() {
    let topology = Arc::new(topology());
    let encoder = SampleEncoder::new(topology.clone());
    let sample = Sample {
        tag: TagId(TAGS as u32),
        value: None,
        quality: Quality::Good,
        source_time: None,
        gateway_time: Timestamp::from_unix_nanos(0),
        context: Arc::new(Context::default()),
    };
    let mut out = b"kept".to_vec();
    assert!(!encoder.write(&sample, None, false, &mut out));
    assert_eq!(out, b"kept");
}
