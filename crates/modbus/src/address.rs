//! The address syntax bindings use to name Modbus data:
//!
//! ```text
//! [unit=N;]AREA:OFFSET[.BIT][:TYPE[:ORDER]][@GROUP]
//! ```
//!
//! - `AREA`: `hr` (holding register, FC 3), `ir` (input register, FC 4), `coil` (FC 1),
//!   `di` (discrete input, FC 2).
//! - `OFFSET`: decimal or `0x` hex, counted from the source's `address_base` (0 or 1).
//! - `.BIT`: one bit (0 = least significant) of a register, served as a bool.
//! - `TYPE`: `u16 i16 u32 i32 u64 i64 f32 f64` (decoded by the source) or `str:N` (ASCII
//!   in N registers). Without a type a register is served raw, as its 16-bit `uint`.
//! - `ORDER`: `ABCD CDAB BADC DCBA` for numbers, `AB BA` for strings; default from the
//!   source (`word_order`, `string_byte_order`).
//! - `unit=N;`: another unit id than the source's `unit`; `@GROUP`: a poll group.
//!
//! Parsing knows nothing of the source; [`Address::protocol_start`] applies the base.

use std::fmt;

use backplane_config::AddressError;
use backplane_model::{DecodeType, WordOrder};

/// The four Modbus data tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    Coil,
    DiscreteInput,
    InputRegister,
    HoldingRegister,
}

impl Area {
    pub const ALL: [Area; 4] = [
        Area::HoldingRegister,
        Area::InputRegister,
        Area::Coil,
        Area::DiscreteInput,
    ];

    /// The prefix used in addresses.
    pub fn prefix(self) -> &'static str {
        match self {
            Area::Coil => "coil",
            Area::DiscreteInput => "di",
            Area::InputRegister => "ir",
            Area::HoldingRegister => "hr",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Area::Coil => "coil",
            Area::DiscreteInput => "discrete input",
            Area::InputRegister => "input register",
            Area::HoldingRegister => "holding register",
        }
    }

    /// The function code that reads this table.
    pub fn read_function(self) -> u8 {
        match self {
            Area::Coil => 1,
            Area::DiscreteInput => 2,
            Area::HoldingRegister => 3,
            Area::InputRegister => 4,
        }
    }

    /// Coils and discrete inputs hold bits; the others 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Area::Coil | Area::DiscreteInput)
    }

    /// The leading digit of the Modicon notation (`4xxxx` = holding registers).
    pub fn modicon_digit(self) -> u32 {
        match self {
            Area::Coil => 0,
            Area::DiscreteInput => 1,
            Area::InputRegister => 3,
            Area::HoldingRegister => 4,
        }
    }

    pub fn parse(text: &str) -> Option<Area> {
        Area::ALL.into_iter().find(|a| a.prefix() == text)
    }
}

/// Byte order of the characters of an ASCII string inside each register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StringOrder {
    /// First character in the high byte (the Modbus convention).
    #[default]
    AB,
    /// First character in the low byte.
    BA,
}

impl StringOrder {
    pub fn parse(text: &str) -> Option<StringOrder> {
        match text {
            "AB" => Some(StringOrder::AB),
            "BA" => Some(StringOrder::BA),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StringOrder::AB => "AB",
            StringOrder::BA => "BA",
        }
    }
}

/// What an address reads and how the source serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A coil or discrete input: `bool`.
    Bit,
    /// One register, raw: `uint` 0..=65535.
    Register,
    /// One bit of a register: `bool`.
    RegisterBit(u8),
    /// A number decoded from 1, 2 or 4 registers; `None` takes the source's word order.
    Number(DecodeType, Option<WordOrder>),
    /// ASCII text in `registers` registers; `None` takes the source's string byte order.
    Ascii {
        registers: u16,
        order: Option<StringOrder>,
    },
}

impl ValueKind {
    /// Whether every reading is a whole number: a raw register, or an integer type.
    pub fn reads_integers(self) -> bool {
        match self {
            ValueKind::Register => true,
            ValueKind::Number(kind, _) => !matches!(kind, DecodeType::F32 | DecodeType::F64),
            ValueKind::Bit | ValueKind::RegisterBit(_) | ValueKind::Ascii { .. } => false,
        }
    }
}

/// A parsed address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// `None`: the source's `unit`.
    pub unit: Option<u8>,
    pub area: Area,
    /// As written, counted from the source's `address_base`.
    pub offset: u32,
    pub kind: ValueKind,
    /// `None`: the source's default poll group (`period`).
    pub group: Option<String>,
}

/// The longest string an address may read: one request's worth of registers.
pub const MAX_STRING_REGISTERS: u16 = 125;

