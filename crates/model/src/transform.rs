//! The transforms an instance binding applies to a raw reading, in this fixed order:
//! decode → bit → scale → round → convert (unit) → map (enum) → cast (to the attribute
//! type) → round. A scale of an integer reading by a short decimal gain is rounded to the
//! resolution it implies (`0.1 × 4042` is `404.2`, not `404.20000000000005`); an attribute
//! that declares `decimals` is rounded once, at the end, instead. A deadband is not a transform but a report filter applied after them.
//!
//! Each step is a pure function, so the pipeline applies them on the hot path and the
//! lineage API re-applies them to a stored raw value to show every intermediate result.

use std::sync::Arc;

use serde::Serialize;

use crate::{DataType, Unit, Value};

/// Numeric types that a run of 16-bit registers can encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecodeType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

/// How the bytes of a multi-register value are laid out, naming the bytes of the value
/// most significant first (A). `ABCD` is big-endian (the Modbus default); `CDAB` swaps
/// words (low word first, common on many PLCs); `BADC` swaps bytes inside each word;
/// `DCBA` is fully little-endian. For 64-bit values the same rule extends to four words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
pub enum WordOrder {
    #[default]
    ABCD,
    CDAB,
    BADC,
    DCBA,
}

/// One step of a binding's transform chain.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Transform {
    /// Decode 16-bit registers (one `uint` or an array of them, as read) into a number.
    Decode { kind: DecodeType, word_order: WordOrder },
    /// Extract one bit (0 = least significant) of an integer as a bool.
    Bit { index: u8 },
    /// `gain * x + offset`. `raw`/`eng` keep the ranges the scale was written as, if any.
    Scale {
        gain: f64,
        offset: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        raw: Option<[f64; 2]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        eng: Option<[f64; 2]>,
    },
    /// Unit conversion, compiled into `gain * x + offset`.
    Convert {
        from: Unit,
        to: Unit,
        gain: f64,
        offset: f64,
    },
    /// Integer code → label (e.g. a state register into a state name).
    Map { entries: Arc<[(i64, Arc<str>)]> },
    /// Checked conversion into the attribute's declared type.
    Cast {
        #[serde(serialize_with = "serialize_display")]
        to: DataType,
    },
    /// A float rounded to `decimals` places of its decimal text, half away from zero
    /// ([`crate::decimal::round`]); integers pass through.
    Round { decimals: u8 },
}

fn serialize_display<S: serde::Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// Report only changes larger than this (OPC UA data-change filter semantics).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deadband {
    /// Change in engineering units.
    Absolute(f64),
    /// Change as a percentage of the attribute's range `span` (max − min).
    Percent { percent: f64, span: f64 },
}

/// Why a transform could not be applied to a value. Each maps to a bad quality.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("{op}: expected {expected}, got {got}")]
    WrongInput {
        op: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("map: raw value {0} has no entry")]
    Unmapped(String),
    #[error(transparent)]
    Conversion(#[from] crate::ConversionError),
}

impl DecodeType {
    pub fn parse(text: &str) -> Option<DecodeType> {
        Some(match text {
            "u16" => DecodeType::U16,
            "i16" => DecodeType::I16,
            "u32" => DecodeType::U32,
            "i32" => DecodeType::I32,
            "u64" => DecodeType::U64,
            "i64" => DecodeType::I64,
            "f32" => DecodeType::F32,
            "f64" => DecodeType::F64,
            _ => return None,
        })
    }

    /// Number of 16-bit registers the type occupies.
    pub fn words(self) -> usize {
        match self {
            DecodeType::U16 | DecodeType::I16 => 1,
            DecodeType::U32 | DecodeType::I32 | DecodeType::F32 => 2,
            DecodeType::U64 | DecodeType::I64 | DecodeType::F64 => 4,
        }
    }
}

