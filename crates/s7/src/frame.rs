//! S7comm over ISO-on-TCP, both directions, without I/O: the fuzzed part.
//!
//! A frame is a TPKT (RFC 1006: version 3, reserved, 16-bit length including itself)
//! around a COTP TPDU (ISO 8073 class 0: connection request/confirm, or data with the
//! end-of-transmission bit) around an S7 PDU: a 10-byte header (protocol id 0x32, ROSCTR
//! job 1 / ack 2 / ack-data 3, a PDU reference the answer echoes, parameter and data
//! lengths), two more bytes (error class and code) in acknowledgements, then parameters
//! and data. Reads and writes address variables with 12-byte ANY pointers (transport
//! size, count, DB number, area, 24-bit bit address); read answers carry one data item per
//! variable (return code, transport size, length in bits or bytes, data, a fill byte after
//! odd-length items but the last).
//!
//! Every length is checked against the bytes actually there; a device's "no" (an error
//! class in the header, a return code per item) is a [`Refusal`], never a [`FrameError`].

use std::fmt;

use crate::address::Area;

/// Bytes of a TPKT header.
pub const TPKT_LEN: usize = 4;
/// The largest frame read from a peer: the largest PDU (960, S7-1500) with plenty to spare.
pub const MAX_FRAME: usize = 4096;
/// PDU sizes a client may ask for.
pub const MIN_PDU: u16 = 240;
pub const MAX_PDU: u16 = 960;
/// Variables one read may carry (S7-300/400 and S7-1200/1500 alike).
pub const MAX_ITEMS: usize = 20;
/// A read request: S7 header, function, item count; then 12 bytes per item.
pub const READ_REQUEST_FIXED: usize = 12;
pub const READ_REQUEST_PER_ITEM: usize = 12;
/// A read answer: S7 header with error bytes, function, item count; then per item a
/// 4-byte header, the data and (after odd lengths but the last) a fill byte.
pub const READ_ANSWER_FIXED: usize = 14;
pub const READ_ANSWER_PER_ITEM: usize = 4;

const COTP_DT: [u8; 3] = [0x02, 0xF0, 0x80];
const PROTOCOL_ID: u8 = 0x32;
const ROSCTR_JOB: u8 = 1;
const ROSCTR_ACK: u8 = 2;
const ROSCTR_ACK_DATA: u8 = 3;
pub const FN_SETUP: u8 = 0xF0;
pub const FN_READ: u8 = 0x04;
pub const FN_WRITE: u8 = 0x05;
const TS_BIT: u8 = 0x01;
const TS_BYTE: u8 = 0x02;
const TS_COUNTER: u8 = 0x1C;
const TS_TIMER: u8 = 0x1D;
/// Item return code: success.
pub const ITEM_OK: u8 = 0xFF;

/// A malformed frame: the peer did not speak S7comm (or the bytes were damaged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a TPKT frame (version {0}, expected 3)")]
    Tpkt(u8),
    #[error("TPKT length {0} is outside 7..={MAX_FRAME}")]
    FrameLength(usize),
    #[error("unexpected COTP TPDU type 0x{0:02X}")]
    Cotp(u8),
    #[error("a fragmented COTP data TPDU (S7 answers fit one PDU)")]
    Fragmented,
    #[error(
        "the CPU refused the connection (COTP disconnect, reason 0x{0:02X}): check rack and slot, or the TSAPs"
    )]
    Disconnected(u8),
    #[error("not an S7comm PDU (protocol id 0x{0:02X}, expected 0x32)")]
    Protocol(u8),
    #[error("unexpected ROSCTR {0}")]
    Rosctr(u8),
    #[error("the S7 header announces {announced} bytes of parameters and data, the frame holds {actual}")]
    Lengths { announced: usize, actual: usize },
    #[error("answer to function 0x{got:02X}, expected 0x{want:02X}")]
    Function { got: u8, want: u8 },
    #[error("{got} items answered, {want} asked for")]
    ItemCount { got: usize, want: usize },
    #[error("{0} is cut short")]
    Truncated(&'static str),
    #[error("negotiated PDU size {0} is below the protocol's 240")]
    PduSize(u16),
}

