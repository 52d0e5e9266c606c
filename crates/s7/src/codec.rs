//! Bytes ⇄ values for every [`Type`]: S7 is big-endian throughout; strings carry their
//! maximum and actual length; DATE counts days from 1990-01-01; DT and S5TIME are BCD.
//! Decoding never panics: wrong lengths and invalid BCD or dates are errors naming the type.

use backplane_model::{Timestamp, Value};

use crate::address::Type;

/// Why bytes are not a value of a type, or a value does not fit one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{ty} needs {want} bytes, got {got}")]
    Length { ty: String, want: u32, got: usize },
    #[error("{ty}: {why}")]
    Invalid { ty: String, why: String },
    #[error("{value} does not fit {ty}")]
    DoesNotFit { value: String, ty: String },
}

const MS_PER_DAY: i64 = 86_400_000;
/// 1990-01-01, S7's epoch for DATE and DT, in days since 1970-01-01.
const S7_EPOCH_DAYS: i64 = 7305;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn bcd(byte: u8) -> Option<u32> {
    let (hi, lo) = (byte >> 4, byte & 0x0F);
    (hi < 10 && lo < 10).then_some(u32::from(hi) * 10 + u32::from(lo))
}

fn to_bcd(n: u32) -> u8 {
    (((n / 10) % 10) << 4 | (n % 10)) as u8
}

/// Milliseconds of an S5TIME word: time base in bits 12–13, three BCD digits.
fn s5time(word: [u8; 2]) -> Option<u64> {
    let base = [10u64, 100, 1000, 10_000][usize::from((word[0] >> 4) & 0x03)];
    let digits = u64::from(bcd(word[0] & 0x0F)?) * 100 + u64::from(bcd(word[1])?);
    Some(digits * base)
}

fn invalid(ty: Type, why: impl Into<String>) -> CodecError {
    CodecError::Invalid {
        ty: ty.name(),
        why: why.into(),
    }
}

fn text(bytes: &[u8]) -> Value {
    // CPUs pad with NULs; Siemens strings are Latin-1 (WinCC's default code page).
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let s: String = bytes.iter().take(end).map(|&b| char::from(b)).collect();
    Value::String(s.into())
}

