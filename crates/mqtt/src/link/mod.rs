//! One MQTT session, 3.1.1 or 5, with delivery confirmation.
//!
//! A [`Link`] connects once, and ends for good at the first connection error: its owner
//! decides when to open the next one (with [`backplane_connector::Backoff`]) and what to
//! publish again. Keeping one connection per link is what makes delivery tracking sound:
//! nothing is resent behind the tracker's back. The sinks connect with a clean session; a
//! subscriber may ask the broker to keep its session between links
//! ([`SessionMode::Persistent`]), so messages published meanwhile wait for it.
//!
//! How each connection ended is told to [`crate::takeover`], which notices two clients
//! dropping each other because they share a client id.
//!
//! The session is ours, over rumqttc's packet codec ([`wire`]): rumqttc's client writes
//! and flushes each publish on its own, through a channel and a poll of its event loop,
//! which made it most of a message's cost (docs/performance.md). Here a publish is
//! encoded straight into a shared buffer and the connection task ([`conn`]) writes
//! whatever has gathered in one system call; confirmations come back by the batch
//! ([`Link::drain_deliveries`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use backplane_model::Timestamp;
use bytes::{Bytes, BytesMut};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::delivery::{Delivery, DeliveryTracker, Report, Reports};
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
    /// Where to record, for a sample of the publishes given a birth time
    /// ([`Link::publish_stamped`]), the delay from that time to the write to the socket.
    pub write_delay: Option<Histogram>,
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

mod batch;
mod conn;
mod gather;
pub mod wire;

pub use batch::{InPlace, PublishBatch};

/// The state the owner, the publishers and the connection task share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: there is something to write.
    to_writer: Notify,
    /// Wakes the owner: deliveries to take.
    to_owner: Notify,
    /// Wakes publishers waiting for room (buffer written, packet ids freed).
    drained: Notify,
}

struct State {
    /// Encoded packets waiting for the writer.
    out: BytesMut,
    /// Birth times (Unix ns) of the sampled publishes in `out` ([`LinkOptions::write_delay`]).
    stamps: Vec<i64>,
    tracker: DeliveryTracker,
    /// What became of publishes, for the owner, in order.
    deliveries: Reports,
    /// Most QoS 1 and 2 publishes unacknowledged at once: `inflight`, or less if an MQTT 5
    /// broker says so (Receive Maximum).
    inflight_cap: usize,
    /// Largest packet sent: `max_packet_bytes`, or less if an MQTT 5 broker says so.
    max_out: usize,
    ping_outstanding: bool,
    publisher_waiting: bool,
    /// [`Link::close`] asked for DISCONNECT.
    disconnecting: bool,
    /// The session has ended; nothing more is sent.
    ended: bool,
}

/// One in this many publishes with a birth time has its write delay recorded: enough for
/// percentiles at any rate worth measuring, and the histogram's lock stays off the path.
pub const STAMP_EVERY: u32 = 8;

/// Encoded bytes a publisher may leave waiting for the writer before it waits itself:
/// bounds the buffer when the broker reads slower than the gateway publishes.
const OUT_HIGH_WATER: usize = 1024 * 1024;

/// A publish on its way into the outgoing buffer.
struct Outgoing<'a> {
    topic: &'a str,
    qos: Qos,
    retain: bool,
    payload: &'a [u8],
}

/// What became of a publish offered to the outgoing buffer ([`State::submit`]).
enum Submit {
    /// Encoded; the writer must be woken if the buffer was empty before.
    Encoded { was_empty: bool },
    /// Over the packet size the broker accepts: reported [`Delivery::Rejected`], the owner
    /// to be woken.
    Rejected,
    /// The session has ended.
    Closed,
    /// The buffer is over its high-water mark or the window is full: the publisher waits.
    NoRoom,
}

impl State {
    /// Encodes `m` as publish `token` if the outgoing buffer and the window have room.
    /// `stamp` is asked only for a publish encoded: its birth time (Unix ns) if its write
    /// delay is to be recorded.
    fn submit(
        &mut self,
        protocol: Protocol,
        token: u64,
        m: &Outgoing<'_>,
        stamp: impl FnOnce() -> Option<i64>,
    ) -> Submit {
        if self.ended {
            return Submit::Closed;
        }
        let size = wire::publish_size(protocol, m.topic, m.qos, m.payload.len());
        if m.topic.len() > usize::from(u16::MAX) || size.is_none_or(|n| n > self.max_out) {
            let reason = format!(
                "{} bytes, over the largest packet the broker takes ({} bytes, max_packet_bytes)",
                size.unwrap_or(usize::MAX),
                self.max_out
            );
            self.deliveries.push(Delivery::Rejected { token, reason });
            return Submit::Rejected;
        }
        let window_full = m.qos != Qos::AtMostOnce && self.tracker.outstanding() >= self.inflight_cap;
        if self.out.len() < OUT_HIGH_WATER
            && !window_full
            && let Some(pkid) = self.tracker.submitted(token, m.qos)
        {
            let was_empty = self.out.is_empty();
            wire::publish(protocol, m.topic, m.qos, m.retain, pkid, m.payload, &mut self.out);
            if let Some(born) = stamp() {
                self.stamps.push(born);
            }
            return Submit::Encoded { was_empty };
        }
        self.publisher_waiting = true;
        Submit::NoRoom
    }
}

