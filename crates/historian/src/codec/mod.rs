//! Column codecs: how one column of a chunk (times, values, qualities, context ids) becomes
//! bytes and back.
//!
//! - [`ints`]: integer sequences. Each column tries delta orders 0, 1 and 2 (plain values,
//!   deltas, delta-of-delta) with two back ends, run-length and bit-packing in blocks of
//!   128 with a frame of reference, and keeps the smallest. Regular timestamps become one
//!   run; a random walk becomes a few bits per point; a state column becomes a few runs.
//! - [`floats`]: decimal floats (values that are exact decimals, e.g. 72.37, stored as
//!   scaled integers through [`ints`], with exceptions kept bit for bit), a sorted
//!   dictionary for few distinct values (converted registers), or Gorilla XOR for
//!   everything else; the smallest wins.
//! - [`values`]: a tagged encoding of any [`Value`](backplane_model::Value), for the WAL,
//!   string dictionaries and columns of mixed types.
//! - [`chunk`]: a whole chunk of one series: the columns above in a fixed order.
//!
//! Every decoder works on untrusted bytes: it returns [`CodecError`] rather than panicking,
//! and bounds every allocation by the input size.

pub mod chunk;
pub mod floats;
pub mod ints;
pub mod values;

/// The bytes do not decode: cut short, or not what the format allows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt data: {0}")]
pub struct CodecError(pub &'static str);

pub type Result<T> = std::result::Result<T, CodecError>;

/// A read position in a byte slice; every read checks bounds.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(CodecError("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(CodecError("length overflow"))?;
        let out = self.buf.get(self.pos..end).ok_or(CodecError("unexpected end"))?;
        self.pos = end;
        Ok(out)
    }

    pub fn u32_le(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_le(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && b > 1 {
                return Err(CodecError("varint overflow"));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError("varint too long"))
    }

    pub fn varint_i64(&mut self) -> Result<i64> {
        self.varint().map(unzigzag)
    }

    /// A count that will size an allocation: at most `max`, and at most what the remaining
    /// bytes could describe with `min_bytes_each` bytes per item.
    pub fn count(&mut self, max: usize, min_bytes_each: usize) -> Result<usize> {
        let n = usize::try_from(self.varint()?).map_err(|_| CodecError("count too large"))?;
        if n > max || n.saturating_mul(min_bytes_each) > self.remaining() {
            return Err(CodecError("count out of range"));
        }
        Ok(n)
    }

    /// A length-prefixed byte string.
    pub fn blob(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| CodecError("length too large"))?;
        self.bytes(n)
    }

    pub fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.blob()?).map_err(|_| CodecError("invalid UTF-8"))
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_varint_i64(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

pub fn put_blob(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
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
    fn zigzag_maps_small_magnitudes_to_small_codes() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn overlong_varints_are_rejected() {
        let bytes = [0xff; 11];
        assert!(Cursor::new(&bytes).varint().is_err());
        let mut tenth = vec![0xff; 9];
        tenth.push(0x02);
        assert!(Cursor::new(&tenth).varint().is_err());
    }
}