impl WordOrder {
    pub fn parse(text: &str) -> Option<WordOrder> {
        Some(match text {
            "ABCD" => WordOrder::ABCD,
            "CDAB" => WordOrder::CDAB,
            "BADC" => WordOrder::BADC,
            "DCBA" => WordOrder::DCBA,
            _ => return None,
        })
    }

    fn swaps_words(self) -> bool {
        matches!(self, WordOrder::CDAB | WordOrder::DCBA)
    }

    fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::BADC | WordOrder::DCBA)
    }

    /// Assembles registers, in the order they were read, into a big-endian integer.
    pub fn assemble(self, words: &[u16]) -> u64 {
        let mut out = 0u64;
        let mut push = |w: u16| {
            let w = if self.swaps_bytes() { w.swap_bytes() } else { w };
            out = (out << 16) | u64::from(w);
        };
        if self.swaps_words() {
            words.iter().rev().copied().for_each(&mut push);
        } else {
            words.iter().copied().for_each(&mut push);
        }
        out
    }

    /// The inverse of [`WordOrder::assemble`]: registers as a device would serve them.
    pub fn split(self, bits: u64, words: usize) -> Vec<u16> {
        let mut out: Vec<u16> = (0..words)
            .rev()
            .map(|i| {
                let w = (bits >> (16 * i)) as u16;
                if self.swaps_bytes() { w.swap_bytes() } else { w }
            })
            .collect();
        if self.swaps_words() {
            out.reverse();
        }
        out
    }
}

impl Transform {
    /// A short name of the step, as used in configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Decode { .. } => "decode",
            Transform::Bit { .. } => "bit",
            Transform::Scale { .. } => "scale",
            Transform::Convert { .. } => "convert",
            Transform::Map { .. } => "map",
            Transform::Cast { .. } => "cast",
            Transform::Round { .. } => "round",
        }
    }

    /// Applies the step. Scalars pass through without allocating.
    pub fn apply(&self, input: &Value) -> Result<Value, TransformError> {
        let wrong = |expected: &'static str| TransformError::WrongInput {
            op: self.name(),
            expected,
            got: input.type_name().to_owned(),
        };
        match self {
            Transform::Decode { kind, word_order } => decode(*kind, *word_order, input),
            Transform::Bit { index } => {
                let raw = input.as_u64().or_else(|| input.as_i64().map(|i| i as u64));
                raw.map(|bits| Value::Bool((bits >> index) & 1 == 1))
                    .ok_or_else(|| wrong("an integer"))
            }
            Transform::Scale { gain, offset, .. } | Transform::Convert { gain, offset, .. } => input
                .as_f64()
                .map(|x| Value::Float(gain * x + offset))
                .ok_or_else(|| wrong("a number")),
            Transform::Map { entries } => {
                let code = input.as_i64().ok_or_else(|| wrong("an integer code"))?;
                entries
                    .iter()
                    .find(|(k, _)| *k == code)
                    .map(|(_, label)| Value::String(label.clone()))
                    .ok_or_else(|| TransformError::Unmapped(code.to_string()))
            }
            Transform::Cast { to } => Ok(input.convert(*to)?),
            Transform::Round { decimals } => match input {
                Value::Float(x) => Ok(Value::Float(crate::decimal::round(*x, *decimals))),
                Value::Int(_) | Value::UInt(_) => Ok(input.clone()),
                _ => Err(wrong("a number")),
            },
        }
    }
}

/// Applies a whole chain, returning the final value.
#[inline]
pub fn apply_chain(chain: &[Transform], raw: &Value) -> Result<Value, TransformError> {
    // The commonest chains, a register read as it is (`uint`) or none, without the call
    // and the loop of the general case (about 45 of a sample's instructions).
    match chain {
        [] => return Ok(raw.clone()),
        [Transform::Cast { to }] if raw.is_of(*to) => return Ok(raw.clone()),
        _ => {}
    }
    apply_chain_steps(chain, raw)
}

