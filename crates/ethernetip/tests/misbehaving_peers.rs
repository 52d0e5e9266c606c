//! A scripted fake controller that answers the source's requests with truncated,
//! oversized, garbage and mismatched frames: the poller never panics, never waits past
//! its timeout, and tells a broken stream (reconnect) from a bad answer (bad readings).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_ethernetip::frame::{self, Encap};
use backplane_ethernetip::{EnipSettings, Poller, cip, server};
use backplane_model::{BadReason, Quality};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SESSION: u32 = 0x0000_1234;

/// What the fake sends in reply to one request after RegisterSession.
type Script = fn(&Encap) -> Vec<u8>;

/// Accepts connections, registers sessions properly, answers everything else by `script`.
async fn fake(script: Script) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Ok(Some((request, used))) = Encap::decode(&buf) {
                        buf.drain(..used);
                        let reply = if request.command == frame::REGISTER_SESSION {
                            Encap {
                                session: SESSION,
                                ..request.clone()
                            }
                            .encode()
                        } else {
                            script(&request)
                        };
                        if stream.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (port, task)
}

/// A well-formed SendRRData reply carrying `message`.
fn rr_reply(request: &Encap, message: &[u8]) -> Encap {
    Encap {
        command: frame::SEND_RR_DATA,
        session: SESSION,
        status: 0,
        context: request.context,
        data: frame::encode_cpf(
            0,
            &[
                (frame::ITEM_NULL_ADDRESS, &[]),
                (frame::ITEM_UNCONNECTED_DATA, message),
            ],
        ),
    }
}

fn settings(port: u16) -> Arc<EnipSettings> {
    common::settings(&format!(
        "url = \"enip://127.0.0.1:{port}\"\nmessaging = \"unconnected\"\nroute = \"\"\ntimeout = \"300ms\"\nretries = 0\n"
    ))
}

/// One poll cycle of three tags (one Multiple Service Packet) against `script`; the safety
/// bound is far above the 300 ms timeout, so a hang fails the test rather than the suite.
async fn poll_once(script: Script) -> Result<Vec<(Option<backplane_model::Value>, Quality)>, String> {
    let (port, task) = fake(script).await;
    let addresses: Vec<Arc<str>> = ["A", "B", "C"].into_iter().map(Arc::from).collect();
    let mut poller = Poller::new("fake", settings(port), &addresses).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let mut conn = poller.connect().await.map_err(|e| format!("connect: {e}"))?;
        poller.poll(&mut conn).await.map_err(|e| e.to_string())
    })
    .await
    .expect("the poll cycle ended within its timeout");
    task.abort();
    result.map(|readings| readings.into_iter().map(|r| (r.value, r.quality)).collect())
}

#[tokio::test]
async fn a_truncated_frame_ends_the_session_instead_of_hanging() {
    let e = poll_once(|request| {
        let mut bytes = rr_reply(request, &[0xCC, 0, 0, 0, 0xC4, 0, 1, 0, 0, 0]).encode();
        bytes.truncate(30);
        bytes
    })
    .await
    .unwrap_err();
    assert!(e.contains("stopped after 30 bytes"), "{e}");
}

#[tokio::test]
async fn an_oversized_garbage_frame_is_a_protocol_error() {
    let e = poll_once(|request| {
        let mut header = rr_reply(request, &[]).encode();
        header.truncate(frame::HEADER_LEN);
        header[2..4].copy_from_slice(&0xFFFFu16.to_le_bytes());
        header.extend(std::iter::repeat_n(0xAB, 0xFFFF));
        header
    })
    .await
    .unwrap_err();
    assert!(e.contains("CPF") || e.contains("items"), "{e}");
}

#[tokio::test]
async fn a_reply_for_another_session_ends_the_session() {
    let e = poll_once(|request| {
        Encap {
            session: 0x9999,
            ..rr_reply(request, &[0xCC, 0, 0, 0])
        }
        .encode()
    })
    .await
    .unwrap_err();
    assert!(e.contains("session 0x00009999"), "{e}");
}

#[tokio::test]
async fn a_reply_with_another_sender_context_is_skipped_and_the_cycle_times_out() {
    let e = poll_once(|request| {
        let mut stale = rr_reply(request, &[0xCC, 0, 0, 0]);
        stale.context = *b"not-ours";
        stale.encode()
    })
    .await
    .unwrap_err();
    assert!(e.contains("no answer to any of 1 packets"), "{e}");
}

