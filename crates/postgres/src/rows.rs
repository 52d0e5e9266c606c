//! Samples and events as table rows, without I/O: which value column a value goes to,
//! the quality code, timestamps as PostgreSQL sees them, a context as the key of its row,
//! and the rows themselves (borrowed for COPY, typed parameters for INSERT).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backplane_model::{Context, ContextField, Quality, Sample, Timestamp, Value};
use tokio_postgres::types::ToSql;

/// A value split over the typed columns of `samples` (at most one is set, except for
/// unsigned integers above `i64::MAX`, which go to `value_double` and `value_text`).
/// Strings are borrowed from the value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueColumns<'a> {
    pub double: Option<f64>,
    pub bigint: Option<i64>,
    pub boolean: Option<bool>,
    pub text: Option<Cow<'a, str>>,
    pub json: Option<serde_json::Value>,
}

impl<'a> ValueColumns<'a> {
    pub fn of(value: Option<&'a Value>) -> ValueColumns<'a> {
        let mut c = ValueColumns::default();
        match value {
            None => {}
            Some(Value::Bool(b)) => c.boolean = Some(*b),
            Some(Value::Int(i)) => c.bigint = Some(*i),
            Some(Value::UInt(u)) => match i64::try_from(*u) {
                Ok(i) => c.bigint = Some(i),
                Err(_) => {
                    c.double = Some(*u as f64);
                    c.text = Some(Cow::Owned(u.to_string()));
                }
            },
            Some(Value::Float(f)) => c.double = Some(*f),
            Some(Value::String(s)) => c.text = Some(text(s)),
            Some(Value::Timestamp(t)) => c.text = Some(Cow::Owned(t.to_rfc3339())),
            Some(Value::Array(items)) => c.json = Some(json_array(items)),
        }
        c
    }
}

fn json_array(items: &[Value]) -> serde_json::Value {
    serde_json::Value::Array(
        items
            .iter()
            .map(|v| match v {
                Value::Bool(b) => serde_json::Value::from(*b),
                Value::Int(i) => serde_json::Value::from(*i),
                Value::UInt(u) => serde_json::Value::from(*u),
                Value::Float(f) => serde_json::Number::from_f64(*f)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::String(s) => serde_json::Value::from(text(s).into_owned()),
                Value::Timestamp(t) => serde_json::Value::from(t.to_rfc3339()),
                Value::Array(inner) => json_array(inner),
            })
            .collect(),
    )
}

/// `s` as PostgreSQL can store it: `text` and `jsonb` cannot hold U+0000, so each NUL
/// becomes U+FFFD. Otherwise one such string would fail its flush at every retry and
/// stop the sink for good.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`text`] for every string and key of a JSON value (event payloads).
pub fn json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => *s = text(s).into_owned(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(json),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (text(&k).into_owned(), v))
                    .collect();
            }
            map.values_mut().for_each(json);
        }
        _ => {}
    }
}

/// `samples.quality`: 0 good, 1 uncertain, 2 bad.
pub fn quality_code(q: Quality) -> i16 {
    match q {
        Quality::Good => 0,
        Quality::Uncertain(_) => 1,
        Quality::Bad(_) => 2,
    }
}

/// A timestamp as PostgreSQL stores it (microseconds; the nanoseconds are cut).
pub fn system_time(t: Timestamp) -> SystemTime {
    let nanos = t.unix_nanos();
    let micros = Duration::from_micros(nanos.unsigned_abs() / 1000);
    if nanos >= 0 {
        UNIX_EPOCH + micros
    } else {
        UNIX_EPOCH.checked_sub(micros).unwrap_or(UNIX_EPOCH)
    }
}

/// Microseconds since 2000-01-01 UTC: a `timestamptz` on the wire. The same value as
/// [`system_time`] sent through tokio-postgres (nanoseconds cut toward zero).
pub fn pg_micros(t: Timestamp) -> i64 {
    const UNIX_TO_2000_MICROS: i64 = 946_684_800_000_000;
    t.unix_nanos() / 1000 - UNIX_TO_2000_MICROS
}

/// A stream sequence number as `bigint` (the log's numbers stay far below `i64::MAX`).
pub fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The fields of a context in column order: the key of its `contexts` row.
pub type ContextKey = [Option<Arc<str>>; 7];

/// `None` for the empty context (`context_id` stays NULL).
pub fn context_key(c: &Context) -> Option<ContextKey> {
    if c.is_empty() {
        return None;
    }
    Some(ContextField::ALL.map(|f| c.get(f).cloned()))
}

/// One row of `samples`, borrowing its sample (what the COPY encoder reads).
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    pub sample: &'a Sample,
    pub tag_id: i32,
    pub context_id: Option<i64>,
    pub seq: i64,
}