/// The device's "no": an error class and code in the header (the whole request), or an
/// item's return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Header(u16),
    Item(u8),
}

impl Refusal {
    /// Whether the fix is on the PLC's configuration (and not a fault of the moment).
    pub fn is_configuration(self) -> bool {
        match self {
            Refusal::Header(code) => matches!(code >> 8, 0x81 | 0x82 | 0x87) || code == 0x8304,
            Refusal::Item(code) => matches!(code, 0x03 | 0x05 | 0x06 | 0x07 | 0x0A),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::Header(0x8104) => write!(
                f,
                "function not available (error 0x8104): PUT/GET access is off on the CPU; enable \
                 \"Permit access with PUT/GET communication from remote partner\" in TIA Portal (CPU \
                 properties > Protection & Security > Connection mechanisms) and download"
            ),
            Refusal::Header(0x8304) => write!(
                f,
                "write refused (error 0x8304): the CPU's protection level forbids writes; allow PUT/GET \
                 and full access in TIA Portal, or disable writes on this source"
            ),
            Refusal::Header(0x8500) => {
                write!(f, "the request exceeds the negotiated PDU size (error 0x8500)")
            }
            Refusal::Header(code) => {
                let class = match code >> 8 {
                    0x81 => "application relationship",
                    0x82 => "object definition",
                    0x83 => "no resources available",
                    0x84 => "error on service processing",
                    0x85 => "error on supplies",
                    0x87 => "access error",
                    _ => "unknown error class",
                };
                write!(f, "the CPU refused the request: {class} (error 0x{code:04X})")
            }
            Refusal::Item(code) => match code {
                0x01 => write!(f, "hardware fault (return code 0x01)"),
                0x03 => write!(
                    f,
                    "access to the object not allowed (return code 0x03): check the CPU's protection \
                     level and that PUT/GET access is enabled in TIA Portal"
                ),
                0x05 => write!(
                    f,
                    "address out of range (return code 0x05): the address is past the area's end, or \
                     the DB has optimized block access; use a non-optimized DB (untick \"Optimized block \
                     access\" in the DB's properties in TIA Portal, then download)"
                ),
                0x06 => write!(f, "data type not supported (return code 0x06)"),
                0x07 => write!(f, "data type inconsistent (return code 0x07)"),
                0x0A => write!(
                    f,
                    "object does not exist (return code 0x0A): no such DB (or area) in the CPU"
                ),
                other => write!(f, "item refused (return code 0x{other:02X})"),
            },
        }
    }
}

/// One variable of a read or write: an ANY pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ItemSpec {
    pub area: Area,
    /// Byte offset, or the first timer's / counter's number.
    pub start: u32,
    /// Bytes, or timers / counters.
    pub count: u16,
    /// A single bit (writes of bools).
    pub bit: Option<u8>,
}

impl ItemSpec {
    /// Bytes the item's data holds.
    pub fn bytes(&self) -> usize {
        usize::from(self.count) * self.area.unit_bytes() as usize
    }

    fn any_pointer(&self) -> [u8; 12] {
        let (transport, count, address) = match (self.area, self.bit) {
            (Area::Timer, _) => (TS_TIMER, self.count, self.start),
            (Area::Counter, _) => (TS_COUNTER, self.count, self.start),
            (_, Some(bit)) => (TS_BIT, 1, (self.start << 3) | u32::from(bit & 7)),
            (_, None) => (TS_BYTE, self.count, self.start << 3),
        };
        let [c0, c1] = count.to_be_bytes();
        let [d0, d1] = self.area.db().to_be_bytes();
        let [_, a0, a1, a2] = address.to_be_bytes();
        [
            0x12,
            0x0A,
            0x10,
            transport,
            c0,
            c1,
            d0,
            d1,
            self.area.code(),
            a0,
            a1,
            a2,
        ]
    }

