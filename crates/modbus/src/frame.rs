//! Modbus frames: encoding requests, and decoding responses without trusting the device.
//!
//! Two layers, as in the protocol: the ADU (TCP's MBAP header, or RTU's unit id and CRC)
//! and the PDU (function code and data). The PDU is decoded by tokio-modbus
//! (`Response::try_from`), then checked against the request it answers: function code,
//! register and bit counts, write echoes. Every check returns a [`FrameError`]; nothing
//! here panics on any input (see `fuzz/fuzz_targets/modbus_response.rs`).
//!
//! We frame ADUs ourselves rather than through tokio-modbus' client because its `Reader` /
//! `Writer` methods `debug_assert!` on short or mismatching responses (a panic in debug
//! builds, silently short data in release), it cannot skip late answers to a request that
//! timed out (transaction ids), and it has no RTU inter-frame delay.

use tokio_modbus::bytes::Bytes;
use tokio_modbus::{ExceptionCode, ExceptionResponse, Response};

use crate::address::Area;

/// Largest PDU the protocol allows (function code and data).
pub const MAX_PDU: usize = 253;
/// Most registers one read may ask for (FC 3, 4).
pub const MAX_READ_REGISTERS: u16 = 125;
/// Most bits one read may ask for (FC 1, 2).
pub const MAX_READ_BITS: u16 = 2000;
/// Most registers one FC 16 write may carry.
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// Most coils one FC 15 write may carry.
pub const MAX_WRITE_COILS: u16 = 1968;

/// A request this crate sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// FC 1, 2, 3 or 4, by area.
    Read { area: Area, start: u16, count: u16 },
    /// FC 5.
    WriteCoil { address: u16, value: bool },
    /// FC 6.
    WriteRegister { address: u16, value: u16 },
    /// FC 15.
    WriteCoils { address: u16, values: Vec<bool> },
    /// FC 16.
    WriteRegisters { address: u16, values: Vec<u16> },
}

/// What a successful response carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    Registers(Vec<u16>),
    /// Exactly as many bits as requested.
    Bits(Vec<bool>),
    /// A write was acknowledged with the echo the request expects.
    Written,
}

/// A device exception, or the data.
pub type Reply = Result<Data, ExceptionCode>;

/// Why a response could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("MBAP header has protocol id {0}, not 0 (not a Modbus TCP peer?)")]
    ProtocolId(u16),
    #[error("MBAP length {0} is outside 2..=254")]
    Length(u16),
    #[error("RTU frame CRC {got:#06x} does not match {expected:#06x}")]
    Crc { expected: u16, got: u16 },
    #[error("answer from unit {got}, asked unit {expected}")]
    Unit { expected: u8, got: u8 },
    #[error("answer has function code {got:#04x}, asked {expected:#04x}")]
    Function { expected: u8, got: u8 },
    #[error("RTU answer has unsupported function code {0:#04x}")]
    UnknownFunction(u8),
    #[error("asked {expected} {what}, the answer has {got}")]
    Count {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("write echo {got:?} differs from the request {expected:?}")]
    Echo { expected: (u16, u16), got: (u16, u16) },
    #[error("malformed PDU: {0}")]
    Pdu(String),
    #[error("request is malformed: {0}")]
    Request(String),
}

impl FrameError {
    /// Whether the byte stream can no longer be trusted to be in step with frames (a TCP
    /// connection must then be reset); PDU-level errors leave the framing intact.
    pub fn breaks_framing(&self) -> bool {
        matches!(self, FrameError::ProtocolId(_) | FrameError::Length(_))
    }
}

impl Request {
    pub fn function(&self) -> u8 {
        match self {
            Request::Read { area, .. } => area.read_function(),
            Request::WriteCoil { .. } => 5,
            Request::WriteRegister { .. } => 6,
            Request::WriteCoils { .. } => 15,
            Request::WriteRegisters { .. } => 16,
        }
    }

