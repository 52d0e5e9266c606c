//! Malformed Sparkplug payloads never panic: random bytes, and valid payloads with random
//! corruption, through the same function the fuzz target calls
//! (`fuzz/fuzz_targets/sparkplug_payload.rs`), so CI exercises it without nightly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use backplane_mqtt::sparkplug::codec::{MAX_PAYLOAD_BYTES, encode_payload};
use backplane_mqtt::sparkplug::proto::Payload;
use backplane_mqtt::sparkplug::proto::payload::{Metric, metric};
use backplane_mqtt::sparkplug::{decode_everything, decode_payload};
use proptest::prelude::*;

fn valid_payload(names: Vec<String>, values: Vec<u64>, datatypes: Vec<u32>) -> Vec<u8> {
    let metrics = names
        .into_iter()
        .zip(values)
        .zip(datatypes)
        .enumerate()
        .map(|(i, ((name, v), datatype))| Metric {
            name: Some(name),
            alias: Some(i as u64),
            datatype: Some(datatype),
            value: Some(match v % 4 {
                0 => metric::Value::LongValue(v),
                1 => metric::Value::DoubleValue(v as f64),
                2 => metric::Value::BooleanValue(v % 2 == 0),
                _ => metric::Value::BytesValue(v.to_le_bytes().to_vec().into()),
            }),
            ..Metric::default()
        })
        .collect();
    encode_payload(&Payload {
        timestamp: Some(1),
        seq: Some(0),
        metrics,
        ..Payload::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&data);
    }

    #[test]
    fn corrupted_valid_payloads_never_panic(
        names in proptest::collection::vec("[a-z/]{0,12}", 1..8),
        values in proptest::collection::vec(any::<u64>(), 8),
        datatypes in proptest::collection::vec(0u32..40, 8),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = valid_payload(names, values, datatypes);
        prop_assert!(decode_payload(&bytes, MAX_PAYLOAD_BYTES).is_ok());
        decode_everything(&bytes);
        for (at, x) in flips {
            let len = bytes.len();
            bytes[at % len] ^= x;
        }
        decode_everything(&bytes);
        bytes.truncate(cut % (bytes.len() + 1));
        decode_everything(&bytes);
    }
}

#[test]
fn deeply_nested_templates_are_refused_not_a_stack_overflow() {
    // Metric.template_value (field 18) → Template.metrics (field 2) → Metric ..., nested
    // far beyond prost's recursion limit.
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..2000 {
        let mut template = vec![0x12];
        push_varint(&mut template, inner.len() as u64);
        template.extend_from_slice(&inner);
        let mut metric = vec![0x92, 0x01];
        push_varint(&mut metric, template.len() as u64);
        metric.extend_from_slice(&template);
        inner = metric;
    }
    let mut payload = vec![0x12];
    push_varint(&mut payload, inner.len() as u64);
    payload.extend_from_slice(&inner);
    assert!(decode_payload(&payload, MAX_PAYLOAD_BYTES).is_err());
    decode_everything(&payload);
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
