//! The simulator's side of CIP, without I/O: a table of Logix-style tags and the answer
//! to every Message Router request a client sends it (Read Tag, Write Tag, Multiple
//! Service Packet, Unconnected Send, the Symbol object's tag list). Forward Open is the
//! session's business (crate::simulator) but its request is decoded here.
//!
//! Requests come from outside, so decoding is bounded and never panics (fuzzed by
//! fuzz/fuzz_targets/enip_request.rs).

use std::collections::BTreeMap;

use backplane_model::Value;

use crate::cip::{self, Request};
use crate::frame::{FrameError, Reader};
use crate::types::{self, CipType};

/// One tag: a type, its elements (one for a scalar), and whether clients may write it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub ty: CipType,
    pub values: Vec<Value>,
    pub writable: bool,
}

/// A top-level tag as the tag list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub type_word: u16,
    pub dims: [u32; 3],
}

/// The controller's tags, by their full path (`Palletizer.Lane[2].Cases`, `Bench`),
/// matched without regard to case as Logix does.
#[derive(Clone, Debug, Default)]
pub struct TagTable {
    tags: BTreeMap<String, Entry>,
    /// What Get Instance Attribute List on the Symbol object lists, by instance.
    pub listed: Vec<Listed>,
    /// The largest reply the table gives (the connection size in force).
    pub max_reply: usize,
    /// Answer Multiple Service Packets with "service not supported" (as some non-Logix
    /// devices do).
    pub no_multiple_service: bool,
}

impl TagTable {
    pub fn new(max_reply: usize) -> TagTable {
        TagTable {
            max_reply,
            ..TagTable::default()
        }
    }

