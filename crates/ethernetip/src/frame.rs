//! The EtherNet/IP encapsulation layer (ODVA Vol. 2, chapter 2): the 24-byte header every
//! TCP frame starts with, and the Common Packet Format (CPF) items SendRRData and
//! SendUnitData carry. Pure: bytes in, typed frames out; no I/O, no panics on any input
//! (fuzzed by fuzz/fuzz_targets/enip_reply.rs and enip_request.rs).
//!
//! Header (all little-endian): command u16, length u16 (of the data after the header),
//! session handle u32, status u32, sender context [u8; 8], options u32.

/// Bytes of the encapsulation header.
pub const HEADER_LEN: usize = 24;

pub const NOP: u16 = 0x0000;
pub const LIST_SERVICES: u16 = 0x0004;
pub const LIST_IDENTITY: u16 = 0x0063;
pub const REGISTER_SESSION: u16 = 0x0065;
pub const UNREGISTER_SESSION: u16 = 0x0066;
pub const SEND_RR_DATA: u16 = 0x006F;
pub const SEND_UNIT_DATA: u16 = 0x0070;

/// CPF item types.
pub const ITEM_NULL_ADDRESS: u16 = 0x0000;
pub const ITEM_CONNECTED_ADDRESS: u16 = 0x00A1;
pub const ITEM_CONNECTED_DATA: u16 = 0x00B1;
pub const ITEM_UNCONNECTED_DATA: u16 = 0x00B2;

/// CPF items one packet may carry; real packets carry 2 (a few more with socket items).
pub const MAX_ITEMS: usize = 8;

/// One encapsulation frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encap {
    pub command: u16,
    pub session: u32,
    pub status: u32,
    pub context: [u8; 8],
    pub data: Vec<u8>,
}

/// Why bytes are not a frame we can use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{what}: {need} bytes needed, {have} present")]
    Short {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what}: {extra} bytes left over")]
    Trailing { what: &'static str, extra: usize },
    #[error("{count} CPF items, more than the {MAX_ITEMS} any packet needs")]
    TooManyItems { count: usize },
    #[error("{0}")]
    Unexpected(String),
}

/// A little-endian reader over a byte slice that never panics.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, what }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let (head, rest) = self.bytes.split_at_checked(n).ok_or(FrameError::Short {
            what: self.what,
            need: n,
            have: self.bytes.len(),
        })?;
        self.bytes = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    pub fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([
            b.first().copied().unwrap_or_default(),
            b.get(1).copied().unwrap_or_default(),
        ]))
    }

    pub fn u32(&mut self) -> Result<u32, FrameError> {
        let lo = u32::from(self.u16()?);
        let hi = u32::from(self.u16()?);
        Ok(lo | hi << 16)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn end(&self) -> Result<(), FrameError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Trailing {
                what: self.what,
                extra: self.bytes.len(),
            })
        }
    }
}

impl Encap {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.data.len());
        out.extend_from_slice(&self.command.to_le_bytes());
        out.extend_from_slice(&(self.data.len().min(0xFFFF) as u16).to_le_bytes());
        out.extend_from_slice(&self.session.to_le_bytes());
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&self.context);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(self.data.get(..0xFFFF.min(self.data.len())).unwrap_or_default());
        out
    }

    /// The data length a header announces (to know how much more to read); `None` until
    /// the header is complete.
    pub fn announced(buf: &[u8]) -> Option<usize> {
        let b = buf.get(2..4)?;
        Some(usize::from(u16::from_le_bytes([
            b.first().copied()?,
            b.get(1).copied()?,
        ])))
    }

    /// Decodes one whole frame from the start of `buf`; `Ok(None)` if more bytes are
    /// needed, else the frame and the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<Option<(Encap, usize)>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut r = Reader::new(buf, "encapsulation header");
        let command = r.u16()?;
        let len = usize::from(r.u16()?);
        let session = r.u32()?;
        let status = r.u32()?;
        let mut context = [0u8; 8];
        context.copy_from_slice(r.take(8)?);
        let _options = r.u32()?;
        if r.remaining() < len {
            return Ok(None);
        }
        let data = r.take(len)?.to_vec();
        Ok(Some((
            Encap {
                command,
                session,
                status,
                context,
                data,
            },
            HEADER_LEN + len,
        )))
    }
}

