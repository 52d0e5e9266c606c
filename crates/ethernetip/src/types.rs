//! CIP / Logix data types: the type codes a Read Tag reply starts with, how many bytes an
//! element takes, and how element bytes become a [`Value`] (and back, for writes).
//!
//! Pure and bounds-checked: every decoder takes the bytes a device sent and returns an
//! error naming the type and the length when they do not fit.

use std::fmt;
use std::sync::Arc;

use backplane_model::Value;

/// The structure handle of Logix's built-in `STRING` (a DINT `LEN` and 82 `SINT`s).
pub const LOGIX_STRING_HANDLE: u16 = 0x0FCE;
/// Characters in a Logix `STRING`'s `DATA` member.
pub const LOGIX_STRING_CHARS: usize = 82;
/// The type code that says "a structure follows, identified by its handle".
pub const STRUCT_CODE: u16 = 0x02A0;

/// The type of a tag's elements, as a Read Tag reply names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipType {
    Bool,
    Sint,
    Int,
    Dint,
    Lint,
    Usint,
    Uint,
    Udint,
    Ulint,
    Real,
    Lreal,
    /// 32 packed bits (Logix BOOL arrays travel as DWORDs); read as an unsigned number.
    Dword,
    /// CIP STRING: a UINT length and that many characters.
    String,
    /// CIP SHORT_STRING: a USINT length and that many characters.
    ShortString,
    /// Logix STRING: a structure of DINT `LEN` and `SINT[82]` `DATA`.
    LogixString,
    /// Any other structure (a UDT), by its structure handle.
    Struct(u16),
}

/// Why element bytes do not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown CIP type code 0x{0:04X}")]
    UnknownType(u16),
    #[error("{ty} data of {len} bytes is not {count} element(s) of {size} bytes")]
    Length {
        ty: CipType,
        len: usize,
        count: usize,
        size: usize,
    },
    #[error("a {ty} says it holds {said} characters but {room} follow")]
    StringLength { ty: CipType, said: usize, room: usize },
    #[error("a whole structure (handle 0x{0:04X}) has no single value; bind its members (Tag.Member)")]
    Structure(u16),
    #[error("the reply holds no type code")]
    Missing,
}

impl CipType {
    /// The type of a reply's type field (`code`, and for structures the handle after it).
    pub fn from_code(code: u16, handle: Option<u16>) -> Result<CipType, DecodeError> {
        Ok(match code {
            0xC1 => CipType::Bool,
            0xC2 => CipType::Sint,
            0xC3 => CipType::Int,
            0xC4 => CipType::Dint,
            0xC5 => CipType::Lint,
            0xC6 => CipType::Usint,
            0xC7 => CipType::Uint,
            0xC8 => CipType::Udint,
            0xC9 => CipType::Ulint,
            0xCA => CipType::Real,
            0xCB => CipType::Lreal,
            0xD3 => CipType::Dword,
            0xD0 => CipType::String,
            0xDA => CipType::ShortString,
            STRUCT_CODE => match handle {
                Some(LOGIX_STRING_HANDLE) => CipType::LogixString,
                Some(h) => CipType::Struct(h),
                None => return Err(DecodeError::Missing),
            },
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Parses a type name as Logix and cpppo write it (`DINT`, `REAL`, `STRING`, ...).
    pub fn from_name(name: &str) -> Option<CipType> {
        Some(match name.to_ascii_uppercase().as_str() {
            "BOOL" => CipType::Bool,
            "SINT" => CipType::Sint,
            "INT" => CipType::Int,
            "DINT" => CipType::Dint,
            "LINT" => CipType::Lint,
            "USINT" => CipType::Usint,
            "UINT" => CipType::Uint,
            "UDINT" => CipType::Udint,
            "ULINT" => CipType::Ulint,
            "REAL" => CipType::Real,
            "LREAL" => CipType::Lreal,
            "DWORD" => CipType::Dword,
            "STRING" => CipType::LogixString,
            "CIP_STRING" => CipType::String,
            "SSTRING" | "SHORT_STRING" => CipType::ShortString,
            _ => return None,
        })
    }

    /// The type code (without a structure's handle).
    pub fn code(self) -> u16 {
        match self {
            CipType::Bool => 0xC1,
            CipType::Sint => 0xC2,
            CipType::Int => 0xC3,
            CipType::Dint => 0xC4,
            CipType::Lint => 0xC5,
            CipType::Usint => 0xC6,
            CipType::Uint => 0xC7,
            CipType::Udint => 0xC8,
            CipType::Ulint => 0xC9,
            CipType::Real => 0xCA,
            CipType::Lreal => 0xCB,
            CipType::Dword => 0xD3,
            CipType::String => 0xD0,
            CipType::ShortString => 0xDA,
            CipType::LogixString | CipType::Struct(_) => STRUCT_CODE,
        }
    }

    /// The structure handle a write must repeat after [`CipType::code`].
    pub fn handle(self) -> Option<u16> {
        match self {
            CipType::LogixString => Some(LOGIX_STRING_HANDLE),
            CipType::Struct(h) => Some(h),
            _ => None,
        }
    }

    /// Bytes of one element; `None` for variable-length strings and unknown structures.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            CipType::Bool | CipType::Sint | CipType::Usint => 1,
            CipType::Int | CipType::Uint => 2,
            CipType::Dint | CipType::Udint | CipType::Real | CipType::Dword => 4,
            CipType::Lint | CipType::Ulint | CipType::Lreal => 8,
            CipType::LogixString => 4 + LOGIX_STRING_CHARS + 2,
            CipType::String | CipType::ShortString | CipType::Struct(_) => return None,
        })
    }

