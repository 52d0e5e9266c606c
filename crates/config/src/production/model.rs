//! `[models.NAME.production]`: how a model's states, counts, ideal rate and reason codes
//! derive from its attributes, and the attribute lookups and map keys they share.

use std::fmt;

use backplane_model::{Attribute, DataType, ScalarType};

use super::counters::{CountsSpec, read_counts};
use super::reasons::{ReasonCodesSpec, ReasonSpec, read_reason_codes};
use super::states::{StateSpec, read_state};
use crate::models::{ModelEntry, unknown_attribute};
use crate::reader::{Item, KeyRef, suggest};

/// `[models.NAME.production]`: how states and counts derive from a model's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProduction {
    pub model: String,
    pub state: Option<StateSpec>,
    pub counts: Option<CountsSpec>,
    /// Used when no running work order gives one.
    pub ideal_rate: Option<Rate>,
    pub reason_codes: Option<ReasonCodesSpec>,
}

/// A raw value as written in a `map`: a label, an integer code or a boolean.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RawKey {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl fmt::Display for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawKey::Text(s) => f.write_str(s),
            RawKey::Int(i) => write!(f, "{i}"),
            RawKey::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A production rate, e.g. `600/min`. Kept per minute, the unit plants quote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_minute: f64,
}

impl Rate {
    /// From pieces per minute; `None` unless finite and above zero.
    pub fn per_minute(per_minute: f64) -> Option<Rate> {
        (per_minute.is_finite() && per_minute > 0.0).then_some(Rate { per_minute })
    }

    /// From pieces per second; `None` unless finite and above zero.
    pub fn per_second(per_second: f64) -> Option<Rate> {
        Rate::per_minute(per_second * 60.0)
    }

    pub fn as_per_minute(self) -> f64 {
        self.per_minute
    }

    pub fn as_per_second(self) -> f64 {
        self.per_minute / 60.0
    }

    /// `"600/min"`, `"10/s"`, `"36000/h"`, optionally naming the item: `"600 bottle/min"`.
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let not_a_rate = || RateError::NotARate {
            text: text.to_owned(),
        };
        let Some((amount, per)) = text.trim().rsplit_once('/') else {
            return Err(not_a_rate());
        };
        let mut words = amount.split_whitespace();
        let number = words.next().unwrap_or("");
        let item = words.next();
        if words.next().is_some() || item.is_some_and(|w| !w.bytes().all(|c| c.is_ascii_lowercase())) {
            return Err(not_a_rate());
        }
        let value: f64 = number.parse().map_err(|_| RateError::NotANumber {
            number: number.to_owned(),
        })?;
        let per_minute = match per.trim() {
            "s" => value * 60.0,
            "min" => value,
            "h" => value / 60.0,
            other => {
                return Err(RateError::UnknownUnit {
                    unit: other.to_owned(),
                });
            }
        };
        Rate::per_minute(per_minute).ok_or(RateError::NotPositive)
    }
}

/// Why a rate such as `"600/min"` could not be read (see [`Rate::parse`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Not `AMOUNT[ ITEM]/UNIT`.
    #[error("`{text}` is not a rate")]
    NotARate { text: String },
    /// The amount before the item and `/`.
    #[error("`{number}` is not a number")]
    NotANumber { number: String },
    /// A time unit other than s, min and h.
    #[error("unknown time unit `{unit}` (use s, min or h)")]
    UnknownUnit { unit: String },
    /// Zero, negative or not finite.
    #[error("a rate must be above zero")]
    NotPositive,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/min", self.as_per_minute())
    }
}