/// One CPF item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    pub kind: u16,
    pub data: &'a [u8],
}

/// The data of a SendRRData / SendUnitData frame: interface handle u32, timeout u16, then
/// a CPF item list.
pub fn encode_cpf(timeout: u16, items: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&timeout.to_le_bytes());
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    for (kind, data) in items {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(data.len().min(0xFFFF) as u16).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Decodes a SendRRData / SendUnitData frame's data into its CPF items.
pub fn decode_cpf(data: &[u8]) -> Result<Vec<Item<'_>>, FrameError> {
    let mut r = Reader::new(data, "CPF item list");
    let _interface = r.u32()?;
    let _timeout = r.u16()?;
    let count = usize::from(r.u16()?);
    if count > MAX_ITEMS {
        return Err(FrameError::TooManyItems { count });
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        items.push(Item {
            kind,
            data: r.take(len)?,
        });
    }
    r.end()?;
    Ok(items)
}

/// The data item of an unconnected (0xB2) or connected (0xB1) packet, and for the
/// latter the connection id of its address item.
pub fn message_item<'a>(items: &[Item<'a>]) -> Result<(Option<u32>, &'a [u8]), FrameError> {
    let address = items.iter().find(|i| i.kind == ITEM_CONNECTED_ADDRESS);
    let connection = match address {
        Some(a) => Some(Reader::new(a.data, "connected address item").u32()?),
        None => None,
    };
    let data = items
        .iter()
        .find(|i| i.kind == ITEM_UNCONNECTED_DATA || i.kind == ITEM_CONNECTED_DATA)
        .ok_or_else(|| FrameError::Unexpected("no data item in the packet".into()))?;
    Ok((connection, data.data))
}

/// The meaning of an encapsulation status (ODVA Vol. 2, table 2-3.3).
pub fn encap_status_name(status: u32) -> &'static str {
    match status {
        0x0000 => "success",
        0x0001 => "invalid or unsupported encapsulation command",
        0x0002 => "insufficient memory in the receiver",
        0x0003 => "poorly formed or incorrect data",
        0x0064 => "invalid session handle",
        0x0065 => "invalid length",
        0x0069 => "unsupported encapsulation protocol revision",
        _ => "unknown encapsulation status",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_round_trip_and_partial_input_asks_for_more() {
        let frame = Encap {
            command: SEND_RR_DATA,
            session: 0x1234_5678,
            status: 0,
            context: *b"ctx12345",
            data: encode_cpf(
                5,
                &[(ITEM_NULL_ADDRESS, &[]), (ITEM_UNCONNECTED_DATA, &[1, 2, 3])],
            ),
        };
        let bytes = frame.encode();
        assert_eq!(Encap::decode(&bytes[..10]), Ok(None));
        assert_eq!(Encap::decode(&bytes[..bytes.len() - 1]), Ok(None));
        let (back, used) = Encap::decode(&bytes).unwrap().unwrap();
        assert_eq!((back.clone(), used), (frame, bytes.len()));
        let items = decode_cpf(&back.data).unwrap();
        assert_eq!(message_item(&items).unwrap(), (None, &[1u8, 2, 3][..]));
    }

    #[test]
    fn bad_item_lists_are_errors_not_panics() {
        assert!(decode_cpf(&[0; 5]).is_err());
        let mut many = vec![0u8; 6];
        many.extend_from_slice(&200u16.to_le_bytes());
        assert!(matches!(decode_cpf(&many), Err(FrameError::TooManyItems { .. })));
        let mut short = encode_cpf(0, &[(ITEM_UNCONNECTED_DATA, &[1, 2, 3])]);
        short.pop();
        assert!(decode_cpf(&short).is_err());
        let none = encode_cpf(0, &[(ITEM_NULL_ADDRESS, &[])]);
        assert!(message_item(&decode_cpf(&none).unwrap()).is_err());
    }
}
