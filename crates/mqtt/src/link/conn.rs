//! The connection task of one [`Link`](super::Link): connects (TCP, TLS), logs in, then
//! reads and writes until the session ends.
//!
//! Writing is batched: publishers encode into the shared outgoing buffer
//! ([`State::out`]) and wake the writer, which takes everything there and writes it at
//! once. While one write is under way the next messages gather, so at high rates one
//! system call carries hundreds of messages, and at low rates each still leaves at once
//! (`TCP_NODELAY`: the batching is ours, Nagle's would only delay a lone message).
//!
//! Reading parses every whole packet that arrived and answers acknowledgements through
//! the same buffer. Keep-alive: a PINGREQ every `keep_alive`; one still unanswered when
//! the next is due ends the session.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use backplane_model::Timestamp;
use bytes::BytesMut;
use prometheus_client::metrics::histogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::gather::{GATHER_FOR, Gather};
use super::wire::{self, Ack, Incoming, ReadError};
use super::{LinkEvent, LinkOptions, SessionWatch, Shared, State, lock};
use crate::delivery::PubRec;
use crate::settings::{Protocol, Qos, ResolvedConnection};

/// Connecting (TCP, TLS and the CONNACK) and one write may take this long at most.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest an acknowledgement waits before its owner is woken for it.
const OWNER_DELAY: Duration = Duration::from_millis(2);

/// Wakes the owner for the deliveries gathered, and a publisher waiting for room.
fn wake_for_deliveries(shared: &Shared) {
    let publisher = std::mem::take(&mut lock(&shared.state).publisher_waiting);
    shared.to_owner.notify_one();
    if publisher {
        shared.drained.notify_waiters();
    }
}

/// Read buffer to start with; grows up to the largest packet accepted.
const READ_BUFFER: usize = 16 * 1024;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// How a session ended.
pub(super) struct End {
    /// What happened, as the raw error text.
    pub raw: String,
    pub closed_by_broker: bool,
    pub taken_over: bool,
}

impl End {
    fn error(raw: impl Into<String>) -> End {
        End {
            raw: raw.into(),
            closed_by_broker: false,
            taken_over: false,
        }
    }

    fn closed_by_broker(raw: &str) -> End {
        End {
            raw: raw.to_owned(),
            closed_by_broker: true,
            taken_over: false,
        }
    }

    fn io(e: &std::io::Error) -> End {
        End {
            raw: format!("I/O: {e}"),
            closed_by_broker: peer_closed(e),
            taken_over: false,
        }
    }
}

/// An I/O error that means the other end closed the connection.
fn peer_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

pub(super) struct Task {
    pub conn: ResolvedConnection,
    pub options: LinkOptions,
    pub shared: Arc<Shared>,
    pub tx: mpsc::Sender<LinkEvent>,
    pub watch: SessionWatch,
    /// The MQTT 5 session expiry for a kept session; `None`: a clean one.
    pub persistent: Option<u32>,
}

impl Task {
    pub(super) async fn run(mut self) {
        let end = self.session().await;
        if lock(&self.shared.state).disconnecting {
            self.watch.disconnecting = true;
        }
        let why = self.watch.ended(end.closed_by_broker, end.taken_over, &end.raw);
        {
            let mut s = lock(&self.shared.state);
            s.ended = true;
            let lost = s.tracker.on_session_end();
            s.deliveries.extend(lost);
        }
        self.shared.to_owner.notify_one();
        self.shared.drained.notify_waiters();
        let _ = self.tx.send(LinkEvent::Disconnected(why)).await;
    }

    async fn session(&mut self) -> End {
        let protocol = self.conn.settings.protocol;
        let (mut stream, received, gather) = match tokio::time::timeout(NETWORK_TIMEOUT, self.connect()).await
        {
            Ok(Ok(connected)) => connected,
            Ok(Err(end)) => return end,
            Err(_) => return End::error("connection timeout: no CONNACK within 5s"),
        };
        if self.tx.send(LinkEvent::Connected).await.is_err() {
            return End::error("the link's owner is gone");
        }
        let keep_alive = self.conn.settings.keep_alive.max(Duration::from_secs(1));
        let max_in = match protocol {
            Protocol::V311 => super::incoming_ceiling(self.conn.settings.max_packet_bytes),
            Protocol::V5 => self.conn.settings.max_packet_bytes,
        };
        let (reader, writer) = tokio::io::split(&mut stream);
        let shared = self.shared.clone();
        let input = Input {
            reader,
            buf: received,
            gather,
        };
        let read = read_loop(
            input,
            &shared,
            &self.tx,
            protocol,
            max_in,
            self.conn.settings.max_packet_bytes,
        );
        let write = write_loop(writer, &shared, keep_alive, self.options.write_delay.clone());
        tokio::select! {
            end = read => end,
            end = write => end,
        }
    }

