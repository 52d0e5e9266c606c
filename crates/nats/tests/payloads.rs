//! The sink's payloads are byte for byte the shared JSON form (`SamplePayload` through
//! serde_json), for arbitrary values, qualities, timestamps, contexts and stream numbers,
//! in both payload forms, with their headers; the shared encoder into the sink's
//! `BytesMut` too (it is tested in depth in the connector crate, `tests/payload_encoder.rs`).
//! No server needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;

use backplane_connector::payload::{SampleEncoder, SamplePayload};
use backplane_connector::{Batch, Delivery};
use backplane_model::{Context, Quality, Sample, Timestamp, Value};
use backplane_nats::PayloadForm;
use backplane_nats::messages::{Messages, Outgoing};
use bytes::BytesMut;
use common::harness::Harness;
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
offset = { type = "int" }
running = { type = "bool" }
recipe = { type = "string" }
started = { type = "timestamp" }
profile = { type = "float[]", unit = "%" }
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/mixer-1"
model = "Mixed"
[[assets]]
path = "area/mixer-2"
model = "Mixed"
[[sinks]]
name = "js"
kind = "nats"
url = "nats://127.0.0.1:4222"
stream = { name = "UNUSED" }
"#;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        // Any bit pattern: NaN, infinities, -0.0, subnormals.
        any::<u64>().prop_map(|bits| Value::Float(f64::from_bits(bits))),
        any::<f64>().prop_map(Value::Float),
        // Quotes, backslashes, control characters, non-ASCII.
        "(.|[\"\\\\\u{0}-\u{1f}\u{7f}])*".prop_map(|s: String| Value::String(s.into())),
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
    // Every status code the model knows, and unknown ones (their class's unspecified reason).
    prop_oneof![
        Just(Quality::Good),
        prop_oneof![
            Just(0x4000_0000u32),
            Just(0x4090_0000),
            Just(0x8005_0000),
            Just(0x8032_0000),
            Just(0x808D_0000),
            any::<u32>()
        ]
        .prop_map(Quality::from_status_code),
    ]
}

fn text() -> impl Strategy<Value = Option<Arc<str>>> {
    prop::option::of("(.|[\"\\\\\u{0}-\u{1f}])*".prop_map(|s: String| Arc::from(s)))
}

fn context() -> impl Strategy<Value = Context> {
    (text(), text(), text(), text(), text(), text(), text()).prop_map(
        |(work_order, product, batch, lot, shift, operator, machine_state)| Context {
            work_order,
            product,
            batch,
            lot,
            shift,
            operator,
            machine_state,
        },
    )
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        // Around now, with and without sub-second digits; and anything (outside RFC 3339's years too).
        (1_700_000_000i64..1_900_000_000, 0i64..1_000_000_000)
            .prop_map(|(s, n)| Timestamp::from_unix_nanos(s * 1_000_000_000 + n)),
        (1_700_000_000i64..1_900_000_000).prop_map(|s| Timestamp::from_unix_nanos(s * 1_000_000_000)),
        any::<i64>().prop_map(Timestamp::from_unix_nanos),
    ]
}

/// One sample's varying parts; the tag is picked by index.
#[derive(Debug, Clone)]
struct Spec {
    tag: usize,
    value: Option<Value>,
    quality: Quality,
    source_time: Option<Timestamp>,
    gateway_time: Timestamp,
    /// Index into the run's contexts: samples share `Arc`s as the engine's do.
    context: usize,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<prop::sample::Index>(),
        value(),
        quality(),
        prop::option::of(timestamp()),
        timestamp(),
        0usize..3,
    )
        .prop_map(|(tag, value, quality, source_time, gateway_time, context)| Spec {
            tag: tag.index(usize::MAX),
            value,
            quality,
            source_time,
            gateway_time,
            context,
        })
}

fn samples(h: &Harness, specs: &[Spec], contexts: &[Arc<Context>]) -> Vec<Sample> {
    specs
        .iter()
        .map(|s| Sample {
            tag: h.topology.tags[s.tag % h.topology.tags.len()].id,
            value: s.value.clone(),
            quality: s.quality,
            source_time: s.source_time,
            gateway_time: s.gateway_time,
            context: contexts[s.context % contexts.len()].clone(),
        })
        .collect()
}