    /// Appends the PDU. Errors on requests the protocol cannot carry (too many values).
    pub fn encode_pdu(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.push(self.function());
        match self {
            Request::Read { area, start, count } => {
                let max = if area.is_bits() {
                    MAX_READ_BITS
                } else {
                    MAX_READ_REGISTERS
                };
                if *count == 0 || *count > max {
                    return Err(FrameError::Request(format!("read of {count} (1..={max})")));
                }
                out.extend_from_slice(&start.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
            }
            Request::WriteCoil { address, value } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&(if *value { 0xFF00u16 } else { 0 }).to_be_bytes());
            }
            Request::WriteRegister { address, value } => {
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
            Request::WriteCoils { address, values } => {
                let n = values.len();
                if n == 0 || n > usize::from(MAX_WRITE_COILS) {
                    return Err(FrameError::Request(format!("write of {n} coils (1..=1968)")));
                }
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&(n as u16).to_be_bytes());
                let bytes = n.div_ceil(8);
                out.push(bytes as u8);
                let first = out.len();
                out.resize(first + bytes, 0);
                for (i, bit) in values.iter().enumerate() {
                    if *bit && let Some(b) = out.get_mut(first + i / 8) {
                        *b |= 1 << (i % 8);
                    }
                }
            }
            Request::WriteRegisters { address, values } => {
                let n = values.len();
                if n == 0 || n > usize::from(MAX_WRITE_REGISTERS) {
                    return Err(FrameError::Request(format!("write of {n} registers (1..=123)")));
                }
                out.extend_from_slice(&address.to_be_bytes());
                out.extend_from_slice(&(n as u16).to_be_bytes());
                out.push((n * 2) as u8);
                for v in values {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        Ok(())
    }
}

/// Decodes the answer that `got_unit` sent to `request`, which went to `unit`: an answer
/// from another unit is malformed, whatever it holds.
pub fn decode_answer(unit: u8, request: &Request, got_unit: u8, pdu: &[u8]) -> Result<Reply, FrameError> {
    if got_unit != unit {
        return Err(FrameError::Unit {
            expected: unit,
            got: got_unit,
        });
    }
    decode_response_pdu(request, pdu)
}

/// Decodes a response PDU and checks that it answers `request`.
pub fn decode_response_pdu(request: &Request, pdu: &[u8]) -> Result<Reply, FrameError> {
    let expected = request.function();
    let Some(&function) = pdu.first() else {
        return Err(FrameError::Pdu("empty PDU".into()));
    };
    if function >= 0x80 {
        let exception = ExceptionResponse::try_from(Bytes::copy_from_slice(pdu))
            .map_err(|e| FrameError::Pdu(e.to_string()))?;
        if pdu.len() != 2 {
            return Err(FrameError::Pdu(format!("exception PDU of {} bytes", pdu.len())));
        }
        if exception.function.value() != expected {
            return Err(FrameError::Function {
                expected,
                got: function,
            });
        }
        return Ok(Err(exception.exception));
    }
    if function != expected {
        return Err(FrameError::Function {
            expected,
            got: function,
        });
    }
    let response =
        Response::try_from(Bytes::copy_from_slice(pdu)).map_err(|e| FrameError::Pdu(e.to_string()))?;
    let data = match (request, response) {
        (
            Request::Read { count, .. },
            Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words),
        ) => {
            if words.len() != usize::from(*count) {
                return Err(FrameError::Count {
                    what: "registers",
                    expected: usize::from(*count),
                    got: words.len(),
                });
            }
            Data::Registers(words)
        }
        (
            Request::Read { count, .. },
            Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits),
        ) => {
            // The byte count must be exactly what the quantity needs (the spec's rule); the
            // padding bits of the last byte are dropped.
            let bytes = pdu.get(1).copied().map_or(0, usize::from);
            let want = usize::from(*count).div_ceil(8);
            if bytes != want {
                return Err(FrameError::Count {
                    what: "bytes of bits",
                    expected: want,
                    got: bytes,
                });
            }
            bits.truncate(usize::from(*count));
            Data::Bits(bits)
        }
        (Request::WriteCoil { address, value }, Response::WriteSingleCoil(a, v)) => {
            echo((*address, u16::from(*value)), (a, u16::from(v)))?
        }
        (Request::WriteRegister { address, value }, Response::WriteSingleRegister(a, v)) => {
            echo((*address, *value), (a, v))?
        }
        (Request::WriteCoils { address, values }, Response::WriteMultipleCoils(a, n)) => {
            echo((*address, values.len() as u16), (a, n))?
        }
        (Request::WriteRegisters { address, values }, Response::WriteMultipleRegisters(a, n)) => {
            echo((*address, values.len() as u16), (a, n))?
        }
        (_, other) => {
            return Err(FrameError::Pdu(format!("unexpected response {other:?}")));
        }
    };
    Ok(Ok(data))
}