const SYNTAX: &str = "write AREA:OFFSET[.BIT][:TYPE[:ORDER]], e.g. hr:100, hr:100.3, hr:102:f32:CDAB, \
                      hr:200:str:10, coil:5, unit=3;ir:30, hr:100@fast";
const AREAS: &str = "one of: hr (holding register), ir (input register), coil, di (discrete input)";
const TYPES: &str = "one of: u16, i16, u32, i32, u64, i64, f32, f64, str:N";

fn err(message: impl Into<String>, hint: impl Into<String>) -> AddressError {
    AddressError {
        message: message.into(),
        hint: Some(hint.into()),
    }
}

impl Address {
    /// Parses the syntax described in the module docs; errors name the part that is wrong
    /// and say how to write it.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        if text.is_empty() {
            return Err(err("empty Modbus address", SYNTAX));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(err(format!("`{text}` contains spaces"), SYNTAX));
        }
        let (rest, group) = match text.rsplit_once('@') {
            Some((rest, group)) => {
                let valid = !group.is_empty()
                    && group
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
                if !valid {
                    return Err(err(
                        format!("invalid poll group `{group}` in `{text}`"),
                        "a group name is lower-case letters, digits, `_` or `-`, defined as [sources.poll.NAME]",
                    ));
                }
                (rest, Some(group.to_owned()))
            }
            None => (text, None),
        };
        let (rest, unit) = match rest.strip_prefix("unit=") {
            Some(tail) => {
                let Some((number, rest)) = tail.split_once(';') else {
                    return Err(err(
                        format!("`{text}`: a unit prefix ends with `;`"),
                        "write e.g. unit=3;hr:100",
                    ));
                };
                let unit = number.parse::<u8>().map_err(|_| {
                    err(
                        format!("unit id `{number}` is not a number from 0 to 255"),
                        "write e.g. unit=3;hr:100",
                    )
                })?;
                (rest, Some(unit))
            }
            None => (rest, None),
        };
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(modicon_error(rest));
        }
        let mut parts = rest.split(':');
        let area_text = parts.next().unwrap_or_default();
        let Some(area) = Area::parse(area_text) else {
            let lower = area_text.to_ascii_lowercase();
            let hint = match Area::parse(&lower) {
                Some(a) => format!("area names are lower case: did you mean `{}`?", a.prefix()),
                None => match lower.as_str() {
                    "4x" | "holding" | "h" => "holding registers are `hr`".to_owned(),
                    "3x" | "input" | "i" => "input registers are `ir`".to_owned(),
                    "0x" | "c" | "co" | "coils" => "coils are `coil`".to_owned(),
                    "1x" | "d" | "discrete" | "is" => "discrete inputs are `di`".to_owned(),
                    _ => AREAS.to_owned(),
                },
            };
            return Err(err(
                format!("unknown Modbus area `{area_text}` in `{text}`"),
                hint,
            ));
        };
        let Some(offset_text) = parts.next() else {
            return Err(err(format!("`{text}` has no offset"), SYNTAX));
        };
        let (offset_text, bit_text) = match offset_text.split_once('.') {
            Some((o, b)) => (o, Some(b)),
            None => (offset_text, None),
        };
        let offset = parse_number(offset_text)
            .filter(|&o| o <= 65_536)
            .ok_or_else(|| {
                err(
                    format!("`{offset_text}` in `{text}` is not an offset from 0 to 65535"),
                    "write a decimal number or 0x-prefixed hex, e.g. hr:100 or hr:0x64",
                )
            })?;
        let type_text = parts.next();
        let order_text = parts.next();
        let kind = match (bit_text, type_text) {
            (Some(bit), None) => {
                if area.is_bits() {
                    return Err(err(
                        format!("`{text}`: a {} is a single bit already", area.name()),
                        format!("write {}:{offset}", area.prefix()),
                    ));
                }
                let bit = bit.parse::<u8>().ok().filter(|b| *b < 16).ok_or_else(|| {
                    err(
                        format!("bit `{bit}` in `{text}` is not a bit number from 0 to 15"),
                        "bit 0 is the least significant bit of the register",
                    )
                })?;
                ValueKind::RegisterBit(bit)
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("`{text}`: a register bit has no type"),
                    "write e.g. hr:100.3 (a bool)",
                ));
            }
            (None, None) if area.is_bits() => ValueKind::Bit,
            (None, None) => ValueKind::Register,
            (None, Some(ty)) => {
                if area.is_bits() {
                    return Err(err(
                        format!("`{text}`: a {} is a bool and takes no type", area.name()),
                        format!("write {}:{offset}", area.prefix()),
                    ));
                }
                if ty == "str" {
                    let Some(count) = order_text else {
                        return Err(err(
                            format!("`{text}`: a string needs its length in registers"),
                            "write e.g. hr:200:str:10 (10 registers = up to 20 characters)",
                        ));
                    };
                    let registers = count
                        .parse::<u16>()
                        .ok()
                        .filter(|n| (1..=MAX_STRING_REGISTERS).contains(n))
                        .ok_or_else(|| {
                            err(
                                format!("string length `{count}` in `{text}` is not 1 to 125 registers"),
                                "the length counts registers (2 characters each), e.g. hr:200:str:10",
                            )
                        })?;
                    let order = match parts.next() {
                        None => None,
                        Some(o) => Some(StringOrder::parse(o).ok_or_else(|| {
                            err(
                                format!("unknown string byte order `{o}` in `{text}`"),
                                "AB (first character in the high byte) or BA (in the low byte)",
                            )
                        })?),
                    };
                    ValueKind::Ascii { registers, order }
                } else {
                    let Some(decode) = DecodeType::parse(ty) else {
                        let hint = if DecodeType::parse(&ty.to_ascii_lowercase()).is_some() {
                            format!("types are lower case: `{}`", ty.to_ascii_lowercase())
                        } else if WordOrder::parse(ty).is_some() {
                            format!(
                                "give the type before the order, e.g. {}:{offset}:f32:{ty}",
                                area.prefix()
                            )
                        } else {
                            TYPES.to_owned()
                        };
                        return Err(err(format!("unknown type `{ty}` in `{text}`"), hint));
                    };
                    let order = match order_text {
                        None => None,
                        Some(o) => Some(WordOrder::parse(o).ok_or_else(|| {
                            err(
                                format!("unknown word order `{o}` in `{text}`"),
                                "one of: ABCD (big-endian), CDAB (word swap), BADC (byte swap), DCBA (little-endian)",
                            )
                        })?),
                    };
                    ValueKind::Number(decode, order)
                }
            }
        };
        if let Some(extra) = parts.next() {
            return Err(err(format!("unexpected `:{extra}` in `{text}`"), SYNTAX));
        }
        Ok(Address {
            unit,
            area,
            offset,
            kind,
            group,
        })
    }

    /// Registers (or bits, for coils and discrete inputs) the address occupies.
    pub fn count(&self) -> u16 {
        match self.kind {
            ValueKind::Bit | ValueKind::Register | ValueKind::RegisterBit(_) => 1,
            ValueKind::Number(t, _) => t.words() as u16,
            ValueKind::Ascii { registers, .. } => registers,
        }
    }

    /// The 0-based protocol address of the first register, for a source counting from
    /// `base`; checks that every register read lies in 0..=65535.
    pub fn protocol_start(&self, base: u16) -> Result<u16, AddressError> {
        let base = u32::from(base);
        let Some(start) = self.offset.checked_sub(base) else {
            return Err(err(
                format!(
                    "{}:{} does not exist with address_base = {base}: the first {} is {}:{base}",
                    self.area.prefix(),
                    self.offset,
                    self.area.name(),
                    self.area.prefix()
                ),
                "address_base = 1 counts from 1 like most vendor manuals; 0 counts like the protocol",
            ));
        };
        let end = start + u32::from(self.count()) - 1;
        if end > 65_535 {
            return Err(err(
                format!(
                    "{}:{} with {} registers ends beyond the last Modbus address",
                    self.area.prefix(),
                    self.offset,
                    self.count()
                ),
                format!("the last address is {}:{}", self.area.prefix(), 65_535 + base),
            ));
        }
        Ok(start as u16)
    }
}

fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u32::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

/// `40101` and `400101` are the Modicon notation: table digit, then a 1-based number.
fn modicon_error(text: &str) -> AddressError {
    let (digit, number) = match text.len() {
        5 | 6 => (text.as_bytes()[0], &text[1..]),
        _ => {
            return err(format!("`{text}` has no area"), format!("{SYNTAX}; {AREAS}"));
        }
    };
    let area = match digit {
        b'0' => Some(Area::Coil),
        b'1' => Some(Area::DiscreteInput),
        b'3' => Some(Area::InputRegister),
        b'4' => Some(Area::HoldingRegister),
        _ => None,
    };
    let n: u32 = number.parse().unwrap_or(0);
    match area {
        Some(area) if n >= 1 => err(
            format!("`{text}` is Modicon notation, which Backplane does not guess at"),
            format!(
                "it means {} {n} counted from 1: write {p}:{n} with address_base = 1, or {p}:{} with address_base = 0",
                area.name(),
                n - 1,
                p = area.prefix()
            ),
        ),
        _ => err(format!("`{text}` has no area"), format!("{SYNTAX}; {AREAS}")),
    }
}

impl fmt::Display for Address {
    /// The canonical form of the address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(unit) = self.unit {
            write!(f, "unit={unit};")?;
        }
        write!(f, "{}:{}", self.area.prefix(), self.offset)?;
        match self.kind {
            ValueKind::Bit | ValueKind::Register => {}
            ValueKind::RegisterBit(b) => write!(f, ".{b}")?,
            ValueKind::Number(t, order) => {
                write!(f, ":{}", decode_name(t))?;
                if let Some(o) = order {
                    write!(f, ":{o:?}")?;
                }
            }
            ValueKind::Ascii { registers, order } => {
                write!(f, ":str:{registers}")?;
                if let Some(o) = order {
                    write!(f, ":{}", o.name())?;
                }
            }
        }
        if let Some(g) = &self.group {
            write!(f, "@{g}")?;
        }
        Ok(())
    }
}

