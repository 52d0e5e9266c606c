//! Delivery confirmation against a scripted fake broker that acknowledges, delays and
//! drops acknowledgements on purpose (the hard cases a real broker rarely shows).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeMap;
use std::time::Duration;

use backplane_mqtt::delivery::Delivery;
use backplane_mqtt::link::{InPlace, InPlaceMessage, Link, LinkEvent, LinkOptions, SessionMode};
use backplane_mqtt::settings::{ConnectionSettings, Protocol, Qos};
use bytes::BufMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the broker does with the acknowledgement of the n-th publish it receives.
#[derive(Clone, Copy, Debug)]
enum Ack {
    Now,
    After(Duration),
    Never,
    /// MQTT 5 only: a PUBACK with this failure reason code.
    Refuse(u8),
}

async fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let header = s.read_u8().await.ok()?;
    let mut len = 0usize;
    for shift in (0..28).step_by(7) {
        let b = s.read_u8().await.ok()?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.ok()?;
    Some((header, body))
}

/// Accepts one client, reads its CONNECT and answers `connack`.
async fn accept_client(listener: &TcpListener, connack: &[u8]) -> TcpStream {
    let (mut s, _) = listener.accept().await.unwrap();
    let (header, _) = read_packet(&mut s).await.unwrap();
    assert_eq!(header >> 4, 1, "CONNECT first");
    s.write_all(connack).await.unwrap();
    s
}

/// A clean-session link to the fake broker on `port`, 100 publishes in flight at most.
fn open_link(port: u16, protocol: Protocol) -> Link {
    let options = LinkOptions {
        client_id: "delivery-test".into(),
        will: None,
        inflight: 100,
        session: SessionMode::Clean,
        write_delay: None,
    };
    Link::open(&connection(port, protocol), &options)
}

/// Accepts one client and follows `script` for its QoS 1/2 publishes; closes the
/// connection `close_after` after the last scripted publish arrived.
async fn fake_broker(listener: TcpListener, v5: bool, script: Vec<Ack>, close_after: Duration) {
    let connack: &[u8] = if v5 { &[0x20, 3, 0, 0, 0] } else { &[0x20, 2, 0, 0] };
    let s = accept_client(&listener, connack).await;
    let (mut read, write) = s.into_split();
    let write = std::sync::Arc::new(tokio::sync::Mutex::new(write));
    let mut n = 0usize;
    loop {
        let Some((header, body)) = read_packet_half(&mut read).await else {
            return;
        };
        match header >> 4 {
            3 => {
                let qos = (header >> 1) & 3;
                if qos == 0 {
                    continue;
                }
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let pkid = [body[2 + topic_len], body[3 + topic_len]];
                let action = script.get(n).copied().unwrap_or(Ack::Now);
                n += 1;
                let first = if qos == 1 { 0x40 } else { 0x50 };
                let packet: Vec<u8> = match action {
                    Ack::Refuse(code) => vec![first, 4, pkid[0], pkid[1], code, 0],
                    _ if v5 => vec![first, 4, pkid[0], pkid[1], 0, 0],
                    _ => vec![first, 2, pkid[0], pkid[1]],
                };
                let w = write.clone();
                match action {
                    Ack::Never => {}
                    Ack::Now | Ack::Refuse(_) => w.lock().await.write_all(&packet).await.unwrap(),
                    Ack::After(d) => {
                        tokio::spawn(async move {
                            tokio::time::sleep(d).await;
                            let _ = w.lock().await.write_all(&packet).await;
                        });
                    }
                }
                if n == script.len() {
                    let w = write.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(close_after).await;
                        let _ = w.lock().await.shutdown().await;
                    });
                }
            }
            // PUBREL → PUBCOMP (QoS 2), unless the script drops it for that id.
            6 => {
                let packet: Vec<u8> = if v5 {
                    vec![0x70, 4, body[0], body[1], 0, 0]
                } else {
                    vec![0x70, 2, body[0], body[1]]
                };
                write.lock().await.write_all(&packet).await.unwrap();
            }
            12 => write.lock().await.write_all(&[0xd0, 0]).await.unwrap(),
            14 => return,
            _ => {}
        }
    }
}