    /// Bytes the type field takes in a reply (2, or 4 with a structure handle).
    pub fn field_len(self) -> usize {
        if self.handle().is_some() { 4 } else { 2 }
    }

    /// The model attribute type a value of this type fits (`float`, `int`, ...).
    pub fn attribute_type(self) -> Option<&'static str> {
        Some(match self {
            CipType::Bool => "bool",
            CipType::Sint | CipType::Int | CipType::Dint | CipType::Lint => "int",
            CipType::Usint | CipType::Uint | CipType::Udint | CipType::Ulint | CipType::Dword => "uint",
            CipType::Real | CipType::Lreal => "float",
            CipType::String | CipType::ShortString | CipType::LogixString => "string",
            CipType::Struct(_) => return None,
        })
    }
}

impl fmt::Display for CipType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            CipType::Bool => "BOOL",
            CipType::Sint => "SINT",
            CipType::Int => "INT",
            CipType::Dint => "DINT",
            CipType::Lint => "LINT",
            CipType::Usint => "USINT",
            CipType::Uint => "UINT",
            CipType::Udint => "UDINT",
            CipType::Ulint => "ULINT",
            CipType::Real => "REAL",
            CipType::Lreal => "LREAL",
            CipType::Dword => "DWORD",
            CipType::String => "CIP STRING",
            CipType::ShortString => "SHORT_STRING",
            CipType::LogixString => "STRING",
            CipType::Struct(h) => return write!(f, "structure 0x{h:04X}"),
        };
        f.write_str(name)
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

/// One fixed-size element (`bytes` is exactly `ty.size()` long).
fn atomic(ty: CipType, bytes: &[u8]) -> Value {
    match ty {
        CipType::Bool => Value::Bool(bytes.first().is_some_and(|b| *b != 0)),
        CipType::Sint => Value::Int(i64::from(i8::from_le_bytes(fixed(bytes)))),
        CipType::Int => Value::Int(i64::from(i16::from_le_bytes(fixed(bytes)))),
        CipType::Dint => Value::Int(i64::from(i32::from_le_bytes(fixed(bytes)))),
        CipType::Lint => Value::Int(i64::from_le_bytes(fixed(bytes))),
        CipType::Usint => Value::UInt(u64::from(u8::from_le_bytes(fixed(bytes)))),
        CipType::Uint => Value::UInt(u64::from(u16::from_le_bytes(fixed(bytes)))),
        CipType::Udint | CipType::Dword => Value::UInt(u64::from(u32::from_le_bytes(fixed(bytes)))),
        CipType::Ulint => Value::UInt(u64::from_le_bytes(fixed(bytes))),
        CipType::Real => Value::Float(f64::from(f32::from_le_bytes(fixed(bytes)))),
        CipType::Lreal => Value::Float(f64::from_le_bytes(fixed(bytes))),
        // Not called for these (see `decode`).
        CipType::String | CipType::ShortString | CipType::LogixString | CipType::Struct(_) => {
            Value::String(Arc::from(""))
        }
    }
}

fn text(bytes: &[u8]) -> Value {
    // Logix strings are bytes; non-UTF-8 characters show as U+FFFD rather than failing.
    Value::String(Arc::from(String::from_utf8_lossy(bytes).as_ref()))
}

/// Logix STRING: LEN (DINT), then 82 characters (and the structure's 2 bytes of padding,
/// which some controllers omit).
fn logix_string(bytes: &[u8]) -> Result<Value, DecodeError> {
    let ty = CipType::LogixString;
    let (len, data) = bytes.split_at_checked(4).ok_or(DecodeError::Length {
        ty,
        len: bytes.len(),
        count: 1,
        size: 4 + LOGIX_STRING_CHARS,
    })?;
    let said = i32::from_le_bytes(fixed(len));
    let room = data.len().min(LOGIX_STRING_CHARS);
    let said = usize::try_from(said).map_err(|_| DecodeError::StringLength { ty, said: 0, room })?;
    let chars = data
        .get(..said)
        .filter(|_| said <= LOGIX_STRING_CHARS)
        .ok_or(DecodeError::StringLength { ty, said, room })?;
    Ok(text(chars))
}