pub(crate) fn decode_name(t: DecodeType) -> &'static str {
    match t {
        DecodeType::U16 => "u16",
        DecodeType::I16 => "i16",
        DecodeType::U32 => "u32",
        DecodeType::I32 => "i32",
        DecodeType::U64 => "u64",
        DecodeType::I64 => "i64",
        DecodeType::F32 => "f32",
        DecodeType::F64 => "f64",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> Address {
        Address::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn hint(text: &str) -> String {
        let e = Address::parse(text).expect_err(text);
        format!("{} | {}", e.message, e.hint.unwrap_or_default())
    }

    #[test]
    fn every_documented_form_parses_and_prints_back() {
        for text in [
            "hr:100",
            "ir:30",
            "coil:5",
            "di:7",
            "hr:100.3",
            "hr:102:f32:CDAB",
            "hr:102:u32",
            "hr:200:str:10",
            "hr:200:str:10:BA",
            "unit=3;hr:100",
            "hr:100@fast",
            "unit=2;ir:4:i64:DCBA@slow",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
        let a = parse("unit=3;hr:0x64:f64:BADC@fast");
        assert_eq!(a.unit, Some(3));
        assert_eq!(a.offset, 100);
        assert_eq!(a.kind, ValueKind::Number(DecodeType::F64, Some(WordOrder::BADC)));
        assert_eq!(a.count(), 4);
        assert_eq!(a.group.as_deref(), Some("fast"));
    }

    #[test]
    fn address_base_shifts_the_protocol_address_and_rejects_zero_when_one_based() {
        assert_eq!(parse("hr:1").protocol_start(1).unwrap(), 0);
        assert_eq!(parse("hr:1").protocol_start(0).unwrap(), 1);
        let e = parse("hr:0").protocol_start(1).unwrap_err();
        assert!(e.message.contains("the first holding register is hr:1"), "{e:?}");
        assert_eq!(parse("hr:65536").protocol_start(1).unwrap(), 65535);
        assert!(parse("hr:65535:u32").protocol_start(0).is_err());
    }

    #[test]
    fn modicon_numbers_are_refused_with_both_translations() {
        let h = hint("40101");
        assert!(h.contains("hr:101 with address_base = 1"), "{h}");
        assert!(h.contains("hr:100 with address_base = 0"), "{h}");
        assert!(hint("300001").contains("ir:1 with address_base = 1"));
        assert!(hint("17").contains("has no area"));
    }

    #[test]
    fn mistakes_get_precise_hints() {
        assert!(hint("HR:100").contains("did you mean `hr`"));
        assert!(hint("4x:100").contains("`hr`"));
        assert!(hint("hr:100:CDAB").contains("hr:100:f32:CDAB"));
        assert!(hint("hr:100:float").contains("u16, i16"));
        assert!(hint("hr:100:f32:ABDC").contains("CDAB (word swap)"));
        assert!(hint("hr:100.16").contains("0 to 15"));
        assert!(hint("coil:3.1").contains("single bit"));
        assert!(hint("coil:3:u16").contains("takes no type"));
        assert!(hint("hr:200:str").contains("length in registers"));
        assert!(hint("hr:200:str:126").contains("1 to 125"));
        assert!(hint("hr:70000").contains("0 to 65535"));
        assert!(hint("unit=300;hr:1").contains("0 to 255"));
        assert!(hint("hr:1@Fast").contains("poll group"));
        assert!(hint("hr:1:u16:ABCD:x").contains("unexpected `:x`"));
        assert!(hint("hr: 1").contains("spaces"));
        assert!(hint("").contains("empty"));
    }

    #[test]
    fn raw_and_integer_registers_read_whole_numbers_and_floats_bits_and_text_do_not() {
        let integers = |text: &str| Address::parse(text).unwrap().kind.reads_integers();
        for text in ["hr:100", "ir:3", "hr:100:i16", "hr:100:u32:CDAB", "hr:100:i64"] {
            assert!(integers(text), "{text}");
        }
        for text in [
            "hr:100:f32",
            "hr:100:f64:DCBA",
            "hr:100.3",
            "coil:5",
            "di:1",
            "hr:200:str:10",
        ] {
            assert!(!integers(text), "{text}");
        }
    }
}
