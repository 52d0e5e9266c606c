//! Several requests outstanding on one Modbus TCP connection (`in_flight`), against scripted
//! devices: they all reach the device before its first answer, answers in any order find
//! their own requests, a device that takes only one at a time costs timeouts and never a
//! wrong value, and a device that hangs up mid-window ends the cycle for a reconnect.
//! (pymodbus taking eight at once: tests/pymodbus.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::sync::Arc;

use backplane_engine::RawReading;
use backplane_modbus::{ModbusSettings, Poller};
use backplane_model::{BadReason, Quality, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Four reads of one register each, far enough apart never to be joined.
const ADDRESSES: [&str; 4] = ["hr:0", "hr:1000", "hr:2000", "hr:3000"];

fn settings(port: u16, in_flight: usize, retries: u32) -> Arc<ModbusSettings> {
    let text = format!(
        "url = \"tcp://127.0.0.1:{port}\"\naddress_base = 0\ntimeout = \"200ms\"\nretries = {retries}\n\
         in_flight = {in_flight}\n"
    );
    let (settings, diagnostics) =
        backplane_config::reader::with_table(&text, Path::new("t.toml"), |mut t| {
            backplane_modbus::config::parse_settings(&mut t)
        });
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(settings.flatten().unwrap())
}

fn new_poller(port: u16, in_flight: usize, retries: u32) -> Poller {
    let addresses: Vec<Arc<str>> = ADDRESSES.iter().map(|a| Arc::from(*a)).collect();
    let poller = Poller::new("fake", settings(port, in_flight, retries), &addresses).unwrap();
    assert_eq!(poller.requests(0), ADDRESSES.len());
    poller
}

/// The answer to a read request (`request` is its 12 bytes): one register holding the
/// request's start address, so an answer given to the wrong request shows.
fn answer(request: &[u8; 12]) -> Vec<u8> {
    let mut out = request[..6].to_vec();
    out[4..6].copy_from_slice(&5u16.to_be_bytes());
    out.extend_from_slice(&[request[6], 3, 2, request[8], request[9]]);
    out
}

async fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Reading `i` (of `ADDRESSES`) as the register value it must carry.
fn expected(i: u32) -> Value {
    Value::UInt(u64::from(i) * 1000)
}

fn by_address(readings: &[RawReading], address: u32) -> &RawReading {
    readings
        .iter()
        .find(|r| r.address == address)
        .unwrap_or_else(|| panic!("no reading of {address} in {readings:?}"))
}

#[tokio::test]
async fn every_request_reaches_the_device_before_its_first_answer_and_answers_in_reverse_find_their_requests()
{
    // The device answers nothing until it holds all four requests, then answers the last
    // first. One request at a time, it would wait for ever and the cycle would time out.
    let (listener, port) = bind().await;
    let device = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        for _ in 0..2 {
            let mut held = Vec::new();
            for _ in 0..ADDRESSES.len() {
                let mut request = [0u8; 12];
                socket.read_exact(&mut request).await.unwrap();
                held.push(request);
            }
            for request in held.iter().rev() {
                socket.write_all(&answer(request)).await.unwrap();
            }
        }
    });
    let mut poller = new_poller(port, 4, 0);
    let mut pool = poller.connect().await.unwrap();
    for _ in 0..2 {
        let readings = poller.poll(0, &mut pool).await.unwrap();
        assert_eq!(readings.len(), ADDRESSES.len());
        for i in 0..4 {
            let r = by_address(&readings, i);
            assert_eq!((r.value.clone(), r.quality), (Some(expected(i)), Quality::Good));
        }
    }
    device.await.unwrap();

    // The same device with one request at a time: it never answers.
    let (listener, port) = bind().await;
    let _device = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 12];
        while socket.read_exact(&mut request).await.is_ok() {}
    });
    let mut poller = new_poller(port, 1, 0);
    let mut pool = poller.connect().await.unwrap();
    assert!(
        poller.poll(0, &mut pool).await.is_err(),
        "no answer at all: reconnect"
    );
}

