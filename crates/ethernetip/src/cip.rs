//! CIP messages (ODVA Vol. 1) and the Logix services on top: Message Router requests and
//! replies, Read Tag / Write Tag, Multiple Service Packet, Unconnected Send, Forward Open
//! (small and large) and Forward Close, and the Symbol object's Get Instance Attribute
//! List. Pure and bounds-checked like [`crate::frame`].
//!
//! A Message Router request is: service u8, path size u8 (in 16-bit words), path, data.
//! A reply is: service | 0x80, reserved u8, general status u8, additional status size u8
//! (words), additional status words, data.

use crate::frame::{FrameError, Reader};
use crate::types::{CipType, STRUCT_CODE};

pub const READ_TAG: u8 = 0x4C;
pub const WRITE_TAG: u8 = 0x4D;
pub const MULTIPLE_SERVICE: u8 = 0x0A;
pub const GET_INSTANCE_ATTRIBUTE_LIST: u8 = 0x55;
pub const UNCONNECTED_SEND: u8 = 0x52;
pub const FORWARD_OPEN: u8 = 0x54;
pub const LARGE_FORWARD_OPEN: u8 = 0x5B;
pub const FORWARD_CLOSE: u8 = 0x4E;

/// General status codes the connector acts on.
pub const SUCCESS: u8 = 0x00;
pub const CONNECTION_FAILURE: u8 = 0x01;
pub const PATH_SEGMENT_ERROR: u8 = 0x04;
pub const PATH_UNKNOWN: u8 = 0x05;
pub const PARTIAL_TRANSFER: u8 = 0x06;
pub const SERVICE_NOT_SUPPORTED: u8 = 0x08;
pub const REPLY_TOO_LARGE: u8 = 0x11;
pub const NOT_ENOUGH_DATA: u8 = 0x13;
pub const TOO_MUCH_DATA: u8 = 0x15;
pub const OBJECT_DOES_NOT_EXIST: u8 = 0x16;
pub const EMBEDDED_SERVICE_ERROR: u8 = 0x1E;
pub const INVALID_PARAMETER: u8 = 0x20;
pub const GENERAL_ERROR: u8 = 0xFF;

/// Class 0x02 instance 1: the Message Router, which Multiple Service Packets address.
pub const MESSAGE_ROUTER_PATH: [u8; 4] = [0x20, 0x02, 0x24, 0x01];
/// Class 0x06 instance 1: the Connection Manager (Unconnected Send, Forward Open/Close).
pub const CONNECTION_MANAGER_PATH: [u8; 4] = [0x20, 0x06, 0x24, 0x01];
/// Class 0x6B: the Logix Symbol object, whose instances are the controller's tags.
pub const SYMBOL_CLASS: u8 = 0x6B;

/// Replies, requests and lists are bounded by what a u16 length can carry.
pub const MAX_SERVICES: usize = 512;

/// A Message Router request.
pub fn request(service: u8, path: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + path.len() + data.len());
    out.push(service);
    out.push((path.len() / 2).min(255) as u8);
    out.extend_from_slice(path);
    out.extend_from_slice(data);
    out
}

/// A decoded Message Router reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The request's service (the reply bit removed).
    pub service: u8,
    pub status: u8,
    pub extended: Vec<u16>,
    pub data: &'a [u8],
}

impl Reply<'_> {
    pub fn ok(&self) -> bool {
        self.status == SUCCESS
    }

    /// "path destination unknown (0x05)", with the extended status when there is one.
    pub fn describe(&self) -> String {
        status_text(self.status, &self.extended)
    }
}

/// Decodes a Message Router reply.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply<'_>, FrameError> {
    let mut r = Reader::new(bytes, "CIP reply");
    let service = r.u8()?;
    if service & 0x80 == 0 {
        return Err(FrameError::Unexpected(format!(
            "service 0x{service:02X} is a request, not a reply"
        )));
    }
    let _reserved = r.u8()?;
    let status = r.u8()?;
    let words = usize::from(r.u8()?);
    let mut extended = Vec::with_capacity(words);
    for _ in 0..words {
        extended.push(r.u16()?);
    }
    Ok(Reply {
        service: service & 0x7F,
        status,
        extended,
        data: r.rest(),
    })
}