#[tokio::test]
async fn garbage_bytes_end_the_session_within_the_timeout() {
    let e = poll_once(|_| (0..200u32).map(|i| (i * 37 % 251) as u8).collect())
        .await
        .unwrap_err();
    assert!(!e.is_empty());
}

#[tokio::test]
async fn malformed_cip_replies_make_bad_readings_not_a_broken_session() {
    // An extended status running past the reply.
    let readings = poll_once(|request| rr_reply(request, &[0x8A, 0, 0, 9]).encode())
        .await
        .unwrap();
    assert_eq!(readings.len(), 3);
    assert!(
        readings
            .iter()
            .all(|(v, q)| v.is_none() && *q == Quality::Bad(BadReason::DeviceFailure))
    );
    // A Multiple Service Packet reply with two replies for three requests.
    let readings = poll_once(|request| {
        let ok = cip::encode_reply(cip::READ_TAG, 0, &[], &[0xC4, 0, 1, 0, 0, 0]);
        let mut body = 2u16.to_le_bytes().to_vec();
        body.extend_from_slice(&6u16.to_le_bytes());
        body.extend_from_slice(&((6 + ok.len()) as u16).to_le_bytes());
        body.extend_from_slice(&ok);
        body.extend_from_slice(&ok);
        rr_reply(request, &cip::encode_reply(cip::MULTIPLE_SERVICE, 0, &[], &body)).encode()
    })
    .await
    .unwrap();
    assert!(
        readings
            .iter()
            .all(|(_, q)| *q == Quality::Bad(BadReason::DeviceFailure))
    );
    // An encapsulation error status for this request: bad readings, session kept.
    let readings = poll_once(|request| {
        Encap {
            status: 0x0003,
            ..rr_reply(request, &[])
        }
        .encode()
    })
    .await
    .unwrap();
    assert!(
        readings
            .iter()
            .all(|(_, q)| *q == Quality::Bad(BadReason::DeviceFailure))
    );
}

#[tokio::test]
async fn a_connected_reply_on_another_connection_ends_the_session() {
    // Opens connections properly, then answers on a connection id nobody opened.
    let (port, task) = fake(|request| {
        if request.command == frame::SEND_RR_DATA {
            let items = frame::decode_cpf(&request.data).unwrap();
            let (_, message) = frame::message_item(&items).unwrap();
            let open = cip::decode_request(message).unwrap();
            let large = open.service == cip::LARGE_FORWARD_OPEN;
            let asked = server::decode_forward_open_request(open.data, large).unwrap();
            let body = server::forward_open_reply(&asked, 0x0101, 2_000_000);
            return rr_reply(request, &cip::encode_reply(open.service, 0, &[], &body)).encode();
        }
        let data = frame::encode_cpf(
            0,
            &[
                (frame::ITEM_CONNECTED_ADDRESS, &0xDEADu32.to_le_bytes()),
                (frame::ITEM_CONNECTED_DATA, &[1, 0, 0xCC, 0, 0, 0]),
            ],
        );
        Encap {
            command: frame::SEND_UNIT_DATA,
            session: SESSION,
            status: 0,
            context: [0; 8],
            data,
        }
        .encode()
    })
    .await;
    let settings = common::settings(&format!(
        "url = \"enip://127.0.0.1:{port}\"\nmessaging = \"connected\"\ntimeout = \"300ms\"\nretries = 0\n"
    ));
    let addresses: Vec<Arc<str>> = vec![Arc::from("A")];
    let mut poller = Poller::new("fake", settings, &addresses).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), async {
        let mut conn = poller.connect().await.unwrap();
        poller.poll(&mut conn).await.unwrap_err()
    })
    .await
    .unwrap();
    assert!(e.to_string().contains("connection 0x0000DEAD"), "{e}");
    task.abort();
}

#[tokio::test]
async fn a_broken_register_session_reply_fails_the_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut chunk = [0u8; 64];
            let _ = stream.read(&mut chunk).await;
            // Session handle 0.
            let reply = Encap {
                command: frame::REGISTER_SESSION,
                session: 0,
                status: 0,
                context: [0; 8],
                data: vec![1, 0, 0, 0],
            };
            let _ = stream.write_all(&reply.encode()).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let addresses: Vec<Arc<str>> = vec![Arc::from("A")];
    let poller = Poller::new("fake", settings(port), &addresses).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), poller.connect())
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("session handle 0"), "{e}");
    task.abort();
}
