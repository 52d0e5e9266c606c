//! A tagged, self-describing encoding of one [`Value`]: a type byte, then the payload.
//! Used by the WAL, by string and array dictionaries, and by columns whose values do not
//! share one type.

use std::sync::Arc;

use backplane_model::{Timestamp, Value};

use super::{CodecError, Cursor, Result, put_blob, put_varint, put_varint_i64};

const BOOL: u8 = 0;
const INT: u8 = 1;
const UINT: u8 = 2;
const FLOAT: u8 = 3;
const STRING: u8 = 4;
const TIMESTAMP: u8 = 5;
const ARRAY: u8 = 6;

/// Arrays inside arrays are not produced by the pipeline; the limit only stops a corrupt
/// input from recursing without end.
const MAX_DEPTH: usize = 4;

pub fn encode(value: &Value, out: &mut Vec<u8>) {
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
                encode(item, out);
            }
        }
    }
}

pub fn decode(cur: &mut Cursor<'_>) -> Result<Value> {
    decode_at(cur, 0)
}

fn decode_at(cur: &mut Cursor<'_>, depth: usize) -> Result<Value> {
    Ok(match cur.u8()? {
        BOOL => match cur.u8()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(CodecError("bool out of range")),
        },
        INT => Value::Int(cur.varint_i64()?),
        UINT => Value::UInt(cur.varint()?),
        FLOAT => Value::Float(f64::from_bits(cur.u64_le()?)),
        STRING => Value::String(Arc::from(cur.str()?)),
        TIMESTAMP => Value::Timestamp(Timestamp::from_unix_nanos(cur.varint_i64()?)),
        ARRAY => {
            if depth >= MAX_DEPTH {
                return Err(CodecError("arrays nested too deep"));
            }
            let n = cur.count(usize::MAX, 2)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode_at(cur, depth + 1)?);
            }
            Value::Array(items.into())
        }
        _ => return Err(CodecError("unknown value type")),
    })
}

/// The encoded bytes of one value, as a dictionary key.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        for v in values {
            let bytes = to_bytes(&v);
            let mut cur = Cursor::new(&bytes);
            assert_eq!(decode(&mut cur).unwrap(), v);
            assert!(cur.is_empty());
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_recursed() {
        let bytes = [ARRAY, 1].repeat(1000);
        assert!(decode(&mut Cursor::new(&bytes)).is_err());
    }
}
