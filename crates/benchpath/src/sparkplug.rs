//! What the subscriber needs from a Sparkplug B payload, by a walk over its protobuf fields
//! instead of a decoder: the crate links no gateway crate (so it drives any commit's
//! gateway), and a full decode of every metric would make the subscriber a bottleneck sooner.
//!
//! Fields used (crates/mqtt/proto/sparkplug_b.proto): `Payload.timestamp` = 1 (ms),
//! `Payload.metrics` = 2 (repeated `Metric`), `Payload.seq` = 3; `Metric.timestamp` = 3 (ms),
//! `Metric.is_historical` = 5.

/// The counts of one payload.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub metrics: u64,
    /// Metrics flagged `is_historical` (store-and-forward: held while the node was not born).
    pub historical: u64,
    pub seq: Option<u64>,
    pub timestamp: Option<u64>,
    /// The first metric's timestamp: the value's source time, else the gateway's.
    pub first_metric_timestamp: Option<u64>,
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const BYTES: u64 = 2;
const FIXED32: u64 = 5;

/// None when the bytes are not a well-formed protobuf message.
pub fn summarize(payload: &[u8]) -> Option<Summary> {
    let mut summary = Summary::default();
    let mut fields = Fields(payload);
    while let Some(field) = fields.next_field()? {
        match field {
            (1, Value::Varint(t)) => summary.timestamp = Some(t),
            (3, Value::Varint(s)) => summary.seq = Some(s),
            (2, Value::Bytes(metric)) => {
                summary.metrics += 1;
                let mut inner = Fields(metric);
                while let Some(field) = inner.next_field()? {
                    match field {
                        (3, Value::Varint(t)) if summary.metrics == 1 => {
                            summary.first_metric_timestamp = Some(t)
                        }
                        (5, Value::Varint(h)) if h != 0 => summary.historical += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(summary)
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// The next (field number, value); `Some(None)` at the end, `None` when malformed.
    fn next_field(&mut self) -> Option<Option<(u64, Value<'a>)>> {
        if self.0.is_empty() {
            return Some(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => {
                self.skip(8)?;
                Value::Other
            }
            BYTES => {
                let len = usize::try_from(self.varint()?).ok()?;
                let bytes = self.0.get(..len)?;
                self.0 = &self.0[len..];
                Value::Bytes(bytes)
            }
            FIXED32 => {
                self.skip(4)?;
                Value::Other
            }
            _ => return None,
        };
        Some(Some((key >> 3, value)))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn field(number: u64, wire: u64, out: &mut Vec<u8>) {
        varint(number << 3 | wire, out);
    }

    /// A DDATA as the gateway makes one: alias, timestamp, optional is_historical, a
    /// uint64 value (`long_value` = 11) and a double (`double_value` = 13, fixed64).
    pub(crate) fn metric(alias: u64, timestamp: u64, historical: bool) -> Vec<u8> {
        let mut m = Vec::new();
        field(2, VARINT, &mut m);
        varint(alias, &mut m);
        field(3, VARINT, &mut m);
        varint(timestamp, &mut m);
        if historical {
            field(5, VARINT, &mut m);
            varint(1, &mut m);
        }
        field(11, VARINT, &mut m);
        varint(123_456, &mut m);
        field(13, FIXED64, &mut m);
        m.extend_from_slice(&1.5f64.to_le_bytes());
        m
    }

    pub(crate) fn payload(metrics: &[Vec<u8>], seq: u64) -> Vec<u8> {
        let mut p = Vec::new();
        field(1, VARINT, &mut p);
        varint(1_780_000_000_123, &mut p);
        for m in metrics {
            field(2, BYTES, &mut p);
            varint(m.len() as u64, &mut p);
            p.extend_from_slice(m);
        }
        field(3, VARINT, &mut p);
        varint(seq, &mut p);
        p
    }

    #[test]
    fn every_metric_of_a_ddata_is_counted_with_its_flags_and_times() {
        let metrics = [
            metric(16, 1_780_000_000_100, false),
            metric(17, 1_780_000_000_101, true),
            metric(200, 1_780_000_000_102, true),
        ];
        let summary = summarize(&payload(&metrics, 255)).unwrap();
        assert_eq!(
            summary,
            Summary {
                metrics: 3,
                historical: 2,
                seq: Some(255),
                timestamp: Some(1_780_000_000_123),
                first_metric_timestamp: Some(1_780_000_000_100),
            }
        );
        assert_eq!(summarize(&[]).unwrap(), Summary::default());
    }

    #[test]
    fn a_truncated_or_malformed_payload_is_refused() {
        let whole = payload(&[metric(16, 1, false)], 3);
        for cut in 1..whole.len() {
            let summary = summarize(&whole[..cut]);
            assert!(
                summary.is_none() || summary.unwrap().seq.is_none(),
                "cut at {cut} read as whole"
            );
        }
        // Wire type 7 does not exist.
        assert_eq!(summarize(&[0x0f]), None);
        // A varint longer than ten bytes.
        assert_eq!(
            summarize(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            None
        );
    }
}
