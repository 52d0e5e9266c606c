//! Typed values and the checked conversions between them.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::Timestamp;

/// A value as it travels through the pipeline. Strings and arrays are reference counted so
/// that cloning a sample for several sinks never copies its payload.
#[derive(Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(Arc<str>),
    Timestamp(Timestamp),
    Array(Arc<[Value]>),
}

impl Clone for Value {
    fn clone(&self) -> Value {
        match self {
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::UInt(u) => Value::UInt(*u),
            Value::Float(x) => Value::Float(*x),
            Value::String(s) => Value::String(Arc::clone(s)),
            Value::Timestamp(t) => Value::Timestamp(*t),
            Value::Array(a) => Value::Array(Arc::clone(a)),
        }
    }

    /// In place, for the caches that keep each tag's last value: a number over a number of
    /// its type is copied, without the clone and the drop the default does (41
    /// instructions a call under callgrind, twice per sample on the pipeline's path).
    #[inline]
    fn clone_from(&mut self, source: &Value) {
        match (self, source) {
            (Value::Float(to), Value::Float(from)) => *to = *from,
            (Value::Int(to), Value::Int(from)) => *to = *from,
            (Value::UInt(to), Value::UInt(from)) => *to = *from,
            (Value::Bool(to), Value::Bool(from)) => *to = *from,
            (Value::Timestamp(to), Value::Timestamp(from)) => *to = *from,
            (to, from) => replace(to, from),
        }
    }
}

/// `to.clone_from(from)`, inlined: as a call (`Option::clone_from`) it was about 30
/// instructions a sample in each latest-value cache.
#[inline]
pub fn clone_option_from(to: &mut Option<Value>, from: &Option<Value>) {
    match (to, from) {
        (Some(to), Some(from)) => to.clone_from(from),
        (to, from) => *to = from.clone(),
    }
}

/// `clone_from` of a string, an array or another type: out of line, so the scalar cases
/// above stay small enough to be inlined into the caches' updates.
#[inline(never)]
fn replace(to: &mut Value, from: &Value) {
    *to = from.clone();
}

/// The scalar types a model attribute (or an array element) can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarType {
    Bool,
    Int,
    UInt,
    Float,
    String,
    Timestamp,
}

/// The declared type of a model attribute: a scalar or an array of one scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Scalar(ScalarType),
    Array(ScalarType),
}

/// Why a value could not be converted to the requested type.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConversionError {
    #[error("{value} does not fit in {target}")]
    OutOfRange { value: String, target: &'static str },
    #[error("cannot convert {from} to {target}")]
    Incompatible {
        from: &'static str,
        target: &'static str,
    },
    #[error("cannot parse {text:?} as {target}")]
    Unparsable { text: String, target: &'static str },
}

impl ScalarType {
    pub const ALL: [ScalarType; 6] = [
        ScalarType::Bool,
        ScalarType::Int,
        ScalarType::UInt,
        ScalarType::Float,
        ScalarType::String,
        ScalarType::Timestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScalarType::Bool => "bool",
            ScalarType::Int => "int",
            ScalarType::UInt => "uint",
            ScalarType::Float => "float",
            ScalarType::String => "string",
            ScalarType::Timestamp => "timestamp",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, ScalarType::Int | ScalarType::UInt | ScalarType::Float)
    }
}

impl DataType {
    /// Parses the config spelling: `float`, `int`, ..., or `float[]` for arrays.
    pub fn parse(text: &str) -> Option<DataType> {
        let (base, array) = match text.strip_suffix("[]") {
            Some(base) => (base, true),
            None => (text, false),
        };
        let scalar = ScalarType::ALL.into_iter().find(|s| s.name() == base)?;
        Some(if array {
            DataType::Array(scalar)
        } else {
            DataType::Scalar(scalar)
        })
    }

    pub fn scalar(self) -> ScalarType {
        match self {
            DataType::Scalar(s) | DataType::Array(s) => s,
        }
    }

