//! Samples as table rows, without I/O: which value column a value goes to, the quality
//! code, timestamps as PostgreSQL sees them, and a context as the key of its row.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backplane_model::{Context, ContextField, Quality, Timestamp, Value};

/// A value split over the typed columns of `samples` (at most one is set, except for
/// unsigned integers above `i64::MAX`, which go to `value_double` and `value_text`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueColumns {
    pub double: Option<f64>,
    pub bigint: Option<i64>,
    pub boolean: Option<bool>,
    pub text: Option<String>,
    pub json: Option<serde_json::Value>,
}

impl ValueColumns {
    pub fn of(value: Option<&Value>) -> ValueColumns {
        let mut c = ValueColumns::default();
        match value {
            None => {}
            Some(Value::Bool(b)) => c.boolean = Some(*b),
            Some(Value::Int(i)) => c.bigint = Some(*i),
            Some(Value::UInt(u)) => match i64::try_from(*u) {
                Ok(i) => c.bigint = Some(i),
                Err(_) => {
                    c.double = Some(*u as f64);
                    c.text = Some(u.to_string());
                }
            },
            Some(Value::Float(f)) => c.double = Some(*f),
            Some(Value::String(s)) => c.text = Some(s.to_string()),
            Some(Value::Timestamp(t)) => c.text = Some(t.to_rfc3339()),
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
                Value::String(s) => serde_json::Value::from(&**s),
                Value::Timestamp(t) => serde_json::Value::from(t.to_rfc3339()),
                Value::Array(inner) => json_array(inner),
            })
            .collect(),
    )
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
    fn quality_and_time_and_context_convert() {
        assert_eq!(quality_code(Quality::Bad(BadReason::CommFailure)), 2);
        let t = system_time(Timestamp::from_unix_nanos(1_500_999));
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::from_micros(1500));
        assert!(context_key(&Context::default()).is_none());
        let c = Context {
            shift: Some("A".into()),
            ..Context::default()
        };
        assert_eq!(context_key(&c).unwrap()[4].as_deref(), Some("A"));
    }
}
