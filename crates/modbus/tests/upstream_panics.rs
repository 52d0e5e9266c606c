//! Canaries for the tokio-modbus 0.17 panics this crate works around. Each test shows the
//! upstream panic still exists and that our path reports the same bytes as an error. When
//! one of them starts failing, upstream fixed the bug and the guard may go.
//!
//! - server codec, FC 15 whose quantity exceeds its data bytes: index out of bounds in
//!   `decode_packed_coils` (the simulator's `GuardedStream` stops these frames);
//! - server codec, FC 16 / FC 23 quantity ≥ 0x8000: `quantity * 2` overflows `u16`
//!   (a panic where overflow checks are on, i.e. debug builds);
//! - client `Reader`: `debug_assert!`s on answers shorter than asked (upstream issue 298's
//!   device, for coils; the same for registers), which our client never calls: it checks
//!   answers in `frame::decode_response_pdu`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::sync::Once;

use backplane_modbus::Area;
use backplane_modbus::frame::{FrameError, Request as OurRequest, check_request_pdu, decode_response_pdu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_modbus::bytes::Bytes;
use tokio_modbus::client::Reader;
use tokio_modbus::{Request, Slave};

fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

fn decode_request_panics(pdu: &'static [u8]) -> bool {
    quiet_panics();
    std::panic::catch_unwind(|| {
        let _ = Request::try_from(Bytes::from_static(pdu));
    })
    .is_err()
}

#[test]
fn server_codec_panics_on_fc15_with_fewer_bytes_than_coils_and_our_check_refuses_it() {
    let pdu: &'static [u8] = &[0x0F, 0, 0, 0x07, 0xD0, 1, 0xFF];
    assert!(decode_request_panics(pdu), "upstream fixed FC 15 decoding");
    assert!(check_request_pdu(pdu).is_err());
}

#[test]
fn server_codec_overflows_on_fc16_and_fc23_quantities_and_our_check_refuses_them() {
    let fc16: &'static [u8] = &[0x10, 0, 0, 0x80, 0x00, 0];
    let fc23: &'static [u8] = &[0x17, 0, 0, 0, 1, 0, 0, 0x80, 0x00, 0];
    if cfg!(debug_assertions) {
        assert!(decode_request_panics(fc16), "upstream fixed FC 16 decoding");
        assert!(decode_request_panics(fc23), "upstream fixed FC 23 decoding");
    }
    assert!(check_request_pdu(fc16).is_err());
    assert!(check_request_pdu(fc23).is_err());
}

/// A device that answers every request with `pdu`.
async fn device_answering(pdu: &'static [u8]) -> tokio::net::TcpStream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 12];
        while socket.read_exact(&mut request).await.is_ok() {
            let mut answer = request[..4].to_vec();
            answer.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
            answer.push(request[6]);
            answer.extend_from_slice(pdu);
            socket.write_all(&answer).await.unwrap();
        }
    });
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn client_reader_panics_on_short_answers_and_our_decoder_reports_them() {
    quiet_panics();
    // Two registers asked, one answered.
    let short_registers: &'static [u8] = &[3, 2, 0, 1];
    let stream = device_answering(short_registers).await;
    let task = tokio::spawn(async move {
        let mut ctx = tokio_modbus::client::tcp::attach_slave(stream, Slave(1));
        ctx.read_holding_registers(0, 2).await
    });
    let outcome = task.await;
    if cfg!(debug_assertions) {
        assert!(
            outcome.is_err_and(|e| e.is_panic()),
            "upstream fixed the register count check"
        );
    }
    let ours = decode_response_pdu(
        &OurRequest::Read {
            area: Area::HoldingRegister,
            start: 0,
            count: 2,
        },
        short_registers,
    );
    assert!(
        matches!(
            ours,
            Err(FrameError::Count {
                expected: 2,
                got: 1,
                ..
            })
        ),
        "{ours:?}"
    );

    // Ten coils asked, one byte (eight coils) answered: issue 298's device.
    let short_coils: &'static [u8] = &[1, 1, 0xFF];
    let stream = device_answering(short_coils).await;
    let task = tokio::spawn(async move {
        let mut ctx = tokio_modbus::client::tcp::attach_slave(stream, Slave(1));
        ctx.read_coils(0, 10).await
    });
    let outcome = task.await;
    if cfg!(debug_assertions) {
        assert!(
            outcome.is_err_and(|e| e.is_panic()),
            "upstream fixed the coil count check"
        );
    }
    let ours = decode_response_pdu(
        &OurRequest::Read {
            area: Area::Coil,
            start: 0,
            count: 10,
        },
        short_coils,
    );
    assert!(matches!(ours, Err(FrameError::Count { .. })), "{ours:?}");
}