fn apply_chain_steps(chain: &[Transform], raw: &Value) -> Result<Value, TransformError> {
    let mut chain = chain.iter();
    let Some(first) = chain.next() else {
        return Ok(raw.clone());
    };
    let mut value = match first {
        // A lone cast to the raw value's own type (a register read as `uint`): the value.
        Transform::Cast { to } if raw.is_of(*to) => raw.clone(),
        _ => first.apply(raw)?,
    };
    for step in chain {
        // Most chains end with a cast to the type the previous step already produced.
        if let Transform::Cast { to } = step
            && value.is_of(*to)
        {
            continue;
        }
        value = step.apply(&value)?;
    }
    Ok(value)
}

fn decode(kind: DecodeType, order: WordOrder, input: &Value) -> Result<Value, TransformError> {
    let mut words = [0u16; 4];
    let n = kind.words();
    let wrong = |got: String| TransformError::WrongInput {
        op: "decode",
        expected: match n {
            1 => "1 register (0..=65535)",
            2 => "2 registers (0..=65535 each)",
            _ => "4 registers (0..=65535 each)",
        },
        got,
    };
    let as_word = |v: &Value| v.as_u64().and_then(|u| u16::try_from(u).ok());
    match input {
        Value::Array(items) if items.len() == n => {
            for (slot, item) in words.iter_mut().zip(items.iter()) {
                *slot = as_word(item).ok_or_else(|| wrong(format!("element {item}")))?;
            }
        }
        Value::Array(items) => return Err(wrong(format!("{} registers", items.len()))),
        scalar if n == 1 => words[0] = as_word(scalar).ok_or_else(|| wrong(scalar.to_string()))?,
        other => return Err(wrong(other.type_name().to_owned())),
    }
    let bits = order.assemble(&words[..n]);
    Ok(match kind {
        DecodeType::U16 | DecodeType::U32 | DecodeType::U64 => Value::UInt(bits),
        DecodeType::I16 => Value::Int(i64::from(bits as u16 as i16)),
        DecodeType::I32 => Value::Int(i64::from(bits as u32 as i32)),
        DecodeType::I64 => Value::Int(bits as i64),
        DecodeType::F32 => Value::Float(f64::from(f32::from_bits(bits as u32))),
        DecodeType::F64 => Value::Float(f64::from_bits(bits)),
    })
}

