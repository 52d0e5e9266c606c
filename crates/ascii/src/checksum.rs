//! Checksums carried at the end of a frame. Pure.
//!
//! A frame with a checksum is laid out as
//! `[skip bytes][covered bytes][separator][checksum]`: the checksum covers exactly the
//! bytes between the first `skip` bytes and the separator (NMEA 0183: `skip = 1` for the
//! `$`, `separator = "*"`, XOR as two hex digits). What the pattern then matches is the
//! frame without the separator and the checksum.

use std::fmt;

/// How the 8-bit check value is computed over the covered bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// XOR of all covered bytes (NMEA 0183, many scales' "BCC").
    Xor,
    /// Sum of the covered bytes modulo 256.
    Sum,
    /// Two's complement of the sum modulo 256 (so that bytes + check sum to 0), over the
    /// bytes as sent (not over hex-decoded bytes as Modbus ASCII does).
    Lrc,
}

/// How the check value is written in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Two hex digits, either case (`*6A`).
    Hex,
    /// One raw byte.
    Byte,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Bytes at the start of the frame that are not covered.
    pub skip: usize,
    /// Bytes between the covered bytes and the check value, not covered.
    pub separator: Vec<u8>,
}

/// Why a frame failed its checksum.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("too short to hold its checksum")]
    Missing,
    #[error("no `{0}` before the checksum")]
    NoSeparator(String),
    #[error("checksum is {found}, the bytes give {computed}")]
    Mismatch { computed: String, found: String },
}

impl Algorithm {
    pub fn parse(text: &str) -> Option<Algorithm> {
        match text {
            "xor" => Some(Algorithm::Xor),
            "sum" => Some(Algorithm::Sum),
            "lrc" => Some(Algorithm::Lrc),
            _ => None,
        }
    }

    pub fn compute(self, bytes: &[u8]) -> u8 {
        match self {
            Algorithm::Xor => bytes.iter().fold(0, |a, b| a ^ b),
            Algorithm::Sum => bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)),
            Algorithm::Lrc => Algorithm::Sum.compute(bytes).wrapping_neg(),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Xor => "xor",
            Algorithm::Sum => "sum",
            Algorithm::Lrc => "lrc",
        })
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn shown(encoding: Encoding, value: u8) -> String {
    match encoding {
        Encoding::Hex => format!("{value:02X}"),
        Encoding::Byte => format!("0x{value:02X}"),
    }
}

impl Checksum {
    /// Checks `frame`; on success returns the frame without the separator and check value.
    pub fn verify<'a>(&self, frame: &'a [u8]) -> Result<&'a [u8], ChecksumError> {
        let digits = match self.encoding {
            Encoding::Hex => 2,
            Encoding::Byte => 1,
        };
        let tail = self.separator.len() + digits;
        let body_end = frame
            .len()
            .checked_sub(tail)
            .filter(|end| *end >= self.skip)
            .ok_or(ChecksumError::Missing)?;
        let (body, rest) = frame.split_at(body_end);
        let (separator, check) = rest.split_at(self.separator.len());
        if separator != self.separator.as_slice() {
            return Err(ChecksumError::NoSeparator(
                String::from_utf8_lossy(&self.separator).into_owned(),
            ));
        }
        let computed = self.algorithm.compute(body.get(self.skip..).unwrap_or_default());
        let found = match (self.encoding, check) {
            (Encoding::Hex, &[hi, lo]) => hex_digit(hi).zip(hex_digit(lo)).map(|(h, l)| h << 4 | l),
            (Encoding::Byte, &[b]) => Some(b),
            _ => None,
        };
        if found == Some(computed) {
            Ok(body)
        } else {
            Err(ChecksumError::Mismatch {
                computed: shown(self.encoding, computed),
                found: match found {
                    Some(v) => shown(self.encoding, v),
                    None => format!("{:?} (not hex)", String::from_utf8_lossy(check)),
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nmea() -> Checksum {
        Checksum {
            algorithm: Algorithm::Xor,
            encoding: Encoding::Hex,
            skip: 1,
            separator: b"*".to_vec(),
        }
    }

    #[test]
    fn nmea_sentences_check_the_xor_between_dollar_and_star() {
        let line = b"$GPGLL,5300.97914,N,00259.98174,E,125926,A*28";
        assert_eq!(
            nmea().verify(line).unwrap(),
            b"$GPGLL,5300.97914,N,00259.98174,E,125926,A"
        );
        // Lower-case digits are accepted.
        assert!(
            nmea()
                .verify(b"$GPGLL,5300.97914,N,00259.98174,E,125926,A*28")
                .is_ok()
        );
        let bad = nmea().verify(b"$GPGLL,5300.97914,N,00259.98174,E,125926,B*28");
        assert_eq!(
            bad,
            Err(ChecksumError::Mismatch {
                computed: "2B".into(),
                found: "28".into()
            })
        );
        assert_eq!(nmea().verify(b"$A"), Err(ChecksumError::Missing));
        assert!(matches!(
            nmea().verify(b"$ABC-28"),
            Err(ChecksumError::NoSeparator(_))
        ));
        assert!(matches!(
            nmea().verify(b"$ABC*ZZ"),
            Err(ChecksumError::Mismatch { .. })
        ));
    }

    #[test]
    fn sum_and_lrc_are_modulo_256_and_lrc_cancels_the_sum() {
        let bytes = [0xF0u8, 0x20, 0x01];
        assert_eq!(Algorithm::Sum.compute(&bytes), 0x11);
        assert_eq!(Algorithm::Lrc.compute(&bytes), 0xEF);
        assert_eq!(
            Algorithm::Sum
                .compute(&bytes)
                .wrapping_add(Algorithm::Lrc.compute(&bytes)),
            0
        );
        let raw = Checksum {
            algorithm: Algorithm::Sum,
            encoding: Encoding::Byte,
            skip: 0,
            separator: Vec::new(),
        };
        assert_eq!(raw.verify(&[b'A', b'B', 0x83]).unwrap(), b"AB");
        assert!(raw.verify(&[b'A', b'B', 0x84]).is_err());
        assert_eq!(raw.verify(&[]), Err(ChecksumError::Missing));
    }
}
