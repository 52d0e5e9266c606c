//! Faulty devices, scripted: malformed frames to the source's poll path and from a raw
//! socket to the simulator (nothing panics, the affected readings turn bad, framing errors
//! reset the connection, the simulator keeps serving), and a dead unit id that must not
//! slow down the others on its connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use backplane_modbus::client::Connection;
use backplane_modbus::{ModbusSettings, Poller, spawn_filler_simulator};
use backplane_model::{BadReason, Quality, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic in this test binary (tokio would otherwise swallow panics in
/// spawned connection tasks). No test here panics on purpose.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// What the fake device does with one request: bytes to send (given the request's
/// transaction id and unit), or `None` to close the connection.
type Answer = Box<dyn Fn(u16, u8) -> Option<Vec<u8>> + Send + Sync>;

fn mbap(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = tid.to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

/// A Modbus TCP device that plays `script` (one answer per request, across connections)
/// and then answers every read of two registers with [0x1234, 0x5678].
async fn scripted_device(script: Vec<Answer>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 12];
                while socket.read_exact(&mut request).await.is_ok() {
                    let tid = u16::from_be_bytes([request[0], request[1]]);
                    let unit = request[6];
                    let answer = script.lock().unwrap().pop_front();
                    let bytes = match answer {
                        Some(answer) => answer(tid, unit),
                        None => Some(mbap(tid, unit, &[3, 4, 0x12, 0x34, 0x56, 0x78])),
                    };
                    match bytes {
                        Some(b) if socket.write_all(&b).await.is_ok() => {}
                        _ => return,
                    }
                }
            });
        }
    });
    port
}

fn settings(port: u16) -> Arc<ModbusSettings> {
    settings_with(port, 0)
}

fn settings_with(port: u16, retries: u32) -> Arc<ModbusSettings> {
    let text = format!(
        "url = \"tcp://127.0.0.1:{port}\"\naddress_base = 0\ntimeout = \"200ms\"\nretries = {retries}\nperiod = \"100ms\"\n"
    );
    let (settings, diagnostics) =
        backplane_config::reader::with_table(&text, Path::new("t.toml"), |mut t| {
            backplane_modbus::config::parse_settings(&mut t)
        });
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(settings.flatten().unwrap())
}

async fn poller(port: u16) -> (Poller, Vec<Connection>) {
    let addresses: Vec<Arc<str>> = vec![Arc::from("hr:0:u32")];
    let poller = Poller::new("fake", settings(port), &addresses).unwrap();
    let pool = poller.connect().await.unwrap();
    (poller, pool)
}