/// A decoded Message Router request (the simulator's side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub service: u8,
    pub path: &'a [u8],
    pub data: &'a [u8],
}

pub fn decode_request(bytes: &[u8]) -> Result<Request<'_>, FrameError> {
    let mut r = Reader::new(bytes, "CIP request");
    let service = r.u8()?;
    if service & 0x80 != 0 {
        return Err(FrameError::Unexpected(format!(
            "service 0x{service:02X} is a reply, not a request"
        )));
    }
    let words = usize::from(r.u8()?);
    let path = r.take(words * 2)?;
    Ok(Request {
        service,
        path,
        data: r.rest(),
    })
}

/// A Message Router reply (the simulator's side).
pub fn encode_reply(service: u8, status: u8, extended: &[u16], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + extended.len() * 2 + data.len());
    out.extend_from_slice(&[service | 0x80, 0, status, extended.len().min(255) as u8]);
    for e in extended.iter().take(255) {
        out.extend_from_slice(&e.to_le_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Read Tag: `count` elements from the tag or element `path`.
pub fn read_tag(path: &[u8], count: u16) -> Vec<u8> {
    request(READ_TAG, path, &count.to_le_bytes())
}

/// Bytes of a Read Tag request for a path of `path_len` bytes.
pub fn read_tag_len(path_len: usize) -> usize {
    2 + path_len + 2
}

/// Write Tag: `count` elements of `ty` from `data`.
pub fn write_tag(path: &[u8], ty: CipType, count: u16, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(6 + data.len());
    body.extend_from_slice(&ty.code().to_le_bytes());
    if let Some(handle) = ty.handle() {
        body.extend_from_slice(&handle.to_le_bytes());
    }
    body.extend_from_slice(&count.to_le_bytes());
    body.extend_from_slice(data);
    request(WRITE_TAG, path, &body)
}

/// The type and element bytes of a successful Read Tag reply's data.
pub fn read_tag_data(data: &[u8]) -> Result<(CipType, &[u8]), crate::types::DecodeError> {
    let mut r = Reader::new(data, "Read Tag reply");
    let code = r.u16().map_err(|_| crate::types::DecodeError::Missing)?;
    let handle = if code == STRUCT_CODE {
        Some(r.u16().map_err(|_| crate::types::DecodeError::Missing)?)
    } else {
        None
    };
    Ok((CipType::from_code(code, handle)?, r.rest()))
}

/// Overhead of a Multiple Service Packet around its embedded requests: the MSP request
/// header (service, path size, path) and count, and 2 bytes of offset per request.
pub const MSP_REQUEST_OVERHEAD: usize = 2 + MESSAGE_ROUTER_PATH.len() + 2;
/// Overhead of its reply: the reply header, the count, and 2 bytes of offset per reply.
pub const MSP_REPLY_OVERHEAD: usize = 4 + 2;
pub const MSP_PER_SERVICE: usize = 2;

/// A Multiple Service Packet carrying `requests`.
pub fn multiple<R: AsRef<[u8]>>(requests: &[R]) -> Vec<u8> {
    let total: usize = requests.iter().map(|r| r.as_ref().len()).sum();
    let mut body = Vec::with_capacity(2 + 2 * requests.len() + total);
    body.extend_from_slice(&(requests.len() as u16).to_le_bytes());
    let mut offset = 2 + 2 * requests.len();
    for r in requests {
        body.extend_from_slice(&(offset.min(0xFFFF) as u16).to_le_bytes());
        offset += r.as_ref().len();
    }
    for r in requests {
        body.extend_from_slice(r.as_ref());
    }
    request(MULTIPLE_SERVICE, &MESSAGE_ROUTER_PATH, &body)
}

/// Splits the data of a Multiple Service Packet (request or reply) into its services:
/// a count, that many offsets from the start of the count, each service up to the next.
pub fn split_multiple(data: &[u8]) -> Result<Vec<&[u8]>, FrameError> {
    let mut r = Reader::new(data, "Multiple Service Packet");
    let count = usize::from(r.u16()?);
    if count > MAX_SERVICES {
        return Err(FrameError::Unexpected(format!(
            "{count} services in one packet, more than {MAX_SERVICES}"
        )));
    }
    let mut offsets = Vec::with_capacity(count + 1);
    for _ in 0..count {
        offsets.push(usize::from(r.u16()?));
    }
    offsets.push(data.len());
    let mut out = Vec::with_capacity(count);
    for pair in offsets.windows(2) {
        let (start, end) = match pair {
            [s, e] => (*s, *e),
            _ => continue,
        };
        let service = data.get(start..end).ok_or_else(|| {
            FrameError::Unexpected(format!(
                "service at offset {start}..{end} outside the packet's {} bytes",
                data.len()
            ))
        })?;
        out.push(service);
    }
    Ok(out)
}

/// Unconnected Send (Connection Manager service 0x52): `embedded` routed over `route`
/// (port/link pairs, e.g. `[1, 0]` for backplane slot 0).
pub fn unconnected_send(embedded: &[u8], route: &[u8], timeout_ticks: u8) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + embedded.len() + route.len());
    // Priority/tick time 0x0A (2^10 ms ticks), then the tick count: ~ticks seconds.
    body.push(0x0A);
    body.push(timeout_ticks);
    body.extend_from_slice(&(embedded.len().min(0xFFFF) as u16).to_le_bytes());
    body.extend_from_slice(embedded);
    if embedded.len() % 2 == 1 {
        body.push(0);
    }
    body.push((route.len() / 2).min(255) as u8);
    body.push(0);
    body.extend_from_slice(route);
    request(UNCONNECTED_SEND, &CONNECTION_MANAGER_PATH, &body)
}

