//! The binary encoding shared by Backplane's own files: the engine's store-and-forward
//! records and the historian's WAL, catalog, segments and chunks. One codec, so the same
//! [`Value`](crate::Value) is the same bytes wherever it is stored.
//!
//! - Writing (this module): [`put_varint`] (unsigned LEB128), [`put_varint_i64`] (zigzag,
//!   then LEB128), [`put_blob`] / [`put_str`] (length-prefixed bytes), [`put_value`]. Writers
//!   append to a `Vec<u8>` and cannot fail.
//! - Reading: [`Cursor`], a read position over a byte slice. Every read checks bounds and
//!   returns [`Error`] on input it does not accept: no input makes it panic, and no count
//!   read from the input sizes an allocation before it was checked against the bytes left.
//! - Values: a type byte, then the payload ([`put_value`], [`Cursor::value`]):
//!
//! | type | tag | payload |
//! |---|---|---|
//! | bool | 0 | `0` or `1` |
//! | int | 1 | zigzag varint |
//! | uint | 2 | varint |
//! | float | 3 | IEEE 754 bits, u64 LE (NaN payloads and -0.0 kept) |
//! | string | 4 | varint length, UTF-8 |
//! | timestamp | 5 | zigzag varint of unix nanoseconds |
//! | array | 6 | varint count, then each item as a value |
//!
//! Arrays may nest [`MAX_DEPTH`] levels deep; deeper input is refused rather than recursed.
//!
//! Framing and checksums stay with each file format (the buffer's record header and the
//! historian's record frame differ in what they carry); both use CRC32C.

mod cursor;
mod value;

pub use cursor::{Cursor, Error, Result};
pub use value::{MAX_DEPTH, put_value};

/// Appends `v` as an unsigned LEB128 varint: 7 bits per byte, low bits first, the high bit
/// set on every byte but the last. 1 to 10 bytes.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-mapped ([`zigzag`]) as a varint: small magnitudes of either sign take
/// few bytes.
#[inline]
pub fn put_varint_i64(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

/// Appends a varint length, then the bytes.
#[inline]
pub fn put_blob(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a string as a blob of its UTF-8 bytes.
#[inline]
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_blob(out, s.as_bytes());
}

/// The number of bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Maps signed to unsigned so that small magnitudes stay small: 0, -1, 1, -2, … become
/// 0, 1, 2, 3, ….
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, 127, 128, 16383, 16384, u64::MAX / 2, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(Cursor::new(&out).varint(), Ok(v));
        }
    }

    #[test]
    fn varints_are_leb128() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn zigzag_maps_small_magnitudes_to_small_codes() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn blobs_and_strings_carry_their_length() {
        let mut out = Vec::new();
        put_str(&mut out, "hé");
        put_blob(&mut out, &[]);
        let mut cur = Cursor::new(&out);
        assert_eq!(cur.str(), Ok("hé"));
        assert_eq!(cur.blob(), Ok(&[][..]));
        assert!(cur.is_empty());
    }
}