#[tokio::test]
async fn a_device_that_takes_one_request_at_a_time_costs_timeouts_and_never_a_wrong_value() {
    // Answers the first request of each chunk it reads and drops the rest, as a device
    // without a request queue does.
    let (listener, port) = bind().await;
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut chunk = [0u8; 512];
        loop {
            let n = match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if n < 12 {
                continue;
            }
            let mut request = [0u8; 12];
            request.copy_from_slice(&chunk[..12]);
            if socket.write_all(&answer(&request)).await.is_err() {
                return;
            }
        }
    });
    let mut poller = new_poller(port, 4, 1);
    let mut pool = poller.connect().await.unwrap();
    let readings = poller.poll(0, &mut pool).await.unwrap();
    assert_eq!(readings.len(), ADDRESSES.len());
    let mut good = 0;
    for i in 0..4 {
        let r = by_address(&readings, i);
        match r.quality {
            Quality::Good => {
                assert_eq!(r.value, Some(expected(i)));
                good += 1;
            }
            Quality::Bad(BadReason::Timeout) => assert_eq!(r.value, None),
            other => panic!("{other:?}"),
        }
    }
    assert!(good >= 1, "{readings:?}");
}

#[tokio::test]
async fn a_device_hanging_up_with_requests_outstanding_ends_the_cycle_for_a_reconnect() {
    let (listener, port) = bind().await;
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 12];
        socket.read_exact(&mut request).await.unwrap();
        socket.write_all(&answer(&request)).await.unwrap();
        // The other three requests are never answered: the device closes.
        drop::<TcpStream>(socket);
    });
    let mut poller = new_poller(port, 4, 0);
    let mut pool = poller.connect().await.unwrap();
    let error = poller.poll(0, &mut pool).await.expect_err("a lost connection");
    assert!(pool[0].is_broken(), "{error}");
}

#[tokio::test]
async fn tokio_modbus_answers_eight_reads_in_flight_each_with_its_own_registers() {
    // The filler simulator is tokio-modbus' server; its load bank reads ir:N = N + tick, the
    // tick advancing every 100 ms, so a block's first register less its address is the tick
    // of that read: never more than a few apart within a cycle, and 1 000 apart for an
    // answer given to another block's request.
    let (addr, simulator) = backplane_modbus::spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addresses: Vec<Arc<str>> = (0..8).map(|b| Arc::from(format!("ir:{}", b * 1000))).collect();
    let mut poller = Poller::new("tokio-modbus", settings(addr.port(), 8, 0), &addresses).unwrap();
    assert_eq!(poller.requests(0), 8);
    let mut pool = poller.connect().await.unwrap();
    for _ in 0..3 {
        let readings = poller.poll(0, &mut pool).await.unwrap();
        assert_eq!(readings.len(), 8);
        let ticks: Vec<i64> = (0..8u32)
            .map(|b| {
                let r = by_address(&readings, b);
                let Some(Value::UInt(v)) = r.value else {
                    panic!("{r:?}")
                };
                (i64::try_from(v).unwrap() - i64::from(b) * 1000).rem_euclid(65536)
            })
            .collect();
        let (lo, hi) = (ticks.iter().min().unwrap(), ticks.iter().max().unwrap());
        assert!(hi - lo <= 2, "{ticks:?}");
    }
    simulator.abort();
}

#[tokio::test]
async fn answers_that_come_after_their_requests_were_given_up_are_counted_and_the_retries_answered() {
    // The device holds its first four requests past the timeout (200 ms) and answers them
    // late, then answers the four retries at once.
    let (listener, port) = bind().await;
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 12];
        let mut held = Vec::new();
        for _ in 0..ADDRESSES.len() {
            socket.read_exact(&mut request).await.unwrap();
            held.push(request);
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        for request in &held {
            socket.write_all(&answer(request)).await.unwrap();
        }
        while socket.read_exact(&mut request).await.is_ok() {
            socket.write_all(&answer(&request)).await.unwrap();
        }
    });
    let mut poller = new_poller(port, 4, 1);
    let mut pool = poller.connect().await.unwrap();
    let readings = poller.poll(0, &mut pool).await.unwrap();
    for i in 0..4 {
        let r = by_address(&readings, i);
        assert_eq!((r.value.clone(), r.quality), (Some(expected(i)), Quality::Good));
    }
    assert_eq!(pool[0].take_late_answers(), 4);
}
