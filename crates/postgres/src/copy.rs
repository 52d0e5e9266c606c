//! Rows in PostgreSQL's binary COPY format, written straight from samples and events into
//! one growing buffer: no value objects, no per-row allocation, no per-value type checks
//! (the column types are fixed by the schema). No I/O: the writer sends the buffer in
//! chunks while it fills.

use bytes::{BufMut, Bytes, BytesMut};

use crate::rows::{self, EventRow, SampleRef, ValueColumns};

/// Signature, flags (no OIDs) and an empty header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A binary COPY stream being written: the header first, then rows, then the trailer.
#[derive(Debug)]
pub struct CopyBuf {
    buf: BytesMut,
}

impl Default for CopyBuf {
    fn default() -> Self {
        CopyBuf::new()
    }
}

impl CopyBuf {
    pub fn new() -> CopyBuf {
        let mut buf = BytesMut::with_capacity(256 * 1024);
        buf.put_slice(HEADER);
        CopyBuf { buf }
    }

    /// Bytes written and not yet taken.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What was written so far, to send; the buffer keeps its capacity.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// Ends the stream.
    pub fn finish(&mut self) {
        self.buf.put_i16(-1);
    }

    /// One row of `samples`, in the column order of `writer::SAMPLE_COLUMNS`.
    pub fn sample(&mut self, row: &SampleRef<'_>, gateway_id: i32) {
        let s = row.sample;
        let v = ValueColumns::of(s.value.as_ref());
        self.buf.put_i16(13);
        self.timestamptz(Some(rows::pg_micros(s.gateway_time)));
        self.timestamptz(s.source_time.map(rows::pg_micros));
        self.int4(row.tag_id);
        self.float8(v.double);
        self.int8(v.bigint);
        self.bool(v.boolean);
        self.text(v.text.as_deref());
        self.jsonb(v.json.as_ref());
        self.int2(rows::quality_code(s.quality));
        self.text(s.quality.reason());
        self.int8(row.context_id);
        self.int4(gateway_id);
        self.int8(Some(row.seq));
    }

    /// One row of `events`, in the column order of `writer::EVENT_COLUMNS`.
    pub fn event(&mut self, row: &EventRow) {
        self.buf.put_i16(7);
        self.timestamptz(Some(rows::pg_micros(row.time)));
        self.text(Some(&row.asset));
        self.text(Some(&row.kind));
        self.jsonb(Some(&row.payload));
        self.int8(row.context_id);
        self.int4(row.gateway_id);
        self.int8(Some(row.seq));
    }

    fn null(&mut self) {
        self.buf.put_i32(-1);
    }

    fn timestamptz(&mut self, micros: Option<i64>) {
        self.int8(micros);
    }

    fn int2(&mut self, v: i16) {
        self.buf.put_i32(2);
        self.buf.put_i16(v);
    }

    fn int4(&mut self, v: i32) {
        self.buf.put_i32(4);
        self.buf.put_i32(v);
    }

