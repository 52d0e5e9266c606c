//! Record framing: encode, parse and check one record.
//!
//! ```text
//! offset  size  field
//!      0     4  len             payload length, u32 LE
//!      4     4  crc             CRC32C of bytes 0..4, 8..28 and the payload, u32 LE
//!      8     8  seq             first sequence number of the record, u64 LE
//!     16     4  count           sequence numbers the record covers (>= 1), u32 LE
//!     20     8  appended_at_ns  unix nanoseconds when appended, u64 LE
//!     28   len  payload
//! ```
//!
//! The CRC covers the length prefix too, so a damaged length is caught even when it happens
//! to point at a plausible place.

/// Bytes of the fixed record header.
pub const HEADER_LEN: usize = 28;

/// Largest payload one record may carry. It bounds the memory one read needs, and makes a
/// garbage length prefix implausible during recovery.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// The parsed fixed header of a record (not yet checked against its payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u32,
    pub crc: u32,
    pub seq: u64,
    pub count: u32,
    pub appended_at_ns: u64,
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl Header {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            len: u32_at(b, 0),
            crc: u32_at(b, 4),
            seq: u64_at(b, 8),
            count: u32_at(b, 16),
            appended_at_ns: u64_at(b, 20),
        }
    }

    /// Header plus payload, in bytes.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    /// The sequence number after this record; `None` when it would overflow (garbage).
    pub fn end_seq(&self) -> Option<u64> {
        self.seq.checked_add(u64::from(self.count))
    }

    /// Checks that cost nothing, made before reading the payload.
    pub fn plausible(&self) -> bool {
        self.len as usize <= MAX_PAYLOAD && self.count >= 1 && self.end_seq().is_some()
    }
}

/// CRC32C over the header (without the CRC field itself) and the payload.
pub(crate) fn checksum(header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(0, &header[0..4]);
    let crc = crc32c::crc32c_append(crc, &header[8..HEADER_LEN]);
    crc32c::crc32c_append(crc, payload)
}

/// Appends the framed record to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, seq: u64, count: u32, appended_at_ns: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..20].copy_from_slice(&count.to_le_bytes());
    h[20..28].copy_from_slice(&appended_at_ns.to_le_bytes());
    let crc = checksum(&h, payload);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn header_of(buf: &[u8]) -> [u8; HEADER_LEN] {
        buf[..HEADER_LEN].try_into().unwrap()
    }

    #[test]
    fn encoded_record_parses_back_and_checks() {
        let mut buf = Vec::new();
        encode(&mut buf, 42, 7, 1_700_000_000_000_000_000, b"hello");
        assert_eq!(buf.len(), HEADER_LEN + 5);
        let hb = header_of(&buf);
        let h = Header::parse(&hb);
        assert_eq!((h.len, h.seq, h.count), (5, 42, 7));
        assert_eq!(h.appended_at_ns, 1_700_000_000_000_000_000);
        assert_eq!(h.end_seq(), Some(49));
        assert!(h.plausible());
        assert_eq!(checksum(&hb, &buf[HEADER_LEN..]), h.crc);
    }

    #[test]
    fn any_flipped_bit_breaks_the_checksum() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 1, 5, b"payload bytes");
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let hb = header_of(&damaged);
            let h = Header::parse(&hb);
            let payload_len = (h.len as usize).min(damaged.len() - HEADER_LEN);
            let ok = checksum(&hb, &damaged[HEADER_LEN..HEADER_LEN + payload_len]) == h.crc
                && h.len as usize == damaged.len() - HEADER_LEN;
            assert!(!ok, "bit {bit} flipped but the record still checks");
        }
    }

    #[test]
    fn zeroed_or_garbage_headers_are_implausible() {
        let h = Header::parse(&[0u8; HEADER_LEN]);
        assert!(!h.plausible(), "count 0 must be implausible");
        let h = Header::parse(&[0xff; HEADER_LEN]);
        assert!(
            !h.plausible(),
            "huge length and overflowing seq must be implausible"
        );
    }
}