    fn parse_any_pointer(spec: &[u8]) -> Option<ItemSpec> {
        let [0x12, 0x0A, 0x10, transport, c0, c1, d0, d1, area, a0, a1, a2] = *spec else {
            return None;
        };
        let count = u16::from_be_bytes([c0, c1]);
        let db = u16::from_be_bytes([d0, d1]);
        let address = u32::from_be_bytes([0, a0, a1, a2]);
        let area = match area {
            0x81 => Area::Input,
            0x82 => Area::Output,
            0x83 => Area::Marker,
            0x84 => Area::Db(db),
            0x1C => Area::Counter,
            0x1D => Area::Timer,
            _ => return None,
        };
        Some(match (area, transport) {
            (Area::Timer | Area::Counter, _) => ItemSpec {
                area,
                start: address,
                count,
                bit: None,
            },
            (_, TS_BIT) => ItemSpec {
                area,
                start: address >> 3,
                count: 1,
                bit: Some((address & 7) as u8),
            },
            (_, TS_BYTE) => ItemSpec {
                area,
                start: address >> 3,
                count,
                bit: None,
            },
            // WORD, DWORD, ... as bytes.
            (_, 0x04..=0x08) => ItemSpec {
                area,
                start: address >> 3,
                count: count.saturating_mul(if transport == 0x04 || transport == 0x05 {
                    2
                } else {
                    4
                }),
                bit: None,
            },
            _ => return None,
        })
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn tpkt(payload: &[u8]) -> Vec<u8> {
    let len = (TPKT_LEN + payload.len()) as u16;
    let mut out = Vec::with_capacity(usize::from(len));
    out.extend_from_slice(&[3, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn s7_frame(rosctr: u8, pdu_ref: u16, error: Option<u16>, param: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = COTP_DT.to_vec();
    body.extend_from_slice(&[PROTOCOL_ID, rosctr, 0, 0]);
    body.extend_from_slice(&pdu_ref.to_be_bytes());
    body.extend_from_slice(&(param.len() as u16).to_be_bytes());
    body.extend_from_slice(&(data.len() as u16).to_be_bytes());
    if let Some(e) = error {
        body.extend_from_slice(&e.to_be_bytes());
    }
    body.extend_from_slice(param);
    body.extend_from_slice(data);
    tpkt(&body)
}

/// The COTP connection request: TPDU size 1024, the calling (local) and called (remote)
/// TSAPs.
pub fn connect_request(local_tsap: u16, remote_tsap: u16) -> Vec<u8> {
    let [l0, l1] = local_tsap.to_be_bytes();
    let [r0, r1] = remote_tsap.to_be_bytes();
    tpkt(&[
        17, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A, 0xC1, 0x02, l0, l1, 0xC2, 0x02, r0, r1,
    ])
}

/// Setup communication: one job in flight each way, and the PDU size asked for.
pub fn setup_request(pdu_ref: u16, pdu_size: u16) -> Vec<u8> {
    let [p0, p1] = pdu_size.to_be_bytes();
    s7_frame(ROSCTR_JOB, pdu_ref, None, &[FN_SETUP, 0, 0, 1, 0, 1, p0, p1], &[])
}

/// Read of `items` (at most [`MAX_ITEMS`]).
pub fn read_request(pdu_ref: u16, items: &[ItemSpec]) -> Vec<u8> {
    let mut param = vec![FN_READ, items.len() as u8];
    for item in items {
        param.extend_from_slice(&item.any_pointer());
    }
    s7_frame(ROSCTR_JOB, pdu_ref, None, &param, &[])
}

/// Write of `data` to one variable (a bit: one byte, 0 or 1).
pub fn write_request(pdu_ref: u16, item: &ItemSpec, data: &[u8]) -> Vec<u8> {
    let mut param = vec![FN_WRITE, 1];
    param.extend_from_slice(&item.any_pointer());
    let (transport, length) = match (item.area, item.bit) {
        (Area::Timer | Area::Counter, _) => (0x09, data.len()),
        (_, Some(_)) => (0x03, 1),
        (_, None) => (0x04, data.len() * 8),
    };
    let mut body = vec![0x00, transport];
    body.extend_from_slice(&(length as u16).to_be_bytes());
    body.extend_from_slice(data);
    s7_frame(ROSCTR_JOB, pdu_ref, None, &param, &body)
}

/// The length of the complete frame at the start of `buf`, once it has arrived.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != 3 {
        return Err(FrameError::Tpkt(version));
    }
    let Some(len) = be16(buf, 2) else {
        return Ok(None);
    };
    let len = usize::from(len);
    if !(7..=MAX_FRAME).contains(&len) {
        return Err(FrameError::FrameLength(len));
    }
    Ok((buf.len() >= len).then_some(len))
}

/// The COTP TPDU of a whole frame.
fn cotp(frame: &[u8]) -> Result<&[u8], FrameError> {
    let len = frame_len(frame)?.ok_or(FrameError::Truncated("the TPKT frame"))?;
    frame
        .get(TPKT_LEN..len)
        .ok_or(FrameError::Truncated("the TPKT frame"))
}

/// Checks the answer to [`connect_request`].
pub fn connect_confirm(frame: &[u8]) -> Result<(), FrameError> {
    let tpdu = cotp(frame)?;
    let kind = tpdu
        .get(1)
        .copied()
        .ok_or(FrameError::Truncated("the COTP header"))?;
    match kind & 0xF0 {
        0xD0 => Ok(()),
        0x80 => Err(FrameError::Disconnected(tpdu.get(6).copied().unwrap_or(0))),
        _ => Err(FrameError::Cotp(kind)),
    }
}

/// A parsed S7 PDU borrowing the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pdu<'a> {
    pub rosctr: u8,
    pub pdu_ref: u16,
    /// Error class and code of acknowledgements (0: none).
    pub error: u16,
    pub param: &'a [u8],
    pub data: &'a [u8],
}

/// Parses one whole frame holding an S7 PDU (COTP data, single TPDU).
pub fn parse_pdu(frame: &[u8]) -> Result<Pdu<'_>, FrameError> {
    let tpdu = cotp(frame)?;
    let (li, kind, eot) = match tpdu {
        [li, kind, eot, ..] => (*li, *kind, *eot),
        _ => return Err(FrameError::Truncated("the COTP header")),
    };
    if kind & 0xF0 == 0x80 {
        return Err(FrameError::Disconnected(tpdu.get(6).copied().unwrap_or(0)));
    }
    if kind != 0xF0 || li != 2 {
        return Err(FrameError::Cotp(kind));
    }
    if eot & 0x80 == 0 {
        return Err(FrameError::Fragmented);
    }
    let s7 = tpdu.get(3..).unwrap_or_default();
    let protocol = *s7.first().ok_or(FrameError::Truncated("the S7 header"))?;
    if protocol != PROTOCOL_ID {
        return Err(FrameError::Protocol(protocol));
    }
    let rosctr = *s7.get(1).ok_or(FrameError::Truncated("the S7 header"))?;
    let header = match rosctr {
        ROSCTR_JOB => 10,
        ROSCTR_ACK | ROSCTR_ACK_DATA => 12,
        other => return Err(FrameError::Rosctr(other)),
    };
    let (Some(pdu_ref), Some(param_len), Some(data_len)) = (be16(s7, 4), be16(s7, 6), be16(s7, 8)) else {
        return Err(FrameError::Truncated("the S7 header"));
    };
    let error = if header == 12 {
        be16(s7, 10).ok_or(FrameError::Truncated("the S7 header"))?
    } else {
        0
    };
    let rest = s7.get(header..).ok_or(FrameError::Truncated("the S7 header"))?;
    let (param_len, data_len) = (usize::from(param_len), usize::from(data_len));
    if param_len + data_len != rest.len() {
        return Err(FrameError::Lengths {
            announced: param_len + data_len,
            actual: rest.len(),
        });
    }
    let (param, data) = rest.split_at(param_len);
    Ok(Pdu {
        rosctr,
        pdu_ref,
        error,
        param,
        data,
    })
}

fn expect_function(pdu: &Pdu<'_>, want: u8) -> Result<(), FrameError> {
    match pdu.param.first() {
        Some(&got) if got == want => Ok(()),
        Some(&got) => Err(FrameError::Function { got, want }),
        None => Err(FrameError::Truncated("the parameters")),
    }
}

/// The PDU size the CPU granted, or its refusal.
pub fn setup_answer(pdu: &Pdu<'_>) -> Result<Result<u16, Refusal>, FrameError> {
    if pdu.error != 0 {
        return Ok(Err(Refusal::Header(pdu.error)));
    }
    expect_function(pdu, FN_SETUP)?;
    let size = be16(pdu.param, 6).ok_or(FrameError::Truncated("the setup parameters"))?;
    if size < MIN_PDU {
        return Err(FrameError::PduSize(size));
    }
    Ok(Ok(size))
}

/// What one item of a read answer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemAnswer<'a> {
    Data(&'a [u8]),
    Refused(u8),
    /// The right return code but not the bytes asked for.
    WrongLength {
        got: usize,
        want: usize,
    },
}

/// The items of the answer to [`read_request`] of `items`, or the CPU's refusal of it all.
pub fn read_answer<'a>(
    pdu: &Pdu<'a>,
    items: &[ItemSpec],
) -> Result<Result<Vec<ItemAnswer<'a>>, Refusal>, FrameError> {
    if pdu.error != 0 {
        return Ok(Err(Refusal::Header(pdu.error)));
    }
    expect_function(pdu, FN_READ)?;
    let count = usize::from(
        *pdu.param
            .get(1)
            .ok_or(FrameError::Truncated("the read parameters"))?,
    );
    if count != items.len() {
        return Err(FrameError::ItemCount {
            got: count,
            want: items.len(),
        });
    }
    let mut out = Vec::with_capacity(count);
    let mut at = 0usize;
    for (i, item) in items.iter().enumerate() {
        let (Some(&code), Some(&transport), Some(length)) =
            (pdu.data.get(at), pdu.data.get(at + 1), be16(pdu.data, at + 2))
        else {
            return Err(FrameError::Truncated("a read item's header"));
        };
        at += READ_ANSWER_PER_ITEM;
        let bytes = match transport {
            // BIT, BYTE/WORD/DWORD, INTEGER: the length counts bits.
            0x03..=0x05 => usize::from(length).div_ceil(8),
            _ => usize::from(length),
        };
        let data = pdu
            .data
            .get(at..at + bytes)
            .ok_or(FrameError::Truncated("a read item's data"))?;
        at += bytes;
        if bytes % 2 == 1 && i + 1 < items.len() {
            at += 1;
        }
        out.push(if code != ITEM_OK {
            ItemAnswer::Refused(code)
        } else if bytes != item.bytes() {
            ItemAnswer::WrongLength {
                got: bytes,
                want: item.bytes(),
            }
        } else {
            ItemAnswer::Data(data)
        });
    }
    Ok(Ok(out))
}

