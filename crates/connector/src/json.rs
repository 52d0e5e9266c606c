//! JSON documents as readings, shared by the sources that read JSON (`mqtt`, `http`): a
//! JSON value as a reading's [`Value`], a JSON time (RFC 3339 text or a number since the
//! epoch), and the words and excerpts their error messages use.

use backplane_model::{Timestamp, Value};

/// A JSON value as a reading's value: scalars and arrays of scalars; `None` for `null`,
/// objects and nested arrays. Numbers become `uint`, `int` or `float`, in that order.
pub fn json_value(v: &serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
        serde_json::Value::Number(n) => Some(if let Some(u) = n.as_u64() {
            Value::UInt(u)
        } else if let Some(i) = n.as_i64() {
            Value::Int(i)
        } else {
            Value::Float(n.as_f64()?)
        }),
        serde_json::Value::String(s) => Some(Value::String(s.as_str().into())),
        serde_json::Value::Array(items) => {
            let values: Option<Vec<Value>> = items
                .iter()
                .map(|i| if i.is_array() { None } else { json_value(i) })
                .collect();
            values.map(|v| Value::Array(v.into()))
        }
        serde_json::Value::Null | serde_json::Value::Object(_) => None,
    }
}

/// How numbers in a time field count time since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    /// `s`, `ms`, `us` or `ns`.
    pub fn parse(text: &str) -> Option<EpochUnit> {
        Some(match text {
            "s" => EpochUnit::Seconds,
            "ms" => EpochUnit::Millis,
            "us" => EpochUnit::Micros,
            "ns" => EpochUnit::Nanos,
            _ => return None,
        })
    }

    fn nanos(self) -> i64 {
        match self {
            EpochUnit::Seconds => 1_000_000_000,
            EpochUnit::Millis => 1_000_000,
            EpochUnit::Micros => 1_000,
            EpochUnit::Nanos => 1,
        }
    }
}

/// A JSON time: RFC 3339 text, or a number of `unit` since the epoch (integers exactly, to
/// the nanosecond). `None` when it is neither, or outside what a timestamp holds (the
/// years 1677 to 2262).
pub fn json_time(v: &serde_json::Value, unit: EpochUnit) -> Option<Timestamp> {
    if let Some(text) = v.as_str() {
        return Timestamp::parse_rfc3339(text);
    }
    if let Some(n) = v.as_i64() {
        // Integers exactly: a float would round nanoseconds off.
        return n.checked_mul(unit.nanos()).map(Timestamp::from_unix_nanos);
    }
    let nanos = v.as_f64()? * unit.nanos() as f64;
    (nanos.is_finite() && nanos.abs() < 9.2e18).then(|| Timestamp::from_unix_nanos(nanos as i64))
}

/// What a JSON value is, for messages: "a number", "text", "an object", ...
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A JSON value as text for a log line, at most 64 characters.
pub fn excerpt(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_numbers_text_and_arrays_become_values() {
        assert_eq!(json_value(&json!(3)), Some(Value::UInt(3)));
        assert_eq!(json_value(&json!(-3)), Some(Value::Int(-3)));
        assert_eq!(json_value(&json!(2.5)), Some(Value::Float(2.5)));
        assert_eq!(
            json_value(&json!([true])),
            Some(Value::Array(vec![Value::Bool(true)].into()))
        );
        assert_eq!(json_value(&json!({"a": 1})), None);
        assert_eq!(json_value(&json!([[1]])), None);
    }

    #[test]
    fn times_are_rfc_3339_or_exact_epoch_numbers() {
        assert_eq!(
            json_time(&json!(1_700_000_000_123i64), EpochUnit::Millis),
            Some(Timestamp::from_unix_nanos(1_700_000_000_123_000_000))
        );
        assert!(json_time(&json!("2026-12-05T06:00:00+01:00"), EpochUnit::Millis).is_some());
        assert_eq!(json_time(&json!("noon"), EpochUnit::Millis), None);
        assert_eq!(json_time(&json!(1e300), EpochUnit::Seconds), None);
    }
}
