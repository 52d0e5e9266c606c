//! DDATA payloads written straight from the samples.
//!
//! A DDATA is a `Payload` of `Metric`s. Built as prost structs, every metric of every
//! message was a struct filled, sized twice (for the message's length and for its own),
//! encoded and dropped, in a vector grown a metric at a time: about a third of the
//! Sparkplug sink's instructions per sample (`docs/performance.md`, "DDATA written
//! straight from the samples"). Here a metric is written once, into the message's buffer,
//! as the very bytes prost writes for the same struct: fields in number order, the test
//! below compares them byte for byte. The value is still the generated oneof
//! ([`encode_value`](super::codec::encode_value)) and the quality property, sent only when
//! the quality changes or is not good, still prost's `PropertySet`.

use backplane_model::Quality;
// Protobuf's varints are unsigned LEB128, as in Backplane's own files.
use backplane_model::wire::{put_blob, put_varint, varint_len};
use prost::Message;

use super::codec::quality_property;
use super::proto::payload::{PropertySet, metric};

const VARINT: u32 = 0;
const LENGTH_DELIMITED: u32 = 2;

const PAYLOAD_TIMESTAMP: u32 = 1;
const PAYLOAD_METRIC: u32 = 2;
const PAYLOAD_SEQ: u32 = 3;
const METRIC_ALIAS: u32 = 2;
const METRIC_TIMESTAMP: u32 = 3;
const METRIC_IS_HISTORICAL: u32 = 5;
const METRIC_IS_NULL: u32 = 7;
const METRIC_PROPERTIES: u32 = 9;

/// Room reserved per metric: an alias and a millisecond timestamp of a few bytes each, a
/// number value, the metric's key and length.
const METRIC_BYTES: usize = 24;

/// One metric of a DDATA: alias only (the birth gave the name and the datatype, which data
/// messages should not repeat: tck-id-payloads-metric-datatype-not-req), the value, and
/// the quality property when it matters.
#[derive(Clone, Copy, Debug)]
pub struct DataMetric<'a> {
    pub alias: u64,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// `None`: sent with `is_null`.
    pub value: Option<&'a metric::Value>,
    /// Sent as the `Quality` property when given.
    pub quality: Option<Quality>,
    pub historical: bool,
}

/// A DDATA payload being written: its timestamp, then [`metric`](Self::metric) after
/// metric, then [`finish`](Self::finish) with the message's sequence number.
#[derive(Debug)]
pub struct DataPayload {
    out: Vec<u8>,
}

impl DataPayload {
    /// A payload stamped `timestamp` (ms), with room for about `metrics` metrics.
    pub fn new(timestamp: u64, metrics: usize) -> DataPayload {
        let mut out = Vec::with_capacity(24 + metrics * METRIC_BYTES);
        put_key(&mut out, PAYLOAD_TIMESTAMP, VARINT);
        put_varint(&mut out, timestamp);
        DataPayload { out }
    }

    pub fn metric(&mut self, m: &DataMetric<'_>) {
        let properties = m.quality.map(|q| {
            let (key, value) = quality_property(q);
            PropertySet {
                keys: vec![key],
                values: vec![value],
            }
            .encode_to_vec()
        });
        let len = key_len(METRIC_ALIAS)
            + varint_len(m.alias)
            + key_len(METRIC_TIMESTAMP)
            + varint_len(m.timestamp)
            + if m.historical { 2 } else { 0 }
            + if m.value.is_none() { 2 } else { 0 }
            + properties.as_ref().map_or(0, |p| {
                key_len(METRIC_PROPERTIES) + varint_len(p.len() as u64) + p.len()
            })
            + m.value.map_or(0, metric::Value::encoded_len);
        let out = &mut self.out;
        put_key(out, PAYLOAD_METRIC, LENGTH_DELIMITED);
        put_varint(out, len as u64);
        put_key(out, METRIC_ALIAS, VARINT);
        put_varint(out, m.alias);
        put_key(out, METRIC_TIMESTAMP, VARINT);
        put_varint(out, m.timestamp);
        if m.historical {
            put_key(out, METRIC_IS_HISTORICAL, VARINT);
            out.push(1);
        }
        if m.value.is_none() {
            put_key(out, METRIC_IS_NULL, VARINT);
            out.push(1);
        }
        if let Some(p) = properties {
            put_key(out, METRIC_PROPERTIES, LENGTH_DELIMITED);
            put_blob(out, &p);
        }
        if let Some(v) = m.value {
            v.encode(out);
        }
    }

