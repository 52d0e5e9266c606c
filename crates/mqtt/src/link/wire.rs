//! MQTT packets on the wire, 3.1.1 and 5, as the link needs them: what it writes, and what
//! it reads turned into one [`Incoming`] for both versions. Packet coding is rumqttc's
//! `mqttbytes` (its parsers return errors, never panic, on malformed input), except the
//! PUBLISH the link writes for every message, encoded here straight into the outgoing
//! buffer without building a packet value. No I/O.

use bytes::{BufMut, Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

use super::{InPlaceMessage, LinkOptions, Will};
use crate::settings::{Protocol, Qos};

/// MQTT's largest remaining length (4 bytes of variable-length integer).
pub const MAX_REMAINING: usize = 268_435_455;

/// A packet from the broker, in the link's terms.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    ConnAck {
        session_present: bool,
        /// Why the broker refused the connection; `None` if it accepted it.
        refused: Option<String>,
        /// MQTT 5: most QoS 1 and 2 publishes the broker takes at once (Receive Maximum).
        receive_max: Option<u16>,
        /// MQTT 5: largest packet the broker accepts (Maximum Packet Size).
        max_packet: Option<u32>,
    },
    Publish {
        topic: String,
        payload: Bytes,
        qos: Qos,
        pkid: u16,
        retain: bool,
    },
    /// `failure`: the reason of an MQTT 5 negative acknowledgement.
    PubAck {
        pkid: u16,
        failure: Option<String>,
    },
    PubRec {
        pkid: u16,
        failure: Option<String>,
    },
    PubRel {
        pkid: u16,
    },
    PubComp {
        pkid: u16,
    },
    /// Filters the broker refused, by position.
    SubAck {
        pkid: u16,
        refused: Vec<usize>,
    },
    PingResp,
    /// MQTT 5: the broker ends the session and says why.
    Disconnect {
        reason: String,
        taken_over: bool,
    },
    /// Anything a client does not expect (CONNECT, SUBSCRIBE, ...): a broker bug.
    Unexpected(&'static str),
    /// A publish whose topic is not UTF-8 (MQTT 5 delivers topics as bytes): skipped.
    BadTopic,
}

/// Why a packet could not be read.
#[derive(Debug, PartialEq)]
pub enum ReadError {
    /// Not all of it has arrived yet: read more.
    Incomplete,
    /// Over the size the link accepts: the session cannot go on (its length is known but
    /// not its end without reading it whole).
    TooLarge(usize),
    Malformed(String),
}

fn v4_qos(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn qos_of(level: u8) -> Qos {
    Qos::from_level(u64::from(level)).unwrap_or(Qos::AtMostOnce)
}

/// How the link logs in.
pub struct Connect<'a> {
    pub options: &'a LinkOptions,
    pub keep_alive_secs: u16,
    pub clean: bool,
    /// MQTT 5 session expiry interval (seconds), for a kept session.
    pub expiry: Option<u32>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    /// MQTT 5: the largest packet the link accepts, told to the broker.
    pub max_packet: u32,
}

impl std::fmt::Debug for Connect<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Connect")
            .field("client_id", &self.options.client_id)
            .field("clean", &self.clean)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Writes CONNECT.
pub fn connect(protocol: Protocol, c: &Connect<'_>, out: &mut BytesMut) -> Result<(), String> {
    let login = c
        .username
        .map(|u| (u.to_owned(), c.password.unwrap_or_default().to_owned()));
    let written = match protocol {
        Protocol::V311 => {
            let mut p = v4::Connect::new(c.options.client_id.clone());
            p.keep_alive = c.keep_alive_secs;
            p.clean_session = c.clean;
            p.last_will = c.options.will.as_ref().map(|w: &Will| v4::LastWill {
                topic: w.topic.clone(),
                message: w.payload.clone(),
                qos: v4_qos(w.qos),
                retain: w.retain,
            });
            p.login = login.map(|(u, pw)| v4::Login::new(u, pw));
            v4::Packet::Connect(p)
                .write(out, MAX_REMAINING)
                .map_err(|e| e.to_string())
        }
        Protocol::V5 => {
            let mut properties = v5::ConnectProperties::new();
            properties.max_packet_size = Some(c.max_packet);
            properties.session_expiry_interval = c.expiry;
            let p = v5::Connect {
                keep_alive: c.keep_alive_secs,
                client_id: c.options.client_id.clone(),
                clean_start: c.clean,
                properties: Some(properties),
            };
            let will = c.options.will.as_ref().map(|w| v5::LastWill {
                topic: Bytes::copy_from_slice(w.topic.as_bytes()),
                message: w.payload.clone(),
                qos: v5_qos(w.qos),
                retain: w.retain,
                properties: None,
            });
            let login = login.map(|(u, pw)| v5::Login::new(u, pw));
            v5::Packet::Connect(p, will, login)
                .write(out, None)
                .map_err(|e| e.to_string())
        }
    };
    written
        .map(|_| ())
        .map_err(|e| format!("cannot encode CONNECT: {e}"))
}

