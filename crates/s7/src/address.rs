//! The address syntax bindings use, in Siemens' own notation (STEP 7 / TIA Portal absolute
//! addresses), with an optional `:type`:
//!
//! - data blocks: `DB10.DBX2.3` (bit), `DB10.DBB4` (byte), `DB10.DBW4` (word),
//!   `DB10.DBD4` (double word), and a type: `DB10.DBD4:real`, `DB5.DBB0:string[20]`;
//! - markers, inputs, outputs: `M2.3`, `MB20`, `MW20:int`, `MD24:real`, `I0.1`, `IW64`,
//!   `Q4.0`, `QD8` (German `E`/`A` for inputs/outputs are accepted too);
//! - timers and counters: `T5` (the S5TIME value in ms), `C3` (or `Z3`; the BCD count).
//!
//! The letter after `DB`/`M`/`I`/`Q` is the width the type must have: `X` a bit, `W` two
//! bytes, `D` four; `B` is the first byte of any type (`DB1.DBB0:lreal`, `DB1.DBB8:dtl`).

use std::fmt;

use backplane_config::AddressError;

/// Where a value lives in the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    Input,
    Output,
    Marker,
    Db(u16),
    Timer,
    Counter,
}

impl Area {
    /// The area code of an S7 ANY pointer.
    pub fn code(self) -> u8 {
        match self {
            Area::Input => 0x81,
            Area::Output => 0x82,
            Area::Marker => 0x83,
            Area::Db(_) => 0x84,
            Area::Counter => 0x1C,
            Area::Timer => 0x1D,
        }
    }

    /// The DB number an ANY pointer carries (0 outside data blocks).
    pub fn db(self) -> u16 {
        match self {
            Area::Db(n) => n,
            _ => 0,
        }
    }

    /// Timers and counters are addressed by number, two bytes each; the rest by byte.
    pub fn unit_bytes(self) -> u32 {
        match self {
            Area::Timer | Area::Counter => 2,
            _ => 1,
        }
    }

    pub fn name(self) -> String {
        match self {
            Area::Input => "inputs (I)".into(),
            Area::Output => "outputs (Q)".into(),
            Area::Marker => "markers (M)".into(),
            Area::Db(n) => format!("DB{n}"),
            Area::Timer => "timers (T)".into(),
            Area::Counter => "counters (C)".into(),
        }
    }
}

/// How the bytes at an address become a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// One bit (0 to 7) of the byte.
    Bool(u8),
    Byte,
    Word,
    DWord,
    LWord,
    SInt,
    USInt,
    Int,
    UInt,
    DInt,
    UDInt,
    LInt,
    ULInt,
    Real,
    LReal,
    Char,
    /// An S7 STRING of at most this many characters (max and actual length bytes first).
    String(u8),
    /// Days since 1990-01-01.
    Date,
    /// Signed milliseconds.
    Time,
    /// Milliseconds since midnight.
    Tod,
    /// DATE_AND_TIME: eight BCD bytes.
    Dt,
    /// Twelve bytes: year, month, day, weekday, hour, minute, second, nanoseconds.
    Dtl,
    /// A time base and three BCD digits, as in timers.
    S5Time,
    /// A timer's value (S5TIME format).
    Timer,
    /// A counter's value (three BCD digits).
    Counter,
}

impl Type {
    /// Bytes the type occupies.
    pub fn size(self) -> u32 {
        match self {
            Type::Bool(_) | Type::Byte | Type::SInt | Type::USInt | Type::Char => 1,
            Type::Word | Type::Int | Type::UInt | Type::Date | Type::S5Time | Type::Timer | Type::Counter => {
                2
            }
            Type::DWord | Type::DInt | Type::UDInt | Type::Real | Type::Time | Type::Tod => 4,
            Type::LWord | Type::LInt | Type::ULInt | Type::LReal | Type::Dt => 8,
            Type::Dtl => 12,
            Type::String(n) => u32::from(n) + 2,
        }
    }