#[tokio::test]
async fn malformed_answers_turn_readings_bad_without_panicking() {
    count_panics();
    let cases: Vec<(&str, Answer)> = vec![
        (
            "one register for two",
            Box::new(|t, u| Some(mbap(t, u, &[3, 2, 0, 1]))),
        ),
        (
            "odd byte count",
            Box::new(|t, u| Some(mbap(t, u, &[3, 3, 0, 1, 2]))),
        ),
        (
            "byte count beyond the data",
            Box::new(|t, u| Some(mbap(t, u, &[3, 4, 0, 1]))),
        ),
        (
            "another function",
            Box::new(|t, u| Some(mbap(t, u, &[4, 4, 0, 1, 0, 2]))),
        ),
        (
            "exception with trailing bytes",
            Box::new(|t, u| Some(mbap(t, u, &[0x83, 2, 0]))),
        ),
        (
            "exception for another function",
            Box::new(|t, u| Some(mbap(t, u, &[0x81, 2]))),
        ),
        (
            "another unit",
            Box::new(|t, u| Some(mbap(t, u.wrapping_add(1), &[3, 4, 0, 1, 0, 2]))),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    let port = scripted_device(cases.into_iter().map(|(_, a)| a).collect()).await;
    let (mut poller, mut pool) = poller(port).await;
    for name in names {
        let readings = poller
            .poll(0, &mut pool)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(readings.len(), 1, "{name}");
        assert_eq!(readings[0].value, None, "{name}");
        assert_eq!(
            readings[0].quality,
            Quality::Bad(BadReason::CommFailure),
            "{name}"
        );
    }
    // The connection is still in step: the next answer is good.
    let readings = poller.poll(0, &mut pool).await.unwrap();
    assert_eq!(readings[0].value, Some(Value::UInt(0x1234_5678)));
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn framing_errors_and_hangups_end_the_poll_for_a_reconnect() {
    count_panics();
    let cases: Vec<(&str, Answer)> = vec![
        (
            "protocol id 1",
            Box::new(|t, u| {
                let mut f = mbap(t, u, &[3, 4, 0, 1, 0, 2]);
                f[3] = 1;
                Some(f)
            }),
        ),
        (
            "MBAP length 1: no PDU",
            Box::new(|t, _| Some(vec![(t >> 8) as u8, t as u8, 0, 0, 0, 1, 1])),
        ),
        (
            "MBAP length 0",
            Box::new(|t, _| Some(vec![(t >> 8) as u8, t as u8, 0, 0, 0, 0, 1])),
        ),
        (
            "MBAP length 300",
            Box::new(|t, _| Some(vec![(t >> 8) as u8, t as u8, 0, 0, 1, 44, 1])),
        ),
        (
            "half a frame, then hang up",
            Box::new(|t, u| {
                // The device closes right after: the test below sees end of stream.
                let f = mbap(t, u, &[3, 4, 0, 1, 0, 2]);
                Some(f[..5].to_vec())
            }),
        ),
        ("hang up", Box::new(|_, _| None)),
    ];
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    let port = scripted_device(cases.into_iter().map(|(_, a)| a).collect()).await;
    for name in names {
        let (mut poller, mut pool) = poller(port).await;
        let error = poller.poll(0, &mut pool).await.expect_err(name);
        assert!(!error.to_string().is_empty(), "{name}");
        assert!(pool[0].is_broken() || name.contains("half"), "{name}: {error}");
    }
    // After reconnecting, the device answers.
    let (mut poller, mut pool) = poller(port).await;
    let readings = poller.poll(0, &mut pool).await.unwrap();
    assert_eq!(readings[0].value, Some(Value::UInt(0x1234_5678)));
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn random_answers_never_panic_the_poll_path() {
    count_panics();
    // xorshift: deterministic garbage of random lengths, some with a valid MBAP header.
    let seed = Arc::new(Mutex::new(0x9E37_79B9_7F4A_7C15u64));
    let script: Vec<Answer> = (0..300)
        .map(|_| {
            let seed = seed.clone();
            Box::new(move |t: u16, u: u8| {
                let mut s = seed.lock().unwrap();
                let mut next = || {
                    *s ^= *s << 13;
                    *s ^= *s >> 7;
                    *s ^= *s << 17;
                    *s
                };
                let len = (next() % 12) as usize;
                let pdu: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                Some(if next() % 2 == 0 {
                    mbap(t, u, &pdu)
                } else {
                    let mut raw = mbap(t, u, &pdu);
                    raw[4] = next() as u8;
                    raw
                })
            }) as Answer
        })
        .collect();
    let port = scripted_device(script).await;
    let (mut poller, mut pool) = poller(port).await;
    for _ in 0..300 {
        match poller.poll(0, &mut pool).await {
            Ok(readings) => assert_eq!(readings.len(), 1),
            Err(_) => pool = poller.connect().await.unwrap(),
        }
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_dead_unit_is_skipped_so_it_does_not_slow_the_others_down() {
    count_panics();
    // Unit 2 never answers; unit 1 does.
    let script: Vec<Answer> = (0..50)
        .map(|_| {
            Box::new(|t: u16, u: u8| {
                Some(if u == 2 {
                    Vec::new()
                } else {
                    mbap(t, u, &[3, 2, 0, 42])
                })
            }) as Answer
        })
        .collect();
    let port = scripted_device(script).await;
    let addresses: Vec<Arc<str>> = vec![Arc::from("hr:0"), Arc::from("unit=2;hr:0")];
    let mut poller = Poller::new("fake", settings_with(port, 1), &addresses).unwrap();
    let mut pool = poller.connect().await.unwrap();

    let t0 = std::time::Instant::now();
    let readings = poller.poll(0, &mut pool).await.unwrap();
    // Two attempts of 200 ms for unit 2.
    assert!(t0.elapsed() >= Duration::from_millis(400));
    let by_address = |r: &[backplane_engine::RawReading], a: u32| r.iter().find(|x| x.address == a).cloned();
    assert_eq!(by_address(&readings, 0).unwrap().value, Some(Value::UInt(42)));
    assert_eq!(
        by_address(&readings, 1).unwrap().quality,
        Quality::Bad(BadReason::Timeout)
    );

    // The next cycles skip unit 2 (its values stay bad) and take no timeout.
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let readings = poller.poll(0, &mut pool).await.unwrap();
        assert!(t0.elapsed() < Duration::from_millis(150), "{:?}", t0.elapsed());
        assert_eq!(readings.len(), 1);
        assert_eq!(readings[0].value, Some(Value::UInt(42)));
    }
    // After its backoff (2 s after the first failure) unit 2 is tried again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let readings = poller.poll(0, &mut pool).await.unwrap();
    assert_eq!(readings.len(), 2);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn each_answer_is_handed_on_before_the_rest_of_the_cycle_is_answered() {
    // A device that answers the cycle's first read at once and the second only once the
    // first read's values were handed on: a poller that waited for the whole cycle would
    // see the second read time out (200 ms).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut released = Some(released);
        let mut request = [0u8; 12];
        while socket.read_exact(&mut request).await.is_ok() {
            let tid = u16::from_be_bytes([request[0], request[1]]);
            if u16::from_be_bytes([request[8], request[9]]) == 1000
                && let Some(wait) = released.take()
            {
                let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
            }
            if socket
                .write_all(&mbap(tid, request[6], &[3, 4, 0x12, 0x34, 0x56, 0x78]))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let addresses: Vec<Arc<str>> = vec![Arc::from("hr:0:u32"), Arc::from("hr:1000:u32")];
    let mut poller = Poller::new("fake", settings(port), &addresses).unwrap();
    assert_eq!(poller.requests(0), 2);
    let mut pool = poller.connect().await.unwrap();
    let mut batches = Vec::new();
    let mut release = Some(release);
    let running = poller
        .poll_streaming(0, &mut pool, |batch| {
            batches.push(batch);
            if let Some(release) = release.take() {
                let _ = release.send(());
            }
            std::future::ready(true)
        })
        .await
        .unwrap();
    assert!(running);
    let seen: Vec<Vec<(u32, Quality, Option<Value>)>> = batches
        .into_iter()
        .map(|b| b.into_iter().map(|r| (r.address, r.quality, r.value)).collect())
        .collect();
    let good = |address| (address, Quality::Good, Some(Value::UInt(0x1234_5678)));
    assert_eq!(seen, vec![vec![good(0)], vec![good(1)]]);
}

async fn read_hr100(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .write_all(&[0, 9, 0, 0, 0, 6, 1, 3, 0, 100, 0, 1])
        .await
        .unwrap();
    let mut answer = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer.to_vec()
}

async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_drops_requests_that_panic_tokio_modbus_and_keeps_serving() {
    count_panics();
    let (addr, handle) = spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let malformed: [&[u8]; 3] = [
        // FC 15, 2000 coils announced with one data byte: out-of-bounds index upstream.
        &[0, 1, 0, 0, 0, 8, 1, 0x0F, 0, 0, 0x07, 0xD0, 1, 0xFF],
        // FC 16, quantity 0x8000: `quantity * 2` overflows u16 upstream.
        &[0, 2, 0, 0, 0, 8, 1, 0x10, 0, 110, 0x80, 0x00, 2, 0, 1],
        // FC 23, write quantity 0x8000: the same overflow.
        &[
            0, 3, 0, 0, 0, 12, 1, 0x17, 0, 0, 0, 1, 0, 110, 0x80, 0x00, 2, 0, 1,
        ],
    ];
    for frame in malformed {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // The connection serves well-formed requests first.
        assert_eq!(read_hr100(&mut stream).await[..9], [0, 9, 0, 0, 0, 5, 1, 3, 2]);
        stream.write_all(frame).await.unwrap();
        assert!(closed(&mut stream).await, "the simulator closes the connection");
    }
    // Other and later connections are unaffected.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_hr100(&mut stream).await[..9], [0, 9, 0, 0, 0, 5, 1, 3, 2]);
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    handle.abort();
}