/// The size of a PUBLISH packet, header included, or `None` over MQTT's limit.
pub fn publish_size(protocol: Protocol, topic: &str, qos: Qos, payload: usize) -> Option<usize> {
    let remaining = publish_remaining(protocol, topic, qos, payload);
    (remaining <= MAX_REMAINING).then(|| 1 + varint_len(remaining) + remaining)
}

fn publish_remaining(protocol: Protocol, topic: &str, qos: Qos, payload: usize) -> usize {
    let pkid = if qos == Qos::AtMostOnce { 0 } else { 2 };
    // MQTT 5 publishes carry a property length; ours are empty (one byte, 0).
    let properties = usize::from(protocol == Protocol::V5);
    (2 + topic.len() + pkid + properties).saturating_add(payload)
}

fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_varint(out: &mut BytesMut, n: usize) {
    let (bytes, used) = varint(n);
    out.put_slice(&bytes[..used]);
}

/// MQTT's variable-length integer: its bytes and how many it takes.
fn varint(mut n: usize) -> ([u8; 4], usize) {
    let mut bytes = [0u8; 4];
    let mut used = 0;
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        bytes[used] = byte;
        used += 1;
        if n == 0 || used == 4 {
            return (bytes, used);
        }
    }
}

/// Room reserved in the outgoing buffer at a time.
const OUT_CHUNK: usize = 64 * 1024;

/// Writes a PUBLISH (the hot path: one per message). The caller checked the size with
/// [`publish_size`] and that the topic is at most 65 535 bytes.
pub fn publish(
    protocol: Protocol,
    topic: &str,
    qos: Qos,
    retain: bool,
    pkid: u16,
    payload: &[u8],
    out: &mut BytesMut,
) {
    let remaining = publish_remaining(protocol, topic, qos, payload.len());
    let size = 1 + varint_len(remaining) + remaining;
    if out.capacity() - out.len() < size {
        // By the chunk: what the writer split off may still be in use, and BytesMut then
        // grows by exactly what is asked, copying everything gathered at every message.
        out.reserve(size.max(OUT_CHUNK));
    }
    out.put_u8(0x30 | (qos.level() << 1) | u8::from(retain));
    put_varint(out, remaining);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic.as_bytes());
    if qos != Qos::AtMostOnce {
        out.put_u16(pkid);
    }
    if protocol == Protocol::V5 {
        out.put_u8(0);
    }
    out.put_slice(payload);
}

/// A PUBLISH written by [`publish_in_place`], its packet id still to be set.
#[derive(Debug, PartialEq, Eq)]
pub struct InPlace {
    /// Where the packet starts in the buffer.
    pub start: usize,
    /// The whole packet's size.
    pub size: usize,
    /// Where its packet id goes (QoS 1 and 2).
    pub pkid_at: Option<usize>,
}