/// The answer to [`write_request`]: accepted, or refused.
pub fn write_answer(pdu: &Pdu<'_>) -> Result<Result<(), Refusal>, FrameError> {
    if pdu.error != 0 {
        return Ok(Err(Refusal::Header(pdu.error)));
    }
    expect_function(pdu, FN_WRITE)?;
    match pdu.data.first() {
        Some(&ITEM_OK) => Ok(Ok(())),
        Some(&code) => Ok(Err(Refusal::Item(code))),
        None => Err(FrameError::Truncated("the write answer")),
    }
}

/// Decodes `data` every way the client and the simulator do, for the fuzzer and the
/// property test: the first byte picks the variables asked for, the rest is the answer
/// (and, for the simulator, the request). No input may panic.
pub fn fuzz_response(data: &[u8]) {
    let (choice, frame) = data.split_first().map_or((0, data), |(c, rest)| (*c, rest));
    let areas = [Area::Db(1), Area::Marker, Area::Timer, Area::Counter, Area::Input];
    let items: Vec<ItemSpec> = (0..usize::from(choice % 4) + 1)
        .map(|i| ItemSpec {
            area: areas
                .get((usize::from(choice >> 2) + i) % areas.len())
                .copied()
                .unwrap_or(Area::Marker),
            start: i as u32 * 8,
            count: u16::from(choice >> 4) + i as u16,
            bit: None,
        })
        .collect();
    let _ = frame_len(frame);
    let _ = connect_confirm(frame);
    let _ = is_connect_request(frame);
    if let Ok(pdu) = parse_pdu(frame) {
        let _ = read_answer(&pdu, &items);
        let _ = setup_answer(&pdu);
        let _ = write_answer(&pdu);
        let _ = parse_job(&pdu);
    }
}