/// Decodes `count` elements of `ty` from `bytes` (a Read Tag reply's data after the type
/// field): one element gives a scalar, more an array.
pub fn decode(ty: CipType, bytes: &[u8], count: usize) -> Result<Value, DecodeError> {
    let count = count.max(1);
    let values: Vec<Value> = match ty {
        CipType::Struct(h) => return Err(DecodeError::Structure(h)),
        CipType::String | CipType::ShortString => {
            // Variable length: only one element is supported (the planner allows no more).
            let (said, rest) = match ty {
                CipType::String => {
                    let (l, rest) = bytes.split_at_checked(2).ok_or(DecodeError::Length {
                        ty,
                        len: bytes.len(),
                        count: 1,
                        size: 2,
                    })?;
                    (usize::from(u16::from_le_bytes(fixed(l))), rest)
                }
                _ => {
                    let (l, rest) = bytes.split_first().ok_or(DecodeError::Length {
                        ty,
                        len: 0,
                        count: 1,
                        size: 1,
                    })?;
                    (usize::from(*l), rest)
                }
            };
            let chars = rest.get(..said).ok_or(DecodeError::StringLength {
                ty,
                said,
                room: rest.len(),
            })?;
            return Ok(text(chars));
        }
        CipType::LogixString => {
            // Each element is 88 bytes on the wire (86 when the padding is left out of the
            // last one).
            let size = 4 + LOGIX_STRING_CHARS + 2;
            if count == 1 {
                return logix_string(bytes);
            }
            let mut out = Vec::with_capacity(count);
            for i in 0..count {
                let start = i * size;
                let chunk = bytes
                    .get(start..(start + size).min(bytes.len()))
                    .ok_or(DecodeError::Length {
                        ty,
                        len: bytes.len(),
                        count,
                        size,
                    })?;
                out.push(logix_string(chunk)?);
            }
            out
        }
        _ => {
            let size = ty.size().unwrap_or(1);
            if bytes.len() < size * count {
                return Err(DecodeError::Length {
                    ty,
                    len: bytes.len(),
                    count,
                    size,
                });
            }
            bytes
                .chunks_exact(size)
                .take(count)
                .map(|chunk| atomic(ty, chunk))
                .collect()
        }
    };
    Ok(match <[Value; 1]>::try_from(values) {
        Ok([one]) => one,
        Err(many) => Value::Array(many.into()),
    })
}

/// Why a value cannot be written as a type.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("{value} does not fit {ty}")]
    DoesNotFit { value: Value, ty: CipType },
    #[error("{ty} tags cannot be written")]
    Unwritable { ty: CipType },
    #[error("{ty} holds at most {max} characters")]
    TooLong { ty: CipType, max: usize },
    #[error("{count} elements were read, but {given} values given")]
    Count { count: usize, given: usize },
}

fn one(ty: CipType, value: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let misfit = || EncodeError::DoesNotFit {
        value: value.clone(),
        ty,
    };
    let int = |min: i64, max: i64| -> Result<i64, EncodeError> {
        let v = match value {
            Value::Bool(b) => i64::from(*b),
            other => other.as_i64().ok_or_else(misfit)?,
        };
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(misfit())
        }
    };
    match ty {
        CipType::Bool => {
            let v = int(0, 1)?;
            out.push(if v == 1 { 0xFF } else { 0 });
        }
        CipType::Sint => out.extend_from_slice(&(int(-0x80, 0x7F)? as i8).to_le_bytes()),
        CipType::Int => out.extend_from_slice(&(int(-0x8000, 0x7FFF)? as i16).to_le_bytes()),
        CipType::Dint => out.extend_from_slice(&(int(-0x8000_0000, 0x7FFF_FFFF)? as i32).to_le_bytes()),
        CipType::Lint => out.extend_from_slice(&value.as_i64().ok_or_else(misfit)?.to_le_bytes()),
        CipType::Usint => out.extend_from_slice(&(int(0, 0xFF)? as u8).to_le_bytes()),
        CipType::Uint => out.extend_from_slice(&(int(0, 0xFFFF)? as u16).to_le_bytes()),
        CipType::Udint | CipType::Dword => {
            out.extend_from_slice(&(int(0, 0xFFFF_FFFF)? as u32).to_le_bytes())
        }
        CipType::Ulint => out.extend_from_slice(&value.as_u64().ok_or_else(misfit)?.to_le_bytes()),
        CipType::Real => {
            let x = value.as_f64().ok_or_else(misfit)?;
            if x.is_finite() && x.abs() > f64::from(f32::MAX) {
                return Err(misfit());
            }
            out.extend_from_slice(&(x as f32).to_le_bytes());
        }
        CipType::Lreal => out.extend_from_slice(&value.as_f64().ok_or_else(misfit)?.to_le_bytes()),
        CipType::String | CipType::ShortString | CipType::LogixString => {
            let Value::String(s) = value else {
                return Err(misfit());
            };
            let bytes = s.as_bytes();
            let max = match ty {
                CipType::ShortString => 255,
                CipType::String => 0xFFFF,
                _ => LOGIX_STRING_CHARS,
            };
            if bytes.len() > max {
                return Err(EncodeError::TooLong { ty, max });
            }
            match ty {
                CipType::ShortString => out.push(bytes.len() as u8),
                CipType::String => out.extend_from_slice(&(bytes.len() as u16).to_le_bytes()),
                _ => out.extend_from_slice(&(bytes.len() as i32).to_le_bytes()),
            }
            out.extend_from_slice(bytes);
            if ty == CipType::LogixString {
                out.resize(out.len() + LOGIX_STRING_CHARS - bytes.len() + 2, 0);
            }
        }
        CipType::Struct(_) => return Err(EncodeError::Unwritable { ty }),
    }
    Ok(())
}