    pub fn insert(&mut self, path: &str, entry: Entry) {
        self.tags.insert(path.to_ascii_uppercase(), entry);
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.tags.get(&path.to_ascii_uppercase())
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut Entry> {
        self.tags.get_mut(&path.to_ascii_uppercase())
    }

    /// Sets a scalar tag's value (simulation steps).
    pub fn set(&mut self, path: &str, value: Value) {
        if let Some(e) = self.get_mut(path)
            && let Some(v) = e.values.first_mut()
        {
            *v = value;
        }
    }

    /// Answers one Message Router request.
    pub fn handle(&mut self, message: &[u8]) -> Vec<u8> {
        match cip::decode_request(message) {
            Ok(request) => self.answer(&request, 0),
            Err(_) => cip::encode_reply(
                message.first().copied().unwrap_or(0) & 0x7F,
                cip::NOT_ENOUGH_DATA,
                &[],
                &[],
            ),
        }
    }

    fn answer(&mut self, request: &Request<'_>, depth: u8) -> Vec<u8> {
        let service = request.service;
        let fail = |status: u8, extended: &[u16]| cip::encode_reply(service, status, extended, &[]);
        match service {
            cip::READ_TAG => self.read(request),
            cip::WRITE_TAG => self.write(request),
            // Inside an Unconnected Send (depth 1) too, never inside another packet.
            cip::MULTIPLE_SERVICE if depth <= 1 && !self.no_multiple_service => {
                if request.path != cip::MESSAGE_ROUTER_PATH {
                    return fail(cip::PATH_UNKNOWN, &[]);
                }
                let Ok(parts) = cip::split_multiple(request.data) else {
                    return fail(cip::NOT_ENOUGH_DATA, &[]);
                };
                let replies: Vec<Vec<u8>> = parts
                    .iter()
                    .map(|p| match cip::decode_request(p) {
                        Ok(r) => self.answer(&r, 2),
                        Err(_) => cip::encode_reply(0, cip::NOT_ENOUGH_DATA, &[], &[]),
                    })
                    .collect();
                let failed = replies.iter().any(|r| r.get(2).is_some_and(|s| *s != 0));
                let mut body = (replies.len() as u16).to_le_bytes().to_vec();
                let mut offset = 2 + 2 * replies.len();
                for r in &replies {
                    body.extend_from_slice(&(offset.min(0xFFFF) as u16).to_le_bytes());
                    offset += r.len();
                }
                for r in &replies {
                    body.extend_from_slice(r);
                }
                if body.len() + 4 > self.max_reply {
                    return fail(cip::REPLY_TOO_LARGE, &[]);
                }
                let status = if failed {
                    cip::EMBEDDED_SERVICE_ERROR
                } else {
                    cip::SUCCESS
                };
                cip::encode_reply(service, status, &[], &body)
            }
            cip::UNCONNECTED_SEND if depth == 0 => {
                // Priority, ticks, size, message, [pad], route size, reserved, route.
                let mut r = Reader::new(request.data, "Unconnected Send");
                let embedded = r
                    .take(2)
                    .and_then(|_| r.u16())
                    .and_then(|n| r.take(usize::from(n)));
                match embedded.map(cip::decode_request) {
                    Ok(Ok(inner)) => self.answer(&inner, depth + 1),
                    _ => fail(cip::NOT_ENOUGH_DATA, &[]),
                }
            }
            cip::GET_INSTANCE_ATTRIBUTE_LIST => self.list(request),
            _ => fail(cip::SERVICE_NOT_SUPPORTED, &[]),
        }
    }

    /// The tag a path names and the element it starts at.
    fn resolve(&self, path: &[u8]) -> Result<(String, usize), u8> {
        let segments = parse_path(path).map_err(|_| cip::PATH_SEGMENT_ERROR)?;
        let mut full = String::new();
        let mut open = false;
        for s in &segments {
            match s {
                PathSegment::Name(n) => {
                    if open {
                        full.push(']');
                        open = false;
                    }
                    if !full.is_empty() {
                        full.push('.');
                    }
                    full.push_str(n);
                }
                PathSegment::Index(i) => {
                    full.push(if open { ',' } else { '[' });
                    full.push_str(&i.to_string());
                    open = true;
                }
                PathSegment::Logical(..) => return Err(cip::PATH_SEGMENT_ERROR),
            }
        }
        if open {
            full.push(']');
        }
        if self.get(&full).is_some() {
            return Ok((full, 0));
        }
        // The last index picks the element of an array tag.
        if let Some(PathSegment::Index(i)) = segments.last()
            && let Some((array, _)) = full.rsplit_once('[')
            && self.get(array).is_some()
        {
            return Ok((array.to_owned(), *i as usize));
        }
        Err(cip::PATH_UNKNOWN)
    }

    fn read(&mut self, request: &Request<'_>) -> Vec<u8> {
        let fail = |status: u8, extended: &[u16]| cip::encode_reply(cip::READ_TAG, status, extended, &[]);
        let (name, start) = match self.resolve(request.path) {
            Ok(r) => r,
            Err(status) => return fail(status, &[0]),
        };
        let Ok(count) = Reader::new(request.data, "Read Tag").u16() else {
            return fail(cip::NOT_ENOUGH_DATA, &[]);
        };
        let Some(entry) = self.get(&name) else {
            return fail(cip::PATH_UNKNOWN, &[0]);
        };
        let count = usize::from(count.max(1));
        let Some(values) = entry.values.get(start..start.saturating_add(count)) else {
            return fail(cip::GENERAL_ERROR, &[0x2105]);
        };
        let mut data = entry.ty.code().to_le_bytes().to_vec();
        if let Some(handle) = entry.ty.handle() {
            data.extend_from_slice(&handle.to_le_bytes());
        }
        for v in values {
            match types::encode(entry.ty, v, 1) {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(_) => return fail(cip::GENERAL_ERROR, &[]),
            }
        }
        if data.len() + 4 > self.max_reply {
            return fail(cip::PARTIAL_TRANSFER, &[]);
        }
        cip::encode_reply(cip::READ_TAG, cip::SUCCESS, &[], &data)
    }

    fn write(&mut self, request: &Request<'_>) -> Vec<u8> {
        let fail = |status: u8, extended: &[u16]| cip::encode_reply(cip::WRITE_TAG, status, extended, &[]);
        let (name, start) = match self.resolve(request.path) {
            Ok(r) => r,
            Err(status) => return fail(status, &[0]),
        };
        let mut r = Reader::new(request.data, "Write Tag");
        let parsed = r.u16().and_then(|code| {
            let handle = if code == types::STRUCT_CODE {
                Some(r.u16()?)
            } else {
                None
            };
            Ok((code, handle, r.u16()?))
        });
        let Ok((code, handle, count)) = parsed else {
            return fail(cip::NOT_ENOUGH_DATA, &[]);
        };
        let Some(entry) = self.get_mut(&name) else {
            return fail(cip::PATH_UNKNOWN, &[0]);
        };
        if !entry.writable {
            return fail(0x0F, &[]);
        }
        if CipType::from_code(code, handle).ok() != Some(entry.ty) {
            return fail(cip::GENERAL_ERROR, &[0x2107]);
        }
        let count = usize::from(count.max(1));
        if start.saturating_add(count) > entry.values.len() {
            return fail(cip::GENERAL_ERROR, &[0x2105]);
        }
        let data = r.rest();
        let value = match types::decode(entry.ty, data, count) {
            Ok(v) => v,
            Err(_) => return fail(cip::NOT_ENOUGH_DATA, &[]),
        };
        let values: Vec<Value> = match value {
            Value::Array(items) if count > 1 => items.to_vec(),
            one => vec![one],
        };
        for (slot, v) in entry.values.iter_mut().skip(start).zip(values) {
            *slot = v;
        }
        cip::encode_reply(cip::WRITE_TAG, cip::SUCCESS, &[], &[])
    }

    /// Get Instance Attribute List on the Symbol object (attributes 1, 2 and 8, in the
    /// order asked).
    fn list(&self, request: &Request<'_>) -> Vec<u8> {
        let service = cip::GET_INSTANCE_ATTRIBUTE_LIST;
        let fail = |status: u8| cip::encode_reply(service, status, &[], &[]);
        let Ok(segments) = parse_path(request.path) else {
            return fail(cip::PATH_SEGMENT_ERROR);
        };
        let (class, instance) = match segments.as_slice() {
            [PathSegment::Logical(0, class), PathSegment::Logical(1, instance)] => (*class, *instance),
            _ => return fail(cip::PATH_UNKNOWN),
        };
        if class != u32::from(cip::SYMBOL_CLASS) {
            return fail(cip::OBJECT_DOES_NOT_EXIST);
        }
        let mut r = Reader::new(request.data, "attribute list");
        let Ok(n) = r.u16() else {
            return fail(cip::NOT_ENOUGH_DATA);
        };
        let mut attributes = Vec::new();
        for _ in 0..n.min(16) {
            match r.u16() {
                Ok(a @ (1 | 2 | 8)) => attributes.push(a),
                Ok(_) => return fail(0x14),
                Err(_) => return fail(cip::NOT_ENOUGH_DATA),
            }
        }
        let mut data = Vec::new();
        let mut status = cip::SUCCESS;
        for (i, listed) in self.listed.iter().enumerate() {
            let id = i as u32 + 1;
            if id < instance {
                continue;
            }
            let mut one = id.to_le_bytes().to_vec();
            for a in &attributes {
                match a {
                    1 => {
                        one.extend_from_slice(&(listed.name.len() as u16).to_le_bytes());
                        one.extend_from_slice(listed.name.as_bytes());
                    }
                    2 => one.extend_from_slice(&listed.type_word.to_le_bytes()),
                    _ => {
                        for d in listed.dims {
                            one.extend_from_slice(&d.to_le_bytes());
                        }
                    }
                }
            }
            if data.len() + one.len() + 4 > self.max_reply {
                status = cip::PARTIAL_TRANSFER;
                break;
            }
            data.extend_from_slice(&one);
        }
        cip::encode_reply(service, status, &[], &data)
    }
}

/// One segment of a request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Name(String),
    Index(u32),
    /// A logical segment: 0 class, 1 instance, 3 attribute; and its value.
    Logical(u8, u32),
}

