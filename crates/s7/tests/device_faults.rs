//! A scripted fake CPU that connects properly, then answers reads with truncated,
//! oversized, wrong-reference, malformed and random frames: the poller never panics, every
//! poll cycle ends (bounded by the source's timeout), a stream out of step is dropped, and a
//! malformed answer within a sound frame costs only that request's tags.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_model::{BadReason, Quality, Value};
use backplane_s7::Poller;
use backplane_s7::frame;
use common::{addresses, settings};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Script = Arc<dyn Fn(u16, usize) -> Vec<u8> + Send + Sync>;

/// A fake CPU on a free port: COTP confirm and setup (PDU 480) as a CPU does, then each read
/// (the `n`th, with reference `r`) answered with `script(r, n)`'s bytes (none: silence).
async fn fake(script: Script) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("s7://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut reads = 0usize;
                loop {
                    let len = loop {
                        if let Ok(Some(len)) = frame::frame_len(&buf) {
                            break len;
                        }
                        let mut chunk = [0u8; 512];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let request: Vec<u8> = buf.drain(..len).collect();
                    let answer = if frame::is_connect_request(&request) {
                        frame::connect_confirm_frame()
                    } else {
                        let pdu = frame::parse_pdu(&request).unwrap();
                        match frame::parse_job(&pdu).unwrap() {
                            frame::Job::Setup { .. } => frame::setup_response(pdu.pdu_ref, 480),
                            _ => {
                                reads += 1;
                                script(pdu.pdu_ref, reads)
                            }
                        }
                    };
                    if stream.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

const TAGS: [&str; 2] = ["DB1.DBW0:int", "DB1.DBD2:real"];

fn good_answer(reference: u16) -> Vec<u8> {
    let mut data = 7i16.to_be_bytes().to_vec();
    data.extend_from_slice(&23.5f32.to_be_bytes());
    frame::read_response(reference, &[Ok(data)])
}

async fn connect(url: &str) -> (Poller, backplane_s7::client::Connection) {
    let mut poller = Poller::new("fake", settings(url, "timeout = \"200ms\"\n"), &addresses(&TAGS)).unwrap();
    let conn = poller.connect().await.unwrap();
    (poller, conn)
}

/// One poll, with a generous bound that only catches a hang (the source's own timeout is
/// 200 ms).
async fn poll(
    poller: &mut Poller,
    conn: &mut backplane_s7::client::Connection,
) -> std::io::Result<Vec<backplane_connector::RawReading>> {
    tokio::time::timeout(Duration::from_secs(20), poller.poll(conn))
        .await
        .expect("a poll cycle hung")
}

#[tokio::test]
async fn a_truncated_answer_drops_the_connection_instead_of_hanging() {
    let (url, server) = fake(Arc::new(|r, _| {
        let mut full = good_answer(r);
        full.truncate(full.len() - 3);
        full
    }))
    .await;
    let (mut poller, mut conn) = connect(&url).await;
    let err = poll(&mut poller, &mut conn).await.unwrap_err();
    assert!(err.to_string().contains("stopped after"), "{err}");
    server.abort();
}

#[tokio::test]
async fn an_oversized_frame_is_refused_before_it_is_read() {
    let (url, server) = fake(Arc::new(|_, _| vec![3, 0, 0xFF, 0xFF, 2, 0xF0, 0x80])).await;
    let (mut poller, mut conn) = connect(&url).await;
    let err = poll(&mut poller, &mut conn).await.unwrap_err();
    assert!(err.to_string().contains("TPKT length 65535"), "{err}");
    server.abort();
}

#[tokio::test]
async fn garbage_that_is_not_tpkt_drops_the_connection() {
    let (url, server) = fake(Arc::new(|_, _| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())).await;
    let (mut poller, mut conn) = connect(&url).await;
    let err = poll(&mut poller, &mut conn).await.unwrap_err();
    assert!(err.to_string().contains("not a TPKT frame"), "{err}");
    server.abort();
}

#[tokio::test]
async fn answers_with_another_pdu_reference_are_dropped() {
    // First a stale answer (another reference), then the right one: the right one is used.
    let (url, server) = fake(Arc::new(|r, _| {
        let mut both = good_answer(r.wrapping_add(1000));
        both.extend_from_slice(&good_answer(r));
        both
    }))
    .await;
    let (mut poller, mut conn) = connect(&url).await;
    let readings = poll(&mut poller, &mut conn).await.unwrap();
    assert_eq!(conn.stale, 1);
    assert!(readings.iter().all(|r| r.quality == Quality::Good));
    assert_eq!(readings[1].value, Some(Value::Float(23.5)));
    server.abort();

    // Only wrong references: the request times out, and a cycle with no answer reconnects.
    let (url, server) = fake(Arc::new(|r, _| good_answer(r.wrapping_add(1)))).await;
    let (mut poller, mut conn) = connect(&url).await;
    let err = poll(&mut poller, &mut conn).await.unwrap_err();
    assert!(
        err.to_string().contains("no answer to any of 1 requests"),
        "{err}"
    );
    assert!(conn.stale >= 1);
    server.abort();
}

#[tokio::test]
async fn a_malformed_answer_in_a_sound_frame_costs_only_that_cycle() {
    // Cycle 1: the wrong protocol id; cycle 2: two items for one; cycle 3: good.
    let (url, server) = fake(Arc::new(|r, n| match n {
        1 => {
            let mut a = good_answer(r);
            a[7] = 0x33;
            a
        }
        2 => frame::read_response(r, &[Ok(vec![0, 7]), Ok(vec![0; 4])]),
        _ => good_answer(r),
    }))
    .await;
    let (mut poller, mut conn) = connect(&url).await;
    for _ in 0..2 {
        let readings = poll(&mut poller, &mut conn).await.unwrap();
        assert!(
            readings
                .iter()
                .all(|r| r.quality == Quality::Bad(BadReason::CommFailure) && r.value.is_none()),
            "{readings:?}"
        );
    }
    let readings = poll(&mut poller, &mut conn).await.unwrap();
    assert_eq!(readings[0].value, Some(Value::Int(7)));
    server.abort();
}

#[tokio::test]
async fn a_cpu_with_put_get_disabled_turns_the_tags_bad_as_a_configuration_error() {
    // S7-1200/1500 without "Permit access with PUT/GET" refuse every job with 0x8104.
    let (url, server) = fake(Arc::new(|r, _| frame::error_response(r, 0x8104))).await;
    let (mut poller, mut conn) = connect(&url).await;
    let readings = poll(&mut poller, &mut conn).await.unwrap();
    assert_eq!(readings.len(), 2);
    assert!(
        readings
            .iter()
            .all(|r| r.quality == Quality::Bad(BadReason::ConfigError) && r.value.is_none()),
        "{readings:?}"
    );
    assert!(
        frame::Refusal::Header(0x8104)
            .to_string()
            .contains("Permit access with PUT/GET")
    );
    server.abort();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Random answers, framed or not: never a panic, never a good value that was not sent,
    /// and the cycle always ends.
    #[test]
    fn random_answers_never_panic_or_hang_a_poll_cycle(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        framed in any::<bool>(),
        echo_reference in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let script: Script = Arc::new(move |r, _| {
                if !framed {
                    return body.clone();
                }
                let mut s7 = vec![0x32, 3, 0, 0];
                s7.extend_from_slice(&(if echo_reference { r } else { r ^ 0x55 }).to_be_bytes());
                s7.extend_from_slice(&body);
                let mut out = vec![3, 0];
                out.extend_from_slice(&((s7.len() + 7) as u16).to_be_bytes());
                out.extend_from_slice(&[2, 0xF0, 0x80]);
                out.extend_from_slice(&s7);
                out
            });
            let (url, server) = fake(script).await;
            let (mut poller, mut conn) = connect(&url).await;
            if let Ok(readings) = poll(&mut poller, &mut conn).await {
                for r in readings {
                    assert!(r.quality != Quality::Good || r.value.is_some());
                }
            }
            server.abort();
        });
    }
}
