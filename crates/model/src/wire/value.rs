//! The encoding of one [`Value`]: a type byte, then the payload (table in [`super`]).

use std::sync::Arc;

use super::{Cursor, Error, Result, put_blob, put_varint, put_varint_i64};
use crate::{Timestamp, Value};

const BOOL: u8 = 0;
const INT: u8 = 1;
const UINT: u8 = 2;
const FLOAT: u8 = 3;
const STRING: u8 = 4;
const TIMESTAMP: u8 = 5;
const ARRAY: u8 = 6;

/// Array nesting levels a reader accepts. The pipeline's values are scalars or arrays of
/// scalars (one level); the limit only keeps corrupt input from recursing without end.
pub const MAX_DEPTH: usize = 8;

/// Bytes every encoded value takes at least (type byte and one byte of payload), which
/// bounds the item count of an array by the input left.
const MIN_VALUE_BYTES: usize = 2;

/// Appends `value`. Arrays nested deeper than [`MAX_DEPTH`] are written but not read back.
pub fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => {
            out.push(BOOL);
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            out.push(INT);
            put_varint_i64(out, *i);
        }
        Value::UInt(u) => {
            out.push(UINT);
            put_varint(out, *u);
        }
        Value::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            out.push(STRING);
            put_blob(out, s.as_bytes());
        }
        Value::Timestamp(t) => {
            out.push(TIMESTAMP);
            put_varint_i64(out, t.unix_nanos());
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items.iter() {
                put_value(out, item);
            }
        }
    }
}

impl Cursor<'_> {
    /// A value written by [`put_value`].
    #[inline]
    pub fn value(&mut self) -> Result<Value> {
        // The common scalars read here rather than through the general case.
        match self.peek() {
            Some(UINT) => {
                self.u8()?;
                Ok(Value::UInt(self.varint()?))
            }
            Some(FLOAT) => {
                self.u8()?;
                Ok(Value::Float(f64::from_bits(self.u64_le()?)))
            }
            Some(INT) => {
                self.u8()?;
                Ok(Value::Int(self.varint_i64()?))
            }
            _ => self.value_at(0),
        }
    }

    fn value_at(&mut self, depth: usize) -> Result<Value> {
        Ok(match self.u8()? {
            BOOL => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(Error::InvalidBool(b)),
            },
            INT => Value::Int(self.varint_i64()?),
            UINT => Value::UInt(self.varint()?),
            FLOAT => Value::Float(f64::from_bits(self.u64_le()?)),
            STRING => Value::String(Arc::from(self.str()?)),
            TIMESTAMP => Value::Timestamp(Timestamp::from_unix_nanos(self.varint_i64()?)),
            ARRAY => {
                if depth >= MAX_DEPTH {
                    return Err(Error::TooDeep);
                }
                let n = self.count(usize::MAX, MIN_VALUE_BYTES)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value_at(depth + 1)?);
                }
                Value::Array(items.into())
            }
            tag => return Err(Error::UnknownValueType(tag)),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn encoded(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        put_value(&mut out, value);
        out
    }

    #[test]
    fn every_type_round_trips() {
        let values = [
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            Value::Float(f64::NEG_INFINITY),
            Value::String("hold ✓".into()),
            Value::Timestamp(Timestamp::from_unix_nanos(-5)),
            Value::Array(vec![Value::Int(1), Value::String("x".into())].into()),
            Value::Array(Vec::new().into()),
        ];
        for v in values {
            let bytes = encoded(&v);
            let mut cur = Cursor::new(&bytes);
            assert_eq!(cur.value().unwrap(), v);
            assert!(cur.is_empty());
        }
    }

    #[test]
    fn the_bytes_are_the_documented_ones() {
        assert_eq!(encoded(&Value::Bool(true)), [BOOL, 1]);
        assert_eq!(encoded(&Value::Int(-1)), [INT, 1]);
        assert_eq!(encoded(&Value::UInt(300)), [UINT, 0xac, 0x02]);
        assert_eq!(encoded(&Value::Float(1.0)), [FLOAT, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
        assert_eq!(encoded(&Value::String("ab".into())), [STRING, 2, b'a', b'b']);
        assert_eq!(
            encoded(&Value::Timestamp(Timestamp::from_unix_nanos(2))),
            [TIMESTAMP, 4]
        );
        assert_eq!(
            encoded(&Value::Array(vec![Value::Bool(false)].into())),
            [ARRAY, 1, BOOL, 0]
        );
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_and_deeper_is_refused_not_recursed() {
        let mut v = Value::Int(7);
        for _ in 0..MAX_DEPTH {
            v = Value::Array(vec![v].into());
        }
        assert_eq!(Cursor::new(&encoded(&v)).value(), Ok(v.clone()));
        let deeper = Value::Array(vec![v].into());
        assert_eq!(Cursor::new(&encoded(&deeper)).value(), Err(Error::TooDeep));
        let bytes = [ARRAY, 1].repeat(1000);
        assert_eq!(Cursor::new(&bytes).value(), Err(Error::TooDeep));
    }

    #[test]
    fn bad_type_and_bool_bytes_are_refused() {
        assert_eq!(Cursor::new(&[7]).value(), Err(Error::UnknownValueType(7)));
        assert_eq!(Cursor::new(&[BOOL, 2]).value(), Err(Error::InvalidBool(2)));
        // An array claiming more items than the bytes left could hold allocates nothing.
        assert_eq!(
            Cursor::new(&[ARRAY, 0xff, 0xff, 0xff, 0xff, 0x0f]).value(),
            Err(Error::OutOfRange)
        );
    }
}