async fn read_packet_half(s: &mut tokio::net::tcp::OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    let header = s.read_u8().await.ok()?;
    let mut len = 0usize;
    for shift in (0..28).step_by(7) {
        let b = s.read_u8().await.ok()?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.ok()?;
    Some((header, body))
}

fn connection(port: u16, protocol: Protocol) -> backplane_mqtt::settings::ResolvedConnection {
    ConnectionSettings {
        host: "127.0.0.1".into(),
        port,
        protocol,
        client_id: None,
        keep_alive: Duration::from_secs(30),
        username: None,
        password: None,
        tls: None,
        max_packet_bytes: 1 << 20,
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
    }
    .resolve()
    .unwrap()
}

/// Publishes `count` messages once connected and records, per token, what happened and
/// when (relative to the first publish), until the session ends.
async fn run_link(
    port: u16,
    protocol: Protocol,
    qos: Qos,
    count: usize,
) -> (BTreeMap<u64, (Delivery, Duration)>, String) {
    let mut link = open_link(port, protocol);
    let mut outcomes = BTreeMap::new();
    let mut start = tokio::time::Instant::now();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), link.next())
            .await
            .expect("the fake broker ends every session within 10 s");
        match event {
            LinkEvent::Connected => {
                start = tokio::time::Instant::now();
                for i in 0..count {
                    let token = link
                        .publish("t/x", qos, false, format!("m{i}").as_bytes())
                        .await
                        .unwrap();
                    assert_eq!(token, i as u64 + 1, "tokens count publishes from 1");
                }
            }
            LinkEvent::Delivered(d) => {
                outcomes.insert(d.token(), (d, start.elapsed()));
            }
            LinkEvent::Message { .. } | LinkEvent::Oversized { .. } => {}
            LinkEvent::Disconnected(why) => return (outcomes, why),
        }
    }
}

#[tokio::test]
async fn only_acknowledged_publishes_are_confirmed_and_the_rest_are_lost_at_session_end() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = vec![
        Ack::Now,
        Ack::Now,
        Ack::After(Duration::from_millis(400)),
        Ack::Never,
        Ack::Now,
        Ack::Never,
    ];
    let broker = tokio::spawn(fake_broker(listener, false, script, Duration::from_millis(900)));
    let (outcomes, why) = run_link(port, Protocol::V311, Qos::AtLeastOnce, 6).await;
    broker.await.unwrap();
    assert!(!why.is_empty());
    let kinds: Vec<(u64, &str)> = outcomes
        .iter()
        .map(|(t, (d, _))| {
            (
                *t,
                match d {
                    Delivery::Confirmed(_) => "confirmed",
                    Delivery::Lost(_) => "lost",
                    Delivery::Rejected { .. } => "rejected",
                },
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "confirmed"),
            (2, "confirmed"),
            (3, "confirmed"),
            (4, "lost"),
            (5, "confirmed"),
            (6, "lost")
        ]
    );
    // The delayed acknowledgement was reported when it came, not before.
    assert!(
        outcomes[&3].1 >= Duration::from_millis(400),
        "{:?}",
        outcomes[&3].1
    );
    assert!(
        outcomes[&5].1 < Duration::from_millis(400),
        "{:?}",
        outcomes[&5].1
    );
}

#[tokio::test]
async fn qos2_is_confirmed_by_pubcomp_after_a_delayed_pubrec() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = vec![Ack::After(Duration::from_millis(200)), Ack::Now, Ack::Never];
    let broker = tokio::spawn(fake_broker(listener, false, script, Duration::from_millis(600)));
    let (outcomes, _) = run_link(port, Protocol::V311, Qos::ExactlyOnce, 3).await;
    broker.await.unwrap();
    assert!(matches!(outcomes[&1].0, Delivery::Confirmed(1)));
    assert!(outcomes[&1].1 >= Duration::from_millis(200));
    assert!(matches!(outcomes[&2].0, Delivery::Confirmed(2)));
    assert!(matches!(outcomes[&3].0, Delivery::Lost(3)));
}