/// What identifies our connection to the target (it must be unique per originator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionIds {
    /// The id we propose for target → originator packets (we receive on it).
    pub t_o: u32,
    pub serial: u16,
    pub vendor: u16,
    pub originator_serial: u32,
}

/// Forward Open (`large`: Large Forward Open, 32-bit network parameters) for a class 3
/// explicit-messaging connection of `size` bytes to the Message Router behind `route`.
pub fn forward_open(ids: ConnectionIds, size: u16, large: bool, route: &[u8], rpi_us: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(48 + route.len());
    body.push(0x0A);
    body.push(0x0E);
    body.extend_from_slice(&0u32.to_le_bytes()); // O->T id: chosen by the target
    body.extend_from_slice(&ids.t_o.to_le_bytes());
    body.extend_from_slice(&ids.serial.to_le_bytes());
    body.extend_from_slice(&ids.vendor.to_le_bytes());
    body.extend_from_slice(&ids.originator_serial.to_le_bytes());
    body.push(3); // timeout multiplier: x32
    body.extend_from_slice(&[0, 0, 0]);
    // O->T then T->O: the same RPI and parameters (point-to-point, low priority,
    // variable size).
    for _ in 0..2 {
        body.extend_from_slice(&rpi_us.to_le_bytes());
        if large {
            body.extend_from_slice(&(0x4200_0000u32 | u32::from(size)).to_le_bytes());
        } else {
            body.extend_from_slice(&(0x4200u16 | size.min(511)).to_le_bytes());
        }
    }
    let mut fixed = body;
    fixed.push(0xA3); // transport: class 3, application trigger, server
    let path_len = route.len() + MESSAGE_ROUTER_PATH.len();
    fixed.push((path_len / 2) as u8);
    fixed.extend_from_slice(route);
    fixed.extend_from_slice(&MESSAGE_ROUTER_PATH);
    request(
        if large { LARGE_FORWARD_OPEN } else { FORWARD_OPEN },
        &CONNECTION_MANAGER_PATH,
        &fixed,
    )
}

/// What a successful Forward Open reply says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The id the target receives on: our SendUnitData packets carry it.
    pub o_t: u32,
    pub t_o: u32,
    pub serial: u16,
}