pub(super) fn read_model_production(
    entry: &ModelEntry,
    item: &Item<'_>,
    reasons: &[ReasonSpec],
) -> Option<ModelProduction> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let model = &entry.model;
    let attribute = Attributes(entry);
    let state = t.optional_item("state").and_then(|item| {
        let spec = read_state(&item, attribute);
        ok &= spec.is_some();
        spec
    });
    let counts = t.optional_item("counts").and_then(|item| {
        let spec = read_counts(&item, attribute);
        ok &= spec.is_some();
        spec
    });
    let ideal_rate = t.optional_item("ideal_rate").and_then(|item| {
        let text = item.expect_str()?;
        match Rate::parse(text) {
            Ok(rate) => Some(rate),
            Err(reason) => {
                item.error(
                    format!("invalid ideal rate `{text}`: {reason}"),
                    Some("write pieces per time: \"600/min\", \"10/s\" or \"36000/h\"".to_owned()),
                );
                ok = false;
                None
            }
        }
    });
    let reason_codes = t.optional_item("reason_codes").and_then(|item| {
        let spec = read_reason_codes(&item, attribute, reasons);
        ok &= spec.is_some();
        spec
    });
    if ideal_rate.is_some() && counts.is_none() && t.has("ideal_rate") && !t.has("counts") {
        t.error(
            "ideal_rate",
            "`ideal_rate` without `counts`: performance needs counted pieces",
            Some("add `counts = { good = \"...\" }`, or remove `ideal_rate`".to_owned()),
        );
        ok = false;
    }
    t.finish();
    ok.then(|| ModelProduction {
        model: model.name.clone(),
        state,
        counts,
        ideal_rate,
        reason_codes,
    })
}

/// Looks up the attributes a production section names, reporting unknown ones and ones
/// of the wrong type.
#[derive(Clone, Copy)]
pub(super) struct Attributes<'m>(&'m ModelEntry);

impl<'m> Attributes<'m> {
    pub(super) fn get(
        self,
        item: &Item<'_>,
        purpose: &str,
        accepts: fn(DataType) -> bool,
        wanted: &str,
    ) -> Option<&'m Attribute> {
        let model = &self.0.model;
        let name = item.expect_str()?;
        if self.0.broken.contains(name) {
            return None;
        }
        let Some(attribute) = model.attribute(name) else {
            let (message, hint) = unknown_attribute(name, model);
            item.error(message, hint);
            return None;
        };
        if !accepts(attribute.data_type) {
            item.error(
                format!(
                    "attribute `{name}` is {}, but {purpose} needs {wanted}",
                    attribute.data_type
                ),
                None,
            );
            return None;
        }
        Some(attribute)
    }
}

/// A map key read as a raw value of `attribute`'s type.
pub(super) fn raw_key(key: &KeyRef<'_>, attribute: &Attribute) -> Option<RawKey> {
    let text = key.name;
    let parsed = match attribute.data_type.scalar() {
        ScalarType::String => Some(RawKey::Text(text.to_owned())),
        ScalarType::Int => text.trim().parse::<i64>().ok().map(RawKey::Int),
        ScalarType::UInt => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|i| *i >= 0)
            .map(RawKey::Int),
        ScalarType::Bool => match text {
            "true" => Some(RawKey::Bool(true)),
            "false" => Some(RawKey::Bool(false)),
            _ => None,
        },
        _ => None,
    };
    if parsed.is_none() {
        let wanted = match attribute.data_type.scalar() {
            ScalarType::Bool => "`true` or `false`",
            ScalarType::UInt => "a non-negative integer code",
            _ => "an integer code",
        };
        key.error(
            format!(
                "map key `{text}` is not {wanted} (attribute `{}` is {})",
                attribute.name, attribute.data_type
            ),
            None,
        );
        return None;
    }
    if let (Some(RawKey::Text(label)), Some(allowed)) = (&parsed, &attribute.allowed)
        && !allowed.iter().any(|a| a == label)
    {
        key.error(
            format!("`{label}` is not a label of attribute `{}`", attribute.name),
            suggest(label, allowed.iter().map(String::as_str), "its labels"),
        );
        return None;
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_accept_per_second_minute_and_hour() {
        assert_eq!(Rate::parse("600/min").map(Rate::as_per_second), Ok(10.0));
        assert_eq!(Rate::parse("36000/h").map(Rate::as_per_second), Ok(10.0));
        assert_eq!(Rate::parse("600 bottle/min").map(Rate::as_per_minute), Ok(600.0));
        assert!(Rate::parse("600").is_err());
        assert!(Rate::parse("0/min").is_err());
        assert!(Rate::parse("600/day").is_err());
        assert!(Rate::parse("-5/s").is_err());
    }
}