    /// The payload's bytes, with its sequence number last (its field number's place).
    pub fn finish(mut self, seq: u64) -> Vec<u8> {
        put_key(&mut self.out, PAYLOAD_SEQ, VARINT);
        put_varint(&mut self.out, seq);
        self.out
    }
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from(field << 3 | wire_type));
}

fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparkplug::codec::{datatype_for, encode_payload, encode_value};
    use crate::sparkplug::proto::Payload;
    use crate::sparkplug::proto::payload::Metric;
    use backplane_model::{BadReason, DataType, ScalarType, UncertainReason, Value};

    /// The struct prost would write for the same metric: the reference.
    fn reference(m: &DataMetric<'_>) -> Metric {
        Metric {
            alias: Some(m.alias),
            timestamp: Some(m.timestamp),
            is_historical: m.historical.then_some(true),
            is_null: m.value.is_none().then_some(true),
            properties: m.quality.map(|q| {
                let (key, value) = quality_property(q);
                PropertySet {
                    keys: vec![key],
                    values: vec![value],
                }
            }),
            value: m.value.cloned(),
            ..Metric::default()
        }
    }

    #[test]
    fn a_written_ddata_is_byte_for_byte_what_prost_writes() {
        let mut values = crate::sparkplug::codec::tests::every_type();
        values.extend([
            (DataType::Scalar(ScalarType::Bool), Value::Bool(false)),
            (DataType::Scalar(ScalarType::Int), Value::Int(0)),
            (DataType::Scalar(ScalarType::UInt), Value::UInt(300)),
            (DataType::Scalar(ScalarType::Float), Value::Float(-4.25)),
            (
                DataType::Scalar(ScalarType::String),
                Value::String(String::new().into()),
            ),
            // Not a number: cannot be sent as one, so the metric goes as null.
            (DataType::Scalar(ScalarType::UInt), Value::String("x".into())),
        ]);
        let qualities = [
            None,
            Some(Quality::Good),
            Some(Quality::Uncertain(UncertainReason::LastUsableValue)),
            Some(Quality::Bad(BadReason::CommFailure)),
        ];
        let encoded: Vec<_> = values
            .iter()
            .map(|(t, v)| encode_value(v, datatype_for(*t)))
            .collect();
        let mut metrics = Vec::new();
        for (i, value) in encoded.iter().enumerate() {
            for (j, quality) in qualities.iter().enumerate() {
                for historical in [false, true] {
                    // Aliases and times of one to ten varint bytes.
                    let (alias, timestamp) = match (i + j) % 3 {
                        0 => (u64::MAX, u64::MAX - j as u64),
                        1 => (16 + i as u64, 1_700_000_000_123 + j as u64),
                        _ => (16 + i as u64, j as u64),
                    };
                    metrics.push(DataMetric {
                        alias,
                        timestamp,
                        value: value.as_ref(),
                        quality: *quality,
                        historical,
                    });
                }
            }
        }
        for (timestamp, seq) in [(0, 0), (1_700_000_000_000, 255)] {
            let mut written = DataPayload::new(timestamp, metrics.len());
            for m in &metrics {
                written.metric(m);
            }
            let expected = Payload {
                timestamp: Some(timestamp),
                metrics: metrics.iter().map(reference).collect(),
                seq: Some(seq),
                ..Payload::default()
            };
            assert_eq!(written.finish(seq), encode_payload(&expected));
        }
        let empty = DataPayload::new(5, 0).finish(1);
        assert_eq!(
            empty,
            encode_payload(&Payload {
                timestamp: Some(5),
                seq: Some(1),
                ..Payload::default()
            })
        );
    }
}