#[tokio::test]
async fn mqtt5_negative_acknowledgements_are_rejections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // 0x87: Not authorized.
    let script = vec![Ack::Now, Ack::Refuse(0x87), Ack::Now];
    let broker = tokio::spawn(fake_broker(listener, true, script, Duration::from_millis(300)));
    let (outcomes, _) = run_link(port, Protocol::V5, Qos::AtLeastOnce, 3).await;
    broker.await.unwrap();
    assert!(matches!(outcomes[&1].0, Delivery::Confirmed(1)));
    match &outcomes[&2].0 {
        Delivery::Rejected { token: 2, reason } => assert!(reason.contains("NotAuthorized"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(matches!(outcomes[&3].0, Delivery::Confirmed(3)));
}

#[tokio::test]
async fn qos0_counts_as_confirmed_once_written() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::spawn(async move {
        let mut s = accept_client(&listener, &[0x20, 2, 0, 0]).await;
        let mut seen = 0;
        while let Some((header, _)) = read_packet(&mut s).await {
            if header >> 4 == 3 {
                seen += 1;
                if seen == 4 {
                    break;
                }
            }
        }
        seen
    });
    let (outcomes, _) = run_link(port, Protocol::V311, Qos::AtMostOnce, 4).await;
    assert_eq!(broker.await.unwrap(), 4);
    assert!(
        outcomes
            .values()
            .all(|(d, _)| matches!(d, Delivery::Confirmed(_)))
    );
    assert_eq!(outcomes.len(), 4);
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        // CONNACK: bad user name or password.
        let _s = accept_client(&listener, &[0x20, 2, 0, 4]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let (outcomes, why) = run_link(port, Protocol::V311, Qos::AtLeastOnce, 1).await;
    assert!(outcomes.is_empty());
    assert!(why.contains("refused the login"), "{why}");
}

/// While acknowledgements are awaited the link lets the kernel gather them (a receive
/// low-water mark of what they take at least); a packet that is not one of them must still
/// be read, within the gathering time, not held until they come.
#[tokio::test]
async fn a_message_from_the_broker_is_read_while_acknowledgements_are_still_awaited() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::spawn(async move {
        let mut s = accept_client(&listener, &[0x20, 2, 0, 0]).await;
        // Fifty QoS 1 publishes, only the first acknowledged: 196 bytes of PUBACK awaited.
        for _ in 0..50 {
            let (header, _) = read_packet(&mut s).await.unwrap();
            assert_eq!(header >> 4, 3);
        }
        s.write_all(&[0x40, 2, 0, 1]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Then a 9-byte QoS 0 PUBLISH on `c/x`.
        s.write_all(&[0x30, 7, 0, 3, b'c', b'/', b'x', b'h', b'i'])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let mut link = open_link(port, Protocol::V311);
    let received = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match link.next().await {
                LinkEvent::Connected => {
                    for i in 0..50 {
                        link.publish("t/x", Qos::AtLeastOnce, false, format!("m{i}").as_bytes())
                            .await
                            .unwrap();
                    }
                }
                LinkEvent::Message { topic, payload, .. } => return (topic, payload),
                LinkEvent::Disconnected(why) => panic!("the session ended: {why}"),
                LinkEvent::Delivered(d) => {
                    assert_eq!(d, Delivery::Confirmed(1), "only the first was acknowledged")
                }
                LinkEvent::Oversized { .. } => {}
            }
        }
    })
    .await
    .expect("the message was held back while acknowledgements were awaited");
    assert_eq!(received.0, "c/x");
    assert_eq!(&received.1[..], b"hi");
    broker.abort();
}

/// A batch encodes under one lock while the window has room, then says so without using
/// a token; the publisher goes on with `publish`, which waits for an acknowledgement. What
/// the batch encoded reaches the broker (the writer is woken when the batch ends), and a
/// message over the broker's packet size is refused at once, window full or not.
#[tokio::test]
async fn a_batch_submits_while_the_window_has_room_and_the_rest_waits_for_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Every acknowledgement 300 ms late; the session ends 300 ms after the 101st publish.
    let script = vec![Ack::After(Duration::from_millis(300)); 101];
    let broker = tokio::spawn(fake_broker(listener, false, script, Duration::from_millis(300)));
    let mut link = open_link(port, Protocol::V311);
    let connected = tokio::time::timeout(Duration::from_secs(5), link.next()).await;
    assert!(matches!(connected, Ok(LinkEvent::Connected)));

    let mut tokens = Vec::new();
    {
        let mut batch = link.batch();
        assert_eq!(batch.outstanding(), 0);
        for i in 0..150 {
            match batch.publish_stamped("t/x", Qos::AtLeastOnce, false, format!("m{i}").as_bytes(), None) {
                Some(Ok(token)) => tokens.push(token),
                Some(Err(_)) => panic!("the session has not ended"),
                None => break,
            }
        }
        assert_eq!(batch.outstanding(), 100, "the window (100) is full");
        assert!(
            batch
                .publish_stamped("t/x", Qos::AtLeastOnce, false, b"m", None)
                .is_none(),
            "still no room, and no token used"
        );
        let oversized = vec![0u8; 2 << 20];
        let refused = batch.publish_stamped("t/x", Qos::AtLeastOnce, false, &oversized, None);
        assert!(matches!(refused, Some(Ok(101))), "{refused:?}");
    }
    assert_eq!(tokens, (1..=100).collect::<Vec<u64>>());

    let waited = tokio::time::Instant::now();
    let token = tokio::time::timeout(
        Duration::from_secs(5),
        link.publish("t/x", Qos::AtLeastOnce, false, b"last"),
    )
    .await
    .expect("room came with the first acknowledgement")
    .unwrap();
    assert_eq!(token, 102);
    assert!(
        waited.elapsed() >= Duration::from_millis(200),
        "waited for an acknowledgement: {:?}",
        waited.elapsed()
    );

    let mut outcomes = BTreeMap::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), link.next()).await {
            Ok(LinkEvent::Delivered(d)) => {
                outcomes.insert(d.token(), d);
            }
            Ok(LinkEvent::Disconnected(_)) => break,
            Ok(_) => {}
            Err(_) => panic!("the fake broker ends the session"),
        }
    }
    broker.await.unwrap();
    for token in (1..=100).chain([102]) {
        assert_eq!(outcomes.get(&token), Some(&Delivery::Confirmed(token)));
    }
    assert!(
        matches!(&outcomes[&101], Delivery::Rejected { token: 101, reason } if reason.contains("max_packet_bytes")),
        "{:?}",
        outcomes[&101]
    );
    let after_end = link
        .batch()
        .publish_stamped("t/x", Qos::AtLeastOnce, false, b"m", None);
    assert!(matches!(after_end, Some(Err(_))), "{after_end:?}");
}