// ── The server side, for the simulator ─────────────────────────────────────────────────

/// A job a client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    Setup { pdu_size: u16 },
    Read(Vec<ItemSpec>),
    Write { item: ItemSpec, data: Vec<u8> },
    Other(u8),
}

/// Whether `frame` is a COTP connection request.
pub fn is_connect_request(frame: &[u8]) -> bool {
    cotp(frame).is_ok_and(|t| t.get(1).is_some_and(|k| k & 0xF0 == 0xE0))
}

/// The answer to any connection request.
pub fn connect_confirm_frame() -> Vec<u8> {
    tpkt(&[11, 0xD0, 0x00, 0x01, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A])
}

/// Parses a client's job; `None` when `pdu` is no job.
pub fn parse_job(pdu: &Pdu<'_>) -> Result<Job, FrameError> {
    if pdu.rosctr != ROSCTR_JOB {
        return Err(FrameError::Rosctr(pdu.rosctr));
    }
    let function = *pdu.param.first().ok_or(FrameError::Truncated("the parameters"))?;
    let items = |pdu: &Pdu<'_>| -> Result<Vec<ItemSpec>, FrameError> {
        let count = usize::from(*pdu.param.get(1).ok_or(FrameError::Truncated("the item count"))?);
        (0..count)
            .map(|i| {
                let spec = pdu
                    .param
                    .get(2 + i * 12..2 + (i + 1) * 12)
                    .ok_or(FrameError::Truncated("an item"))?;
                ItemSpec::parse_any_pointer(spec).ok_or(FrameError::Truncated("an ANY pointer"))
            })
            .collect()
    };
    Ok(match function {
        FN_SETUP => Job::Setup {
            pdu_size: be16(pdu.param, 6).ok_or(FrameError::Truncated("the setup parameters"))?,
        },
        FN_READ => Job::Read(items(pdu)?),
        FN_WRITE => {
            let item = items(pdu)?
                .into_iter()
                .next()
                .ok_or(FrameError::Truncated("the write item"))?;
            let (Some(&transport), Some(length)) = (pdu.data.get(1), be16(pdu.data, 2)) else {
                return Err(FrameError::Truncated("the write data"));
            };
            let bytes = match transport {
                0x03..=0x05 => usize::from(length).div_ceil(8),
                _ => usize::from(length),
            };
            let data = pdu
                .data
                .get(4..4 + bytes)
                .ok_or(FrameError::Truncated("the write data"))?;
            Job::Write {
                item,
                data: data.to_vec(),
            }
        }
        other => Job::Other(other),
    })
}

