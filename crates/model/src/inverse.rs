//! The inverse of a binding's transform chain: from an engineering value someone wants
//! written back to the raw value the device must hold. Only steps with one exact inverse
//! are inverted; `bit` (one bit of a shared register) and `map` (code lookup) have none
//! here, so a write through them is refused rather than guessed.

use crate::Value;
use crate::transform::{DecodeType, Transform};

/// The raw value to write, and how finely the device can hold the engineering value.
#[derive(Clone, Debug, PartialEq)]
pub struct RawWrite {
    pub raw: Value,
    /// One raw step in engineering units when the device holds whole numbers (a scaled
    /// integer register), or one step of the chain's `round`, whichever is coarser; 0 when
    /// neither applies (a float register, no rounding) or the value is not a number.
    pub resolution: f64,
}

/// Why an engineering value cannot be turned into a raw one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InverseError {
    #[error("the binding's `{0}` step has no inverse: {1}")]
    NoInverse(&'static str, &'static str),
    #[error("{0}")]
    OutOfRawRange(String),
    #[error("{op}: expected a number, got {got}")]
    NotANumber { op: &'static str, got: &'static str },
}

/// Inverts `chain` for `value`. `raw_hint` is the latest raw reading, if any: when it is
/// a whole number and nothing in the chain says otherwise, the raw value is rounded to a
/// whole number (the device holds an integer register).
pub fn invert_chain(
    chain: &[Transform],
    value: &Value,
    raw_hint: Option<&Value>,
) -> Result<RawWrite, InverseError> {
    let mut value = value.clone();
    let mut gain_product = 1.0f64;
    let mut integral = false;
    // The read-back value is rounded to this step: a write is done when it matches to it.
    let mut rounding = 0.0f64;
    for step in chain.iter().rev() {
        match step {
            // The pre-cast value is of a type the source converts from; nothing to undo.
            Transform::Cast { .. } => {}
            // Rounding has no inverse to apply: the value asked for is written as it is.
            Transform::Round { decimals } => {
                rounding = rounding.max(10f64.powi(-i32::from(*decimals)) * gain_product);
            }
            Transform::Bit { .. } => {
                return Err(InverseError::NoInverse(
                    "bit",
                    "writing one bit would overwrite the other bits of its register",
                ));
            }
            Transform::Map { .. } => {
                return Err(InverseError::NoInverse(
                    "map",
                    "a label is not written back as a code; bind the code itself to write it",
                ));
            }
            Transform::Scale { gain, offset, .. } | Transform::Convert { gain, offset, .. } => {
                if *gain == 0.0 || !gain.is_finite() {
                    return Err(InverseError::NoInverse(step.name(), "its gain is zero"));
                }
                let x = number(step.name(), &value)?;
                value = Value::Float((x - offset) / gain);
                gain_product *= gain.abs();
            }
            Transform::Decode { kind, word_order } => {
                let x = number("decode", &value)?;
                let bits = encode(*kind, x)?;
                integral = !matches!(kind, DecodeType::F32 | DecodeType::F64);
                let words = word_order.split(bits, kind.words());
                value = match words.as_slice() {
                    [one] => Value::UInt(u64::from(*one)),
                    many => Value::Array(many.iter().map(|w| Value::UInt(u64::from(*w))).collect()),
                };
            }
        }
    }
    // No decode step: the source decodes, and its last reading tells what it holds.
    let hint_integral = matches!(raw_hint, Some(Value::Int(_) | Value::UInt(_)));
    if !chain.iter().any(|s| matches!(s, Transform::Decode { .. }))
        && hint_integral
        && let Value::Float(x) = value
    {
        let rounded = x.round();
        value = if rounded < 0.0 {
            Value::Int(whole(rounded, i64::MIN as f64, i64::MAX as f64)? as i64)
        } else {
            Value::UInt(whole(rounded, 0.0, u64::MAX as f64)? as u64)
        };
        integral = true;
    }
    let numeric = value.as_f64().is_some() || matches!(value, Value::Array(_));
    let step = if integral { gain_product } else { 0.0 };
    Ok(RawWrite {
        raw: value,
        resolution: if numeric { step.max(rounding) } else { 0.0 },
    })
}

fn number(op: &'static str, value: &Value) -> Result<f64, InverseError> {
    match value {
        Value::Bool(_) | Value::String(_) | Value::Timestamp(_) | Value::Array(_) => {
            Err(InverseError::NotANumber {
                op,
                got: value.type_name(),
            })
        }
        v => v.as_f64().ok_or(InverseError::NotANumber {
            op,
            got: v.type_name(),
        }),
    }
}

fn whole(x: f64, min: f64, max: f64) -> Result<f64, InverseError> {
    if x.is_finite() && x >= min && x <= max {
        Ok(x)
    } else {
        Err(InverseError::OutOfRawRange(format!(
            "raw value {x} is outside {min}..={max}"
        )))
    }
}