    fn int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.buf.put_i32(8);
                self.buf.put_i64(v);
            }
            None => self.null(),
        }
    }

    fn float8(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.buf.put_i32(8);
                self.buf.put_f64(v);
            }
            None => self.null(),
        }
    }

    fn bool(&mut self, v: Option<bool>) {
        match v {
            Some(v) => {
                self.buf.put_i32(1);
                self.buf.put_u8(u8::from(v));
            }
            None => self.null(),
        }
    }

    fn text(&mut self, v: Option<&str>) {
        match v {
            Some(v) => {
                self.buf.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                self.buf.put_slice(v.as_bytes());
            }
            None => self.null(),
        }
    }

    /// jsonb's binary form: version 1, then the JSON text. The length is patched in after.
    fn jsonb(&mut self, v: Option<&serde_json::Value>) {
        let Some(v) = v else {
            self.null();
            return;
        };
        let at = self.buf.len();
        self.buf.put_i32(0);
        self.buf.put_u8(1);
        let mut w = (&mut self.buf).writer();
        // Writing a `Value` into memory cannot fail (its keys are strings).
        if serde_json::to_writer(&mut w, v).is_err() {
            self.buf.truncate(at);
            self.null();
            return;
        }
        let len = i32::try_from(self.buf.len() - at - 4).unwrap_or(i32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use backplane_model::quality::BadReason;
    use backplane_model::{Context, Quality, Sample, TagId, Timestamp, Value};
    use tokio_postgres::types::{IsNull, ToSql, Type};

    use super::*;
    use crate::rows::SampleRow;

    /// The row as tokio-postgres' own `ToSql` encodes the typed values (the reference).
    fn reference(values: &[&(dyn ToSql + Sync)], types: &[Type]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_i16(values.len() as i16);
        for (v, t) in values.iter().zip(types) {
            let at = buf.len();
            buf.put_i32(0);
            match v.to_sql_checked(t, &mut buf).unwrap() {
                IsNull::Yes => {
                    buf.truncate(at);
                    buf.put_i32(-1);
                }
                IsNull::No => {
                    let len = (buf.len() - at - 4) as i32;
                    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
        buf.to_vec()
    }

    fn sample(value: Option<Value>, quality: Quality, nanos: i64, source: Option<i64>) -> Sample {
        Sample {
            tag: TagId(0),
            value,
            quality,
            source_time: source.map(Timestamp::from_unix_nanos),
            gateway_time: Timestamp::from_unix_nanos(nanos),
            context: Arc::new(Context::default()),
        }
    }

    #[test]
    fn sample_rows_encode_exactly_as_the_typed_parameters_do() {
        let samples = [
            sample(
                Some(Value::Float(20.25)),
                Quality::Good,
                1_764_000_000_123_456_789,
                None,
            ),
            sample(Some(Value::Int(-7)), Quality::Good, 1_500_999, Some(1_499_000)),
            sample(Some(Value::UInt(u64::MAX)), Quality::Good, 0, None),
            sample(Some(Value::Bool(false)), Quality::Good, -1_500_999, None),
            sample(Some(Value::String("run ü".into())), Quality::Good, 5, None),
            sample(
                Some(Value::Timestamp(Timestamp::from_unix_nanos(1_000_000_000))),
                Quality::Good,
                7,
                None,
            ),
            sample(
                Some(Value::Array(vec![Value::Float(1.0), Value::Int(2)].into())),
                Quality::Good,
                9,
                None,
            ),
            sample(None, Quality::Bad(BadReason::CommFailure), 11, None),
        ];
        for (i, s) in samples.iter().enumerate() {
            let row = SampleRef {
                sample: s,
                tag_id: 40 + i as i32,
                context_id: (i % 2 == 0).then_some(9_000_000_000),
                seq: 1 << 40,
            };
            let mut copy = CopyBuf::new();
            let header = copy.len();
            copy.sample(&row, 3);
            let typed = SampleRow::of(&row, 3);
            assert_eq!(
                copy.take()[header..].to_vec(),
                reference(&typed.params(), &crate::writer::SAMPLE_TYPES),
                "sample {i}"
            );
        }
    }

    #[test]
    fn event_rows_encode_exactly_as_the_typed_parameters_do() {
        let row = EventRow {
            time: Timestamp::from_unix_nanos(1_764_000_000_000_000_000),
            asset: "acme/plant/line-1".into(),
            kind: "downtime".into(),
            payload: serde_json::json!({"event": "downtime", "id": 1, "reason": "jam \"x\""}),
            context_id: None,
            gateway_id: 2,
            seq: 77,
        };
        let mut copy = CopyBuf::new();
        let header = copy.len();
        copy.event(&row);
        let time = rows::system_time(row.time);
        assert_eq!(
            copy.take()[header..].to_vec(),
            reference(&row.params(&time), &crate::writer::EVENT_TYPES)
        );
    }

    #[test]
    fn a_stream_has_the_header_and_ends_with_the_trailer() {
        let mut copy = CopyBuf::new();
        copy.finish();
        let bytes = copy.take();
        assert_eq!(&bytes[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(bytes.len(), 19 + 2);
        assert_eq!(&bytes[19..], &[0xff, 0xff]);
        assert!(copy.is_empty());
    }
}