    /// Whether every value of this type is a whole number.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Type::Byte
                | Type::Word
                | Type::DWord
                | Type::LWord
                | Type::SInt
                | Type::USInt
                | Type::Int
                | Type::UInt
                | Type::DInt
                | Type::UDInt
                | Type::LInt
                | Type::ULInt
                | Type::Time
                | Type::Tod
                | Type::S5Time
                | Type::Timer
                | Type::Counter
        )
    }

    fn parse(text: &str) -> Option<Type> {
        let lower = text.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("string[").and_then(|r| r.strip_suffix(']')) {
            return n
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=254).contains(n))
                .map(Type::String);
        }
        Some(match lower.as_str() {
            "bool" => Type::Bool(0),
            "byte" => Type::Byte,
            "word" => Type::Word,
            "dword" => Type::DWord,
            "lword" => Type::LWord,
            "sint" => Type::SInt,
            "usint" => Type::USInt,
            "int" => Type::Int,
            "uint" => Type::UInt,
            "dint" => Type::DInt,
            "udint" => Type::UDInt,
            "lint" => Type::LInt,
            "ulint" => Type::ULInt,
            "real" => Type::Real,
            "lreal" => Type::LReal,
            "char" => Type::Char,
            "string" => Type::String(254),
            "date" => Type::Date,
            "time" => Type::Time,
            "tod" | "time_of_day" => Type::Tod,
            "dt" | "date_and_time" => Type::Dt,
            "dtl" => Type::Dtl,
            "s5time" => Type::S5Time,
            _ => return None,
        })
    }

    /// The name in `:type` (`string[20]`).
    pub fn name(self) -> String {
        match self {
            Type::Bool(_) => "bool".into(),
            Type::Byte => "byte".into(),
            Type::Word => "word".into(),
            Type::DWord => "dword".into(),
            Type::LWord => "lword".into(),
            Type::SInt => "sint".into(),
            Type::USInt => "usint".into(),
            Type::Int => "int".into(),
            Type::UInt => "uint".into(),
            Type::DInt => "dint".into(),
            Type::UDInt => "udint".into(),
            Type::LInt => "lint".into(),
            Type::ULInt => "ulint".into(),
            Type::Real => "real".into(),
            Type::LReal => "lreal".into(),
            Type::Char => "char".into(),
            Type::String(n) => format!("string[{n}]"),
            Type::Date => "date".into(),
            Type::Time => "time".into(),
            Type::Tod => "tod".into(),
            Type::Dt => "dt".into(),
            Type::Dtl => "dtl".into(),
            Type::S5Time => "s5time".into(),
            Type::Timer => "timer".into(),
            Type::Counter => "counter".into(),
        }
    }
}

/// The types the width letters default to and accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    Bit,
    Byte,
    Word,
    DWord,
}

/// A parsed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    pub area: Area,
    /// Byte offset, or the timer's / counter's number.
    pub start: u32,
    pub ty: Type,
}

/// The largest byte offset an ANY pointer reaches (a 24-bit bit address).
pub const MAX_OFFSET: u32 = (1 << 21) - 1;