impl Deadband {
    /// True if moving from `last` to `next` is a change worth reporting.
    pub fn exceeded(self, last: f64, next: f64) -> bool {
        let threshold = match self {
            Deadband::Absolute(d) => d,
            Deadband::Percent { percent, span } => percent / 100.0 * span,
        };
        // NaN never compares greater: a change to or from NaN is always reported.
        let delta = (next - last).abs();
        delta.is_nan() || delta > threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScalarType;

    fn regs(words: &[u16]) -> Value {
        Value::Array(words.iter().map(|&w| Value::UInt(u64::from(w))).collect())
    }

    #[test]
    fn f32_decodes_in_all_four_word_orders() {
        let bits = 123.5f32.to_bits();
        for order in [WordOrder::ABCD, WordOrder::CDAB, WordOrder::BADC, WordOrder::DCBA] {
            let words = order.split(u64::from(bits), 2);
            let t = Transform::Decode {
                kind: DecodeType::F32,
                word_order: order,
            };
            assert_eq!(t.apply(&regs(&words)), Ok(Value::Float(123.5)), "{order:?}");
        }
        // ABCD 123.5 = 0x42F7_0000; CDAB serves the low word first.
        assert_eq!(WordOrder::CDAB.split(0x42F7_0000, 2), vec![0x0000, 0x42F7]);
        assert_eq!(WordOrder::BADC.split(0x42F7_0000, 2), vec![0xF742, 0x0000]);
    }

    #[test]
    fn i16_decode_restores_the_sign() {
        let t = Transform::Decode {
            kind: DecodeType::I16,
            word_order: WordOrder::ABCD,
        };
        assert_eq!(t.apply(&Value::UInt(0xFFFE)), Ok(Value::Int(-2)));
    }

    #[test]
    fn decode_rejects_wrong_register_counts_and_oversized_words() {
        let t = Transform::Decode {
            kind: DecodeType::U32,
            word_order: WordOrder::ABCD,
        };
        assert!(t.apply(&regs(&[1])).is_err());
        assert!(
            t.apply(&Value::Array(vec![Value::UInt(70_000), Value::UInt(0)].into()))
                .is_err()
        );
        assert!(t.apply(&Value::String("x".into())).is_err());
    }

    #[test]
    fn i64_decode_handles_four_words_in_cdab() {
        let v: i64 = -1_234_567_890_123;
        let words = WordOrder::CDAB.split(v as u64, 4);
        let t = Transform::Decode {
            kind: DecodeType::I64,
            word_order: WordOrder::CDAB,
        };
        assert_eq!(t.apply(&regs(&words)), Ok(Value::Int(v)));
    }

    #[test]
    fn bit_extracts_from_integers() {
        assert_eq!(
            Transform::Bit { index: 3 }.apply(&Value::UInt(0b1000)),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            Transform::Bit { index: 2 }.apply(&Value::UInt(0b1000)),
            Ok(Value::Bool(false))
        );
        assert!(Transform::Bit { index: 0 }.apply(&Value::Float(1.5)).is_err());
    }

    #[test]
    fn chain_scales_converts_and_casts() {
        let (gain, offset) = Unit::parse("degF")
            .unwrap()
            .conversion_to(&Unit::parse("degC").unwrap())
            .unwrap();
        let chain = [
            Transform::Scale {
                gain: 0.1,
                offset: 0.0,
                raw: None,
                eng: None,
            },
            Transform::Convert {
                from: Unit::parse("degF").unwrap(),
                to: Unit::parse("degC").unwrap(),
                gain,
                offset,
            },
            Transform::Cast {
                to: DataType::Scalar(ScalarType::Float),
            },
        ];
        let Value::Float(c) = apply_chain(&chain, &Value::UInt(2120)).unwrap() else {
            panic!()
        };
        assert!((c - 100.0).abs() < 1e-9);
    }

    #[test]
    fn round_rounds_floats_passes_integers_and_refuses_other_values() {
        let t = Transform::Round { decimals: 1 };
        assert_eq!(t.apply(&Value::Float(0.1 * 4042.0)), Ok(Value::Float(404.2)));
        assert_eq!(t.apply(&Value::Float(-0.25)), Ok(Value::Float(-0.3)));
        assert_eq!(t.apply(&Value::Int(-7)), Ok(Value::Int(-7)));
        assert_eq!(t.apply(&Value::UInt(7)), Ok(Value::UInt(7)));
        assert!(t.apply(&Value::String("7".into())).is_err());
        assert!(t.apply(&Value::Bool(true)).is_err());
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"op": "round", "decimals": 1})
        );
    }

    #[test]
    fn map_names_codes_and_rejects_unknown_ones() {
        let t = Transform::Map {
            entries: vec![(1, "idle".into()), (2, "running".into())].into(),
        };
        assert_eq!(t.apply(&Value::UInt(2)), Ok(Value::String("running".into())));
        assert_eq!(
            t.apply(&Value::UInt(9)),
            Err(TransformError::Unmapped("9".into()))
        );
    }

    #[test]
    fn deadband_compares_against_the_threshold() {
        assert!(!Deadband::Absolute(0.5).exceeded(10.0, 10.4));
        assert!(Deadband::Absolute(0.5).exceeded(10.0, 10.6));
        assert!(
            !Deadband::Percent {
                percent: 1.0,
                span: 200.0
            }
            .exceeded(0.0, 1.9)
        );
        assert!(
            Deadband::Percent {
                percent: 1.0,
                span: 200.0
            }
            .exceeded(0.0, 2.1)
        );
        assert!(Deadband::Absolute(0.5).exceeded(10.0, f64::NAN));
    }
}