/// One row of `samples` as typed parameters (`method = "insert"`).
#[derive(Debug)]
pub struct SampleRow<'a> {
    pub time: SystemTime,
    pub source_time: Option<SystemTime>,
    pub tag_id: i32,
    pub double: Option<f64>,
    pub bigint: Option<i64>,
    pub boolean: Option<bool>,
    pub text: Option<Cow<'a, str>>,
    pub json: Option<serde_json::Value>,
    pub quality: i16,
    pub quality_reason: Option<&'static str>,
    pub context_id: Option<i64>,
    pub gateway_id: i32,
    pub seq: i64,
}

impl<'a> SampleRow<'a> {
    pub fn of(row: &SampleRef<'a>, gateway_id: i32) -> SampleRow<'a> {
        let s = row.sample;
        let v = ValueColumns::of(s.value.as_ref());
        SampleRow {
            time: system_time(s.gateway_time),
            source_time: s.source_time.map(system_time),
            tag_id: row.tag_id,
            double: v.double,
            bigint: v.bigint,
            boolean: v.boolean,
            text: v.text,
            json: v.json,
            quality: quality_code(s.quality),
            quality_reason: s.quality.reason(),
            context_id: row.context_id,
            gateway_id,
            seq: row.seq,
        }
    }

    pub fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.time,
            &self.source_time,
            &self.tag_id,
            &self.double,
            &self.bigint,
            &self.boolean,
            &self.text,
            &self.json,
            &self.quality,
            &self.quality_reason,
            &self.context_id,
            &self.gateway_id,
            &self.seq,
        ]
    }
}

/// One row of `events`: the event's JSON is the payload.
#[derive(Debug)]
pub struct EventRow {
    pub time: Timestamp,
    pub asset: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub context_id: Option<i64>,
    pub gateway_id: i32,
    pub seq: i64,
}

impl EventRow {
    /// The typed parameters; `time` is [`system_time`] of `self.time`, kept by the caller.
    pub fn params<'a>(&'a self, time: &'a SystemTime) -> [&'a (dyn ToSql + Sync); 7] {
        [
            time,
            &self.asset,
            &self.kind,
            &self.payload,
            &self.context_id,
            &self.gateway_id,
            &self.seq,
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use backplane_model::quality::BadReason;

    #[test]
    fn each_value_type_lands_in_its_own_column() {
        assert_eq!(ValueColumns::of(Some(&Value::Float(1.5))).double, Some(1.5));
        assert_eq!(ValueColumns::of(Some(&Value::Int(-3))).bigint, Some(-3));
        assert_eq!(ValueColumns::of(Some(&Value::UInt(7))).bigint, Some(7));
        let big = ValueColumns::of(Some(&Value::UInt(u64::MAX)));
        assert_eq!(big.text.as_deref(), Some("18446744073709551615"));
        assert!(big.bigint.is_none());
        assert_eq!(ValueColumns::of(Some(&Value::Bool(true))).boolean, Some(true));
        assert_eq!(
            ValueColumns::of(Some(&Value::String("run".into())))
                .text
                .as_deref(),
            Some("run")
        );
        let arr = Value::Array(vec![Value::Float(1.0), Value::Float(f64::NAN)].into());
        assert_eq!(
            ValueColumns::of(Some(&arr)).json,
            Some(serde_json::json!([1.0, null]))
        );
        assert_eq!(ValueColumns::of(None), ValueColumns::default());
    }

    #[test]
    fn nul_characters_become_replacement_characters() {
        assert_eq!(
            ValueColumns::of(Some(&Value::String("a\0b".into())))
                .text
                .as_deref(),
            Some("a\u{FFFD}b")
        );
        assert!(matches!(text("plain"), Cow::Borrowed("plain")));
        let arr = Value::Array(vec![Value::String("\0".into())].into());
        assert_eq!(
            ValueColumns::of(Some(&arr)).json,
            Some(serde_json::json!(["\u{FFFD}"]))
        );
        let mut v = serde_json::json!({"a\0": ["x\0", {"k": "\0"}], "n": 1});
        json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}", {"k": "\u{FFFD}"}], "n": 1})
        );
    }

    #[test]
    fn quality_and_time_and_context_convert() {
        assert_eq!(quality_code(Quality::Bad(BadReason::CommFailure)), 2);
        let t = system_time(Timestamp::from_unix_nanos(1_500_999));
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::from_micros(1500));
        assert_eq!(pg_micros(Timestamp::from_unix_nanos(946_684_800_000_001_999)), 1);
        assert_eq!(
            pg_micros(Timestamp::from_unix_nanos(-1_999)),
            -946_684_800_000_001
        );
        assert!(context_key(&Context::default()).is_none());
        let c = Context {
            shift: Some("A".into()),
            ..Context::default()
        };
        assert_eq!(context_key(&c).unwrap()[4].as_deref(), Some("A"));
    }
}