/// The answer to setup communication.
pub fn setup_response(pdu_ref: u16, pdu_size: u16) -> Vec<u8> {
    let [p0, p1] = pdu_size.to_be_bytes();
    s7_frame(
        ROSCTR_ACK_DATA,
        pdu_ref,
        Some(0),
        &[FN_SETUP, 0, 0, 1, 0, 1, p0, p1],
        &[],
    )
}

/// The answer to a read: each item's data or return code.
pub fn read_response(pdu_ref: u16, items: &[Result<Vec<u8>, u8>]) -> Vec<u8> {
    let mut data = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok(bytes) => {
                data.extend_from_slice(&[ITEM_OK, 0x04]);
                data.extend_from_slice(&((bytes.len() * 8) as u16).to_be_bytes());
                data.extend_from_slice(bytes);
                if bytes.len() % 2 == 1 && i + 1 < items.len() {
                    data.push(0);
                }
            }
            Err(code) => data.extend_from_slice(&[*code, 0, 0, 0]),
        }
    }
    s7_frame(
        ROSCTR_ACK_DATA,
        pdu_ref,
        Some(0),
        &[FN_READ, items.len() as u8],
        &data,
    )
}

/// The answer to a write.
pub fn write_response(pdu_ref: u16, code: u8) -> Vec<u8> {
    s7_frame(ROSCTR_ACK_DATA, pdu_ref, Some(0), &[FN_WRITE, 1], &[code])
}