pub fn decode_forward_open(data: &[u8]) -> Result<Opened, FrameError> {
    let mut r = Reader::new(data, "Forward Open reply");
    let o_t = r.u32()?;
    let t_o = r.u32()?;
    let serial = r.u16()?;
    let _vendor = r.u16()?;
    let _originator_serial = r.u32()?;
    let _o_t_api = r.u32()?;
    let _t_o_api = r.u32()?;
    let app = usize::from(r.u8()?);
    let _reserved = r.u8()?;
    let _app = r.take(app * 2)?;
    Ok(Opened { o_t, t_o, serial })
}

/// Forward Close for the connection opened with `ids`.
pub fn forward_close(ids: ConnectionIds, route: &[u8]) -> Vec<u8> {
    let mut body = vec![0x0A, 0x0E];
    body.extend_from_slice(&ids.serial.to_le_bytes());
    body.extend_from_slice(&ids.vendor.to_le_bytes());
    body.extend_from_slice(&ids.originator_serial.to_le_bytes());
    let path_len = route.len() + MESSAGE_ROUTER_PATH.len();
    body.push((path_len / 2) as u8);
    body.push(0);
    body.extend_from_slice(route);
    body.extend_from_slice(&MESSAGE_ROUTER_PATH);
    request(FORWARD_CLOSE, &CONNECTION_MANAGER_PATH, &body)
}

/// Get Instance Attribute List on the Symbol object from instance `start`, asking for
/// the name (1), the type (2) and the array dimensions (8).
pub fn symbol_list(start: u32) -> Vec<u8> {
    let mut path = vec![0x20, SYMBOL_CLASS];
    if start <= 0xFFFF {
        path.extend_from_slice(&[0x25, 0]);
        path.extend_from_slice(&(start as u16).to_le_bytes());
    } else {
        path.extend_from_slice(&[0x26, 0]);
        path.extend_from_slice(&start.to_le_bytes());
    }
    let mut data = 3u16.to_le_bytes().to_vec();
    for attribute in [1u16, 2, 8] {
        data.extend_from_slice(&attribute.to_le_bytes());
    }
    request(GET_INSTANCE_ATTRIBUTE_LIST, &path, &data)
}

/// One entry of the controller's tag list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub instance: u32,
    pub name: String,
    /// Bits 0-11: the atomic type code, or a structure's template instance (bit 15 set);
    /// bit 12: system tag; bits 13-14: array dimensions.
    pub type_word: u16,
    pub dims: [u32; 3],
}

impl Symbol {
    pub fn is_struct(&self) -> bool {
        self.type_word & 0x8000 != 0
    }

    pub fn is_system(&self) -> bool {
        self.type_word & 0x1000 != 0 || self.name.starts_with("__")
    }

    pub fn dimensions(&self) -> usize {
        usize::from((self.type_word >> 13) & 0x3)
    }

    /// The atomic type, for tags that are not structures.
    pub fn atomic(&self) -> Option<CipType> {
        if self.is_struct() {
            return None;
        }
        CipType::from_code(self.type_word & 0x0FFF, None).ok()
    }
}

/// Names longer than this are not tag names (Logix allows 40; program scope adds more).
const MAX_SYMBOL_NAME: usize = 128;

/// Decodes a Get Instance Attribute List reply's data (attributes 1, 2, 8).
pub fn decode_symbols(data: &[u8]) -> Result<Vec<Symbol>, FrameError> {
    let mut r = Reader::new(data, "tag list reply");
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let instance = r.u32()?;
        let len = usize::from(r.u16()?);
        if len > MAX_SYMBOL_NAME {
            return Err(FrameError::Unexpected(format!(
                "tag name of {len} characters at instance {instance}"
            )));
        }
        let name = String::from_utf8_lossy(r.take(len)?).into_owned();
        let type_word = r.u16()?;
        let dims = [r.u32()?, r.u32()?, r.u32()?];
        out.push(Symbol {
            instance,
            name,
            type_word,
            dims,
        });
        if out.len() > 0xFFFF {
            break;
        }
    }
    Ok(out)
}