/// The big-endian bits of `x` as `kind`, rounding integers to the nearest whole number.
fn encode(kind: DecodeType, x: f64) -> Result<u64, InverseError> {
    let int = |min: f64, max: f64| -> Result<f64, InverseError> {
        let r = x.round();
        if r.is_finite() && r >= min && r <= max {
            Ok(r)
        } else {
            Err(InverseError::OutOfRawRange(format!(
                "raw value {r} does not fit {kind:?} ({min}..={max})"
            )))
        }
    };
    Ok(match kind {
        DecodeType::U16 => int(0.0, 65535.0)? as u64,
        DecodeType::I16 => u64::from(int(-32768.0, 32767.0)? as i16 as u16),
        DecodeType::U32 => int(0.0, 4_294_967_295.0)? as u64,
        DecodeType::I32 => u64::from(int(-2_147_483_648.0, 2_147_483_647.0)? as i32 as u32),
        DecodeType::U64 => int(0.0, u64::MAX as f64)? as u64,
        DecodeType::I64 => int(i64::MIN as f64, i64::MAX as f64)? as i64 as u64,
        DecodeType::F32 => {
            if x.is_finite() && x.abs() > f64::from(f32::MAX) {
                return Err(InverseError::OutOfRawRange(format!("{x} does not fit an f32")));
            }
            u64::from((x as f32).to_bits())
        }
        DecodeType::F64 => x.to_bits(),
    })
}

/// Whether a read-back engineering value matches the one asked for: equal for non-numbers;
/// for numbers within half a raw step, or one part per million for float registers.
pub fn matches_requested(requested: &Value, read_back: &Value, resolution: f64) -> bool {
    match (requested.as_f64(), read_back.as_f64()) {
        (Some(a), Some(b)) if !matches!(requested, Value::Bool(_)) => {
            let tolerance = (resolution / 2.0).max(1e-6 * a.abs().max(1.0));
            (a - b).abs() <= tolerance
        }
        _ => requested == read_back,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::WordOrder;
    use crate::{DataType, ScalarType, transform::apply_chain};

    fn scale(gain: f64, offset: f64) -> Transform {
        Transform::Scale {
            gain,
            offset,
            raw: None,
            eng: None,
        }
    }

    #[test]
    fn a_scaled_integer_register_is_written_as_the_nearest_raw_step() {
        let chain = [
            scale(0.1, 0.0),
            Transform::Cast {
                to: DataType::Scalar(ScalarType::Float),
            },
        ];
        let w = invert_chain(&chain, &Value::Float(400.04), Some(&Value::UInt(3990))).unwrap();
        assert_eq!(w.raw, Value::UInt(4000));
        assert!((w.resolution - 0.1).abs() < 1e-12);
        let forward = apply_chain(&chain, &w.raw).unwrap();
        assert!(matches_requested(&Value::Float(400.04), &forward, w.resolution));
        assert!(!matches_requested(&Value::Float(400.2), &forward, w.resolution));
    }

    #[test]
    fn a_rounded_float_is_written_as_asked_and_matched_to_its_decimals() {
        let chain = [
            Transform::Decode {
                kind: DecodeType::F32,
                word_order: WordOrder::ABCD,
            },
            Transform::Cast {
                to: DataType::Scalar(ScalarType::Float),
            },
            Transform::Round { decimals: 1 },
        ];
        let w = invert_chain(&chain, &Value::Float(12.34), None).unwrap();
        let bits = u64::from(12.34f32.to_bits());
        assert_eq!(
            w.raw,
            Value::Array(
                WordOrder::ABCD
                    .split(bits, 2)
                    .into_iter()
                    .map(|r| Value::UInt(u64::from(r)))
                    .collect()
            )
        );
        let forward = apply_chain(&chain, &w.raw).unwrap();
        assert_eq!(forward, Value::Float(12.3));
        assert!(matches_requested(&Value::Float(12.34), &forward, w.resolution));
        assert!(!matches_requested(&Value::Float(12.4), &forward, w.resolution));
    }

    #[test]
    fn decode_steps_invert_to_registers_in_their_word_order() {
        let chain = [Transform::Decode {
            kind: DecodeType::F32,
            word_order: WordOrder::CDAB,
        }];
        let w = invert_chain(&chain, &Value::Float(123.5), None).unwrap();
        assert_eq!(
            w.raw,
            Value::Array(vec![Value::UInt(0), Value::UInt(0x42F7)].into())
        );
        assert_eq!(apply_chain(&chain, &w.raw).unwrap(), Value::Float(123.5));
        let i16 = [Transform::Decode {
            kind: DecodeType::I16,
            word_order: WordOrder::ABCD,
        }];
        assert_eq!(
            invert_chain(&i16, &Value::Int(-2), None).unwrap().raw,
            Value::UInt(0xFFFE)
        );
        assert!(matches!(
            invert_chain(&i16, &Value::Int(40000), None),
            Err(InverseError::OutOfRawRange(_))
        ));
    }

    #[test]
    fn bits_maps_and_zero_gains_have_no_inverse() {
        let bit = [Transform::Bit { index: 3 }];
        assert!(matches!(
            invert_chain(&bit, &Value::Bool(true), None),
            Err(InverseError::NoInverse("bit", _))
        ));
        let map = [Transform::Map {
            entries: vec![(1, "idle".into())].into(),
        }];
        assert!(matches!(
            invert_chain(&map, &Value::String("idle".into()), None),
            Err(InverseError::NoInverse("map", _))
        ));
        assert!(invert_chain(&[scale(0.0, 1.0)], &Value::Float(1.0), None).is_err());
    }

    #[test]
    fn an_empty_chain_writes_the_value_as_it_is() {
        let w = invert_chain(&[], &Value::Bool(true), Some(&Value::Bool(false))).unwrap();
        assert_eq!(w.raw, Value::Bool(true));
        assert_eq!(w.resolution, 0.0);
    }
}
