//! The device: a minimal Modbus TCP server that answers FC 3 and FC 4 for every unit id and
//! address, with values that change at every read, so every poll publishes every tag.
//!
//! Native rather than tokio-modbus: a blocking thread per connection that decodes the
//! 12-byte request in place and answers with one write costs a few microseconds per
//! request, so the device is never what limits the path (its CPU is reported beside the
//! gateway's to show it).

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const READ_HOLDING_REGISTERS: u8 = 3;
const READ_INPUT_REGISTERS: u8 = 4;
const ILLEGAL_FUNCTION: u8 = 1;
const ILLEGAL_DATA_ADDRESS: u8 = 2;
const ILLEGAL_DATA_VALUE: u8 = 3;

/// Serves connections on `listener` until the process ends.
pub fn serve(listener: TcpListener) -> Result<(), String> {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                std::thread::spawn(move || connection(stream));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
    Ok(())
}

fn connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut device = Device::default();
    let mut header = [0u8; 7];
    let mut pdu = Vec::with_capacity(260);
    let mut answer = Vec::with_capacity(7 + 2 + 250);
    loop {
        if reader.read_exact(&mut header).is_err() {
            return;
        }
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        // The length counts the unit id (already read) and the PDU: 1 to 254 bytes of PDU.
        if !(2..=254).contains(&length) {
            return;
        }
        pdu.resize(length - 1, 0);
        if reader.read_exact(&mut pdu).is_err() {
            return;
        }
        answer.clear();
        answer.extend_from_slice(&header[..4]);
        answer.extend_from_slice(&[0, 0, header[6]]);
        device.answer(header[6], &pdu, &mut answer);
        let pdu_length = u16::try_from(answer.len() - 6).unwrap_or(u16::MAX);
        answer[4..6].copy_from_slice(&pdu_length.to_be_bytes());
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

/// Register values: each read of a block returns every register one higher than the
/// previous read of the same block (by unit, function and start address).
#[derive(Debug, Default)]
pub struct Device {
    reads: HashMap<(u8, u8, u16), u16>,
}

impl Device {
    /// Appends the answer PDU to `request` to `out`.
    pub fn answer(&mut self, unit: u8, request: &[u8], out: &mut Vec<u8>) {
        let Some(&function) = request.first() else {
            return exception(out, 0, ILLEGAL_FUNCTION);
        };
        if function != READ_HOLDING_REGISTERS && function != READ_INPUT_REGISTERS {
            return exception(out, function, ILLEGAL_FUNCTION);
        }
        let [_, s0, s1, c0, c1] = request else {
            return exception(out, function, ILLEGAL_DATA_VALUE);
        };
        let start = u16::from_be_bytes([*s0, *s1]);
        let count = u16::from_be_bytes([*c0, *c1]);
        if !(1..=125).contains(&count) {
            return exception(out, function, ILLEGAL_DATA_VALUE);
        }
        if u32::from(start) + u32::from(count) > 65536 {
            return exception(out, function, ILLEGAL_DATA_ADDRESS);
        }
        let generation = self.reads.entry((unit, function, start)).or_insert(0);
        *generation = generation.wrapping_add(1);
        out.push(function);
        out.push((count * 2) as u8);
        for i in 0..count {
            let value = generation.wrapping_add(start.wrapping_add(i));
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

fn exception(out: &mut Vec<u8>, function: u8, code: u8) {
    out.push(function | 0x80);
    out.push(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(device: &mut Device, unit: u8, start: u16, count: u16) -> Vec<u8> {
        let mut request = vec![READ_HOLDING_REGISTERS];
        request.extend_from_slice(&start.to_be_bytes());
        request.extend_from_slice(&count.to_be_bytes());
        let mut out = Vec::new();
        device.answer(unit, &request, &mut out);
        out
    }

    #[test]
    fn every_read_of_a_block_changes_every_register() {
        let mut device = Device::default();
        let first = read(&mut device, 1, 250, 125);
        assert_eq!(&first[..2], &[3, 250]);
        // Another block in between does not disturb this one's sequence.
        read(&mut device, 1, 375, 125);
        let second = read(&mut device, 1, 250, 125);
        for i in 0..125 {
            let at = 2 + 2 * i;
            let a = u16::from_be_bytes([first[at], first[at + 1]]);
            let b = u16::from_be_bytes([second[at], second[at + 1]]);
            assert_eq!(b, a.wrapping_add(1), "register {i}");
        }
    }

    #[test]
    fn reads_the_protocol_cannot_carry_are_refused_with_exceptions() {
        let mut device = Device::default();
        assert_eq!(read(&mut device, 1, 0, 126), vec![0x83, ILLEGAL_DATA_VALUE]);
        assert_eq!(read(&mut device, 1, 0, 0), vec![0x83, ILLEGAL_DATA_VALUE]);
        assert_eq!(read(&mut device, 1, 65500, 100), vec![0x83, ILLEGAL_DATA_ADDRESS]);
        let mut out = Vec::new();
        device.answer(1, &[6, 0, 1, 0, 1], &mut out);
        assert_eq!(out, vec![0x86, ILLEGAL_FUNCTION]);
        out.clear();
        device.answer(1, &[3, 0], &mut out);
        assert_eq!(out, vec![0x83, ILLEGAL_DATA_VALUE]);
    }

    #[test]
    fn a_tcp_client_gets_answers_framed_with_its_transaction_id() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || serve(listener));
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Transaction 0x1234, unit 7, FC 3 from address 10, 2 registers.
        client
            .write_all(&[0x12, 0x34, 0, 0, 0, 6, 7, 3, 0, 10, 0, 2])
            .unwrap();
        let mut answer = [0u8; 13];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer[..9], &[0x12, 0x34, 0, 0, 0, 7, 7, 3, 4]);
        assert_eq!(u16::from_be_bytes([answer[9], answer[10]]), 11);
        assert_eq!(u16::from_be_bytes([answer[11], answer[12]]), 12);
    }
}
