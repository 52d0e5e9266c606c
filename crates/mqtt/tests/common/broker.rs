//! A recording MQTT broker on a free loopback port, for tests that must see the packets a
//! client sends (CONNECT flags and will, SUBSCRIBE, PUBLISH flags, DISCONNECT) — what a
//! real broker hides. It speaks just enough MQTT 3.1.1 and 5 to keep one client going:
//! CONNACK, SUBACK, PUBACK, PINGRESP; it can also publish to the client (QoS 0). Every
//! packet is recorded in arrival order; it routes nothing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// A will message from a CONNECT.
#[derive(Clone, Debug, PartialEq)]
pub struct WillMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// The parts of a CONNECT that Sparkplug rules on.
#[derive(Clone, Debug, PartialEq)]
pub struct Connect {
    /// 4 for MQTT 3.1.1, 5 for MQTT 5.
    pub level: u8,
    /// Clean Session (3.1.1) or Clean Start (5).
    pub clean: bool,
    pub client_id: String,
    pub will: Option<WillMessage>,
    /// MQTT 5 Session Expiry Interval; `None` when absent (which means 0).
    pub session_expiry: Option<u32>,
}

/// A packet from the client, or the end of its connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Packet {
    Connect(Connect),
    Subscribe {
        filters: Vec<(String, u8)>,
    },
    Publish {
        topic: String,
        qos: u8,
        retain: bool,
        payload: Vec<u8>,
    },
    /// `reason`: the MQTT 5 reason code (absent means 0, normal disconnection).
    Disconnect {
        reason: Option<u8>,
    },
    /// The connection closed (after a DISCONNECT or without one).
    Closed,
}

/// A PUBLISH as (topic, qos, retain, payload).
pub type Published<'a> = (&'a str, u8, bool, &'a [u8]);

impl Packet {
    /// The publish this packet is, if it is one.
    pub fn as_publish(&self) -> Option<Published<'_>> {
        match self {
            Packet::Publish {
                topic,
                qos,
                retain,
                payload,
            } => Some((topic.as_str(), *qos, *retain, payload.as_slice())),
            _ => None,
        }
    }
}

/// The broker; stops listening and closes its connections when dropped.
pub struct RecordingBroker {
    pub port: u16,
    rx: mpsc::UnboundedReceiver<(usize, Packet)>,
    /// Every packet received so far, with the index of its connection (0, 1, …).
    pub seen: Vec<(usize, Packet)>,
    client: Arc<Mutex<Option<(TcpStream, u8)>>>,
    stop: Arc<AtomicBool>,
}

impl RecordingBroker {
    pub fn start() -> RecordingBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        let client: Arc<Mutex<Option<(TcpStream, u8)>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (client.clone(), stop.clone());
        std::thread::spawn(move || {
            for (index, stream) in listener.incoming().enumerate() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (tx, c) = (tx.clone(), c.clone());
                std::thread::spawn(move || serve(index, stream, &tx, &c));
            }
        });
        RecordingBroker {
            port,
            rx,
            seen: Vec::new(),
            client,
            stop,
        }
    }

    /// Waits (up to 15 s) for a packet satisfying `pred`; everything received meanwhile is
    /// kept in `seen`.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Packet) -> bool) -> Packet {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((connection, packet))) => {
                    self.seen.push((connection, packet.clone()));
                    if pred(&packet) {
                        return packet;
                    }
                }
                _ => panic!("gave up waiting for {what}; saw {:#?}", self.seen),
            }
        }
    }

    /// Waits for a PUBLISH on `topic`.
    pub async fn wait_publish(&mut self, topic: &str) -> Packet {
        self.wait_for(
            &format!("a PUBLISH on {topic}"),
            |p| matches!(p, Packet::Publish { topic: t, .. } if t == topic),
        )
        .await
    }

    /// Publishes to the client of the latest connection, QoS 0.
    pub fn publish_to_client(&self, topic: &str, payload: &[u8], retain: bool) {
        let mut guard = self.client.lock().unwrap();
        let (stream, level) = guard.as_mut().expect("a client is connected");
        let mut body = string(topic);
        if *level == 5 {
            body.push(0); // no properties
        }
        body.extend_from_slice(payload);
        stream.write_all(&frame(0x30 | u8::from(retain), &body)).unwrap();
    }

    /// The PUBLISH packets received so far, in order: (connection, topic, qos, retain, payload).
    pub fn publishes(&self) -> Vec<(usize, &str, u8, bool, &[u8])> {
        self.seen
            .iter()
            .filter_map(|(c, p)| {
                let (topic, qos, retain, payload) = p.as_publish()?;
                Some((*c, topic, qos, retain, payload))
            })
            .collect()
    }
}

