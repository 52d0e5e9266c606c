//! [`Cursor`]: bounds-checked reads over untrusted bytes, and [`Error`], why they fail.

use super::{MAX_DEPTH, unzigzag};

/// Why bytes do not decode: cut short, or not what the format allows. Readers return it
/// instead of panicking, whatever the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ends inside an item.
    #[error("unexpected end of input")]
    Truncated,
    /// A varint longer than 10 bytes, or whose tenth byte carries more than the 64th bit.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A count or length above its limit, or above what the bytes left could hold.
    #[error("count or length out of range")]
    OutOfRange,
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A value's type byte that is none of the types.
    #[error("unknown value type {0}")]
    UnknownValueType(u8),
    /// A bool's byte that is neither 0 nor 1.
    #[error("bool byte {0} is neither 0 nor 1")]
    InvalidBool(u8),
    #[error("arrays nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A rule of a format built on these reads (a column codec, a record layout) is broken.
    #[error("{0}")]
    Invalid(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A read position in a byte slice; every read checks bounds and moves past what it read.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// Bytes read so far.
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

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(Error::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    #[inline]
    pub fn u32_le(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    #[inline]
    pub fn u64_le(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    #[inline]
    pub fn i64_le(&mut self) -> Result<i64> {
        self.array().map(i64::from_le_bytes)
    }

    /// An unsigned LEB128 varint (see [`super::put_varint`]).
    #[inline]
    pub fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && b > 1 {
                return Err(Error::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::VarintOverflow)
    }

    /// A zigzag varint (see [`super::put_varint_i64`]).
    #[inline]
    pub fn varint_i64(&mut self) -> Result<i64> {
        self.varint().map(unzigzag)
    }

    /// A varint count that will size an allocation: at most `max`, and at most what the
    /// bytes left could describe with `min_bytes_each` bytes per item.
    pub fn count(&mut self, max: usize, min_bytes_each: usize) -> Result<usize> {
        let n = usize::try_from(self.varint()?).map_err(|_| Error::OutOfRange)?;
        if n > max || n.saturating_mul(min_bytes_each) > self.remaining() {
            return Err(Error::OutOfRange);
        }
        Ok(n)
    }

    /// A length-prefixed byte string (see [`super::put_blob`]).
    pub fn blob(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| Error::OutOfRange)?;
        self.bytes(n)
    }

    /// A length-prefixed UTF-8 string (see [`super::put_str`]).
    pub fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.blob()?).map_err(|_| Error::InvalidUtf8)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn overlong_varints_are_rejected() {
        let bytes = [0xff; 11];
        assert_eq!(Cursor::new(&bytes).varint(), Err(Error::VarintOverflow));
        let mut tenth = vec![0xff; 9];
        tenth.push(0x02);
        assert_eq!(Cursor::new(&tenth).varint(), Err(Error::VarintOverflow));
        assert_eq!(Cursor::new(&[0x80, 0x80]).varint(), Err(Error::Truncated));
    }

    #[test]
    fn counts_are_bounded_by_the_limit_and_the_bytes_left() {
        // 3 items of at least 2 bytes need 6 bytes; 5 are left.
        let bytes = [3, 0, 0, 0, 0, 0];
        assert_eq!(Cursor::new(&bytes).count(10, 2), Err(Error::OutOfRange));
        assert_eq!(Cursor::new(&bytes).count(2, 1), Err(Error::OutOfRange));
        assert_eq!(Cursor::new(&bytes).count(3, 1), Ok(3));
    }

    #[test]
    fn reads_past_the_end_fail_and_leave_the_position() {
        let mut cur = Cursor::new(&[1, 2, 3]);
        assert_eq!(cur.u32_le(), Err(Error::Truncated));
        assert_eq!(cur.position(), 0);
        assert_eq!(cur.bytes(usize::MAX), Err(Error::Truncated));
        assert_eq!(cur.blob(), Ok(&[2][..]));
        assert_eq!(cur.peek(), Some(3));
        assert_eq!(cur.str(), Err(Error::Truncated));
        assert_eq!(Cursor::new(&[1, 0xff]).str(), Err(Error::InvalidUtf8));
    }
}
