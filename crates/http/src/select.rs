//! From one JSON document to readings, without I/O: each address is an RFC 9535 JSONPath
//! ([`Selector`], parsed by `serde_json_path`), the document's time is read at
//! `timestamp_path`. A field that is missing or not a value makes that one reading bad and
//! is named in [`Extracted::problems`]; every other field of the document is delivered.

use backplane_connector::RawReading;
pub use backplane_connector::json::{EpochUnit, json_time};
use backplane_connector::json::{excerpt, json_kind, json_value};
use backplane_model::{BadReason, Quality, Timestamp, UncertainReason, Value};
use serde_json_path::JsonPath;

/// An address: a JSONPath as written and parsed.
#[derive(Clone, Debug)]
pub struct Selector {
    text: String,
    path: JsonPath,
}

impl Selector {
    /// Parses an RFC 9535 JSONPath (`$.a.b`, `$.a[0]`, `$['a b']`, `$.items[*].t`).
    pub fn parse(text: &str) -> Result<Selector, String> {
        if !text.starts_with('$') {
            return Err(format!(
                "`{text}` is not a JSONPath: it must start at the root, `$`"
            ));
        }
        JsonPath::parse(text)
            .map(|path| Selector {
                text: text.to_owned(),
                path,
            })
            .map_err(|e| format!("`{text}` is not a JSONPath: {e}"))
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The nodes this path selects in `document`.
    fn select<'v>(&self, document: &'v serde_json::Value) -> Vec<&'v serde_json::Value> {
        self.path.query(document).all()
    }
}

/// What a missing field means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A polled document should have every field: a missing one is bad and a problem.
    Bad,
    /// A posted document may leave optional fields out: no reading.
    Skip,
}

/// The readings of one document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extracted {
    pub readings: Vec<RawReading>,
    /// One line per bad field, naming its path.
    pub problems: Vec<String>,
    /// The time at `timestamp_path`, as JSON cut to 64 characters, when it was there but
    /// unusable: the good readings are then `uncertain (source_time_invalid)`.
    pub invalid_time: Option<String>,
}

/// The readings of `document` for `selectors` (address `i` is `selectors[i]`).
pub fn extract(
    selectors: &[Selector],
    timestamp: Option<&Selector>,
    unit: EpochUnit,
    missing: Missing,
    document: &serde_json::Value,
) -> Extracted {
    let mut out = Extracted::default();
    let time = timestamp
        .and_then(|t| t.select(document).into_iter().next())
        .filter(|t| !t.is_null());
    let source_time = match time {
        None => None,
        Some(t) => {
            let ts = json_time(t, unit);
            if ts.is_none() {
                out.invalid_time = Some(excerpt(t));
            }
            ts
        }
    };
    for (i, selector) in selectors.iter().enumerate() {
        let address = i as u32;
        let nodes = selector.select(document);
        let value = match nodes.as_slice() {
            [] if missing == Missing::Skip => continue,
            [] => {
                out.problems
                    .push(format!("`{}` selects nothing in the document", selector.text));
                out.readings
                    .push(bad(address, BadReason::ConfigError, source_time));
                continue;
            }
            [one] => json_value(one).ok_or_else(|| match one {
                serde_json::Value::Array(_) => "an array with an object or array inside",
                other => json_kind(other),
            }),
            many => many
                .iter()
                .map(|v| if v.is_array() { None } else { json_value(v) })
                .collect::<Option<Vec<Value>>>()
                .map(|v| Value::Array(v.into()))
                .ok_or("several nodes, not all of them values"),
        };
        match value {
            Ok(value) => out.readings.push(RawReading {
                address,
                value: Some(value),
                quality: if out.invalid_time.is_some() {
                    Quality::Uncertain(UncertainReason::SourceTimeInvalid)
                } else {
                    Quality::Good
                },
                source_time,
            }),
            Err(found) => {
                out.problems
                    .push(format!("`{}` is {found}, not a value", selector.text));
                out.readings
                    .push(bad(address, BadReason::TypeMismatch, source_time));
            }
        }
    }
    out
}

/// Every address bad for `reason` (a document that could not be read at all).
pub fn all_bad(count: usize, reason: BadReason) -> Vec<RawReading> {
    (0..count as u32).map(|a| bad(a, reason, None)).collect()
}

fn bad(address: u32, reason: BadReason, source_time: Option<Timestamp>) -> RawReading {
    RawReading {
        address,
        value: None,
        quality: Quality::Bad(reason),
        source_time,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn selectors(paths: &[&str]) -> Vec<Selector> {
        paths.iter().map(|p| Selector::parse(p).unwrap()).collect()
    }

    #[test]
    fn selectors_are_rfc_9535_paths_from_the_root() {
        assert!(Selector::parse("$.a['b c'][0]").is_ok());
        assert!(Selector::parse("$.items[?@.id == 2].t").is_ok());
        assert!(
            Selector::parse("a.b")
                .unwrap_err()
                .contains("must start at the root")
        );
        assert!(Selector::parse("$.[").is_err());
    }

    #[test]
    fn a_missing_or_object_field_is_bad_and_named_while_the_rest_is_delivered() {
        let doc = json!({"silo": {"level": 71.5, "state": "filling", "valve": {"open": true}},
                         "timestamp": "2026-12-05T06:00:00Z"});
        let s = selectors(&["$.silo.level", "$.silo.temp", "$.silo.valve", "$.silo.state"]);
        let out = extract(
            &s,
            Selector::parse("$.timestamp").ok().as_ref(),
            EpochUnit::Millis,
            Missing::Bad,
            &doc,
        );
        let time = Timestamp::parse_rfc3339("2026-12-05T06:00:00Z");
        assert_eq!(out.readings[0].value, Some(Value::Float(71.5)));
        assert_eq!(out.readings[0].source_time, time);
        assert_eq!(out.readings[1].quality, Quality::Bad(BadReason::ConfigError));
        assert_eq!(out.readings[2].quality, Quality::Bad(BadReason::TypeMismatch));
        assert_eq!(out.readings[3].value, Some(Value::String("filling".into())));
        assert_eq!(
            out.problems,
            [
                "`$.silo.temp` selects nothing in the document",
                "`$.silo.valve` is an object, not a value"
            ]
        );
    }

    #[test]
    fn several_nodes_make_an_array_and_posted_documents_skip_absent_fields() {
        let doc = json!({"items": [{"t": 1}, {"t": 2}]});
        let s = selectors(&["$.items[*].t", "$.absent"]);
        let out = extract(&s, None, EpochUnit::Millis, Missing::Skip, &doc);
        assert_eq!(out.readings.len(), 1);
        assert_eq!(
            out.readings[0].value,
            Some(Value::Array(vec![Value::UInt(1), Value::UInt(2)].into()))
        );
        assert!(out.problems.is_empty());
    }

    #[test]
    fn an_unusable_time_makes_good_readings_uncertain() {
        let doc = json!({"v": 1, "timestamp": "yesterday"});
        let s = selectors(&["$.v"]);
        let out = extract(
            &s,
            Selector::parse("$.timestamp").ok().as_ref(),
            EpochUnit::Millis,
            Missing::Bad,
            &doc,
        );
        assert_eq!(out.invalid_time.as_deref(), Some("\"yesterday\""));
        assert_eq!(
            out.readings[0].quality,
            Quality::Uncertain(UncertainReason::SourceTimeInvalid)
        );
        assert_eq!(
            json_time(&json!(1_700_000_000_123i64), EpochUnit::Millis),
            Some(Timestamp::from_unix_nanos(1_700_000_000_123_000_000))
        );
    }
}