impl Drop for RecordingBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(mut guard) = self.client.lock()
            && let Some((stream, _)) = guard.take()
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Unblock accept() so the listener thread sees the stop flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// Reads one packet: (first byte, body); `None` at the end of the connection.
fn read_packet(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).ok()?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).ok()?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some((first[0], body))
}

/// A cursor over a packet body.
struct Body<'a>(&'a [u8]);

impl Body<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.0[0];
        self.0 = &self.0[1..];
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.u16());
        let out = self.0[..n].to_vec();
        self.0 = &self.0[n..];
        out
    }
    fn string(&mut self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }
    fn varint(&mut self) -> usize {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let b = self.u8();
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }
    /// MQTT 5 properties: returns the Session Expiry Interval if present.
    fn properties(&mut self) -> Option<u32> {
        let len = self.varint();
        let (props, rest) = self.0.split_at(len);
        self.0 = rest;
        let mut expiry = None;
        let mut p = Body(props);
        while !p.0.is_empty() {
            match p.u8() {
                0x11 => expiry = Some(p.u32()),
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => {
                    p.u8();
                }
                0x13 | 0x21 | 0x22 | 0x23 => {
                    p.u16();
                }
                0x02 | 0x18 | 0x27 => {
                    p.u32();
                }
                0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => {
                    p.bytes();
                }
                0x0b => {
                    p.varint();
                }
                0x26 => {
                    p.bytes();
                    p.bytes();
                }
                other => panic!("unknown MQTT 5 property {other:#x}"),
            }
        }
        expiry
    }
}

fn serve(
    index: usize,
    mut stream: TcpStream,
    tx: &mpsc::UnboundedSender<(usize, Packet)>,
    client: &Mutex<Option<(TcpStream, u8)>>,
) {
    let mut level = 4;
    while let Some((first, body)) = read_packet(&mut stream) {
        let mut b = Body(&body);
        let packet = match first >> 4 {
            1 => {
                b.string(); // "MQTT"
                level = b.u8();
                let flags = b.u8();
                b.u16(); // keep alive
                let session_expiry = if level == 5 { b.properties() } else { None };
                let client_id = b.string();
                let will = (flags & 0x04 != 0).then(|| {
                    if level == 5 {
                        b.properties();
                    }
                    WillMessage {
                        topic: b.string(),
                        payload: b.bytes(),
                        qos: (flags >> 3) & 0x03,
                        retain: flags & 0x20 != 0,
                    }
                });
                let ack: &[u8] = if level == 5 { &[0, 0, 0] } else { &[0, 0] };
                let _ = stream.write_all(&frame(0x20, ack));
                if let Ok(clone) = stream.try_clone() {
                    *client.lock().unwrap() = Some((clone, level));
                }
                Packet::Connect(Connect {
                    level,
                    clean: flags & 0x02 != 0,
                    client_id,
                    will,
                    session_expiry,
                })
            }
            3 => {
                let qos = (first >> 1) & 0x03;
                let topic = b.string();
                let id = (qos > 0).then(|| b.u16());
                if level == 5 {
                    b.properties();
                }
                if let Some(id) = id {
                    let _ = stream.write_all(&frame(0x40, &id.to_be_bytes()));
                }
                Packet::Publish {
                    topic,
                    qos,
                    retain: first & 0x01 != 0,
                    payload: b.0.to_vec(),
                }
            }
            8 => {
                let id = b.u16();
                if level == 5 {
                    b.properties();
                }
                let mut filters = Vec::new();
                while !b.0.is_empty() {
                    let f = b.string();
                    filters.push((f, b.u8() & 0x03));
                }
                let mut ack = id.to_be_bytes().to_vec();
                if level == 5 {
                    ack.push(0);
                }
                ack.extend(filters.iter().map(|(_, q)| *q));
                let _ = stream.write_all(&frame(0x90, &ack));
                Packet::Subscribe { filters }
            }
            12 => {
                let _ = stream.write_all(&frame(0xd0, &[]));
                continue;
            }
            14 => Packet::Disconnect {
                reason: (!b.0.is_empty()).then(|| b.u8()),
            },
            _ => continue,
        };
        if tx.send((index, packet)).is_err() {
            return;
        }
    }
    let _ = tx.send((index, Packet::Closed));
}