/// Writes a PUBLISH whose topic is `topic`'s parts joined and whose payload `payload`
/// writes straight into `out`: no payload of its own to copy. The remaining length is
/// known only once the payload is written, and MQTT wants it in the fewest bytes, so two
/// are kept for it (a payload of 128 bytes to 16 KB, most messages) and the rest moved
/// if it takes one, three or four. `m.room` is reserved at once (by the chunk, as
/// [`publish`] does). Nothing is left in `out` if `payload` returns `false`, or the topic
/// is over 65 535 bytes, or the packet over MQTT's limit (`None`).
pub fn publish_in_place(
    protocol: Protocol,
    m: &InPlaceMessage<'_>,
    out: &mut BytesMut,
    payload: impl FnOnce(&mut BytesMut) -> bool,
) -> Option<InPlace> {
    let InPlaceMessage {
        topic,
        qos,
        retain,
        room,
        ..
    } = *m;
    let topic_len = topic[0].len() + topic[1].len();
    let topic_len16 = u16::try_from(topic_len).ok()?;
    let start = out.len();
    let size = 8 + topic_len + room;
    if out.capacity() - start < size {
        out.reserve(size.max(OUT_CHUNK));
    }
    out.put_u8(0x30 | (qos.level() << 1) | u8::from(retain));
    out.put_u16(0);
    let body = out.len();
    out.put_u16(topic_len16);
    out.put_slice(topic[0].as_bytes());
    out.put_slice(topic[1].as_bytes());
    let pkid_at = (qos != Qos::AtMostOnce).then(|| {
        out.put_u16(0);
        out.len() - 2
    });
    if protocol == Protocol::V5 {
        out.put_u8(0);
    }
    let remaining = if payload(out) {
        out.len() - body
    } else {
        usize::MAX
    };
    if remaining > MAX_REMAINING {
        out.truncate(start);
        return None;
    }
    // The variable-length integer's bytes, then the body moved to follow them.
    let (length, used) = varint(remaining);
    let end = out.len();
    match used {
        2 => {}
        1 => {
            out.copy_within(body..end, body - 1);
            out.truncate(end - 1);
        }
        _ => {
            out.resize(end + used - 2, 0);
            out.copy_within(body..end, body + used - 2);
        }
    }
    out[start + 1..start + 1 + used].copy_from_slice(&length[..used]);
    let shift = used as isize - 2;
    Some(InPlace {
        start,
        size: 1 + used + remaining,
        pkid_at: pkid_at.map(|at| at.wrapping_add_signed(shift)),
    })
}

/// Writes SUBSCRIBE.
pub fn subscribe(
    protocol: Protocol,
    pkid: u16,
    filters: &[String],
    qos: Qos,
    out: &mut BytesMut,
) -> Result<(), String> {
    let written = match protocol {
        Protocol::V311 => {
            let mut p = v4::Subscribe::new_many(
                filters
                    .iter()
                    .map(|f| v4::SubscribeFilter::new(f.clone(), v4_qos(qos))),
            );
            p.pkid = pkid;
            v4::Packet::Subscribe(p)
                .write(out, MAX_REMAINING)
                .map_err(|e| e.to_string())
        }
        Protocol::V5 => {
            let mut p = v5::Subscribe::new_many(
                filters.iter().map(|f| v5::Filter::new(f.clone(), v5_qos(qos))),
                None,
            );
            p.pkid = pkid;
            v5::Packet::Subscribe(p)
                .write(out, None)
                .map_err(|e| e.to_string())
        }
    };
    written
        .map(|_| ())
        .map_err(|e| format!("cannot encode SUBSCRIBE: {e}"))
}

/// The acknowledgements a client sends (PUBACK, PUBREC, PUBREL, PUBCOMP): fixed header,
/// packet id, and on MQTT 5 nothing more (reason Success and no properties may be left
/// out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    PubAck = 0x40,
    PubRec = 0x50,
    PubRel = 0x62,
    PubComp = 0x70,
}

pub fn ack(kind: Ack, pkid: u16, out: &mut BytesMut) {
    out.put_u8(kind as u8);
    out.put_u8(2);
    out.put_u16(pkid);
}

pub fn ping(out: &mut BytesMut) {
    out.put_slice(&[0xC0, 0]);
}

/// DISCONNECT (MQTT 5: reason Normal disconnection, which discards the will).
pub fn disconnect(protocol: Protocol, out: &mut BytesMut) {
    match protocol {
        Protocol::V311 => out.put_slice(&[0xE0, 0]),
        Protocol::V5 => out.put_slice(&[0xE0, 1, 0]),
    }
}

/// Reads one packet from the front of `buf` (consuming it), if it has arrived whole.
pub fn read(protocol: Protocol, buf: &mut BytesMut, max_size: usize) -> Result<Incoming, ReadError> {
    match protocol {
        Protocol::V311 => match v4::Packet::read(buf, max_size) {
            Ok(p) => Ok(from_v4(p)),
            Err(e) => Err(read_error(e)),
        },
        Protocol::V5 => match v5::Packet::read(buf, Some(u32::try_from(max_size).unwrap_or(u32::MAX))) {
            Ok(p) => Ok(from_v5(p)),
            Err(e) => Err(read_error_v5(e)),
        },
    }
}