fn expected(h: &Harness, sample: &Sample, seq: Option<u64>, replay: bool) -> String {
    let payload = SamplePayload::new(&h.topology, sample)
        .unwrap()
        .with_seq(seq, replay);
    serde_json::to_string(&payload).unwrap()
}

fn text_of(m: &Outgoing) -> &str {
    std::str::from_utf8(&m.payload).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn the_shared_encoder_writes_what_serde_json_writes_into_the_sinks_bytes_mut(
        specs in prop::collection::vec(spec(), 1..24),
        contexts in prop::collection::vec(context(), 1..3),
        seqs in prop::collection::vec(prop::option::of(any::<u64>()), 24),
        replay in any::<bool>(),
    ) {
        let h = Harness::new(CONFIG);
        let contexts: Vec<Arc<Context>> = contexts.into_iter().map(Arc::new).collect();
        let encoder = SampleEncoder::new(h.topology.clone());
        let mut out = BytesMut::new();
        for (sample, seq) in samples(&h, &specs, &contexts).iter().zip(&seqs) {
            out.clear();
            prop_assert!(encoder.write(sample, *seq, replay, &mut out));
            prop_assert_eq!(std::str::from_utf8(&out).unwrap(), expected(&h, sample, *seq, replay));
        }
    }

    #[test]
    fn both_payload_forms_carry_the_shared_sample_json(
        specs in prop::collection::vec(spec(), 1..24),
        contexts in prop::collection::vec(context(), 1..3),
        first_seq in 1u64..u64::MAX / 2,
        replay in any::<bool>(),
    ) {
        let h = Harness::new(CONFIG);
        let contexts: Vec<Arc<Context>> = contexts.into_iter().map(Arc::new).collect();
        let samples = samples(&h, &specs, &contexts);
        let n = samples.len() as u64;
        let delivery = Delivery {
            batch: Arc::new(Batch { samples: samples.clone(), events: Vec::new() }),
            record: Some(1),
            seqs: Some((first_seq..first_seq + n).collect::<Vec<u64>>().into()),
            replay,
        };

        let mut out = Vec::new();
        Messages::new(h.topology.clone(), "uns", "edge-gw", "js", PayloadForm::Sample, true)
            .build(&delivery, &mut out);
        prop_assert_eq!(out.len(), samples.len());
        for (i, (m, sample)) in out.iter().zip(&samples).enumerate() {
            let seq = first_seq + i as u64;
            prop_assert_eq!(text_of(m), expected(&h, sample, Some(seq), replay));
            let id = format!("edge-gw.js.{seq}");
            prop_assert_eq!(m.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some(id.as_str()));
            let seq_text = seq.to_string();
            prop_assert_eq!(m.headers.get("Backplane-Seq").map(|v| v.as_str()), Some(seq_text.as_str()));
            prop_assert_eq!(m.headers.get("Backplane-Gateway").map(|v| v.as_str()), Some("edge-gw"));
        }

        let mut out = Vec::new();
        Messages::new(h.topology.clone(), "uns", "edge-gw", "js", PayloadForm::Batch, true)
            .build(&delivery, &mut out);
        // One message per asset, in the order each asset first appears, its samples in order.
        let mut assets: Vec<usize> = Vec::new();
        for s in &samples {
            let asset = h.topology.tag(s.tag).unwrap().asset;
            if !assets.contains(&asset) {
                assets.push(asset);
            }
        }
        prop_assert_eq!(out.len(), assets.len());
        for (m, &asset) in out.iter().zip(&assets) {
            let parts: Vec<(u64, String)> = samples
                .iter()
                .enumerate()
                .filter(|(_, s)| h.topology.tag(s.tag).unwrap().asset == asset)
                .map(|(i, s)| {
                    let seq = first_seq + i as u64;
                    (seq, expected(&h, s, Some(seq), replay))
                })
                .collect();
            let json = format!("[{}]", parts.iter().map(|p| p.1.as_str()).collect::<Vec<_>>().join(","));
            prop_assert_eq!(text_of(m), json);
            let (first, last) = (parts[0].0, parts[parts.len() - 1].0);
            let seq_text = if first == last { first.to_string() } else { format!("{first}-{last}") };
            let id = format!("edge-gw.js.{seq_text}");
            prop_assert_eq!(m.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some(id.as_str()));
            prop_assert_eq!(m.headers.get("Backplane-Seq").map(|v| v.as_str()), Some(seq_text.as_str()));
        }
    }
}