/// The meaning of a CIP general status (ODVA Vol. 1, appendix B).
pub fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "success",
        0x01 => "connection failure",
        0x02 => "resource unavailable",
        0x03 => "invalid parameter value",
        0x04 => "path segment error (the tag or member name is not known)",
        0x05 => "path destination unknown (no such tag, member or element)",
        0x06 => "partial transfer (the reply is larger than the connection size)",
        0x07 => "connection lost",
        0x08 => "service not supported",
        0x09 => "invalid attribute value",
        0x0A => "attribute list error",
        0x0B => "already in requested mode/state",
        0x0C => "object state conflict",
        0x0D => "object already exists",
        0x0E => "attribute not settable",
        0x0F => "privilege violation",
        0x10 => "device state conflict (e.g. the key switch is in RUN)",
        0x11 => "reply data too large",
        0x12 => "fragmentation of a primitive value",
        0x13 => "not enough data",
        0x14 => "attribute not supported",
        0x15 => "too much data",
        0x16 => "object does not exist",
        0x17 => "service fragmentation sequence not in progress",
        0x18 => "no stored attribute data",
        0x19 => "store operation failure",
        0x1A => "routing failure: request packet too large",
        0x1B => "routing failure: response packet too large",
        0x1C => "missing attribute list entry data",
        0x1D => "invalid attribute value list",
        0x1E => "embedded service error",
        0x1F => "vendor specific error",
        0x20 => "invalid parameter",
        0x21 => "write-once value or medium already written",
        0x22 => "invalid reply received",
        0x25 => "key failure in path",
        0x26 => "path size invalid",
        0x27 => "unexpected attribute in list",
        0x28 => "invalid member id",
        0x29 => "member not settable",
        0xFF => "general error",
        _ => "unknown status",
    }
}

/// The meaning of an extended status word, for the general statuses that have them
/// (Connection Manager failures under 0x01, Logix tag errors under 0xFF).
pub fn extended_name(status: u8, extended: u16) -> Option<&'static str> {
    Some(match (status, extended) {
        (0x01, 0x0100) => "connection in use or duplicate Forward Open",
        (0x01, 0x0103) => "transport class and trigger combination not supported",
        (0x01, 0x0106) => "ownership conflict",
        (0x01, 0x0107) => "target connection not found",
        (0x01, 0x0108) => "invalid network connection parameter",
        (0x01, 0x0109) => "invalid connection size",
        (0x01, 0x0111) => "requested RPI not supported",
        (0x01, 0x0113) => "out of connections",
        (0x01, 0x0114) => "vendor id or product code mismatch",
        (0x01, 0x0115) => "device type mismatch",
        (0x01, 0x0116) => "revision mismatch",
        (0x01, 0x0117) => "invalid produced or consumed application path",
        (0x01, 0x011A) => "target object out of connections",
        (0x01, 0x0203) => "connection timed out",
        (0x01, 0x0204) => "unconnected request timed out",
        (0x01, 0x0205) => "parameter error in unconnected request",
        (0x01, 0x0206) => "message too large for unconnected send",
        (0x01, 0x0311) => "invalid port in the route",
        (0x01, 0x0312) => "invalid link address in the route",
        (0x01, 0x0315) => "invalid segment in the connection path",
        (0xFF, 0x2104) => "offset beyond the end of the tag",
        (0xFF, 0x2105) => "element count beyond the end of the tag",
        (0xFF, 0x2107) => "the written type does not match the tag's type",
        _ => return None,
    })
}

/// "path destination unknown (no such tag, ...) (status 0x05)", with extended statuses.
pub fn status_text(status: u8, extended: &[u16]) -> String {
    let mut text = format!("{} (status 0x{status:02X}", status_name(status));
    for e in extended {
        match extended_name(status, *e) {
            Some(name) => text.push_str(&format!(", extended 0x{e:04X}: {name}")),
            None => text.push_str(&format!(", extended 0x{e:04X}")),
        }
    }
    text.push(')');
    text
}