fn read_error(e: rumqttc::mqttbytes::Error) -> ReadError {
    use rumqttc::mqttbytes::Error;
    match e {
        Error::InsufficientBytes(_) => ReadError::Incomplete,
        Error::PayloadSizeLimitExceeded(n) => ReadError::TooLarge(n),
        other => ReadError::Malformed(other.to_string()),
    }
}

fn read_error_v5(e: rumqttc::v5::mqttbytes::Error) -> ReadError {
    use rumqttc::v5::mqttbytes::Error;
    match e {
        Error::InsufficientBytes(_) => ReadError::Incomplete,
        Error::PayloadSizeLimitExceeded { pkt_size, .. } => ReadError::TooLarge(pkt_size),
        other => ReadError::Malformed(other.to_string()),
    }
}

/// The positions of the SUBACK's refused filters.
fn refused<C>(codes: &[C], granted: impl Fn(&C) -> bool) -> Vec<usize> {
    codes
        .iter()
        .enumerate()
        .filter(|(_, c)| !granted(c))
        .map(|(i, _)| i)
        .collect()
}

fn from_v4(p: v4::Packet) -> Incoming {
    use v4::Packet;
    match p {
        Packet::ConnAck(a) => Incoming::ConnAck {
            session_present: a.session_present,
            refused: (a.code != v4::ConnectReturnCode::Success)
                .then(|| format!("Connection refused, return code: `{:?}`", a.code)),
            receive_max: None,
            max_packet: None,
        },
        Packet::Publish(p) => Incoming::Publish {
            topic: p.topic,
            payload: p.payload,
            qos: qos_of(p.qos as u8),
            pkid: p.pkid,
            retain: p.retain,
        },
        Packet::PubAck(a) => Incoming::PubAck {
            pkid: a.pkid,
            failure: None,
        },
        Packet::PubRec(r) => Incoming::PubRec {
            pkid: r.pkid,
            failure: None,
        },
        Packet::PubRel(r) => Incoming::PubRel { pkid: r.pkid },
        Packet::PubComp(c) => Incoming::PubComp { pkid: c.pkid },
        Packet::SubAck(s) => Incoming::SubAck {
            pkid: s.pkid,
            refused: refused(&s.return_codes, |c| {
                !matches!(c, v4::SubscribeReasonCode::Failure)
            }),
        },
        Packet::PingResp => Incoming::PingResp,
        Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        Packet::Connect(_) => Incoming::Unexpected("CONNECT"),
        Packet::Subscribe(_) => Incoming::Unexpected("SUBSCRIBE"),
        Packet::Unsubscribe(_) => Incoming::Unexpected("UNSUBSCRIBE"),
        Packet::PingReq => Incoming::Unexpected("PINGREQ"),
        Packet::Disconnect => Incoming::Unexpected("DISCONNECT"),
    }
}