/// Decodes a request path (symbolic, member and logical segments).
pub fn parse_path(path: &[u8]) -> Result<Vec<PathSegment>, FrameError> {
    let mut r = Reader::new(path, "request path");
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let kind = r.u8()?;
        let segment = match kind {
            0x91 => {
                let len = usize::from(r.u8()?);
                let name = r.take(len)?;
                if len % 2 == 1 {
                    r.take(1)?;
                }
                PathSegment::Name(String::from_utf8_lossy(name).into_owned())
            }
            0x28 => PathSegment::Index(u32::from(r.u8()?)),
            0x29 => {
                r.u8()?;
                PathSegment::Index(u32::from(r.u16()?))
            }
            0x2A => {
                r.u8()?;
                PathSegment::Index(r.u32()?)
            }
            0x20 | 0x24 | 0x30 => PathSegment::Logical((kind >> 2) & 0x7, u32::from(r.u8()?)),
            0x21 | 0x25 | 0x31 => {
                r.u8()?;
                PathSegment::Logical((kind >> 2) & 0x7, u32::from(r.u16()?))
            }
            0x22 | 0x26 | 0x32 => {
                r.u8()?;
                PathSegment::Logical((kind >> 2) & 0x7, r.u32()?)
            }
            other => return Err(FrameError::Unexpected(format!("path segment type 0x{other:02X}"))),
        };
        out.push(segment);
        if out.len() > 64 {
            return Err(FrameError::Unexpected("more than 64 path segments".into()));
        }
    }
    Ok(out)
}