fn error(text: &str, message: impl Into<String>) -> AddressError {
    AddressError {
        message: format!("`{text}`: {}", message.into()),
        hint: Some(
            "S7 addresses look like DB10.DBD4:real, DB10.DBX2.3, DB5.DBB0:string[20], MW20, I0.1, T5, C3"
                .into(),
        ),
    }
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let (location, ty) = match text.split_once(':') {
            Some((l, t)) => (
                l,
                Some(Type::parse(t.trim()).ok_or_else(|| {
                    error(
                        text,
                        format!(
                            "unknown type `{t}` (bool, byte, word, dword, lword, sint, usint, int, uint, dint, \
                             udint, lint, ulint, real, lreal, char, string[N], date, time, tod, dt, dtl, s5time)"
                        ),
                    )
                })?),
            ),
            None => (text, None),
        };
        let upper = location.trim().to_ascii_uppercase();
        let number = |s: &str, what: &str| -> Result<u32, AddressError> {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_OFFSET)
                .ok_or_else(|| error(text, format!("`{s}` is not a {what}")))
        };
        // Timers and counters: a number, no width, no type.
        let counter = upper.strip_prefix('C').or_else(|| upper.strip_prefix('Z'));
        if let Some((area, rest, t)) = upper
            .strip_prefix('T')
            .map(|r| (Area::Timer, r, Type::Timer))
            .or_else(|| counter.map(|r| (Area::Counter, r, Type::Counter)))
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
        {
            if ty.is_some() {
                return Err(error(text, "timers and counters take no type"));
            }
            let n = number(rest, "timer or counter number")?;
            if n > 65_535 {
                return Err(error(text, "timer and counter numbers are 0 to 65535"));
            }
            return Ok(Address {
                area,
                start: n,
                ty: t,
            });
        }
        let (area, rest) = if let Some(rest) = upper.strip_prefix("DB") {
            let (db, rest) = rest
                .split_once('.')
                .ok_or_else(|| error(text, "a DB address is DBn.DBXo.b, DBn.DBBo, DBn.DBWo or DBn.DBDo"))?;
            let db = db
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| error(text, format!("`DB{db}` is not a DB number (1 to 65535)")))?;
            let rest = rest.strip_prefix("DB").ok_or_else(|| {
                error(
                    text,
                    "the part after the DB number starts with DBX, DBB, DBW or DBD",
                )
            })?;
            (Area::Db(db), rest)
        } else if let Some(rest) = upper.strip_prefix('M') {
            (Area::Marker, rest)
        } else if let Some(rest) = upper.strip_prefix('I').or_else(|| upper.strip_prefix('E')) {
            (Area::Input, rest)
        } else if let Some(rest) = upper.strip_prefix('Q').or_else(|| upper.strip_prefix('A')) {
            (Area::Output, rest)
        } else {
            return Err(error(text, "unknown area (DB, M, I, Q, T, C)"));
        };
        let (width, rest) = match rest.as_bytes().first() {
            Some(b'X') => (Some(Width::Bit), &rest[1..]),
            Some(b'B') => (Some(Width::Byte), &rest[1..]),
            Some(b'W') => (Some(Width::Word), &rest[1..]),
            Some(b'D') => (Some(Width::DWord), &rest[1..]),
            Some(b) if b.is_ascii_digit() && !matches!(area, Area::Db(_)) => (None, rest),
            _ => return Err(error(text, "expected X, B, W or D after the area")),
        };
        let (offset, bit) = match rest.split_once('.') {
            Some((o, b)) => (o, Some(b)),
            None => (rest, None),
        };
        let start = number(offset, "byte offset")?;
        let width = match (width, bit) {
            (Some(Width::Bit) | None, Some(b)) => {
                let bit = b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b < 8)
                    .ok_or_else(|| error(text, format!("bit `{b}` is not 0 to 7")))?;
                if ty.is_some_and(|t| !matches!(t, Type::Bool(_))) {
                    return Err(error(text, "a bit address holds a bool"));
                }
                return Ok(Address {
                    area,
                    start,
                    ty: Type::Bool(bit),
                });
            }
            (Some(Width::Bit), None) | (None, None) => {
                return Err(error(
                    text,
                    "a bit address needs the bit: e.g. DB1.DBX2.3 or M2.3",
                ));
            }
            (Some(_), Some(_)) => return Err(error(text, "only bit addresses (X) have a `.bit`")),
            (Some(w), None) => w,
        };
        let ty = match (width, ty) {
            (Width::Byte, None) => Type::Byte,
            (Width::Word, None) => Type::Word,
            (Width::DWord, None) => Type::DWord,
            (_, Some(Type::Bool(_))) => {
                return Err(error(text, "a bool is a bit address: e.g. DB1.DBX2.3"));
            }
            (Width::Bit, _) => return Err(error(text, "a bit address holds a bool")),
            (Width::Byte, Some(t)) => t,
            (Width::Word, Some(t)) if t.size() == 2 => t,
            (Width::DWord, Some(t)) if t.size() == 4 => t,
            (w, Some(t)) => {
                let letter = if w == Width::Word { 'W' } else { 'D' };
                return Err(error(
                    text,
                    format!(
                        "{} is {} bytes, not what {letter} holds; address types longer than 4 bytes by their first byte (B)",
                        t.name(),
                        t.size()
                    ),
                ));
            }
        };
        if start + ty.size() - 1 > MAX_OFFSET {
            return Err(error(text, "the value ends beyond the largest S7 offset"));
        }
        Ok(Address { area, start, ty })
    }

    /// Area units (bytes, or timers/counters) the value occupies.
    pub fn units(&self) -> u32 {
        match self.area {
            Area::Timer | Area::Counter => 1,
            _ => self.ty.size(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.area {
            Area::Timer => return write!(f, "T{}", self.start),
            Area::Counter => return write!(f, "C{}", self.start),
            Area::Db(n) => format!("DB{n}.DB"),
            Area::Marker => "M".into(),
            Area::Input => "I".into(),
            Area::Output => "Q".into(),
        };
        match self.ty {
            Type::Bool(bit) => write!(f, "{prefix}X{}.{bit}", self.start),
            Type::Byte => write!(f, "{prefix}B{}", self.start),
            Type::Word => write!(f, "{prefix}W{}", self.start),
            Type::DWord => write!(f, "{prefix}D{}", self.start),
            t => {
                let letter = match t.size() {
                    2 => 'W',
                    4 => 'D',
                    _ => 'B',
                };
                write!(f, "{prefix}{letter}{}:{}", self.start, t.name())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> Address {
        Address::parse(text).unwrap_or_else(|e| panic!("{text}: {}", e.message))
    }

    #[test]
    fn siemens_notation_parses_to_area_offset_and_type() {
        assert_eq!(
            parse("DB10.DBD4:real"),
            Address {
                area: Area::Db(10),
                start: 4,
                ty: Type::Real
            }
        );
        assert_eq!(parse("DB10.DBX2.3").ty, Type::Bool(3));
        assert_eq!(parse("db10.dbx2.3").start, 2);
        assert_eq!(parse("MW20").ty, Type::Word);
        assert_eq!(parse("MW20:int").ty, Type::Int);
        assert_eq!(parse("I0.1"), parse("E0.1"));
        assert_eq!(parse("Q4.0").area, Area::Output);
        assert_eq!(parse("DB5.DBB0:string[20]").ty, Type::String(20));
        assert_eq!(parse("DB5.DBB0:string[20]").units(), 22);
        assert_eq!(parse("DB1.DBB8:dtl").units(), 12);
        assert_eq!(parse("DB1.DBW2:s5time").ty, Type::S5Time);
        assert_eq!(parse("DB1.DBD2:tod").ty, Type::Tod);
        assert_eq!(
            parse("T5"),
            Address {
                area: Area::Timer,
                start: 5,
                ty: Type::Timer
            }
        );
        assert_eq!(parse("Z3"), parse("C3"));
    }

    #[test]
    fn addresses_print_back_in_canonical_form() {
        for text in [
            "DB10.DBD4:real",
            "DB10.DBX2.3",
            "MW20",
            "IX0.1",
            "QB3",
            "DB5.DBB0:string[20]",
            "DB1.DBB0:lreal",
            "T5",
            "C3",
        ] {
            assert_eq!(parse(&parse(text).to_string()), parse(text), "{text}");
        }
        assert_eq!(parse("M2.3").to_string(), "MX2.3");
    }

    #[test]
    fn wrong_widths_types_and_numbers_are_explained() {
        let err = |t: &str| Address::parse(t).unwrap_err().message;
        assert!(err("DB10.DBW4:real").contains("real is 4 bytes"));
        assert!(err("DB10.DBD4:lreal").contains("first byte (B)"));
        assert!(err("DB10.DBX2.8").contains("bit `8`"));
        assert!(err("DB10.DBX2").contains("needs the bit"));
        assert!(err("DB0.DBW0").contains("DB number"));
        assert!(err("DB1.DBW0:float").contains("unknown type"));
        assert!(err("X1").contains("unknown area"));
        assert!(err("T5:int").contains("no type"));
        assert!(err("DB1.DBB0:string[255]").contains("unknown type"));
        assert!(err("MW20.1").contains("only bit addresses"));
    }
}