    /// TCP, TLS, CONNECT and CONNACK; with what arrived after the CONNACK (a resumed
    /// session's messages may come in the same segment).
    async fn connect(&mut self) -> Result<(Box<dyn Stream>, BytesMut, Gather), End> {
        let s = &self.conn.settings;
        let tcp = TcpStream::connect((s.host.as_str(), s.port))
            .await
            .map_err(|e| End::io(&e))?;
        // The writer batches; Nagle's algorithm would only hold back a lone message.
        let _ = tcp.set_nodelay(true);
        let gather = Gather::new(&tcp).map_err(|e| End::io(&e))?;
        let mut stream: Box<dyn Stream> = match &self.conn.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(s.host.clone())
                    .map_err(|e| End::error(format!("TLS: `{}` is not a valid server name: {e}", s.host)))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| End::error(format!("TLS: {e}")))?;
                Box::new(tls)
            }
        };
        let mut out = BytesMut::new();
        let connect = wire::Connect {
            options: &self.options,
            keep_alive_secs: u16::try_from(s.keep_alive.as_secs().max(1)).unwrap_or(u16::MAX),
            clean: self.persistent.is_none(),
            expiry: self.persistent,
            username: s.username.as_deref(),
            password: self.conn.password.as_deref(),
            max_packet: u32::try_from(s.max_packet_bytes).unwrap_or(u32::MAX),
        };
        wire::connect(s.protocol, &connect, &mut out).map_err(End::error)?;
        stream.write_all(&out).await.map_err(|e| End::io(&e))?;
        stream.flush().await.map_err(|e| End::io(&e))?;
        let mut buf = BytesMut::with_capacity(256);
        loop {
            match wire::read(s.protocol, &mut buf, 64 * 1024) {
                Ok(Incoming::ConnAck {
                    session_present,
                    refused,
                    receive_max,
                    max_packet,
                }) => {
                    if let Some(refused) = refused {
                        return Err(End::error(refused));
                    }
                    self.watch.connected(session_present);
                    let mut st = lock(&self.shared.state);
                    if let Some(r) = receive_max {
                        st.inflight_cap = st.inflight_cap.min(usize::from(r.max(1)));
                    }
                    if let Some(m) = max_packet {
                        st.max_out = st.max_out.min(usize::try_from(m).unwrap_or(usize::MAX));
                    }
                    return Ok((stream, buf, gather));
                }
                Ok(other) => return Err(End::error(format!("expected CONNACK, the broker sent {other:?}"))),
                Err(ReadError::Incomplete) => {}
                Err(ReadError::TooLarge(n)) => {
                    return Err(End::error(format!("a CONNACK of {n} bytes: not an MQTT broker?")));
                }
                Err(ReadError::Malformed(e)) => {
                    return Err(End::error(format!("malformed CONNACK: {e}")));
                }
            }
            if stream.read_buf(&mut buf).await.map_err(|e| End::io(&e))? == 0 {
                return Err(End::closed_by_broker(
                    "the broker closed the connection before CONNACK",
                ));
            }
        }
    }
}