/// A message on `t/x` to write in place, not retained.
fn message(qos: Qos) -> InPlaceMessage<'static> {
    InPlaceMessage {
        topic: ["t/", "x"],
        qos,
        retain: false,
        born: None,
        room: 64,
    }
}

/// A publish written in place (topic in two parts, the payload written straight into
/// the link's buffer) is held to the same window and packet size as any other: taken with
/// a token while the window has room, then refused with no token used; one over the
/// broker's size is refused at once and reported; one whose payload is not written uses
/// no token. What it took reaches the broker and is confirmed under its token.
#[tokio::test]
async fn a_publish_written_in_place_keeps_to_the_window_and_the_packet_size() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = vec![Ack::After(Duration::from_millis(300)); 100];
    let broker = tokio::spawn(fake_broker(listener, false, script, Duration::from_millis(300)));
    let mut link = open_link(port, Protocol::V311);
    let connected = tokio::time::timeout(Duration::from_secs(5), link.next()).await;
    assert!(matches!(connected, Ok(LinkEvent::Connected)));

    let mut tokens = Vec::new();
    {
        let mut batch = link.batch();
        let declined = batch.publish_in_place(&message(Qos::AtLeastOnce), |out| {
            out.put_slice(b"half");
            false
        });
        assert!(matches!(declined, InPlace::Unwritten), "{declined:?}");
        for i in 0..150 {
            let payload = format!("m{i}");
            match batch.publish_in_place(&message(Qos::AtLeastOnce), |out| {
                out.put_slice(payload.as_bytes());
                true
            }) {
                InPlace::Taken(token) => tokens.push(token),
                InPlace::NoRoom => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(batch.outstanding(), 100, "the window (100) is full");
        let oversized = batch.publish_in_place(&message(Qos::AtMostOnce), |out| {
            out.put_slice(&vec![0u8; 2 << 20]);
            true
        });
        assert!(matches!(oversized, InPlace::Taken(101)), "{oversized:?}");
    }
    assert_eq!(
        tokens,
        (1..=100).collect::<Vec<u64>>(),
        "no token used by the declined one"
    );

    let mut outcomes = BTreeMap::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), link.next()).await {
            Ok(LinkEvent::Delivered(d)) => {
                outcomes.insert(d.token(), d);
            }
            Ok(LinkEvent::Disconnected(_)) => break,
            Ok(_) => {}
            Err(_) => panic!("the fake broker ends the session"),
        }
    }
    broker.await.unwrap();
    for token in 1..=100 {
        assert_eq!(outcomes.get(&token), Some(&Delivery::Confirmed(token)));
    }
    assert!(
        matches!(&outcomes[&101], Delivery::Rejected { token: 101, reason } if reason.contains("max_packet_bytes")),
        "{:?}",
        outcomes[&101]
    );
    let after_end = link.batch().publish_in_place(&message(Qos::AtMostOnce), |_| true);
    assert!(matches!(after_end, InPlace::Closed), "{after_end:?}");
}

