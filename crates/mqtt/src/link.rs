//! One MQTT session over rumqttc, for MQTT 3.1.1 or 5, with delivery confirmation.
//!
//! A [`Link`] connects once, and ends for good at the first connection error: its owner
//! decides when to open the next one (with [`backplane_connector::Backoff`]) and what to
//! publish again. Keeping one connection per link is what makes delivery tracking sound:
//! rumqttc would otherwise silently drop or replay queued publishes when it reconnects on
//! its own, and the tracker could no longer tell them apart. The sinks connect with a
//! clean session; a subscriber may ask the broker to keep its session between links
//! ([`SessionMode::Persistent`]), so messages published meanwhile wait for it.
//!
//! How each connection ended is told to [`crate::takeover`], which notices two clients
//! dropping each other because they share a client id.
//!
//! The rumqttc event loop runs in a task of its own and is never cancelled mid-poll; it
//! feeds the [`DeliveryTracker`] and forwards [`LinkEvent`]s to the owner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::delivery::{Delivery, DeliveryTracker};
use crate::settings::{Protocol, Qos, ResolvedConnection};
use crate::takeover::{self, SessionEnd};

/// A message the broker publishes if the session ends without a DISCONNECT.
#[derive(Clone, Debug, PartialEq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: Qos,
    pub retain: bool,
}

/// Whether the broker keeps the session (subscriptions, and QoS 1 and 2 messages for
/// them) while the client is away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMode {
    /// A new session at every connection, discarded at its end.
    Clean,
    /// Resume the session the broker kept for this client id, if any. MQTT 3.1.1: clean
    /// session 0, kept as long as the broker keeps sessions; MQTT 5: clean start 0 and
    /// this session expiry interval (whole seconds, up to `u32::MAX`).
    Persistent { expiry: Duration },
}

/// What a link needs beyond the connection settings.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    pub client_id: String,
    pub will: Option<Will>,
    /// Most publishes waiting for an acknowledgement at once (rumqttc's in-flight window).
    pub inflight: u16,
    pub session: SessionMode,
}

/// What happens on a link, in order.
#[derive(Debug)]
pub enum LinkEvent {
    /// CONNACK received: the session is up.
    Connected,
    /// A message on a subscribed topic. `retain`: the broker sent it because it was
    /// retained when the subscription was made, not because it was just published.
    Message {
        topic: String,
        payload: Bytes,
        retain: bool,
    },
    /// A message over `max_packet_bytes` (topic and payload), refused unread; the session
    /// goes on. Only on MQTT 3.1.1: on MQTT 5 the broker is told the limit (Maximum Packet
    /// Size) and drops such messages itself.
    Oversized { topic: String, bytes: usize },
    /// What became of one publish.
    Delivered(Delivery),
    /// The session ended (the text says why). Every unconfirmed publish was reported
    /// [`Delivery::Lost`] just before; the link delivers nothing more.
    Disconnected(String),
}

/// The link's session has ended; nothing more can be sent on it.
#[derive(Debug, thiserror::Error)]
#[error("the MQTT session has ended")]
pub struct LinkClosed;

enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// One MQTT session. Dropping it drops the connection without DISCONNECT (the broker
/// then publishes the will); [`Link::close`] ends it cleanly.
pub struct Link {
    client: Client,
    events: mpsc::Receiver<LinkEvent>,
    tracker: Arc<Mutex<DeliveryTracker>>,
    task: JoinHandle<()>,
    next_token: u64,
    /// Set from the CONNACK: the broker resumed a session it kept for this client id.
    session_present: Arc<AtomicBool>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

/// Events waiting for the owner. When full, the event loop waits: the owner's pace bounds
/// what is read from the broker.
const EVENT_QUEUE: usize = 1024;

/// What rumqttc reads of one incoming MQTT 3.1.1 packet at most. MQTT 3.1.1 cannot tell the
/// broker a limit, and rumqttc ends the connection on a packet over its limit without
/// saying its topic: a retained one would end every session at subscribe. So rumqttc reads
/// up to this ceiling (bounded memory) and messages between `max_packet_bytes` and it are
/// refused one by one ([`LinkEvent::Oversized`]); only a packet beyond it still ends the
/// session. 16 × `max_packet_bytes`, at least 16 MiB, at most MQTT's 256 MiB.
pub fn incoming_ceiling(max_packet_bytes: usize) -> usize {
    max_packet_bytes
        .saturating_mul(16)
        .clamp(16 * 1024 * 1024, 268_435_455)
}

fn lock(tracker: &Mutex<DeliveryTracker>) -> MutexGuard<'_, DeliveryTracker> {
    // The tracker holds plain data; a panic elsewhere cannot leave it half-updated.
    tracker.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

impl Link {
    /// Starts connecting. Must be called inside a Tokio runtime. The first event is
    /// [`LinkEvent::Connected`] or [`LinkEvent::Disconnected`].
    pub fn open(conn: &ResolvedConnection, options: &LinkOptions) -> Link {
        let s = &conn.settings;
        let inflight = options.inflight.max(1);
        // Requests queued in rumqttc: the window plus room for subscribes and DISCONNECT,
        // so a publish inside the window never waits for the channel.
        let capacity = usize::from(inflight) + 16;
        let tracker = Arc::new(Mutex::new(DeliveryTracker::new()));
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let session_present = Arc::new(AtomicBool::new(false));
        // An empty client id cannot have a kept session (rumqttc asserts it; the settings
        // refuse one, this keeps a caller's mistake from becoming a panic).
        let persistent = match options.session {
            SessionMode::Persistent { expiry } if !options.client_id.is_empty() => {
                Some(u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX))
            }
            _ => None,
        };
        let ends = SessionWatch {
            client_id: options.client_id.clone(),
            session_present: session_present.clone(),
            connected_at: None,
            disconnecting: false,
        };
        let (client, task) = match s.protocol {
            Protocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(options.client_id.clone(), s.host.clone(), s.port);
                o.set_keep_alive(s.keep_alive.max(Duration::from_secs(1)))
                    .set_clean_session(persistent.is_none())
                    .set_max_packet_size(incoming_ceiling(s.max_packet_bytes), s.max_packet_bytes)
                    .set_inflight(inflight)
                    .set_request_channel_capacity(capacity);
                if let Some(user) = &s.username {
                    o.set_credentials(user.clone(), conn.password.clone().unwrap_or_default());
                }
                if let Some(w) = &options.will {
                    o.set_last_will(rumqttc::LastWill {
                        topic: w.topic.clone(),
                        message: w.payload.clone(),
                        qos: v4_qos(w.qos),
                        retain: w.retain,
                    });
                }
                if let Some(tls) = &conn.tls {
                    o.set_transport(rumqttc::Transport::tls_with_config(
                        rumqttc::TlsConfiguration::Rustls(tls.clone()),
                    ));
                }
                let (client, eventloop) = rumqttc::AsyncClient::new(o, capacity);
                let task = tokio::spawn(run_v4(eventloop, tracker.clone(), tx, s.max_packet_bytes, ends));
                (Client::V4(client), task)
            }
            Protocol::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(options.client_id.clone(), s.host.clone(), s.port);
                // Sent in CONNECT as Maximum Packet Size: the broker drops larger messages
                // for this client instead of sending them.
                o.set_keep_alive(s.keep_alive.max(Duration::from_secs(1)))
                    .set_clean_start(persistent.is_none())
                    .set_max_packet_size(Some(u32::try_from(s.max_packet_bytes).unwrap_or(u32::MAX)))
                    .set_outgoing_inflight_upper_limit(inflight)
                    .set_request_channel_capacity(capacity);
                if persistent.is_some() {
                    // Without it an MQTT 5 session ends with the connection, clean start or not.
                    o.set_session_expiry_interval(persistent);
                }
                if let Some(user) = &s.username {
                    o.set_credentials(user.clone(), conn.password.clone().unwrap_or_default());
                }
                if let Some(w) = &options.will {
                    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill {
                        topic: Bytes::copy_from_slice(w.topic.as_bytes()),
                        message: w.payload.clone(),
                        qos: v5_qos(w.qos),
                        retain: w.retain,
                        properties: None,
                    });
                }
                if let Some(tls) = &conn.tls {
                    o.set_transport(rumqttc::Transport::tls_with_config(
                        rumqttc::TlsConfiguration::Rustls(tls.clone()),
                    ));
                }
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(o, capacity);
                let task = tokio::spawn(run_v5(eventloop, tracker.clone(), tx, ends));
                (Client::V5(client), task)
            }
        };
        Link {
            client,
            events,
            tracker,
            task,
            next_token: 1,
            session_present,
        }
    }

    /// Whether the broker resumed a session it had kept for this client id (read after
    /// [`LinkEvent::Connected`]). `false` with [`SessionMode::Persistent`] means what was
    /// published while the client was away is not coming.
    pub fn session_present(&self) -> bool {
        self.session_present.load(Ordering::Relaxed)
    }

    /// The next event; [`LinkEvent::Disconnected`] once the session has ended (repeatedly).
    pub async fn next(&mut self) -> LinkEvent {
        match self.events.recv().await {
            Some(event) => event,
            None => LinkEvent::Disconnected("the MQTT event loop stopped".into()),
        }
    }

    /// Queues a publish and returns its token, by which [`LinkEvent::Delivered`] reports
    /// it. Tokens increase with every publish. Does not wait while fewer than the in-flight
    /// window are outstanding.
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: Bytes,
    ) -> Result<u64, LinkClosed> {
        let token = self.next_token;
        self.next_token += 1;
        // Registered before it is handed over, so the event loop always finds it.
        lock(&self.tracker).submitted(token, qos);
        let sent = match &self.client {
            Client::V4(c) => c.publish_bytes(topic, v4_qos(qos), retain, payload).await.is_ok(),
            Client::V5(c) => c.publish_bytes(topic, v5_qos(qos), retain, payload).await.is_ok(),
        };
        if sent {
            Ok(token)
        } else {
            lock(&self.tracker).withdraw(token);
            Err(LinkClosed)
        }
    }

    /// Subscribes to topic filters.
    pub async fn subscribe(&self, filters: &[String], qos: Qos) -> Result<(), LinkClosed> {
        if filters.is_empty() {
            return Ok(());
        }
        let result = match &self.client {
            Client::V4(c) => c
                .subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), v4_qos(qos))),
                )
                .await
                .is_ok(),
            Client::V5(c) => c
                .subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::v5::mqttbytes::v5::Filter::new(f.clone(), v5_qos(qos))),
                )
                .await
                .is_ok(),
        };
        if result { Ok(()) } else { Err(LinkClosed) }
    }

    /// Publishes not yet confirmed, rejected or lost.
    pub fn outstanding(&self) -> usize {
        lock(&self.tracker).outstanding()
    }

    /// Waits (up to `timeout`) until every publish is confirmed, collecting what happens
    /// meanwhile; then sends DISCONNECT, so the broker discards the will.
    pub async fn close(mut self, timeout: Duration) -> Vec<LinkEvent> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.outstanding() > 0 {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    let end = matches!(event, LinkEvent::Disconnected(_));
                    seen.push(event);
                    if end {
                        return seen;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let _ = match &self.client {
            Client::V4(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
        };
        // Let the event loop write the DISCONNECT before the task is dropped.
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.task).await;
        while let Ok(event) = self.events.try_recv() {
            seen.push(event);
        }
        seen
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends deliveries; `false` once the owner is gone.
async fn deliver(tx: &mpsc::Sender<LinkEvent>, delivery: Option<Delivery>) -> bool {
    match delivery {
        Some(d) => tx.send(LinkEvent::Delivered(d)).await.is_ok(),
        None => true,
    }
}

async fn end(tx: &mpsc::Sender<LinkEvent>, tracker: &Mutex<DeliveryTracker>, why: String) {
    let lost = lock(tracker).on_session_end();
    for d in lost {
        if tx.send(LinkEvent::Delivered(d)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(LinkEvent::Disconnected(why)).await;
}

async fn run_v4(
    mut eventloop: rumqttc::EventLoop,
    tracker: Arc<Mutex<DeliveryTracker>>,
    tx: mpsc::Sender<LinkEvent>,
    max_packet_bytes: usize,
    mut watch: SessionWatch,
) {
    use rumqttc::{ConnectionError, Event, Outgoing, Packet, StateError};
    loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(e) => {
                let closed_by_broker = match &e {
                    ConnectionError::MqttState(StateError::ConnectionAborted) => true,
                    ConnectionError::MqttState(StateError::Io(io)) | ConnectionError::Io(io) => {
                        peer_closed(io)
                    }
                    _ => false,
                };
                let why = watch.ended(closed_by_broker, false, &e.to_string());
                end(&tx, &tracker, why).await;
                return;
            }
        };
        let ok = match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                watch.connected(ack.session_present);
                tx.send(LinkEvent::Connected).await.is_ok()
            }
            Event::Incoming(Packet::Publish(p)) => {
                let bytes = p.topic.len() + p.payload.len();
                let event = if bytes > max_packet_bytes {
                    LinkEvent::Oversized {
                        topic: p.topic,
                        bytes,
                    }
                } else {
                    LinkEvent::Message {
                        topic: p.topic,
                        payload: p.payload,
                        retain: p.retain,
                    }
                };
                tx.send(event).await.is_ok()
            }
            Event::Incoming(Packet::PubAck(a)) => {
                let d = lock(&tracker).on_puback(a.pkid, None);
                deliver(&tx, d).await
            }
            Event::Incoming(Packet::PubComp(c)) => {
                let d = lock(&tracker).on_pubcomp(c.pkid);
                deliver(&tx, d).await
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let d = lock(&tracker).on_outgoing_publish(pkid);
                deliver(&tx, d).await
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                lock(&tracker).on_await_ack(pkid);
                true
            }
            Event::Outgoing(Outgoing::Disconnect) => {
                watch.disconnecting = true;
                true
            }
            _ => true,
        };
        if !ok {
            return;
        }
    }
}