fn from_v5(p: v5::Packet) -> Incoming {
    use v5::Packet;
    match p {
        Packet::ConnAck(a) => Incoming::ConnAck {
            session_present: a.session_present,
            refused: (a.code != v5::ConnectReturnCode::Success)
                .then(|| format!("Connection refused, return code: `{:?}`", a.code)),
            receive_max: a.properties.as_ref().and_then(|p| p.receive_max),
            max_packet: a.properties.as_ref().and_then(|p| p.max_packet_size),
        },
        Packet::Publish(p) => match String::from_utf8(p.topic.to_vec()) {
            Ok(topic) => Incoming::Publish {
                topic,
                payload: p.payload,
                qos: qos_of(p.qos as u8),
                pkid: p.pkid,
                retain: p.retain,
            },
            Err(_) => Incoming::BadTopic,
        },
        Packet::PubAck(a) => Incoming::PubAck {
            pkid: a.pkid,
            failure: match a.reason {
                v5::PubAckReason::Success | v5::PubAckReason::NoMatchingSubscribers => None,
                other => Some(format!("{other:?}")),
            },
        },
        Packet::PubRec(r) => Incoming::PubRec {
            pkid: r.pkid,
            failure: match r.reason {
                v5::PubRecReason::Success | v5::PubRecReason::NoMatchingSubscribers => None,
                other => Some(format!("{other:?}")),
            },
        },
        Packet::PubRel(r) => Incoming::PubRel { pkid: r.pkid },
        Packet::PubComp(c) => Incoming::PubComp { pkid: c.pkid },
        Packet::SubAck(s) => Incoming::SubAck {
            pkid: s.pkid,
            refused: refused(&s.return_codes, |c| {
                matches!(c, v5::SubscribeReasonCode::Success(_))
            }),
        },
        Packet::PingResp(_) => Incoming::PingResp,
        Packet::Disconnect(d) => Incoming::Disconnect {
            taken_over: d.reason_code == v5::DisconnectReasonCode::SessionTakenOver,
            reason: format!("the broker disconnected: {:?}", d.reason_code),
        },
        Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        Packet::Auth(_) => Incoming::Unexpected("AUTH"),
        Packet::Connect(..) => Incoming::Unexpected("CONNECT"),
        Packet::Subscribe(_) => Incoming::Unexpected("SUBSCRIBE"),
        Packet::Unsubscribe(_) => Incoming::Unexpected("UNSUBSCRIBE"),
        Packet::PingReq(_) => Incoming::Unexpected("PINGREQ"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A message to write in place, of no birth time and 64 bytes' room.
    fn message(topic: [&str; 2], qos: Qos, retain: bool) -> InPlaceMessage<'_> {
        InPlaceMessage {
            topic,
            qos,
            retain,
            born: None,
            room: 64,
        }
    }

    fn decode(protocol: Protocol, mut buf: BytesMut) -> Incoming {
        let p = read(protocol, &mut buf, MAX_REMAINING).unwrap();
        assert!(buf.is_empty(), "the whole packet is read");
        p
    }

    proptest! {
        /// The hand-written PUBLISH is what rumqttc's codec (and so a broker) reads back.
        #[test]
        fn a_written_publish_reads_back_whole(
            v5 in any::<bool>(),
            level in 0u8..3,
            retain in any::<bool>(),
            pkid in 1u16..,
            topic in "[a-z/_0-9]{1,300}",
            // Up to three bytes of remaining length.
            payload in proptest::collection::vec(any::<u8>(), 0..20_000),
        ) {
            let protocol = if v5 { Protocol::V5 } else { Protocol::V311 };
            let qos = qos_of(level);
            let mut buf = BytesMut::new();
            publish(protocol, &topic, qos, retain, pkid, &payload, &mut buf);
            prop_assert_eq!(Some(buf.len()), publish_size(protocol, &topic, qos, payload.len()));
            let expected = Incoming::Publish {
                topic: topic.clone(),
                payload: Bytes::from(payload),
                qos,
                pkid: if qos == Qos::AtMostOnce { 0 } else { pkid },
                retain,
            };
            prop_assert_eq!(decode(protocol, buf), expected);
        }

        /// A PUBLISH written in place is byte for byte the one [`publish`] writes, across
        /// the remaining length's one to three bytes, after what the buffer held before.
        #[test]
        fn a_publish_written_in_place_is_the_one_written_from_a_payload(
            v5 in any::<bool>(),
            level in 0u8..3,
            retain in any::<bool>(),
            pkid in 1u16..,
            head in "[a-z/_0-9]{0,200}",
            name in "[a-z_0-9]{0,100}",
            before in proptest::collection::vec(any::<u8>(), 0..300),
            payload in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(any::<u8>(), 16_000..16_700),
            ],
        ) {
            let protocol = if v5 { Protocol::V5 } else { Protocol::V311 };
            let qos = qos_of(level);
            let topic = format!("{head}{name}");
            let mut expected = BytesMut::from(&before[..]);
            publish(protocol, &topic, qos, retain, pkid, &payload, &mut expected);
            let mut buf = BytesMut::from(&before[..]);
            let written = publish_in_place(protocol, &message([&head, &name], qos, retain), &mut buf, |out| {
                out.put_slice(&payload);
                true
            });
            let written = written.expect("written");
            prop_assert_eq!(written.start, before.len());
            prop_assert_eq!(written.size, buf.len() - before.len());
            if let Some(at) = written.pkid_at {
                buf[at..at + 2].copy_from_slice(&pkid.to_be_bytes());
            }
            prop_assert_eq!(&buf[..], &expected[..]);
        }

        /// Whatever a broker (or anything on the port) sends, reading never panics.
        #[test]
        fn reading_garbage_gives_an_error_or_a_packet_never_a_panic(
            v5 in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let protocol = if v5 { Protocol::V5 } else { Protocol::V311 };
            let mut buf = BytesMut::from(&bytes[..]);
            while read(protocol, &mut buf, 1024).is_ok() {}
        }
    }

    #[test]
    fn a_publish_whose_payload_is_not_written_leaves_the_buffer_as_it_was() {
        let mut buf = BytesMut::from(&b"before"[..]);
        let m = message(["a/", "b"], Qos::AtLeastOnce, true);
        let written = publish_in_place(Protocol::V5, &m, &mut buf, |out| {
            out.put_slice(b"half a payload");
            false
        });
        assert_eq!(written, None);
        assert_eq!(&buf[..], b"before");
        let long = "t".repeat(usize::from(u16::MAX));
        let m = message([&long, "x"], Qos::AtMostOnce, false);
        let written = publish_in_place(Protocol::V311, &m, &mut buf, |_| true);
        assert_eq!(written, None, "a topic over 65 535 bytes");
        assert_eq!(&buf[..], b"before");
    }

    #[test]
    fn acknowledgements_read_back_with_their_packet_id() {
        for protocol in [Protocol::V311, Protocol::V5] {
            for (kind, expected) in [
                (
                    Ack::PubAck,
                    Incoming::PubAck {
                        pkid: 7,
                        failure: None,
                    },
                ),
                (
                    Ack::PubRec,
                    Incoming::PubRec {
                        pkid: 7,
                        failure: None,
                    },
                ),
                (Ack::PubRel, Incoming::PubRel { pkid: 7 }),
                (Ack::PubComp, Incoming::PubComp { pkid: 7 }),
            ] {
                let mut buf = BytesMut::new();
                ack(kind, 7, &mut buf);
                assert_eq!(decode(protocol, buf), expected, "{protocol:?} {kind:?}");
            }
        }
    }

    #[test]
    fn a_suback_names_the_filters_the_broker_refused() {
        let mut buf = BytesMut::new();
        v4::SubAck::new(
            3,
            vec![
                v4::SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce),
                v4::SubscribeReasonCode::Failure,
            ],
        )
        .write(&mut buf)
        .unwrap();
        assert_eq!(
            decode(Protocol::V311, buf),
            Incoming::SubAck {
                pkid: 3,
                refused: vec![1]
            }
        );
        let mut buf = BytesMut::new();
        v5::Packet::SubAck(v5::SubAck {
            pkid: 4,
            return_codes: vec![
                v5::SubscribeReasonCode::NotAuthorized,
                v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtMostOnce),
            ],
            properties: None,
        })
        .write(&mut buf, None)
        .unwrap();
        assert_eq!(
            decode(Protocol::V5, buf),
            Incoming::SubAck {
                pkid: 4,
                refused: vec![0]
            }
        );
    }

    #[test]
    fn a_packet_in_pieces_is_read_once_whole() {
        let mut whole = BytesMut::new();
        publish(
            Protocol::V311,
            "a/b",
            Qos::AtLeastOnce,
            false,
            9,
            &[1; 300],
            &mut whole,
        );
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let r = read(Protocol::V311, &mut buf, MAX_REMAINING);
            if i + 1 < whole.len() {
                assert_eq!(r, Err(ReadError::Incomplete), "after {} bytes", i + 1);
            } else {
                assert!(matches!(r, Ok(Incoming::Publish { pkid: 9, .. })));
            }
        }
    }

    #[test]
    fn a_packet_over_the_limit_is_refused_by_its_header() {
        let mut buf = BytesMut::new();
        publish(
            Protocol::V311,
            "a",
            Qos::AtMostOnce,
            false,
            0,
            &[0; 2000],
            &mut buf,
        );
        // Only the header has arrived; its length is enough to refuse it.
        buf.truncate(4);
        assert!(matches!(
            read(Protocol::V311, &mut buf, 1024),
            Err(ReadError::TooLarge(_))
        ));
    }
}
