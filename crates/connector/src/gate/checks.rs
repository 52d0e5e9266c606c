//! The gate's checks before anything is written, each a pure function of the request,
//! the rule, the attribute and the latest values, refusing with the rule it broke.

use std::time::Duration;

use backplane_config::WriteRule;
use backplane_model::inverse::{RawWrite, invert_chain};
use backplane_model::{Attribute, DataType, Sample, ScalarType, Timestamp, Value};

use super::report::Rule;

/// A refusal: the rule and why.
pub(crate) type Refusal = (Rule, String);

/// The requested value as the attribute's type, refusing values that would need a lossy
/// or surprising conversion (a string for a number, 2.5 for an integer, 1 for a bool).
pub(crate) fn typed(attribute: &Attribute, value: &Value) -> Result<Value, Refusal> {
    let DataType::Scalar(scalar) = attribute.data_type else {
        return Err(wrong_type(attribute, value));
    };
    let out = match (scalar, value) {
        (ScalarType::Bool, Value::Bool(b)) => Some(Value::Bool(*b)),
        (ScalarType::String, Value::String(s)) => Some(Value::String(s.clone())),
        (ScalarType::Float, v @ (Value::Int(_) | Value::UInt(_) | Value::Float(_))) => {
            v.as_f64().filter(|f| f.is_finite()).map(Value::Float)
        }
        (ScalarType::Int, v @ (Value::Int(_) | Value::UInt(_) | Value::Float(_))) => {
            v.as_i64().map(Value::Int)
        }
        (ScalarType::UInt, v @ (Value::Int(_) | Value::UInt(_) | Value::Float(_))) => {
            v.as_u64().map(Value::UInt)
        }
        _ => None,
    };
    out.ok_or_else(|| wrong_type(attribute, value))
}

fn wrong_type(attribute: &Attribute, value: &Value) -> Refusal {
    (
        Rule::Type,
        format!(
            "`{}` is {} and {value} ({}) is not one",
            attribute.name,
            attribute.data_type,
            value.type_name()
        ),
    )
}

/// Within the attribute's `range` (numbers) or `enum` (labels).
pub(crate) fn in_range(attribute: &Attribute, value: &Value) -> Result<(), Refusal> {
    if let (Some([min, max]), Some(x)) = (attribute.range, value.as_f64())
        && !(min..=max).contains(&x)
    {
        return Err((
            Rule::Range,
            format!("{x} is outside the range [{min}, {max}] of `{}`", attribute.name),
        ));
    }
    if let (Some(allowed), Value::String(label)) = (&attribute.allowed, value)
        && !allowed.iter().any(|a| **a == **label)
    {
        return Err((
            Rule::Range,
            format!("`{label}` is not one of {}", allowed.join(", ")),
        ));
    }
    Ok(())
}

/// The step from the latest good value is at most `max_step`.
pub(crate) fn step(rule: &WriteRule, latest: Option<&Sample>, value: &Value) -> Result<(), Refusal> {
    let Some(max_step) = rule.max_step else {
        return Ok(());
    };
    let Some(x) = value.as_f64() else {
        return Ok(());
    };
    let current = latest
        .filter(|s| s.quality.is_good())
        .and_then(|s| s.value.as_ref())
        .and_then(Value::as_f64)
        .ok_or_else(|| {
            (
                Rule::MaxStep,
                format!(
                    "no good latest value of `{}` to limit the step from",
                    rule.attribute
                ),
            )
        })?;
    let step = (x - current).abs();
    if step > max_step {
        return Err((
            Rule::MaxStep,
            format!("{x} is {step} away from the latest value {current}, more than max_step {max_step}"),
        ));
    }
    Ok(())
}

/// At least `min_interval` since the last accepted write to the same tag.
pub(crate) fn interval(rule: &WriteRule, since_last: Option<Duration>) -> Result<(), Refusal> {
    match (rule.min_interval, since_last) {
        (Some(min), Some(since)) if since < min => Err((
            Rule::MinInterval,
            format!(
                "the last write to `{}` was accepted {} ms ago; min_interval is {} ms",
                rule.attribute,
                since.as_millis(),
                min.as_millis()
            ),
        )),
        _ => Ok(()),
    }
}

/// Every interlock holds on a good value no older than `interlock_max_age`. `latest`
/// gives each interlock's attribute's latest sample on the same asset.
pub(crate) fn interlocks(
    rule: &WriteRule,
    now: Timestamp,
    latest: impl Fn(&str) -> Option<Sample>,
) -> Result<(), Refusal> {
    let max_age = i64::try_from(rule.interlock_max_age.as_nanos()).unwrap_or(i64::MAX);
    for interlock in &rule.interlocks {
        let refuse = |why: String| Err((Rule::Interlock, format!("interlock `{interlock}` {why}")));
        let Some(sample) = latest(&interlock.attribute) else {
            return refuse(format!("is unknown: `{}` has no value yet", interlock.attribute));
        };
        let Some(value) = sample.value.as_ref().filter(|_| sample.quality.is_good()) else {
            return refuse(format!(
                "is unknown: `{}` is {}",
                interlock.attribute,
                sample.quality.class()
            ));
        };
        let age = now.unix_nanos().saturating_sub(sample.gateway_time.unix_nanos());
        if age > max_age {
            return refuse(format!(
                "is unknown: `{}` was last read {} ms ago, more than interlock_max_age",
                interlock.attribute,
                age / 1_000_000
            ));
        }
        match interlock.holds(value) {
            Some(true) => {}
            Some(false) => return refuse(format!("is false: `{}` is {value}", interlock.attribute)),
            None => return refuse(format!("cannot compare `{}` = {value}", interlock.attribute)),
        }
    }
    Ok(())
}

/// The raw value through the inverse of the binding's transforms.
pub(crate) fn inverse(
    chain: &[backplane_model::Transform],
    value: &Value,
    raw_hint: Option<&Value>,
) -> Result<RawWrite, Refusal> {
    invert_chain(chain, value, raw_hint).map_err(|e| (Rule::NoInverse, e.to_string()))
}