async fn run_v5(
    mut eventloop: rumqttc::v5::EventLoop,
    tracker: Arc<Mutex<DeliveryTracker>>,
    tx: mpsc::Sender<LinkEvent>,
    mut watch: SessionWatch,
) {
    use rumqttc::Outgoing;
    use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, Packet, PubAckReason, PubRecReason};
    use rumqttc::v5::{ConnectionError, Event, StateError};
    loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(e) => {
                let (closed_by_broker, taken_over) = match &e {
                    ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
                        (false, *reason_code == DisconnectReasonCode::SessionTakenOver)
                    }
                    ConnectionError::MqttState(StateError::ConnectionAborted) => (true, false),
                    ConnectionError::MqttState(StateError::Io(io)) | ConnectionError::Io(io) => {
                        (peer_closed(io), false)
                    }
                    _ => (false, false),
                };
                let why = watch.ended(closed_by_broker, taken_over, &e.to_string());
                end(&tx, &tracker, why).await;
                return;
            }
        };
        let ok = match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                watch.connected(ack.session_present);
                tx.send(LinkEvent::Connected).await.is_ok()
            }
            Event::Incoming(Packet::Publish(p)) => {
                // Topics arrive as bytes in MQTT 5; a non-UTF-8 topic is a broker bug.
                match String::from_utf8(p.topic.to_vec()) {
                    Ok(topic) => tx
                        .send(LinkEvent::Message {
                            topic,
                            payload: p.payload,
                            retain: p.retain,
                        })
                        .await
                        .is_ok(),
                    Err(_) => true,
                }
            }
            Event::Incoming(Packet::PubAck(a)) => {
                let failure = match a.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                    other => Some(format!("{other:?}")),
                };
                let d = lock(&tracker).on_puback(a.pkid, failure);
                deliver(&tx, d).await
            }
            Event::Incoming(Packet::PubRec(r)) => {
                let failure = match r.reason {
                    PubRecReason::Success | PubRecReason::NoMatchingSubscribers => None,
                    other => Some(format!("{other:?}")),
                };
                let d = lock(&tracker).on_pubrec(r.pkid, failure);
                deliver(&tx, d).await
            }
            Event::Incoming(Packet::PubComp(c)) => {
                let d = lock(&tracker).on_pubcomp(c.pkid);
                deliver(&tx, d).await
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let d = lock(&tracker).on_outgoing_publish(pkid);
                deliver(&tx, d).await
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                lock(&tracker).on_await_ack(pkid);
                true
            }
            Event::Outgoing(Outgoing::Disconnect) => {
                watch.disconnecting = true;
                true
            }
            _ => true,
        };
        if !ok {
            return;
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

/// What the event loop knows of its connection, to say how it ended.
struct SessionWatch {
    client_id: String,
    session_present: Arc<AtomicBool>,
    /// When the CONNACK came; `None` while connecting.
    connected_at: Option<Instant>,
    /// The gateway sent DISCONNECT: the end is its own doing.
    disconnecting: bool,
}

impl SessionWatch {
    fn connected(&mut self, session_present: bool) {
        self.connected_at = Some(Instant::now());
        self.session_present.store(session_present, Ordering::Relaxed);
    }

    /// The text of [`LinkEvent::Disconnected`]; tells [`takeover`] how the session ended.
    fn ended(&self, closed_by_broker: bool, taken_over: bool, raw: &str) -> String {
        if self.disconnecting {
            takeover::session_ended(&self.client_id, SessionEnd::Other);
            return "closed by the gateway".to_owned();
        }
        let end = match self.connected_at {
            Some(_) if taken_over => SessionEnd::TakenOver,
            Some(at) if closed_by_broker => SessionEnd::ClosedByBroker { after: at.elapsed() },
            _ => SessionEnd::Other,
        };
        let text = connection_error_text(raw);
        match takeover::session_ended(&self.client_id, end) {
            Some(suspect) => format!("{suspect} ({text})"),
            None => text,
        }
    }
}

/// rumqttc's errors name Rust types; say what an engineer needs to know.
fn connection_error_text(raw: &str) -> String {
    // rustls' certificate errors, as they appear in rumqttc's TLS error text.
    let tls = [
        (
            "UnknownIssuer",
            "the broker's certificate is not signed by a CA in tls.ca (or, without tls.ca, the system's roots)",
        ),
        (
            "NotValidForName",
            "the broker's certificate is not valid for the host name in `broker`",
        ),
        ("Expired", "the broker's certificate has expired"),
        (
            "NotValidYet",
            "the broker's certificate is not valid yet (check the clock)",
        ),
        (
            "CertificateRequired",
            "the broker requires a client certificate: set tls.cert and tls.key",
        ),
        (
            "alert: BadCertificate",
            "the broker refused the client certificate (tls.cert)",
        ),
        (
            "alert: UnknownCA",
            "the broker does not trust the client certificate's CA (tls.cert)",
        ),
    ];
    if let Some((_, meaning)) = tls.iter().find(|(needle, _)| raw.contains(needle)) {
        return format!("{meaning}: {raw}");
    }
    if raw.contains("size limit") {
        return format!(
            "the broker sent a packet over the hard ceiling of 16 × max_packet_bytes (at least 16 MiB), which ends the session; under MQTT 3.1.1 its topic cannot be known. Use protocol = \"5\" (the broker then drops it), or clear the message at the broker: {raw}"
        );
    }
    if raw.contains("Connection refused") || raw.contains("ConnectionRefused") {
        if raw.contains("BadUserNamePassword") || raw.contains("NotAuthorized") || raw.contains("BadUserName")
        {
            return format!("the broker refused the login (check username and password): {raw}");
        }
        return format!("the broker refused the connection: {raw}");
    }
    raw.to_owned()
}