/// A decoded Forward Open request: what the simulator needs to answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    pub t_o: u32,
    pub serial: u16,
    pub vendor: u16,
    pub originator_serial: u32,
    /// The O->T connection size asked for.
    pub size: u16,
}

pub fn decode_forward_open_request(data: &[u8], large: bool) -> Result<OpenRequest, FrameError> {
    let mut r = Reader::new(data, "Forward Open request");
    r.take(2)?;
    let _o_t = r.u32()?;
    let t_o = r.u32()?;
    let serial = r.u16()?;
    let vendor = r.u16()?;
    let originator_serial = r.u32()?;
    r.take(4)?;
    let _rpi = r.u32()?;
    let size = if large {
        (r.u32()? & 0xFFFF) as u16
    } else {
        r.u16()? & 0x01FF
    };
    Ok(OpenRequest {
        t_o,
        serial,
        vendor,
        originator_serial,
        size,
    })
}

/// Forward Open's success reply data.
pub fn forward_open_reply(open: &OpenRequest, o_t: u32, rpi_us: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(26);
    out.extend_from_slice(&o_t.to_le_bytes());
    out.extend_from_slice(&open.t_o.to_le_bytes());
    out.extend_from_slice(&open.serial.to_le_bytes());
    out.extend_from_slice(&open.vendor.to_le_bytes());
    out.extend_from_slice(&open.originator_serial.to_le_bytes());
    out.extend_from_slice(&rpi_us.to_le_bytes());
    out.extend_from_slice(&rpi_us.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// Decodes `data` every way the simulator decodes client requests: a frame, its items,
/// and the message answered against a small tag table. For the fuzzer and the property
/// tests: it must not panic.
pub fn fuzz_request(data: &[u8]) {
    let mut table = TagTable::new(504);
    table.insert(
        "A",
        Entry {
            ty: CipType::Dint,
            values: vec![Value::Int(1); 4],
            writable: true,
        },
    );
    table.insert(
        "S.T[1].U",
        Entry {
            ty: CipType::LogixString,
            values: vec![Value::String("x".into())],
            writable: true,
        },
    );
    table.listed.push(Listed {
        name: "A".into(),
        type_word: 0x20C4,
        dims: [4, 0, 0],
    });
    if let Ok(Some((frame, _))) = crate::frame::Encap::decode(data)
        && let Ok(items) = crate::frame::decode_cpf(&frame.data)
        && let Ok((_, message)) = crate::frame::message_item(&items)
    {
        let _ = table.handle(message);
        let _ = decode_forward_open_request(message, true);
    }
    let _ = table.handle(data);
    let _ = decode_forward_open_request(data, false);
    let _ = parse_path(data);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::address::TagPath;

    fn table() -> TagTable {
        let mut t = TagTable::new(504);
        t.insert(
            "Count",
            Entry {
                ty: CipType::Dint,
                values: (0..10).map(Value::Int).collect(),
                writable: true,
            },
        );
        t.insert(
            "P.Lane[2].Cases",
            Entry {
                ty: CipType::Int,
                values: vec![Value::Int(7)],
                writable: false,
            },
        );
        t
    }

    fn read(t: &mut TagTable, path: &str) -> Vec<u8> {
        let p = TagPath::parse(path).unwrap();
        t.handle(&cip::read_tag(&p.epath(), p.count))
    }

    #[test]
    fn reads_resolve_elements_members_and_report_unknown_tags_by_status() {
        let mut t = table();
        let reply = read(&mut t, "Count[3]{2}");
        let r = cip::decode_reply(&reply).unwrap();
        let (ty, data) = cip::read_tag_data(r.data).unwrap();
        assert_eq!(
            types::decode(ty, data, 2).unwrap(),
            Value::Array(vec![Value::Int(3), Value::Int(4)].into())
        );
        let r = read(&mut t, "p.lane[2].cases");
        assert!(
            cip::decode_reply(&r).unwrap().ok(),
            "names match without regard to case"
        );
        assert_eq!(
            cip::decode_reply(&read(&mut t, "Nope")).unwrap().status,
            cip::PATH_UNKNOWN
        );
        let r = read(&mut t, "Count[9]{2}");
        assert_eq!(cip::decode_reply(&r).unwrap().extended, vec![0x2105]);
    }

    #[test]
    fn writes_check_type_and_permission() {
        let mut t = table();
        let p = TagPath::parse("Count[1]").unwrap().epath();
        let ok = t.handle(&cip::write_tag(&p, CipType::Dint, 1, &42i32.to_le_bytes()));
        assert!(cip::decode_reply(&ok).unwrap().ok());
        assert_eq!(t.get("count").unwrap().values[1], Value::Int(42));
        let wrong = t.handle(&cip::write_tag(&p, CipType::Real, 1, &1f32.to_le_bytes()));
        assert_eq!(cip::decode_reply(&wrong).unwrap().extended, vec![0x2107]);
        let q = TagPath::parse("P.Lane[2].Cases").unwrap().epath();
        let ro = t.handle(&cip::write_tag(&q, CipType::Int, 1, &1i16.to_le_bytes()));
        assert_eq!(cip::decode_reply(&ro).unwrap().status, 0x0F);
    }

    #[test]
    fn multiple_service_packets_answer_each_service_and_flag_embedded_errors() {
        let mut t = table();
        let a = TagPath::parse("Count[0]").unwrap();
        let b = TagPath::parse("Missing").unwrap();
        let packet = cip::multiple(&[cip::read_tag(&a.epath(), 1), cip::read_tag(&b.epath(), 1)]);
        let reply = t.handle(&packet);
        let r = cip::decode_reply(&reply).unwrap();
        assert_eq!(r.status, cip::EMBEDDED_SERVICE_ERROR);
        let parts = cip::split_multiple(r.data).unwrap();
        assert!(cip::decode_reply(parts[0]).unwrap().ok());
        assert_eq!(cip::decode_reply(parts[1]).unwrap().status, cip::PATH_UNKNOWN);
        // Routed through Unconnected Send.
        let routed = cip::unconnected_send(&cip::read_tag(&a.epath(), 1), &[1, 0], 5);
        assert!(cip::decode_reply(&t.handle(&routed)).unwrap().ok());
    }

    #[test]
    fn the_tag_list_pages_by_instance() {
        let mut t = TagTable::new(60);
        for i in 0..5 {
            t.listed.push(Listed {
                name: format!("Tag{i}"),
                type_word: 0xC4,
                dims: [0; 3],
            });
        }
        let mut names = Vec::new();
        let mut next = 0;
        let mut pages = 0;
        loop {
            let reply = t.handle(&cip::symbol_list(next));
            let r = cip::decode_reply(&reply).unwrap();
            let symbols = cip::decode_symbols(r.data).unwrap();
            pages += 1;
            next = symbols.last().unwrap().instance + 1;
            names.extend(symbols.into_iter().map(|s| s.name));
            if r.status != cip::PARTIAL_TRANSFER {
                break;
            }
        }
        assert!(pages > 1);
        assert_eq!(names, (0..5).map(|i| format!("Tag{i}")).collect::<Vec<_>>());
    }
}