/// The bytes of `value` as `count` elements of `ty` (a Write Tag request's data).
pub fn encode(ty: CipType, value: &Value, count: usize) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            if items.len() != count {
                return Err(EncodeError::Count {
                    count,
                    given: items.len(),
                });
            }
            for item in items.iter() {
                one(ty, item, &mut out)?;
            }
        }
        scalar => {
            if count != 1 {
                return Err(EncodeError::Count { count, given: 1 });
            }
            one(ty, scalar, &mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn atomic_types_decode_little_endian_with_their_sign() {
        assert_eq!(
            decode(CipType::Dint, &(-5i32).to_le_bytes(), 1),
            Ok(Value::Int(-5))
        );
        assert_eq!(decode(CipType::Uint, &[0xFE, 0xFF], 1), Ok(Value::UInt(65534)));
        assert_eq!(
            decode(CipType::Real, &1.5f32.to_le_bytes(), 1),
            Ok(Value::Float(1.5))
        );
        assert_eq!(decode(CipType::Bool, &[0xFF], 1), Ok(Value::Bool(true)));
        assert_eq!(
            decode(CipType::Int, &[1, 0, 2, 0], 2),
            Ok(Value::Array(vec![Value::Int(1), Value::Int(2)].into()))
        );
        assert!(matches!(
            decode(CipType::Lint, &[1, 2, 3], 1),
            Err(DecodeError::Length { .. })
        ));
    }

    #[test]
    fn strings_of_all_three_kinds_decode_and_lie_about_length_safely() {
        let mut logix = 3i32.to_le_bytes().to_vec();
        logix.extend_from_slice(b"ABC");
        logix.resize(88, 0);
        assert_eq!(
            decode(CipType::LogixString, &logix, 1),
            Ok(Value::String("ABC".into()))
        );
        assert_eq!(
            decode(CipType::ShortString, b"\x02hi", 1),
            Ok(Value::String("hi".into()))
        );
        assert_eq!(
            decode(CipType::String, b"\x02\x00hi", 1),
            Ok(Value::String("hi".into()))
        );
        assert!(decode(CipType::ShortString, b"\x09hi", 1).is_err());
        let mut liar = 500i32.to_le_bytes().to_vec();
        liar.resize(88, 0);
        assert!(decode(CipType::LogixString, &liar, 1).is_err());
        let mut negative = (-1i32).to_le_bytes().to_vec();
        negative.resize(88, 0);
        assert!(decode(CipType::LogixString, &negative, 1).is_err());
    }

    #[test]
    fn values_encode_range_checked_and_round_trip() {
        for (ty, v) in [
            (CipType::Dint, Value::Int(-7)),
            (CipType::Real, Value::Float(2.5)),
            (CipType::Bool, Value::Bool(true)),
            (CipType::LogixString, Value::String("PAL-7".into())),
            (CipType::ShortString, Value::String("x".into())),
        ] {
            let bytes = encode(ty, &v, 1).unwrap();
            assert_eq!(decode(ty, &bytes, 1).unwrap(), v);
        }
        assert!(encode(CipType::Sint, &Value::Int(200), 1).is_err());
        assert!(encode(CipType::Udint, &Value::Int(-1), 1).is_err());
        assert!(encode(CipType::Struct(7), &Value::Int(1), 1).is_err());
        assert!(encode(CipType::Dint, &Value::Int(1), 2).is_err());
    }
}