fn echo(expected: (u16, u16), got: (u16, u16)) -> Result<Data, FrameError> {
    if expected == got {
        Ok(Data::Written)
    } else {
        Err(FrameError::Echo { expected, got })
    }
}

/// Length of the MBAP header (transaction id, protocol id, length, unit id).
pub const MBAP_LEN: usize = 7;

/// A Modbus TCP frame found at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrame<'a> {
    pub transaction: u16,
    pub unit: u8,
    pub pdu: &'a [u8],
    /// Bytes of the buffer the frame occupies.
    pub len: usize,
}

/// Appends a Modbus TCP request ADU to `out` (several requests can go out in one write);
/// on an error `out` is left as it was.
pub fn encode_tcp(
    transaction: u16,
    unit: u8,
    request: &Request,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let at = out.len();
    out.extend_from_slice(&transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, unit]);
    if let Err(e) = request.encode_pdu(out) {
        out.truncate(at);
        return Err(e);
    }
    let len = (out.len() - at - 6) as u16;
    out[at + 4..at + 6].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Finds one complete Modbus TCP frame at the start of `buf`; `Ok(None)` when more bytes
/// are needed.
pub fn parse_tcp_frame(buf: &[u8]) -> Result<Option<TcpFrame<'_>>, FrameError> {
    let Some(header) = buf.get(..MBAP_LEN) else {
        return Ok(None);
    };
    let protocol = u16::from_be_bytes([header[2], header[3]]);
    if protocol != 0 {
        return Err(FrameError::ProtocolId(protocol));
    }
    let length = u16::from_be_bytes([header[4], header[5]]);
    if !(2..=(MAX_PDU as u16 + 1)).contains(&length) {
        return Err(FrameError::Length(length));
    }
    let total = 6 + usize::from(length);
    let Some(pdu) = buf.get(MBAP_LEN..total) else {
        return Ok(None);
    };
    Ok(Some(TcpFrame {
        transaction: u16::from_be_bytes([header[0], header[1]]),
        unit: header[6],
        pdu,
        len: total,
    }))
}

/// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), sent low byte first.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Encodes an RTU request ADU (unit id, PDU, CRC).
pub fn encode_rtu(unit: u8, request: &Request, out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.clear();
    out.push(unit);
    request.encode_pdu(out)?;
    let crc = crc16(out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// An RTU response found at the start of a buffer, CRC checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtuFrame<'a> {
    pub unit: u8,
    pub pdu: &'a [u8],
    pub len: usize,
}

/// Finds one complete RTU response at the start of `buf`. RTU has no length field, so
/// the length follows from the function code (the request's, or an exception).
pub fn parse_rtu_response(buf: &[u8]) -> Result<Option<RtuFrame<'_>>, FrameError> {
    let (Some(&unit), Some(&function)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    let total = match function {
        f if f >= 0x80 => 5,
        1..=4 => match buf.get(2) {
            Some(&count) => 5 + usize::from(count),
            None => return Ok(None),
        },
        5 | 6 | 15 | 16 => 8,
        other => return Err(FrameError::UnknownFunction(other)),
    };
    let Some(frame) = buf.get(..total) else {
        return Ok(None);
    };
    let (body, crc) = frame.split_at(total - 2);
    let got = u16::from_le_bytes([crc[0], crc[1]]);
    let expected = crc16(body);
    if got != expected {
        return Err(FrameError::Crc { expected, got });
    }
    Ok(Some(RtuFrame {
        unit,
        pdu: &body[1..],
        len: total,
    }))
}

/// Checks a request PDU the way a server must before tokio-modbus' server codec sees it:
/// tokio-modbus 0.17 indexes out of bounds on an FC 15 whose quantity exceeds its byte
/// count, and multiplies FC 16 / FC 23 quantities by two in `u16` (overflow panics in
/// debug builds). Requests failing here close the connection, as malformed frames do.
pub fn check_request_pdu(pdu: &[u8]) -> Result<(), FrameError> {
    let u16_at = |i: usize| -> Result<u16, FrameError> {
        match (pdu.get(i), pdu.get(i + 1)) {
            (Some(&h), Some(&l)) => Ok(u16::from_be_bytes([h, l])),
            _ => Err(FrameError::Request("truncated".into())),
        }
    };
    let byte_at = |i: usize| {
        pdu.get(i)
            .copied()
            .ok_or_else(|| FrameError::Request("truncated".into()))
    };
    match pdu.first() {
        None => Err(FrameError::Request("empty PDU".into())),
        Some(0x0F) => {
            let quantity = u16_at(3)?;
            let bytes = byte_at(5)?;
            if quantity == 0
                || quantity > MAX_WRITE_COILS
                || usize::from(bytes) != usize::from(quantity).div_ceil(8)
            {
                return Err(FrameError::Request(format!(
                    "FC 15 quantity {quantity} with {bytes} data bytes"
                )));
            }
            Ok(())
        }
        Some(0x10) => {
            let quantity = u16_at(3)?;
            let bytes = byte_at(5)?;
            if quantity == 0 || quantity > MAX_WRITE_REGISTERS || u32::from(bytes) != u32::from(quantity) * 2
            {
                return Err(FrameError::Request(format!(
                    "FC 16 quantity {quantity} with {bytes} data bytes"
                )));
            }
            Ok(())
        }
        Some(0x17) => {
            let quantity = u16_at(7)?;
            let bytes = byte_at(9)?;
            if quantity == 0 || quantity > 121 || u32::from(bytes) != u32::from(quantity) * 2 {
                return Err(FrameError::Request(format!(
                    "FC 23 write quantity {quantity} with {bytes} data bytes"
                )));
            }
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

/// Finds one complete Modbus TCP request at the start of `buf` and checks it with
/// [`check_request_pdu`]; returns its length, `Ok(None)` when more bytes are needed.
pub fn check_tcp_request(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    match parse_tcp_frame(buf)? {
        Some(frame) => {
            check_request_pdu(frame.pdu)?;
            Ok(Some(frame.len))
        }
        None => Ok(None),
    }
}

/// Fuzz entry: derives a request from the first bytes of `data` and feeds the rest through
/// both framings and the PDU decoder, as the client does. Must never panic.
pub fn fuzz_response(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let start = u16::from_be_bytes([head[1], head[2]]);
    let count = u16::from_be_bytes([head[3], head[4]]);
    let request = match head[0] % 8 {
        0 => Request::Read {
            area: Area::Coil,
            start,
            count: count % 2001,
        },
        1 => Request::Read {
            area: Area::DiscreteInput,
            start,
            count: count % 2001,
        },
        2 => Request::Read {
            area: Area::HoldingRegister,
            start,
            count: count % 126,
        },
        3 => Request::Read {
            area: Area::InputRegister,
            start,
            count: count % 126,
        },
        4 => Request::WriteCoil {
            address: start,
            value: count & 1 == 1,
        },
        5 => Request::WriteRegister {
            address: start,
            value: count,
        },
        6 => Request::WriteCoils {
            address: start,
            values: vec![true; usize::from(count % 20)],
        },
        _ => Request::WriteRegisters {
            address: start,
            values: vec![count; usize::from(count % 20)],
        },
    };
    let mut out = Vec::new();
    let _ = encode_tcp(1, 1, &request, &mut out);
    let _ = decode_response_pdu(&request, rest);
    if let Ok(Some(frame)) = parse_tcp_frame(rest) {
        let _ = decode_response_pdu(&request, frame.pdu);
    }
    if let Ok(Some(frame)) = parse_rtu_response(rest) {
        let _ = decode_response_pdu(&request, frame.pdu);
    }
    let _ = check_request_pdu(rest);
    let _ = check_tcp_request(rest);
}

/// Fuzz entry for the simulator's guard: what [`check_tcp_request`] lets through must
/// decode in tokio-modbus' server codec without panicking.
pub fn fuzz_request(data: &[u8]) {
    if let Ok(Some(len)) = check_tcp_request(data)
        && let Some(pdu) = data.get(MBAP_LEN..len)
    {
        let _ = tokio_modbus::Request::try_from(Bytes::copy_from_slice(pdu));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn read(area: Area, start: u16, count: u16) -> Request {
        Request::Read { area, start, count }
    }

    #[test]
    fn holding_register_reads_decode_and_check_their_count() {
        let req = read(Area::HoldingRegister, 100, 2);
        assert_eq!(
            decode_response_pdu(&req, &[3, 4, 0x12, 0x34, 0xAB, 0xCD]),
            Ok(Ok(Data::Registers(vec![0x1234, 0xABCD])))
        );
        // A short answer (one register for two) is an error, not a panic or short data.
        assert_eq!(
            decode_response_pdu(&req, &[3, 2, 0x12, 0x34]),
            Err(FrameError::Count {
                what: "registers",
                expected: 2,
                got: 1
            })
        );
        // Byte count larger than the data present.
        assert!(decode_response_pdu(&req, &[3, 4, 0x12]).is_err());
        assert!(matches!(
            decode_response_pdu(&req, &[4, 2, 0, 1]),
            Err(FrameError::Function { expected: 3, got: 4 })
        ));
    }

    #[test]
    fn bit_reads_keep_exactly_the_requested_bits() {
        let req = read(Area::Coil, 0, 10);
        let Ok(Ok(Data::Bits(bits))) = decode_response_pdu(&req, &[1, 2, 0b0000_0101, 0b0000_0010]) else {
            panic!()
        };
        assert_eq!(bits.len(), 10);
        assert_eq!(&bits[..3], &[true, false, true]);
        assert!(bits[9]);
        // One byte cannot carry 10 bits (tokio-modbus upstream issue 298's shape).
        assert!(decode_response_pdu(&req, &[1, 1, 0xFF]).is_err());
    }

    #[test]
    fn exceptions_are_replies_not_errors() {
        let req = read(Area::HoldingRegister, 0, 1);
        assert_eq!(
            decode_response_pdu(&req, &[0x83, 0x02]),
            Ok(Err(ExceptionCode::IllegalDataAddress))
        );
        assert!(decode_response_pdu(&req, &[0x84, 0x02]).is_err());
        assert!(decode_response_pdu(&req, &[0x83]).is_err());
    }

    #[test]
    fn write_echoes_must_match() {
        let req = Request::WriteRegister {
            address: 7,
            value: 0xABCD,
        };
        assert_eq!(
            decode_response_pdu(&req, &[6, 0, 7, 0xAB, 0xCD]),
            Ok(Ok(Data::Written))
        );
        assert!(matches!(
            decode_response_pdu(&req, &[6, 0, 8, 0xAB, 0xCD]),
            Err(FrameError::Echo { .. })
        ));
        let req = Request::WriteCoils {
            address: 3,
            values: vec![true, false, true],
        };
        let mut pdu = Vec::new();
        req.encode_pdu(&mut pdu).unwrap();
        assert_eq!(pdu, [15, 0, 3, 0, 3, 1, 0b101]);
        assert_eq!(
            decode_response_pdu(&req, &[15, 0, 3, 0, 3]),
            Ok(Ok(Data::Written))
        );
    }

    #[test]
    fn tcp_requests_append_and_a_refused_one_leaves_the_rest_as_it_was() {
        let mut out = Vec::new();
        encode_tcp(1, 9, &read(Area::HoldingRegister, 100, 3), &mut out).unwrap();
        encode_tcp(2, 9, &read(Area::InputRegister, 7, 1), &mut out).unwrap();
        let too_long = Request::WriteCoils {
            address: 0,
            values: vec![true; 2000],
        };
        assert!(encode_tcp(3, 9, &too_long, &mut out).is_err());
        assert_eq!(
            out,
            [
                0, 1, 0, 0, 0, 6, 9, 3, 0, 100, 0, 3, 0, 2, 0, 0, 0, 6, 9, 4, 0, 7, 0, 1
            ]
        );
    }

    #[test]
    fn tcp_frames_are_found_whole_or_asked_for_more() {
        let mut out = Vec::new();
        encode_tcp(0x0102, 9, &read(Area::HoldingRegister, 100, 3), &mut out).unwrap();
        assert_eq!(out, [1, 2, 0, 0, 0, 6, 9, 3, 0, 100, 0, 3]);
        let response = [1, 2, 0, 0, 0, 5, 9, 3, 2, 0, 42, 0xEE];
        let frame = parse_tcp_frame(&response).unwrap().unwrap();
        assert_eq!(
            (frame.transaction, frame.unit, frame.pdu, frame.len),
            (0x0102, 9, &[3, 2, 0, 42][..], 11)
        );
        assert_eq!(parse_tcp_frame(&response[..10]), Ok(None));
        assert_eq!(
            parse_tcp_frame(&[0, 0, 0, 1, 0, 5, 1]),
            Err(FrameError::ProtocolId(1))
        );
        assert_eq!(
            parse_tcp_frame(&[0, 0, 0, 0, 0, 1, 1]),
            Err(FrameError::Length(1))
        );
        assert_eq!(
            parse_tcp_frame(&[0, 0, 0, 0, 1, 0, 1]),
            Err(FrameError::Length(256))
        );
    }

    #[test]
    fn rtu_frames_check_the_crc() {
        // Example from the Modbus serial line guide: read 1 holding register of unit 1.
        let mut out = Vec::new();
        encode_rtu(1, &read(Area::HoldingRegister, 0, 1), &mut out).unwrap();
        assert_eq!(out, [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A]);
        let mut response = vec![1, 3, 2, 0x12, 0x34];
        let crc = crc16(&response);
        response.extend_from_slice(&crc.to_le_bytes());
        let frame = parse_rtu_response(&response).unwrap().unwrap();
        assert_eq!((frame.unit, frame.pdu), (1, &[3, 2, 0x12, 0x34][..]));
        assert_eq!(parse_rtu_response(&response[..6]), Ok(None));
        response[3] ^= 1;
        assert!(matches!(
            parse_rtu_response(&response),
            Err(FrameError::Crc { .. })
        ));
        assert_eq!(
            parse_rtu_response(&[1, 0x2B, 0]),
            Err(FrameError::UnknownFunction(0x2B))
        );
    }

    #[test]
    fn request_check_refuses_what_panics_tokio_modbus_server_codec() {
        // FC 15: 2000 coils announced, one data byte.
        assert!(check_request_pdu(&[0x0F, 0, 0, 0x07, 0xD0, 1, 0xFF]).is_err());
        // FC 16: quantity 0x8000 overflows `quantity * 2` in u16.
        assert!(check_request_pdu(&[0x10, 0, 0, 0x80, 0x00, 0, 0, 0]).is_err());
        // FC 23: same overflow on the write quantity.
        assert!(check_request_pdu(&[0x17, 0, 0, 0, 1, 0, 0, 0x80, 0, 0]).is_err());
        assert!(check_request_pdu(&[0x0F, 0, 0, 0, 10, 2, 0xFF, 0x03]).is_ok());
        assert!(check_request_pdu(&[0x10, 0, 0, 0, 1, 2, 0, 1]).is_ok());
        assert!(check_request_pdu(&[0x03, 0, 0, 0, 1]).is_ok());
    }

    proptest! {
        // The same entry the cargo-fuzz target drives, so CI exercises it without nightly.
        #[test]
        fn no_input_panics_the_response_decoder(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_response(&data);
        }

        #[test]
        fn no_request_the_guard_passes_panics_the_server_codec(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_request(&data);
        }

        #[test]
        fn guarded_multiple_writes_never_panic_the_server_codec(
            function in prop_oneof![Just(0x0Fu8), Just(0x10u8), Just(0x17u8)],
            quantity in any::<u16>(),
            bytes in any::<u8>(),
            tail in proptest::collection::vec(any::<u8>(), 0..260),
        ) {
            let mut pdu = vec![function, 0, 0];
            if function == 0x17 {
                pdu.extend_from_slice(&[0, 1, 0, 0]);
            }
            pdu.extend_from_slice(&quantity.to_be_bytes());
            pdu.push(bytes);
            pdu.extend_from_slice(&tail);
            pdu.truncate(MAX_PDU);
            let mut adu = vec![0, 1, 0, 0];
            adu.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
            adu.push(1);
            adu.extend_from_slice(&pdu);
            fuzz_request(&adu);
        }

        #[test]
        fn well_formed_register_answers_always_decode(
            words in proptest::collection::vec(any::<u16>(), 1..=125),
            transaction in any::<u16>(),
        ) {
            let mut adu = transaction.to_be_bytes().to_vec();
            adu.extend_from_slice(&[0, 0]);
            adu.extend_from_slice(&((3 + words.len() * 2) as u16).to_be_bytes());
            adu.extend_from_slice(&[1, 3, (words.len() * 2) as u8]);
            for w in &words {
                adu.extend_from_slice(&w.to_be_bytes());
            }
            let frame = parse_tcp_frame(&adu).unwrap().unwrap();
            prop_assert_eq!(frame.transaction, transaction);
            let req = read(Area::HoldingRegister, 0, words.len() as u16);
            prop_assert_eq!(decode_response_pdu(&req, frame.pdu), Ok(Ok(Data::Registers(words))));
        }
    }
}