impl State {
    /// [`submit`](Self::submit) of a publish whose topic is `topic`'s parts joined and
    /// whose payload `payload` writes straight into the outgoing buffer
    /// ([`wire::publish_in_place`]). `Unwritten`, with nothing left in the buffer, if
    /// `payload` returns `false` or the topic is over 65 535 bytes: the caller sends it
    /// the usual way, which says why.
    fn submit_in_place(
        &mut self,
        protocol: Protocol,
        token: u64,
        m: &InPlaceMessage<'_>,
        payload: impl FnOnce(&mut BytesMut) -> bool,
        stamp: impl FnOnce() -> Option<i64>,
    ) -> InPlaceSubmit {
        if self.ended {
            return InPlaceSubmit::Done(Submit::Closed);
        }
        let window_full = m.qos != Qos::AtMostOnce && self.tracker.outstanding() >= self.inflight_cap;
        if self.out.len() >= OUT_HIGH_WATER || window_full {
            self.publisher_waiting = true;
            return InPlaceSubmit::Done(Submit::NoRoom);
        }
        let was_empty = self.out.is_empty();
        let Some(written) = wire::publish_in_place(protocol, m, &mut self.out, payload) else {
            return InPlaceSubmit::Unwritten;
        };
        if written.size > self.max_out {
            self.out.truncate(written.start);
            let reason = format!(
                "{} bytes, over the largest packet the broker takes ({} bytes, max_packet_bytes)",
                written.size, self.max_out
            );
            self.deliveries.push(Delivery::Rejected { token, reason });
            return InPlaceSubmit::Done(Submit::Rejected);
        }
        let Some(pkid) = self.tracker.submitted(token, m.qos) else {
            // No packet id free: written for nothing, sent later the usual way.
            self.out.truncate(written.start);
            self.publisher_waiting = true;
            return InPlaceSubmit::Done(Submit::NoRoom);
        };
        if let Some(at) = written.pkid_at {
            self.out[at..at + 2].copy_from_slice(&pkid.to_be_bytes());
        }
        if let Some(born) = stamp() {
            self.stamps.push(born);
        }
        InPlaceSubmit::Done(Submit::Encoded { was_empty })
    }
}

/// A publish to be written in place ([`PublishBatch::publish_in_place`]): all of it but
/// its payload, which its writer puts straight into the outgoing buffer.
#[derive(Clone, Copy, Debug)]
pub struct InPlaceMessage<'a> {
    /// The topic's two parts, joined on the wire.
    pub topic: [&'a str; 2],
    pub qos: Qos,
    pub retain: bool,
    /// As for [`Link::publish_stamped`].
    pub born: Option<Timestamp>,
    /// The payload's expected size, reserved at once.
    pub room: usize,
}

/// What became of a publish offered to be written in place ([`State::submit_in_place`]).
enum InPlaceSubmit {
    Done(Submit),
    /// Not written, no token used: to be sent the usual way.
    Unwritten,
}

/// Whether a publish with birth time `born` has its write delay recorded: one in
/// [`STAMP_EVERY`] of them, counted in `unstamped`.
fn take_stamp(unstamped: &mut u32, recording: bool, born: Option<Timestamp>) -> Option<i64> {
    let t = born.filter(|_| recording)?;
    *unstamped += 1;
    (*unstamped >= STAMP_EVERY).then(|| {
        *unstamped = 0;
        t.unix_nanos()
    })
}