    pub fn is_numeric_scalar(self) -> bool {
        matches!(self, DataType::Scalar(s) if s.is_numeric())
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Scalar(s) => f.write_str(s.name()),
            DataType::Array(s) => write!(f, "{}[]", s.name()),
        }
    }
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Array(_) => "array",
        }
    }

    /// True if the value already has type `t` (arrays: checks every element).
    #[inline]
    pub fn is_of(&self, t: DataType) -> bool {
        match (self, t) {
            (Value::Array(items), DataType::Array(s)) => items.iter().all(|v| v.is_of(DataType::Scalar(s))),
            (Value::Bool(_), DataType::Scalar(ScalarType::Bool))
            | (Value::Int(_), DataType::Scalar(ScalarType::Int))
            | (Value::UInt(_), DataType::Scalar(ScalarType::UInt))
            | (Value::Float(_), DataType::Scalar(ScalarType::Float))
            | (Value::String(_), DataType::Scalar(ScalarType::String))
            | (Value::Timestamp(_), DataType::Scalar(ScalarType::Timestamp)) => true,
            _ => false,
        }
    }

    /// The value as a float, for numeric and boolean values.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The value as an unsigned integer, when it is a non-negative whole number.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Bool(b) => Some(u64::from(b)),
            Value::Int(i) => u64::try_from(i).ok(),
            Value::UInt(u) => Some(u),
            Value::Float(f) if f.fract() == 0.0 && (0.0..1.8446744073709552e19).contains(&f) => {
                Some(f as u64)
            }
            _ => None,
        }
    }

    /// The value as a signed integer, when it is a whole number in range.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Bool(b) => Some(i64::from(b)),
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            Value::Float(f)
                if f.fract() == 0.0 && (-9.223372036854776e18..9.223372036854776e18).contains(&f) =>
            {
                Some(f as i64)
            }
            _ => None,
        }
    }

    /// Converts to `target`, failing rather than wrapping, truncating or guessing.
    ///
    /// Rules: integers convert to floats; floats convert to integers when finite and in
    /// range, rounded half away from zero (scaled raw counts are rarely exact); booleans
    /// convert to and from 0/1; strings are parsed into numbers and booleans
    /// (`true`/`false`/`1`/`0`); nothing converts implicitly into a string except a string.
    pub fn convert(&self, target: DataType) -> Result<Value, ConversionError> {
        match target {
            DataType::Scalar(s) => self.convert_scalar(s),
            DataType::Array(s) => match self {
                Value::Array(items) => {
                    let converted: Result<Vec<Value>, _> =
                        items.iter().map(|v| v.convert_scalar(s)).collect();
                    Ok(Value::Array(converted?.into()))
                }
                other => Err(ConversionError::Incompatible {
                    from: other.type_name(),
                    target: "array",
                }),
            },
        }
    }

    fn convert_scalar(&self, target: ScalarType) -> Result<Value, ConversionError> {
        let incompatible = || ConversionError::Incompatible {
            from: self.type_name(),
            target: target.name(),
        };
        let out_of_range = || ConversionError::OutOfRange {
            value: self.to_string(),
            target: target.name(),
        };
        match (self, target) {
            (Value::String(text), ScalarType::String) => Ok(Value::String(text.clone())),
            (Value::String(text), _) => parse_scalar(text, target),
            (Value::Array(_), _) | (_, ScalarType::String) => Err(incompatible()),
            (Value::Timestamp(t), ScalarType::Timestamp) => Ok(Value::Timestamp(*t)),
            (Value::Timestamp(_), _) | (_, ScalarType::Timestamp) => Err(incompatible()),
            (_, ScalarType::Float) => self.as_f64().map(Value::Float).ok_or_else(incompatible),
            (Value::Float(f), ScalarType::Int) => round_to_i64(*f).map(Value::Int).ok_or_else(out_of_range),
            (Value::Float(f), ScalarType::UInt) => round_to_u64(*f).map(Value::UInt).ok_or_else(out_of_range),
            (_, ScalarType::Int) => self.as_i64().map(Value::Int).ok_or_else(out_of_range),
            (_, ScalarType::UInt) => self.as_u64().map(Value::UInt).ok_or_else(out_of_range),
            (Value::Bool(b), ScalarType::Bool) => Ok(Value::Bool(*b)),
            (Value::Int(_) | Value::UInt(_), ScalarType::Bool) => match self.as_u64() {
                Some(0) => Ok(Value::Bool(false)),
                Some(1) => Ok(Value::Bool(true)),
                _ => Err(out_of_range()),
            },
            (Value::Float(_), ScalarType::Bool) => Err(incompatible()),
        }
    }
}

fn round_to_i64(f: f64) -> Option<i64> {
    let r = f.round();
    (r.is_finite() && (-9.223372036854776e18..9.223372036854776e18).contains(&r)).then_some(r as i64)
}

fn round_to_u64(f: f64) -> Option<u64> {
    let r = f.round();
    (r.is_finite() && (0.0..1.8446744073709552e19).contains(&r)).then_some(r as u64)
}