/// Writes what publishers and the reader put in the outgoing buffer, a batch at a time,
/// and a PINGREQ every `keep_alive`.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    shared: &Shared,
    keep_alive: Duration,
    write_delay: Option<Histogram>,
) -> End {
    let mut next_ping = tokio::time::Instant::now() + keep_alive;
    // Birth times of the sampled publishes in the batch being written (reused).
    let mut stamps: Vec<i64> = Vec::new();
    // Two buffers swapped under the lock: publishers fill one while this writes the other,
    // and both keep their capacity, so a steady flow allocates and copies nothing more.
    let mut batch = BytesMut::new();
    loop {
        let (qos0, closing) = {
            let mut s = lock(&shared.state);
            // The writer is idle: every QoS 0 publish not yet written is in `out`.
            let qos0 = s.tracker.unwritten();
            std::mem::swap(&mut stamps, &mut s.stamps);
            std::mem::swap(&mut batch, &mut s.out);
            (qos0, s.disconnecting)
        };
        if batch.is_empty() {
            if closing {
                let _ = writer.shutdown().await;
                return End::error("closed by the gateway");
            }
            tokio::select! {
                () = shared.to_writer.notified() => {}
                () = tokio::time::sleep_until(next_ping) => {
                    let mut s = lock(&shared.state);
                    if s.ping_outstanding {
                        return End::error(format!("no answer to PINGREQ within keep_alive ({}s)", keep_alive.as_secs()));
                    }
                    s.ping_outstanding = true;
                    wire::ping(&mut s.out);
                    next_ping = tokio::time::Instant::now() + keep_alive;
                }
            }
            continue;
        }
        match tokio::time::timeout(NETWORK_TIMEOUT, writer.write_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return End::io(&e),
            Err(_) => return End::error("write timeout: the broker took no data for 5s"),
        }
        if let Err(e) = writer.flush().await {
            return End::io(&e);
        }
        batch.clear();
        if let Some(h) = &write_delay
            && !stamps.is_empty()
        {
            let now = Timestamp::now().unix_nanos();
            for born in stamps.drain(..) {
                // A clock stepped back shows as 0, not as a negative delay.
                h.observe(now.saturating_sub(born).max(0) as f64 / 1e9);
            }
        }
        stamps.clear();
        let mut s = lock(&shared.state);
        let before = s.deliveries.len();
        let State {
            tracker, deliveries, ..
        } = &mut *s;
        tracker.written(qos0, deliveries);
        let confirmed = s.deliveries.len() > before;
        let waiting = std::mem::take(&mut s.publisher_waiting);
        drop(s);
        if confirmed {
            shared.to_owner.notify_one();
        }
        if waiting {
            shared.drained.notify_waiters();
        }
    }
}

/// The connection's reading side.
struct Input<R> {
    reader: R,
    /// What arrived and is not parsed yet.
    buf: BytesMut,
    /// The socket's receive low-water mark.
    gather: Gather,
}

