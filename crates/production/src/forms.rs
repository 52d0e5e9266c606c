//! Operator forms: a submission (JSON field → value) checked against its `[forms.NAME]`
//! spec. Every bad field is reported at once, each by name, with the unit where there is
//! one; a submission with any error records nothing.

use backplane_config::production::{FieldSpec, FieldType, FormSpec};
use serde::Serialize;
use serde_json::{Map, Value};

/// The longest text accepted in a `string` field, in characters.
pub const MAX_TEXT_LEN: usize = 2000;

/// One problem with one field of a submission (or with the submission itself: `form`,
/// `asset`, `user`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// `7.2 %`, `3`, `0.5 bar`: a number with the field's unit.
fn with_unit(x: f64, field: &FieldSpec) -> String {
    match &field.unit {
        Some(unit) if unit.symbol() == "%" => format!("{x} %"),
        Some(unit) => format!("{x} {unit}"),
        None => format!("{x}"),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(field: &FieldSpec) -> String {
    match field.field_type {
        FieldType::Float => match &field.unit {
            Some(unit) => format!("a number in {unit}"),
            None => "a number".to_owned(),
        },
        FieldType::Int => match &field.unit {
            Some(unit) => format!("a whole number in {unit}"),
            None => "a whole number".to_owned(),
        },
        FieldType::Bool => "true or false".to_owned(),
        FieldType::String => "text".to_owned(),
        FieldType::Choice => format!("one of {}", field.choices.join(", ")),
    }
}

/// What is wrong with one present value; each names the field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
enum ValueProblem {
    /// `expected` as [`expected`] words it, `found` as [`json_type`] does.
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: String,
        found: &'static str,
    },
    /// `value` and `max` with the field's unit (see [`with_unit`]).
    #[error("`{field}` is {value}, outside the range {min} to {max}")]
    OutOfRange {
        field: String,
        value: String,
        min: f64,
        max: String,
    },
    /// A number with a fraction, or too large to be exact, in an `int` field.
    #[error("`{field}` must be a whole number, found {found}")]
    NotWhole { field: String, found: f64 },
    /// Text over [`MAX_TEXT_LEN`] characters.
    #[error("`{field}` is longer than {MAX_TEXT_LEN} characters")]
    TooLong { field: String },
    /// Text that is not one of a `choice` field's choices.
    #[error("`{field}` must be one of {}, found \"{found}\"", choices.join(", "))]
    NotAChoice {
        field: String,
        choices: Vec<String>,
        found: String,
    },
}

/// Checks one present value; the normalized value or what is wrong with it.
fn check(field: &FieldSpec, value: &Value) -> Result<Value, ValueProblem> {
    let wrong = || ValueProblem::WrongType {
        field: field.name.clone(),
        expected: expected(field),
        found: json_type(value),
    };
    let in_range = |x: f64| -> Result<(), ValueProblem> {
        match field.range {
            Some([min, max]) if x < min || x > max => Err(ValueProblem::OutOfRange {
                field: field.name.clone(),
                value: with_unit(x, field),
                min,
                max: with_unit(max, field),
            }),
            _ => Ok(()),
        }
    };
    match field.field_type {
        FieldType::Float => {
            let x = value.as_f64().filter(|x| x.is_finite()).ok_or_else(wrong)?;
            in_range(x)?;
            Ok(value.clone())
        }
        FieldType::Int => {
            let Some(x) = value.as_f64() else {
                return Err(wrong());
            };
            let whole = value
                .as_i64()
                .or_else(|| (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64));
            let Some(i) = whole else {
                return Err(ValueProblem::NotWhole {
                    field: field.name.clone(),
                    found: x,
                });
            };
            in_range(i as f64)?;
            Ok(Value::from(i))
        }
        FieldType::Bool => value.as_bool().map(Value::from).ok_or_else(wrong),
        FieldType::String => {
            let text = value.as_str().ok_or_else(wrong)?;
            if text.chars().count() > MAX_TEXT_LEN {
                return Err(ValueProblem::TooLong {
                    field: field.name.clone(),
                });
            }
            Ok(value.clone())
        }
        FieldType::Choice => match value.as_str() {
            Some(text) if field.choices.iter().any(|c| c == text) => Ok(value.clone()),
            Some(text) => Err(ValueProblem::NotAChoice {
                field: field.name.clone(),
                choices: field.choices.clone(),
                found: text.to_owned(),
            }),
            None => Err(wrong()),
        },
    }
}

/// Validates `values` against `form`. Returns the values to record (in the form's field
/// order; `int` fields as integers; absent optional fields left out), or every problem:
/// unknown fields, missing required ones, wrong types, values out of range and choices
/// not offered. A `null` value counts as absent.
pub fn validate(form: &FormSpec, values: &Map<String, Value>) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Map::new();
    for field in &form.fields {
        match values.get(&field.name) {
            None | Some(Value::Null) => {
                if field.required {
                    errors.push(FieldError::new(
                        &field.name,
                        format!("`{}` is required: {}", field.name, expected(field)),
                    ));
                }
            }
            Some(value) => match check(field, value) {
                Ok(value) => {
                    out.insert(field.name.clone(), value);
                }
                Err(problem) => errors.push(FieldError::new(&field.name, problem.to_string())),
            },
        }
    }
    for name in values.keys() {
        if form.field(name).is_some() {
            continue;
        }
        let names: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
        let close = names.iter().find(|n| {
            n.len().abs_diff(name.len()) <= 2
                && (n.starts_with(name.as_str()) || name.starts_with(**n) || n.eq_ignore_ascii_case(name))
        });
        let message = match close {
            Some(n) => format!(
                "unknown field `{name}` in form `{}`; did you mean `{n}`?",
                form.name
            ),
            None => format!(
                "unknown field `{name}` in form `{}`; its fields are {}",
                form.name,
                names.join(", ")
            ),
        };
        errors.push(FieldError::new(name, message));
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}