/// A batch longer than one hold of the lock (it lets the lock go and takes it again every
/// 256 messages, so the connection task is not kept waiting) sends every message once, in
/// order, each confirmed under the token it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_longer_than_one_hold_of_the_lock_sends_everything_in_order() {
    const COUNT: usize = 1000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::spawn(async move {
        let mut s = accept_client(&listener, &[0x20, 2, 0, 0]).await;
        let mut payloads = Vec::new();
        while payloads.len() < COUNT {
            let Some((header, body)) = read_packet(&mut s).await else {
                break;
            };
            if header >> 4 == 3 {
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                payloads.push(String::from_utf8(body[2 + topic_len..].to_vec()).unwrap());
            }
        }
        payloads
    });
    let mut link = open_link(port, Protocol::V311);
    let connected = tokio::time::timeout(Duration::from_secs(5), link.next()).await;
    assert!(matches!(connected, Ok(LinkEvent::Connected)));
    {
        let mut batch = link.batch();
        for i in 0..COUNT {
            let token =
                batch.publish_stamped("t/x", Qos::AtMostOnce, false, format!("m{i}").as_bytes(), None);
            assert!(
                matches!(token, Some(Ok(t)) if t == i as u64 + 1),
                "{i}: {token:?}"
            );
        }
    }
    let received = tokio::time::timeout(Duration::from_secs(10), broker)
        .await
        .expect("every message arrives")
        .unwrap();
    let sent: Vec<String> = (0..COUNT).map(|i| format!("m{i}")).collect();
    assert_eq!(received, sent);
    let mut confirmed = Vec::new();
    while confirmed.len() < COUNT {
        match tokio::time::timeout(Duration::from_secs(5), link.next()).await {
            Ok(LinkEvent::Delivered(Delivery::Confirmed(t))) => confirmed.push(t),
            Ok(other) => panic!("{other:?}"),
            Err(_) => panic!("{} of {COUNT} confirmed", confirmed.len()),
        }
    }
    assert_eq!(confirmed, (1..=COUNT as u64).collect::<Vec<u64>>());
}