fn parse_scalar(text: &str, target: ScalarType) -> Result<Value, ConversionError> {
    let trimmed = text.trim();
    let parsed = match target {
        ScalarType::Bool => match trimmed {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        ScalarType::Int => trimmed.parse().ok().map(Value::Int),
        ScalarType::UInt => trimmed.parse().ok().map(Value::UInt),
        ScalarType::Float => trimmed.parse().ok().map(Value::Float),
        ScalarType::Timestamp => Timestamp::parse_rfc3339(trimmed).map(Value::Timestamp),
        ScalarType::String => Some(Value::String(text.into())),
    };
    parsed.ok_or_else(|| ConversionError::Unparsable {
        text: text.chars().take(64).collect(),
        target: target.name(),
    })
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Timestamp(t) => write!(f, "{t}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// JSON form: the natural JSON type. Non-finite floats (NaN, ±inf) have no JSON number, so
/// they are written as the strings `"NaN"`, `"inf"` and `"-inf"`.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Float(x) if x.is_nan() => serializer.serialize_str("NaN"),
            Value::Float(x) if x.is_infinite() => {
                serializer.serialize_str(if *x > 0.0 { "inf" } else { "-inf" })
            }
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::String(s) => serializer.serialize_str(s),
            Value::Timestamp(t) => t.serialize(serializer),
            Value::Array(items) => serializer.collect_seq(items.iter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cloned_in_place_equals_the_source_whatever_it_held_and_leaks_no_reference() {
        let text: Arc<str> = Arc::from("running");
        let array: Arc<[Value]> = Arc::from(vec![Value::Int(1), Value::Int(2)]);
        let values = [
            Value::Bool(true),
            Value::Int(-7),
            Value::UInt(7),
            Value::Float(2.5),
            Value::String(text.clone()),
            Value::Timestamp(crate::Timestamp::from_unix_nanos(1_700_000_000_000_000_000)),
            Value::Array(array.clone()),
        ];
        // Each of another value of its type: a copy that did nothing would show.
        let others = [
            Value::Bool(false),
            Value::Int(42),
            Value::UInt(42),
            Value::Float(-0.5),
            Value::String(Arc::from("stopped")),
            Value::Timestamp(crate::Timestamp::from_unix_nanos(1)),
            Value::Array(Arc::from(vec![Value::Float(1.0)])),
        ];
        for to in values.iter().chain(&others) {
            for from in &values {
                let mut held = to.clone();
                held.clone_from(from);
                assert_eq!(&held, from, "{to:?} <- {from:?}");
                let mut option = Some(to.clone());
                clone_option_from(&mut option, &Some(from.clone()));
                assert_eq!(option.as_ref(), Some(from));
                clone_option_from(&mut option, &None);
                assert_eq!(option, None);
                clone_option_from(&mut option, &Some(from.clone()));
                assert_eq!(option.as_ref(), Some(from));
            }
        }
        // Every clone made above is dropped: only `values` and the two handles are left.
        assert_eq!(Arc::strong_count(&text), 2);
        assert_eq!(Arc::strong_count(&array), 2);
    }

    #[test]
    fn float_to_int_rounds_half_away_from_zero_and_rejects_out_of_range() {
        let int = DataType::Scalar(ScalarType::Int);
        assert_eq!(Value::Float(2.5).convert(int), Ok(Value::Int(3)));
        assert_eq!(Value::Float(-2.5).convert(int), Ok(Value::Int(-3)));
        assert!(Value::Float(f64::NAN).convert(int).is_err());
        assert!(Value::Float(1e300).convert(int).is_err());
        let uint = DataType::Scalar(ScalarType::UInt);
        assert!(Value::Int(-1).convert(uint).is_err());
        assert_eq!(Value::Int(7).convert(uint), Ok(Value::UInt(7)));
    }

    #[test]
    fn numbers_never_become_strings_implicitly() {
        let string = DataType::Scalar(ScalarType::String);
        assert!(matches!(
            Value::Int(1).convert(string),
            Err(ConversionError::Incompatible { .. })
        ));
    }

    #[test]
    fn strings_parse_into_numbers_or_fail_with_the_text() {
        let float = DataType::Scalar(ScalarType::Float);
        assert_eq!(
            Value::String(" 4.5 ".into()).convert(float),
            Ok(Value::Float(4.5))
        );
        let err = Value::String("abc".into()).convert(float).unwrap_err();
        assert!(err.to_string().contains("abc"));
    }

    #[test]
    fn ints_become_bools_only_from_zero_or_one() {
        let b = DataType::Scalar(ScalarType::Bool);
        assert_eq!(Value::UInt(1).convert(b), Ok(Value::Bool(true)));
        assert!(Value::UInt(2).convert(b).is_err());
    }

    #[test]
    fn arrays_convert_element_wise() {
        let arr = Value::Array(vec![Value::Int(1), Value::Int(2)].into());
        assert_eq!(
            arr.convert(DataType::Array(ScalarType::Float)),
            Ok(Value::Array(vec![Value::Float(1.0), Value::Float(2.0)].into()))
        );
    }

    #[test]
    fn is_of_matches_only_the_exact_type() {
        assert!(Value::Float(1.0).is_of(DataType::Scalar(ScalarType::Float)));
        assert!(!Value::Int(1).is_of(DataType::Scalar(ScalarType::Float)));
        let arr = Value::Array(vec![Value::Int(1), Value::UInt(2)].into());
        assert!(!arr.is_of(DataType::Array(ScalarType::Int)));
    }

    #[test]
    fn data_type_parses_config_spelling() {
        assert_eq!(
            DataType::parse("float[]"),
            Some(DataType::Array(ScalarType::Float))
        );
        assert_eq!(DataType::parse("uint"), Some(DataType::Scalar(ScalarType::UInt)));
        assert_eq!(DataType::parse("double"), None);
    }

    #[test]
    fn non_finite_floats_serialize_as_strings() {
        let json = serde_json::to_string(&Value::Float(f64::NAN)).unwrap();
        assert_eq!(json, "\"NaN\"");
    }
}
