//! A webhook route's schema: the top-level fields a posted document may carry, each with a
//! type and whether it is required. Every bad field is reported at once, by name (like an
//! operator form); a document with any bad field delivers nothing.

use backplane_connector::json::json_kind;
use backplane_connector::{InboundField, InboundSchema};
use serde_json::{Map, Value};

use crate::select::{EpochUnit, json_time};

/// The longest text accepted in a `string` field, in characters.
pub const MAX_TEXT_LEN: usize = 4096;

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Any finite number.
    Float,
    /// A whole number (i64).
    Int,
    Bool,
    /// Text up to [`MAX_TEXT_LEN`] characters.
    String,
    /// RFC 3339 text or a number of `timestamp_unit` since the epoch.
    Time,
}

impl FieldType {
    pub fn parse(text: &str) -> Option<FieldType> {
        Some(match text {
            "float" => FieldType::Float,
            "int" => FieldType::Int,
            "bool" => FieldType::Bool,
            "string" => FieldType::String,
            "time" => FieldType::Time,
            _ => return None,
        })
    }

    fn expected(self) -> &'static str {
        match self {
            FieldType::Float => "a number",
            FieldType::Int => "a whole number",
            FieldType::Bool => "true or false",
            FieldType::String => "text",
            FieldType::Time => "an RFC 3339 time or a number since the epoch",
        }
    }
}

/// One declared field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    pub field_type: FieldType,
    pub required: bool,
}

/// The schema of one route.
#[derive(Clone, Debug)]
pub struct Schema {
    pub fields: Vec<FieldSpec>,
    pub timestamp_unit: EpochUnit,
}

impl Schema {
    /// What is wrong with one present value, if anything.
    fn problem(&self, field: &FieldSpec, value: &Value) -> Option<String> {
        let name = &field.name;
        let wrong = || {
            Some(format!(
                "`{name}` must be {}, found {}",
                field.field_type.expected(),
                json_kind(value)
            ))
        };
        match field.field_type {
            FieldType::Float => match value.as_f64() {
                Some(x) if x.is_finite() => None,
                _ => wrong(),
            },
            FieldType::Int => match (value.as_i64(), value.as_f64()) {
                (Some(_), _) => None,
                (None, Some(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => None,
                (None, Some(x)) => Some(format!("`{name}` must be a whole number, found {x}")),
                (None, None) => wrong(),
            },
            FieldType::Bool => value.as_bool().map_or_else(wrong, |_| None),
            FieldType::String => match value.as_str() {
                Some(t) if t.chars().count() > MAX_TEXT_LEN => {
                    Some(format!("`{name}` is longer than {MAX_TEXT_LEN} characters"))
                }
                Some(_) => None,
                None => wrong(),
            },
            FieldType::Time => json_time(value, self.timestamp_unit).map_or_else(wrong, |_| None),
        }
    }
}

impl InboundSchema for Schema {
    /// Unknown fields, missing required ones and wrong types, every one; `null` counts as
    /// absent.
    fn check(&self, document: &Map<String, Value>) -> Vec<InboundField> {
        let mut problems = Vec::new();
        let mut push = |field: &str, message: String| {
            problems.push(InboundField {
                field: field.to_owned(),
                message,
            })
        };
        for field in &self.fields {
            match document.get(&field.name) {
                None | Some(Value::Null) if field.required => push(
                    &field.name,
                    format!("`{}` is required: {}", field.name, field.field_type.expected()),
                ),
                None | Some(Value::Null) => {}
                Some(value) => {
                    if let Some(message) = self.problem(field, value) {
                        push(&field.name, message);
                    }
                }
            }
        }
        for name in document.keys() {
            if !self.fields.iter().any(|f| &f.name == name) {
                let names: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
                push(
                    name,
                    format!(
                        "unknown field `{name}`; this route's fields are {}",
                        names.join(", ")
                    ),
                );
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        let field = |name: &str, field_type, required| FieldSpec {
            name: name.into(),
            field_type,
            required,
        };
        Schema {
            fields: vec![
                field("fat", FieldType::Float, true),
                field("count", FieldType::Int, false),
                field("ok", FieldType::Bool, false),
                field("tanker", FieldType::String, true),
                field("at", FieldType::Time, false),
            ],
            timestamp_unit: EpochUnit::Millis,
        }
    }

    fn check(doc: Value) -> Vec<(String, String)> {
        let Value::Object(map) = doc else { return vec![] };
        schema()
            .check(&map)
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect()
    }

    #[test]
    fn a_good_document_has_no_problems() {
        assert!(
            check(
                json!({"fat": 4.1, "count": 3.0, "ok": true, "tanker": "AB-1", "at": "2026-12-05T06:00:00Z"})
            )
            .is_empty()
        );
        assert!(check(json!({"fat": 4, "tanker": "AB-1", "at": null})).is_empty());
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let problems = check(json!({"fat": "high", "count": 2.5, "ok": 1, "at": "noon", "colour": "red"}));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["fat", "count", "ok", "tanker", "at", "colour"]);
        assert_eq!(problems[0].1, "`fat` must be a number, found text");
        assert_eq!(problems[1].1, "`count` must be a whole number, found 2.5");
        assert_eq!(problems[3].1, "`tanker` is required: text");
        assert!(
            problems[5].1.contains("fields are fat, count, ok, tanker, at"),
            "{problems:?}"
        );
    }
}