/// Reads packets until the session ends.
async fn read_loop<R: AsyncRead + Unpin>(
    input: Input<R>,
    shared: &Shared,
    tx: &mpsc::Sender<LinkEvent>,
    protocol: Protocol,
    max_in: usize,
    max_packet_bytes: usize,
) -> End {
    let Input {
        mut reader,
        mut buf,
        mut gather,
    } = input;
    buf.reserve(READ_BUFFER);
    // QoS 2 messages received, not yet released (PUBREL): a resent one is not delivered twice.
    let mut receiving: HashSet<u16> = HashSet::new();
    // When the owner was first not told of a delivery (see below).
    let mut untold_since: Option<tokio::time::Instant> = None;
    // Until when the acknowledgements awaited are left to gather (`gather`).
    let mut gathering_until: Option<tokio::time::Instant> = None;
    // The mark was lowered for what was slow to come: raised again after the next read.
    let mut lowered = false;
    loop {
        let mut wake_owner = false;
        let mut wake_writer = false;
        loop {
            let packet = match wire::read(protocol, &mut buf, max_in) {
                Ok(p) => p,
                Err(ReadError::Incomplete) => break,
                Err(ReadError::TooLarge(n)) => {
                    return End::error(format!(
                        "the broker sent a packet of {n} bytes, over the size limit of {max_in} bytes"
                    ));
                }
                Err(ReadError::Malformed(e)) => {
                    return End::error(format!("malformed packet from the broker: {e}"));
                }
            };
            match packet {
                Incoming::PubAck { pkid, failure } => {
                    let mut s = lock(&shared.state);
                    if let Some(d) = s.tracker.on_puback(pkid, failure) {
                        s.deliveries.push(d);
                        wake_owner = true;
                    }
                }
                Incoming::PubRec { pkid, failure } => {
                    let mut s = lock(&shared.state);
                    match s.tracker.on_pubrec(pkid, failure) {
                        PubRec::Release => {
                            wire::ack(Ack::PubRel, pkid, &mut s.out);
                            wake_writer = true;
                        }
                        PubRec::Rejected(d) => {
                            s.deliveries.push(d);
                            wake_owner = true;
                        }
                        PubRec::Unknown => {}
                    }
                }
                Incoming::PubComp { pkid } => {
                    let mut s = lock(&shared.state);
                    if let Some(d) = s.tracker.on_pubcomp(pkid) {
                        s.deliveries.push(d);
                        wake_owner = true;
                    }
                }
                Incoming::PubRel { pkid } => {
                    receiving.remove(&pkid);
                    wire::ack(Ack::PubComp, pkid, &mut lock(&shared.state).out);
                    wake_writer = true;
                }
                Incoming::Publish {
                    topic,
                    payload,
                    qos,
                    pkid,
                    retain,
                } => {
                    let fresh = qos != Qos::ExactlyOnce || receiving.insert(pkid);
                    if fresh {
                        let bytes = topic.len() + payload.len();
                        let event = if protocol == Protocol::V311 && bytes > max_packet_bytes {
                            LinkEvent::Oversized { topic, bytes }
                        } else {
                            LinkEvent::Message {
                                topic,
                                payload,
                                retain,
                            }
                        };
                        // Waits while the owner is behind: its pace bounds what is read.
                        if tx.send(event).await.is_err() {
                            return End::error("the link's owner is gone");
                        }
                    }
                    match qos {
                        Qos::AtMostOnce => {}
                        Qos::AtLeastOnce => {
                            wire::ack(Ack::PubAck, pkid, &mut lock(&shared.state).out);
                            wake_writer = true;
                        }
                        Qos::ExactlyOnce => {
                            wire::ack(Ack::PubRec, pkid, &mut lock(&shared.state).out);
                            wake_writer = true;
                        }
                    }
                }
                Incoming::SubAck { pkid, refused } => {
                    lock(&shared.state).tracker.on_suback(pkid);
                    if !refused.is_empty() {
                        tracing::warn!(
                            ?refused,
                            "mqtt: the broker refused subscriptions (by position in the request)"
                        );
                    }
                }
                Incoming::PingResp => lock(&shared.state).ping_outstanding = false,
                Incoming::Disconnect { reason, taken_over } => {
                    return End {
                        raw: reason,
                        closed_by_broker: false,
                        taken_over,
                    };
                }
                Incoming::BadTopic => {}
                Incoming::ConnAck { .. } => return End::error("protocol error: a second CONNACK"),
                Incoming::Unexpected(kind) => {
                    return End::error(format!("protocol error: the broker sent {kind}"));
                }
            }
        }
        if wake_owner {
            // Acknowledgements come one by one; the owner is woken for a batch of them (a
            // quarter of the window), when nothing is left in flight, or OWNER_DELAY after
            // the first one it has not been told of, not for each.
            let s = lock(&shared.state);
            let batch = (s.inflight_cap / 4).clamp(1, 64);
            let wake = s.deliveries.len() >= batch || s.tracker.outstanding() == 0;
            drop(s);
            if wake {
                wake_for_deliveries(shared);
                untold_since = None;
            } else if untold_since.is_none() {
                untold_since = Some(tokio::time::Instant::now());
            }
        }
        if wake_writer {
            shared.to_writer.notify_one();
        }
        let (awaiting, window) = {
            let s = lock(&shared.state);
            (s.tracker.awaiting_broker(), s.inflight_cap)
        };
        if !lowered {
            if gather.expect(awaiting, window) {
                gathering_until.get_or_insert_with(|| tokio::time::Instant::now() + GATHER_FOR);
            } else {
                gathering_until = None;
            }
        }
        let read = tokio::select! {
            read = reader.read_buf(&mut buf) => read,
            () = crate::common::sleep_until(gathering_until) => {
                // What is awaited is slow to come: take whatever has.
                gather.any();
                gathering_until = None;
                lowered = true;
                continue;
            }
            () = crate::common::sleep_until(untold_since.map(|t| t + OWNER_DELAY)) => {
                wake_for_deliveries(shared);
                untold_since = None;
                continue;
            }
        };
        match read {
            Ok(0) => {
                return End::closed_by_broker("the broker closed the connection");
            }
            Ok(_) => {
                gathering_until = None;
                lowered = false;
            }
            Err(e) => return End::io(&e),
        }
    }
}