/// Decodes `data` every way the client decodes device replies: as an encapsulation frame,
/// its items, a Message Router reply, a Multiple Service Packet, a tag value, a Forward
/// Open reply and a tag list. For the fuzzer and the property tests: it must not panic.
pub fn fuzz_reply(data: &[u8]) {
    let decode_all = |bytes: &[u8]| {
        if let Ok(reply) = decode_reply(bytes) {
            let _ = reply.describe();
            if let Ok(parts) = split_multiple(reply.data) {
                for part in parts {
                    if let Ok(inner) = decode_reply(part)
                        && let Ok((ty, bytes)) = read_tag_data(inner.data)
                    {
                        for count in [1, 2, 10] {
                            let _ = crate::types::decode(ty, bytes, count);
                        }
                    }
                }
            }
            if let Ok((ty, bytes)) = read_tag_data(reply.data) {
                let _ = crate::types::decode(ty, bytes, 1);
                let _ = crate::types::decode(ty, bytes, 3);
            }
            let _ = decode_forward_open(reply.data);
            let _ = decode_symbols(reply.data);
        }
    };
    if let Ok(Some((frame, _))) = crate::frame::Encap::decode(data)
        && let Ok(items) = crate::frame::decode_cpf(&frame.data)
        && let Ok((connection, message)) = crate::frame::message_item(&items)
    {
        let message = match connection {
            Some(_) => message.get(2..).unwrap_or_default(),
            None => message,
        };
        decode_all(message);
    }
    decode_all(data);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn multiple_service_packets_round_trip_and_bad_offsets_are_errors() {
        let requests = vec![
            read_tag(&[0x91, 1, b'A', 0], 1),
            read_tag(&[0x91, 2, b'B', b'C'], 4),
        ];
        let packet = multiple(&requests);
        let req = decode_request(&packet).unwrap();
        assert_eq!(
            (req.service, req.path),
            (MULTIPLE_SERVICE, &MESSAGE_ROUTER_PATH[..])
        );
        let parts = split_multiple(req.data).unwrap();
        assert_eq!(parts, vec![&requests[0][..], &requests[1][..]]);
        assert!(split_multiple(&[2, 0, 6, 0, 99, 0]).is_err());
        assert!(split_multiple(&[0xFF, 0xFF]).is_err());
    }

    #[test]
    fn replies_carry_status_and_extended_status_by_name() {
        let bytes = encode_reply(READ_TAG, GENERAL_ERROR, &[0x2105], &[]);
        let reply = decode_reply(&bytes).unwrap();
        assert_eq!((reply.service, reply.ok()), (READ_TAG, false));
        assert_eq!(
            reply.describe(),
            "general error (status 0xFF, extended 0x2105: element count beyond the end of the tag)"
        );
        assert!(
            decode_reply(&[READ_TAG, 0, 0, 0]).is_err(),
            "a request is not a reply"
        );
        assert!(
            decode_reply(&[0xCC, 0, 0, 3, 0]).is_err(),
            "extended status cut short"
        );
        let mut data = 0xC4u16.to_le_bytes().to_vec();
        data.extend_from_slice(&7i32.to_le_bytes());
        assert_eq!(
            read_tag_data(&data).unwrap(),
            (CipType::Dint, &7i32.to_le_bytes()[..])
        );
    }

    #[test]
    fn forward_open_lays_out_its_fields_at_the_documented_offsets() {
        let ids = ConnectionIds {
            t_o: 0x1111_2222,
            serial: 7,
            vendor: 0x1337,
            originator_serial: 42,
        };
        let small = forward_open(ids, 504, false, &[1, 0], 2_000_000);
        let req = decode_request(&small).unwrap();
        assert_eq!(req.service, FORWARD_OPEN);
        // 34 fixed bytes, transport, path size, route + message router path.
        assert_eq!(req.data.len(), 34 + 2 + 2 + 4);
        assert_eq!(&req.data[26..28], &(0x4200u16 | 504).to_le_bytes());
        assert_eq!(req.data[34], 0xA3);
        let large = forward_open(ids, 4002, true, &[], 2_000_000);
        let req = decode_request(&large).unwrap();
        assert_eq!(req.data.len(), 38 + 2 + 4);
        assert_eq!(req.data[38], 0xA3);
        assert_eq!(&req.data[34..38], &(0x4200_0000u32 | 4002).to_le_bytes());
    }
}