/// Decodes `bytes` (exactly the type's size) as `ty`.
pub fn decode(ty: Type, bytes: &[u8]) -> Result<Value, CodecError> {
    let want = ty.size();
    if bytes.len() != want as usize {
        return Err(CodecError::Length {
            ty: ty.name(),
            want,
            got: bytes.len(),
        });
    }
    let mut be = [0u8; 8];
    let n = bytes.len().min(8);
    if let (Some(dst), Some(src)) = (be.get_mut(8 - n..), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
    let raw = u64::from_be_bytes(be);
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
    Ok(match ty {
        Type::Bool(bit) => Value::Bool((byte(0) >> bit) & 1 == 1),
        Type::Byte
        | Type::Word
        | Type::DWord
        | Type::LWord
        | Type::USInt
        | Type::UInt
        | Type::UDInt
        | Type::ULInt => Value::UInt(raw),
        Type::SInt => Value::Int(i64::from(raw as u8 as i8)),
        Type::Int => Value::Int(i64::from(raw as u16 as i16)),
        Type::DInt => Value::Int(i64::from(raw as u32 as i32)),
        Type::LInt => Value::Int(raw as i64),
        Type::Real => Value::Float(f64::from(f32::from_bits(raw as u32))),
        Type::LReal => Value::Float(f64::from_bits(raw)),
        Type::Char => text(bytes),
        Type::String(max) => {
            let declared = byte(0);
            let actual = usize::from(byte(1));
            if actual > usize::from(declared.min(max)) {
                return Err(invalid(
                    ty,
                    format!("actual length {actual} exceeds the maximum {}", declared.min(max)),
                ));
            }
            text(bytes.get(2..2 + actual).unwrap_or_default())
        }
        Type::Date => Value::Timestamp(Timestamp::from_unix_millis(
            (S7_EPOCH_DAYS + raw as i64) * MS_PER_DAY,
        )),
        Type::Time => Value::Int(i64::from(raw as u32 as i32)),
        Type::Tod => {
            if raw >= MS_PER_DAY as u64 {
                return Err(invalid(ty, format!("{raw} ms is past midnight")));
            }
            Value::UInt(raw)
        }
        Type::S5Time | Type::Timer => {
            Value::UInt(s5time([byte(0), byte(1)]).ok_or_else(|| invalid(ty, "not BCD"))?)
        }
        Type::Counter => {
            let digits = bcd(byte(0) & 0x0F)
                .zip(bcd(byte(1)))
                .ok_or_else(|| invalid(ty, "not BCD"))?;
            Value::UInt(u64::from(digits.0 * 100 + digits.1))
        }
        Type::Dt => {
            let d: Option<Vec<u32>> = bytes.iter().take(6).map(|b| bcd(*b)).collect();
            let ms = bcd(byte(6)).zip(bcd(byte(7) & 0xF0));
            let (Some(d), Some((ms_hi, ms_lo))) = (d, ms) else {
                return Err(invalid(ty, "not BCD"));
            };
            let [yy, month, day, hour, minute, second] = d.as_slice() else {
                return Err(invalid(ty, "short"));
            };
            let year = if *yy >= 90 { 1900 + yy } else { 2000 + yy };
            let millis = ms_hi * 10 + ms_lo / 10;
            timestamp(
                ty,
                year,
                *month,
                *day,
                *hour,
                *minute,
                *second,
                millis * 1_000_000,
            )?
        }
        Type::Dtl => {
            let year = u32::from(u16::from_be_bytes([byte(0), byte(1)]));
            let nanos = u32::from_be_bytes([byte(8), byte(9), byte(10), byte(11)]);
            if nanos > 999_999_999 {
                return Err(invalid(ty, "nanoseconds above 999999999"));
            }
            timestamp(
                ty,
                year,
                u32::from(byte(2)),
                u32::from(byte(3)),
                u32::from(byte(5)),
                u32::from(byte(6)),
                u32::from(byte(7)),
                nanos,
            )?
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn timestamp(
    ty: Type,
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
) -> Result<Value, CodecError> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(invalid(
            ty,
            format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} is not a date and time"),
        ));
    }
    let days = days_from_civil(i64::from(year), month, day);
    let (_, m, d) = civil_from_days(days);
    if (m, d) != (month, day) {
        return Err(invalid(
            ty,
            format!("{year:04}-{month:02}-{day:02} does not exist"),
        ));
    }
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Ok(Value::Timestamp(
        Timestamp::from_unix_millis(secs * 1000).add_nanos(i64::from(nanos)),
    ))
}

fn fits(value: &Value, ty: Type) -> CodecError {
    CodecError::DoesNotFit {
        value: value.to_string(),
        ty: ty.name(),
    }
}

/// Unix milliseconds of a timestamp value.
fn unix_millis(value: &Value) -> Option<i64> {
    match value {
        Value::Timestamp(t) => Some(t.unix_nanos().div_euclid(1_000_000)),
        _ => None,
    }
}

/// Encodes `value` as `ty` (the inverse of [`decode`]); range-checked.
pub fn encode(ty: Type, value: &Value) -> Result<Vec<u8>, CodecError> {
    let int = |min: i64, max: i64| -> Result<i64, CodecError> {
        value
            .as_i64()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| fits(value, ty))
    };
    Ok(match ty {
        Type::Bool(_) => {
            let bit = match value {
                Value::Bool(b) => *b,
                other => match other.as_u64() {
                    Some(0) => false,
                    Some(1) => true,
                    _ => return Err(fits(value, ty)),
                },
            };
            vec![u8::from(bit)]
        }
        Type::Byte | Type::USInt => vec![int(0, 0xFF)? as u8],
        Type::SInt => vec![int(-0x80, 0x7F)? as i8 as u8],
        Type::Word | Type::UInt => (int(0, 0xFFFF)? as u16).to_be_bytes().to_vec(),
        Type::Int => (int(-0x8000, 0x7FFF)? as i16).to_be_bytes().to_vec(),
        Type::DWord | Type::UDInt => (int(0, 0xFFFF_FFFF)? as u32).to_be_bytes().to_vec(),
        Type::DInt | Type::Time => (int(-0x8000_0000, 0x7FFF_FFFF)? as i32).to_be_bytes().to_vec(),
        Type::Tod => (int(0, MS_PER_DAY - 1)? as u32).to_be_bytes().to_vec(),
        Type::LWord | Type::ULInt => value
            .as_u64()
            .ok_or_else(|| fits(value, ty))?
            .to_be_bytes()
            .to_vec(),
        Type::LInt => value
            .as_i64()
            .ok_or_else(|| fits(value, ty))?
            .to_be_bytes()
            .to_vec(),
        Type::Real => {
            let x = value.as_f64().ok_or_else(|| fits(value, ty))?;
            if x.is_finite() && x.abs() > f64::from(f32::MAX) {
                return Err(fits(value, ty));
            }
            (x as f32).to_be_bytes().to_vec()
        }
        Type::LReal => value
            .as_f64()
            .ok_or_else(|| fits(value, ty))?
            .to_be_bytes()
            .to_vec(),
        Type::Char | Type::String(_) => {
            let Value::String(s) = value else {
                return Err(fits(value, ty));
            };
            let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
            let bytes = bytes.ok_or_else(|| invalid(ty, "takes Latin-1 text only"))?;
            match ty {
                Type::String(max) => {
                    if bytes.len() > usize::from(max) {
                        return Err(invalid(ty, format!("takes at most {max} characters")));
                    }
                    let mut out = vec![max, bytes.len() as u8];
                    out.extend_from_slice(&bytes);
                    out.resize(usize::from(max) + 2, 0);
                    out
                }
                _ => match bytes.as_slice() {
                    [one] => vec![*one],
                    _ => return Err(invalid(ty, "takes one character")),
                },
            }
        }
        Type::S5Time | Type::Timer => {
            let ms = int(0, 9_990_000)? as u64;
            let (code, base) = [(0u8, 10u64), (1, 100), (2, 1000), (3, 10_000)]
                .into_iter()
                .find(|(_, base)| ms.is_multiple_of(*base) && ms / base <= 999)
                .ok_or_else(|| {
                    invalid(
                        ty,
                        format!(
                            "{ms} ms is not a whole count of 10 ms, 100 ms, 1 s or 10 s up to 999 of them"
                        ),
                    )
                })?;
            let n = (ms / base) as u32;
            vec![code << 4 | to_bcd(n / 100), to_bcd(n % 100)]
        }
        Type::Counter => {
            let n = int(0, 999)? as u32;
            vec![to_bcd(n / 100), to_bcd(n % 100)]
        }
        Type::Date => {
            let ms = unix_millis(value).ok_or_else(|| fits(value, ty))?;
            let days = ms.div_euclid(MS_PER_DAY) - S7_EPOCH_DAYS;
            u16::try_from(days)
                .map_err(|_| fits(value, ty))?
                .to_be_bytes()
                .to_vec()
        }
        Type::Dt | Type::Dtl => {
            let ms = unix_millis(value).ok_or_else(|| fits(value, ty))?;
            let days = ms.div_euclid(MS_PER_DAY);
            let in_day = ms.rem_euclid(MS_PER_DAY);
            let (year, month, day) = civil_from_days(days);
            let (hour, minute, second, milli) = (
                (in_day / 3_600_000) as u32,
                (in_day / 60_000 % 60) as u32,
                (in_day / 1000 % 60) as u32,
                (in_day % 1000) as u32,
            );
            // Monday = 1 in DTL, Sunday = 1 in DT; 1970-01-01 was a Thursday.
            let weekday_mon1 = ((days + 3).rem_euclid(7) + 1) as u8;
            if ty == Type::Dt {
                if !(1990..=2089).contains(&year) {
                    return Err(fits(value, ty));
                }
                let weekday_sun1 = weekday_mon1 % 7 + 1;
                vec![
                    to_bcd((year % 100) as u32),
                    to_bcd(month),
                    to_bcd(day),
                    to_bcd(hour),
                    to_bcd(minute),
                    to_bcd(second),
                    to_bcd(milli / 10),
                    to_bcd(milli % 10) << 4 | weekday_sun1,
                ]
            } else {
                let year = u16::try_from(year).map_err(|_| fits(value, ty))?;
                let mut out = year.to_be_bytes().to_vec();
                out.extend_from_slice(&[
                    month as u8,
                    day as u8,
                    weekday_mon1,
                    hour as u8,
                    minute as u8,
                    second as u8,
                ]);
                out.extend_from_slice(&(milli * 1_000_000).to_be_bytes());
                out
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ts(text: &str) -> Value {
        Value::Timestamp(Timestamp::parse_rfc3339(text).unwrap())
    }

    #[test]
    fn numbers_decode_big_endian_by_type() {
        assert_eq!(
            decode(Type::Real, &123.5f32.to_be_bytes()),
            Ok(Value::Float(123.5))
        );
        assert_eq!(decode(Type::Int, &[0xFF, 0xFE]), Ok(Value::Int(-2)));
        assert_eq!(decode(Type::Word, &[0xFF, 0xFE]), Ok(Value::UInt(0xFFFE)));
        assert_eq!(decode(Type::DInt, &[0xFF, 0xFF, 0xFF, 0xFF]), Ok(Value::Int(-1)));
        assert_eq!(decode(Type::SInt, &[0x80]), Ok(Value::Int(-128)));
        assert_eq!(decode(Type::Bool(3), &[0b0000_1000]), Ok(Value::Bool(true)));
        assert_eq!(
            decode(Type::LReal, &(-2.25f64).to_be_bytes()),
            Ok(Value::Float(-2.25))
        );
        assert!(matches!(
            decode(Type::Real, &[1, 2]),
            Err(CodecError::Length { .. })
        ));
    }

    #[test]
    fn strings_carry_their_lengths_and_bad_lengths_are_errors() {
        let mut bytes = vec![10, 3, b'A', b'B', b'C'];
        bytes.resize(12, 0);
        assert_eq!(decode(Type::String(10), &bytes), Ok(Value::String("ABC".into())));
        bytes[1] = 11;
        assert!(decode(Type::String(10), &bytes).is_err());
        assert_eq!(
            encode(Type::String(10), &Value::String("ABC".into())).unwrap()[..5],
            [10, 3, b'A', b'B', b'C']
        );
        assert!(encode(Type::String(2), &Value::String("ABC".into())).is_err());
    }

    #[test]
    fn dates_and_times_decode_to_timestamps_and_milliseconds() {
        // DATE 2024-03-01 = 12478 days after 1990-01-01.
        assert_eq!(
            decode(Type::Date, &12478u16.to_be_bytes()),
            Ok(ts("2024-03-01T00:00:00Z"))
        );
        assert_eq!(
            decode(Type::Time, &(-1500i32).to_be_bytes()),
            Ok(Value::Int(-1500))
        );
        assert_eq!(
            decode(Type::Tod, &3_600_000u32.to_be_bytes()),
            Ok(Value::UInt(3_600_000))
        );
        assert!(decode(Type::Tod, &(MS_PER_DAY as u32).to_be_bytes()).is_err());
        let dt = [0x24, 0x03, 0x01, 0x13, 0x45, 0x30, 0x12, 0x36];
        assert_eq!(decode(Type::Dt, &dt), Ok(ts("2024-03-01T13:45:30.123Z")));
        assert!(
            decode(Type::Dt, &[0x24, 0x13, 0x01, 0, 0, 0, 0, 0]).is_err(),
            "month 13"
        );
        let mut dtl = vec![0x07, 0xE8, 3, 1, 5, 13, 45, 30];
        dtl.extend_from_slice(&500_000_000u32.to_be_bytes());
        assert_eq!(decode(Type::Dtl, &dtl), Ok(ts("2024-03-01T13:45:30.5Z")));
        (dtl[2], dtl[3]) = (2, 30); // 30 February
        assert!(decode(Type::Dtl, &dtl).is_err());
        // S5TIME: base 1 s (code 2), 123 → 123 s.
        assert_eq!(decode(Type::S5Time, &[0x21, 0x23]), Ok(Value::UInt(123_000)));
        assert!(decode(Type::S5Time, &[0x2A, 0x23]).is_err());
        assert_eq!(decode(Type::Counter, &[0x01, 0x23]), Ok(Value::UInt(123)));
    }

    #[test]
    fn every_type_encodes_what_it_decodes() {
        let cases = [
            (Type::Real, Value::Float(23.5)),
            (Type::Int, Value::Int(-300)),
            (Type::UDInt, Value::UInt(4_000_000_000)),
            (Type::Date, ts("2024-03-01T00:00:00Z")),
            (Type::Dt, ts("2024-03-01T13:45:30.120Z")),
            (Type::Dtl, ts("2031-12-31T23:59:59.5Z")),
            (Type::S5Time, Value::UInt(123_000)),
            (Type::Tod, Value::UInt(1234)),
            (Type::Char, Value::String("x".into())),
            (Type::Bool(5), Value::Bool(true)),
        ];
        for (ty, value) in cases {
            let bytes = encode(ty, &value).unwrap();
            let back = if let Type::Bool(bit) = ty {
                decode(ty, &[bytes[0] << bit]).unwrap()
            } else {
                decode(ty, &bytes).unwrap()
            };
            assert_eq!(back, value, "{ty:?}");
        }
        assert!(encode(Type::Int, &Value::Int(40_000)).is_err());
        assert!(encode(Type::Real, &Value::Float(1e39)).is_err());
        assert!(encode(Type::S5Time, &Value::UInt(1234)).is_err());
    }
}