/// A refusal of the whole job.
pub fn error_response(pdu_ref: u16, error: u16) -> Vec<u8> {
    s7_frame(ROSCTR_ACK, pdu_ref, Some(error), &[], &[])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn db(n: u16, start: u32, count: u16) -> ItemSpec {
        ItemSpec {
            area: Area::Db(n),
            start,
            count,
            bit: None,
        }
    }

    #[test]
    fn requests_carry_the_documented_bytes() {
        let cr = connect_request(0x0100, 0x0101);
        assert_eq!(cr.len(), 22);
        assert_eq!(&cr[..6], &[3, 0, 0, 22, 17, 0xE0]);
        let setup = setup_request(1, 480);
        assert_eq!(
            setup,
            [
                3, 0, 0, 25, 2, 0xF0, 0x80, 0x32, 1, 0, 0, 0, 1, 0, 8, 0, 0, 0xF0, 0, 0, 1, 0, 1, 1, 0xE0
            ]
        );
        let read = read_request(7, &[db(10, 4, 4)]);
        assert_eq!(
            &read[17..],
            &[FN_READ, 1, 0x12, 0x0A, 0x10, 0x02, 0, 4, 0, 10, 0x84, 0, 0, 32]
        );
        assert_eq!(read.len(), 7 + READ_REQUEST_FIXED + READ_REQUEST_PER_ITEM - 2 + 2);
    }

    #[test]
    fn read_answers_split_into_items_with_fill_bytes_and_refusals() {
        let items = [db(1, 0, 3), db(2, 0, 2), db(3, 0, 4)];
        let frame = read_response(9, &[Ok(vec![1, 2, 3]), Err(0x0A), Ok(vec![4, 5, 6, 7])]);
        let pdu = parse_pdu(&frame).unwrap();
        assert_eq!(pdu.pdu_ref, 9);
        let answers = read_answer(&pdu, &items).unwrap().unwrap();
        assert_eq!(
            answers,
            [
                ItemAnswer::Data(&[1, 2, 3]),
                ItemAnswer::Refused(0x0A),
                ItemAnswer::Data(&[4, 5, 6, 7])
            ]
        );
        // Fewer bytes than asked for: that item only.
        let frame = read_response(9, &[Ok(vec![1, 2]), Err(0x05), Ok(vec![4, 5, 6, 7])]);
        let answers = read_answer(&parse_pdu(&frame).unwrap(), &items).unwrap().unwrap();
        assert_eq!(answers[0], ItemAnswer::WrongLength { got: 2, want: 3 });
        assert_eq!(answers[2], ItemAnswer::Data(&[4, 5, 6, 7]));
    }

    #[test]
    fn header_errors_are_refusals_with_the_fix() {
        let frame = error_response(3, 0x8104);
        let pdu = parse_pdu(&frame).unwrap();
        let refusal = read_answer(&pdu, &[db(1, 0, 1)]).unwrap().unwrap_err();
        assert_eq!(refusal, Refusal::Header(0x8104));
        assert!(refusal.to_string().contains("PUT/GET"));
        assert!(Refusal::Item(0x05).to_string().contains("non-optimized DB"));
        assert!(Refusal::Item(0x05).is_configuration());
    }

    #[test]
    fn server_side_parses_what_the_client_sends() {
        let items = [
            db(10, 4, 4),
            ItemSpec {
                area: Area::Timer,
                start: 3,
                count: 2,
                bit: None,
            },
        ];
        let frame = read_request(5, &items);
        assert_eq!(
            parse_job(&parse_pdu(&frame).unwrap()).unwrap(),
            Job::Read(items.to_vec())
        );
        let bit = ItemSpec {
            area: Area::Marker,
            start: 2,
            count: 1,
            bit: Some(3),
        };
        let frame = write_request(6, &bit, &[1]);
        assert_eq!(
            parse_job(&parse_pdu(&frame).unwrap()).unwrap(),
            Job::Write {
                item: bit,
                data: vec![1]
            }
        );
        assert!(is_connect_request(&connect_request(0x100, 0x101)));
        assert_eq!(connect_confirm(&connect_confirm_frame()), Ok(()));
        let setup = setup_response(1, 240);
        assert_eq!(setup_answer(&parse_pdu(&setup).unwrap()), Ok(Ok(240)));
    }

    #[test]
    fn malformed_frames_are_named_errors() {
        assert_eq!(frame_len(&[4, 0, 0, 10]), Err(FrameError::Tpkt(4)));
        assert_eq!(
            frame_len(&[3, 0, 0xFF, 0xFF]),
            Err(FrameError::FrameLength(65535))
        );
        assert_eq!(frame_len(&[3, 0, 0]), Ok(None));
        let mut frame = read_response(9, &[Ok(vec![1, 2, 3, 4])]);
        frame[7] = 0x33;
        assert_eq!(parse_pdu(&frame), Err(FrameError::Protocol(0x33)));
        let mut frame = read_response(9, &[Ok(vec![1, 2, 3, 4])]);
        let last = frame.len() - 1;
        frame.truncate(last);
        frame[3] -= 1;
        assert!(matches!(parse_pdu(&frame), Err(FrameError::Lengths { .. })));
    }

    proptest! {
        /// The decoder survives any bytes: frames of random content, and valid frames with
        /// random bytes changed.
        #[test]
        fn random_bytes_never_panic_the_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        ) {
            let items = [db(1, 0, 3), db(2, 0, 2), ItemSpec { area: Area::Timer, start: 0, count: 2, bit: None }];
            let mut candidates = vec![bytes.clone()];
            let mut valid = read_response(1, &[Ok(vec![1, 2, 3]), Err(0x0A), Ok(vec![0; 4])]);
            for (at, b) in &flips {
                let n = valid.len();
                if let Some(x) = valid.get_mut(at % n) { *x = *b; }
            }
            candidates.push(valid);
            let mut framed = vec![3, 0];
            framed.extend_from_slice(&((bytes.len() + 4) as u16).to_be_bytes());
            framed.extend_from_slice(&bytes);
            candidates.push(framed);
            for c in &candidates {
                for choice in [0u8, 0x5B, 0xFF] {
                    let mut input = vec![choice];
                    input.extend_from_slice(c);
                    fuzz_response(&input);
                }
                if let Ok(pdu) = parse_pdu(c) {
                    let _ = read_answer(&pdu, &items);
                }
            }
        }
    }
}