/// One MQTT session. Dropping it drops the connection without DISCONNECT (the broker
/// then publishes the will); [`Link::close`] ends it cleanly.
pub struct Link {
    protocol: Protocol,
    shared: Arc<Shared>,
    events: mpsc::Receiver<LinkEvent>,
    /// Events taken from the shared state or the channel, not yet returned.
    pending: VecDeque<Queued>,
    /// Deliveries taken by [`Link::drain_deliveries`] (reused).
    taken: Reports,
    task: JoinHandle<()>,
    next_token: u64,
    /// Publishes with a birth time since the last one recorded.
    unstamped: u32,
    recording_delay: bool,
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

/// An event taken from the shared state or the channel, not yet returned. Confirmations
/// stay runs until [`Link::next`] hands them out one by one.
enum Queued {
    Event(LinkEvent),
    Report(Report),
}

/// Events waiting for the owner. When full, the reader waits: the owner's pace bounds
/// what is read from the broker.
const EVENT_QUEUE: usize = 1024;

/// What the link reads of one incoming MQTT 3.1.1 packet at most. MQTT 3.1.1 cannot tell the
/// broker a limit, and a packet over the limit cannot be skipped without reading it: a
/// retained one would end every session at subscribe. So the link reads up to this ceiling
/// (bounded memory) and messages between `max_packet_bytes` and it are refused one by one
/// ([`LinkEvent::Oversized`]); only a packet beyond it still ends the session.
/// 16 × `max_packet_bytes`, at least 16 MiB, at most MQTT's 256 MiB.
pub fn incoming_ceiling(max_packet_bytes: usize) -> usize {
    max_packet_bytes
        .saturating_mul(16)
        .clamp(16 * 1024 * 1024, 268_435_455)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state holds plain data; a panic elsewhere cannot leave it half-updated.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Link {
    /// Starts connecting. Must be called inside a Tokio runtime. The first event is
    /// [`LinkEvent::Connected`] or [`LinkEvent::Disconnected`].
    pub fn open(conn: &ResolvedConnection, options: &LinkOptions) -> Link {
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let session_present = Arc::new(AtomicBool::new(false));
        // An empty client id cannot have a kept session (the settings refuse one; this
        // keeps a caller's mistake from reaching the broker).
        let persistent = match options.session {
            SessionMode::Persistent { expiry } if !options.client_id.is_empty() => {
                Some(u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX))
            }
            _ => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                out: BytesMut::new(),
                stamps: Vec::new(),
                tracker: DeliveryTracker::new(),
                deliveries: Reports::default(),
                inflight_cap: usize::from(options.inflight.max(1)),
                max_out: conn.settings.max_packet_bytes,
                ping_outstanding: false,
                publisher_waiting: false,
                disconnecting: false,
                ended: false,
            }),
            to_writer: Notify::new(),
            to_owner: Notify::new(),
            drained: Notify::new(),
        });
        let watch = SessionWatch {
            client_id: options.client_id.clone(),
            session_present: session_present.clone(),
            connected_at: None,
            disconnecting: false,
        };
        let task = conn::Task {
            conn: conn.clone(),
            options: options.clone(),
            shared: shared.clone(),
            tx,
            watch,
            persistent,
        };
        Link {
            protocol: conn.settings.protocol,
            shared,
            events,
            pending: VecDeque::new(),
            taken: Reports::default(),
            task: tokio::spawn(task.run()),
            next_token: 1,
            unstamped: 0,
            recording_delay: options.write_delay.is_some(),
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
    /// Cancel-safe.
    pub async fn next(&mut self) -> LinkEvent {
        loop {
            if let Some(event) = self.pop_pending() {
                return event;
            }
            if self.take_deliveries() {
                continue;
            }
            tokio::select! {
                biased;
                () = self.shared.to_owner.notified() => {}
                event = self.events.recv() => {
                    let event = event.unwrap_or_else(|| LinkEvent::Disconnected("the MQTT connection task stopped".into()));
                    // Deliveries reported before it come first (the losses before
                    // Disconnected).
                    self.take_deliveries();
                    self.pending.push_back(Queued::Event(event));
                }
            }
        }
    }

    fn take_deliveries(&mut self) -> bool {
        let mut s = lock(&self.shared.state);
        if s.deliveries.is_empty() {
            return false;
        }
        self.pending.extend(s.deliveries.drain().map(Queued::Report));
        true
    }

    /// The next event waiting, a run of confirmations giving its first and keeping the
    /// rest, still a run, for [`drain_deliveries`](Self::drain_deliveries).
    fn pop_pending(&mut self) -> Option<LinkEvent> {
        match self.pending.pop_front()? {
            Queued::Event(event) => Some(event),
            Queued::Report(Report::Other(d)) => Some(LinkEvent::Delivered(d)),
            Queued::Report(Report::Confirmed { first, count }) => {
                if count > 1 {
                    self.pending.push_front(Queued::Report(Report::Confirmed {
                        first: first + 1,
                        count: count - 1,
                    }));
                }
                Some(LinkEvent::Delivered(Delivery::Confirmed(first)))
            }
        }
    }

    /// Hands every delivery reported so far to `f`, in order, without waiting:
    /// consecutive confirmations as one [`Report::Confirmed`] run. A sink calls it after
    /// each step, so confirmations are taken and settled by the run rather than one event
    /// each.
    pub fn drain_deliveries(&mut self, mut f: impl FnMut(Report)) {
        if !self.pending.is_empty() {
            for queued in std::mem::take(&mut self.pending) {
                match queued {
                    Queued::Report(report) => f(report),
                    other => self.pending.push_back(other),
                }
            }
            if !self.pending.is_empty() {
                // Keep the order with events already taken (a Disconnected after losses).
                return;
            }
        }
        // Swapped, not taken: both keep their capacity from batch to batch.
        std::mem::swap(&mut self.taken, &mut lock(&self.shared.state).deliveries);
        for report in self.taken.drain() {
            f(report);
        }
    }

    /// Encodes a publish for the writer and returns its token, by which
    /// [`LinkEvent::Delivered`] reports it. Tokens increase with every publish. Waits only
    /// while the outgoing buffer is full or every packet id (or the broker's Receive
    /// Maximum) is in use. A message over the packet size the broker accepts is reported
    /// [`Delivery::Rejected`] at once.
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: &[u8],
    ) -> Result<u64, LinkClosed> {
        self.publish_stamped(topic, qos, retain, payload, None).await
    }

    /// [`publish`](Self::publish), with the time the message's data was born (a sample's
    /// gateway time, taken at the device's answer): one in [`STAMP_EVERY`] such publishes
    /// has its delay to the socket write recorded in [`LinkOptions::write_delay`].
    pub async fn publish_stamped(
        &mut self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: &[u8],
        born: Option<Timestamp>,
    ) -> Result<u64, LinkClosed> {
        // Mostly there is room: tried first without registering for a wake-up. Each try
        // is a batch of one, let go (and its wake-ups sent) before any wait.
        let done = self.batch().publish_stamped(topic, qos, retain, payload, born);
        if let Some(done) = done {
            return done;
        }
        let shared = self.shared.clone();
        loop {
            // Registered before the state is checked again, so a wake-up in between is
            // not missed.
            let waiting = shared.drained.notified();
            tokio::pin!(waiting);
            waiting.as_mut().enable();
            let done = self.batch().publish_stamped(topic, qos, retain, payload, born);
            if let Some(done) = done {
                return done;
            }
            waiting.await;
        }
    }

    /// Publishes submitted under one lock of the shared state, for a publisher with many
    /// messages ready: [`PublishBatch::publish_stamped`] encodes while there is room and
    /// says when there is none, so the publisher goes on with
    /// [`publish_stamped`](Self::publish_stamped), which waits. The writer is woken when
    /// the batch lets the lock go (every 256 messages, and when it is dropped).
    pub fn batch(&mut self) -> PublishBatch<'_> {
        PublishBatch::new(
            &self.shared,
            self.protocol,
            &mut self.next_token,
            &mut self.unstamped,
            self.recording_delay,
        )
    }

    /// Subscribes to topic filters.
    pub async fn subscribe(&self, filters: &[String], qos: Qos) -> Result<(), LinkClosed> {
        if filters.is_empty() {
            return Ok(());
        }
        let mut s = lock(&self.shared.state);
        if s.ended {
            return Err(LinkClosed);
        }
        let Some(pkid) = s.tracker.subscribing() else {
            return Err(LinkClosed);
        };
        let State { out, .. } = &mut *s;
        if let Err(e) = wire::subscribe(self.protocol, pkid, filters, qos, out) {
            tracing::warn!(error = %e, "mqtt: cannot subscribe");
            return Err(LinkClosed);
        }
        drop(s);
        self.shared.to_writer.notify_one();
        Ok(())
    }

    /// Publishes not yet confirmed, rejected or lost.
    pub fn outstanding(&self) -> usize {
        lock(&self.shared.state).tracker.outstanding()
    }

    /// Waits (up to `timeout`) until every publish is confirmed, collecting what happens
    /// meanwhile; then sends DISCONNECT, so the broker discards the will.
    pub async fn close(mut self, timeout: Duration) -> Vec<LinkEvent> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.outstanding() > 0 || !self.pending.is_empty() {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(event) => {
                    let end = matches!(event, LinkEvent::Disconnected(_));
                    seen.push(event);
                    if end {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        {
            let mut s = lock(&self.shared.state);
            if !s.ended {
                s.disconnecting = true;
                wire::disconnect(self.protocol, &mut s.out);
            }
        }
        self.shared.to_writer.notify_one();
        // Let the writer send the DISCONNECT before the task is dropped.
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.task).await;
        self.take_deliveries();
        while let Some(event) = self.pop_pending() {
            seen.push(event);
        }
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
