//! The UNS publishing session as a state machine. It does no I/O: the driver
//! (`sink.rs`) feeds it connection events, the engine's deliveries, the broker's
//! confirmations and the time, publishes what it hands out and carries out its
//! [`Action`]s. Everything here is tested without a broker.
//!
//! - Connection: input is read only while connected, so while the broker is away the
//!   backlog waits in the store-and-forward log, not in memory. Every connection starts
//!   with the online status and a snapshot of every known value (the broker may have lost
//!   its retained messages).
//! - In flight: messages are handed out while fewer than `max_inflight` publishes are
//!   unconfirmed. A log record is acknowledged once every message made from it is
//!   confirmed or refused for good ([`Groups`]). At a disconnect whatever was not
//!   confirmed is dropped; the engine sends those records again, marked replay.
//! - Retain: a sample newer than its tag's latest becomes the latest and is retained; an
//!   older one (a replay behind live data) is sent unretained, so the retained state never
//!   goes back in time ([`Latest`]).
//! - Batching (`batch_linger`): live samples only mark their tags, and the flush at the
//!   end of the linger publishes the latest of each. Without it, and for replays, every
//!   sample is its own message, so every stream number reaches the broker.
//! - In place ([`Session::on_delivery_into`]): without batching, a sample's message is
//!   written straight into the link's outgoing buffer (an [`Outlet`]) while the window
//!   has room and nothing waits before it; no payload buffer, queue entry or copy. What
//!   the outlet does not take queues as before, and everything after it behind it.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_connector::{Batch, Delivery, Topology};
use backplane_model::{Sample, TagId, Timestamp};

use super::config::MqttSinkSettings;
use super::namespace::{Message, MessageKind, Namespace, Topic, status};
use super::pool::BufferPool;
use crate::common::{Groups, Unconfirmed};
use crate::delivery::{Delivery as Confirmation, Report};
use crate::link::{InPlace, InPlaceMessage, PublishBatch, Will};
use crate::settings::Qos;
use bytes::BytesMut;

/// Most messages made and not yet handed to the client before the sink reads more input.
const PENDING_MAX: usize = 4096;

/// No stream number: the log's numbers never reach it (one a sample, from 0).
const NO_SEQ: u64 = u64::MAX;

/// The latest sample of every tag (what the namespace's state topics hold, or will once
/// published) and the tags and assets changed since the last flush. No I/O.
#[derive(Debug)]
pub struct Latest {
    latest: Vec<Option<Sample>>,
    /// The stream number of each tag's latest sample; [`NO_SEQ`] for none (half the room
    /// of an `Option<u64>`, per tag).
    latest_seq: Vec<u64>,
    dirty: Vec<bool>,
    dirty_tags: Vec<TagId>,
    dirty_assets: Vec<usize>,
    asset_dirty: Vec<bool>,
    /// Per asset, the gateway time of the oldest live sample that changed it since the
    /// last flush: its instance message's [`born`](Message::born), so the device-to-socket
    /// delay covers the instance form too. Replays leave it alone (their age is not a
    /// delay of the path).
    asset_born: Vec<Option<Timestamp>>,
    /// Payload buffers of messages handed out, for the next ones.
    buffers: BufferPool,
}

impl Latest {
    pub fn new(topology: &Topology) -> Latest {
        let tags = topology.tags.len();
        Latest {
            latest: vec![None; tags],
            latest_seq: vec![NO_SEQ; tags],
            dirty: vec![false; tags],
            dirty_tags: Vec::new(),
            dirty_assets: Vec::new(),
            asset_dirty: vec![false; topology.assets.len()],
            asset_born: vec![None; topology.assets.len()],
            buffers: BufferPool::default(),
        }
    }

    /// Records a batch: events become messages at once, samples mark their tags for the
    /// next [`flush`](Self::flush) (several samples of one tag collapse into the latest).
    pub fn apply(&mut self, ns: &Namespace, batch: &Batch, out: &mut VecDeque<Message>) {
        let delivery = Delivery {
            batch: Arc::new(batch.clone()),
            record: None,
            seqs: None,
            replay: false,
        };
        self.apply_delivery(ns, &delivery, true, None, out);
    }

    /// Records a delivery from the engine. Events always become messages at once. With
    /// `coalesce` (batching on), live samples mark their tags for the next flush; without
    /// it, and for replays, every sample becomes its own attribute message, so every
    /// stream number reaches the broker. A sample newer than its tag's latest becomes the
    /// latest (retained); an older one (a replay behind live data) is sent unretained, so
    /// the retained state never goes back in time.
    pub fn apply_delivery(
        &mut self,
        ns: &Namespace,
        delivery: &Delivery,
        coalesce: bool,
        group: Option<u64>,
        out: &mut VecDeque<Message>,
    ) {
        self.apply_delivery_with(ns, delivery, coalesce, group, out, |_, _, _, _| false);
    }

    /// [`apply_delivery`](Self::apply_delivery), an attribute message offered first to
    /// `offer` (sample, stream number, replay, retain) while `out` is empty: `true` if it
    /// took the message (written it straight to the link), which then is not queued.
    /// Once `out` holds a message, the rest queue behind it, in order.
    pub fn apply_delivery_with(
        &mut self,
        ns: &Namespace,
        delivery: &Delivery,
        coalesce: bool,
        group: Option<u64>,
        out: &mut VecDeque<Message>,
        mut offer: impl FnMut(&Sample, Option<u64>, bool, bool) -> bool,
    ) {
        ns.event_messages(delivery, group, out);
        let coalesce = coalesce && !delivery.replay;
        // Changed assets are tracked only for instance messages; a message per sample is
        // made only for attribute messages (asked first, as it takes a payload buffer).
        let instances = ns.instances();
        let attributes = ns.attributes();
        for (k, sample) in delivery.batch.samples.iter().enumerate() {
            let i = sample.tag.index();
            let seq = delivery.sample_seq(k);
            let Some(slot) = self.latest.get_mut(i) else {
                continue;
            };
            let newest = slot
                .as_ref()
                .is_none_or(|l| sample.gateway_time >= l.gateway_time);
            if newest {
                // In place: the context, mostly the one held, is not cloned and dropped.
                match slot {
                    Some(latest) => latest.clone_from(sample),
                    None => *slot = Some(sample.clone()),
                }
                self.latest_seq[i] = seq.unwrap_or(NO_SEQ);
                if instances && let Some(asset) = ns.topology().tag(sample.tag).map(|t| t.asset) {
                    if !self.asset_dirty[asset] {
                        self.asset_dirty[asset] = true;
                        self.dirty_assets.push(asset);
                    }
                    if !delivery.replay {
                        let born = &mut self.asset_born[asset];
                        *born = Some(born.map_or(sample.gateway_time, |t| t.min(sample.gateway_time)));
                    }
                }
            }
            if coalesce {
                if !self.dirty[i] {
                    self.dirty[i] = true;
                    self.dirty_tags.push(sample.tag);
                }
            } else if attributes {
                let retain = newest && ns.retain();
                if out.is_empty() && offer(sample, seq, delivery.replay, retain) {
                    continue;
                }
                if let Some(m) =
                    ns.attribute_message(sample, seq, delivery.replay, retain, group, self.buffers.take())
                {
                    out.push_back(m);
                }
            }
        }
    }

    /// Whether samples are waiting for a flush.
    pub fn has_dirty(&self) -> bool {
        !self.dirty_tags.is_empty()
    }

    /// Messages for every tag and asset changed since the last flush.
    pub fn flush(&mut self, ns: &Namespace, out: &mut VecDeque<Message>) {
        self.flush_group(ns, None, out);
    }

    /// [`flush`](Self::flush), the messages belonging to acknowledgement `group`.
    pub fn flush_group(&mut self, ns: &Namespace, group: Option<u64>, out: &mut VecDeque<Message>) {
        self.flush_group_with(ns, group, out, |_, _, _| false);
    }

    /// [`flush_group`](Self::flush_group), an instance message offered first to `offer`
    /// (asset, the latest sample of every tag, birth time) while `out` is empty: `true` if
    /// it took the message, which then is not queued.
    pub fn flush_group_with(
        &mut self,
        ns: &Namespace,
        group: Option<u64>,
        out: &mut VecDeque<Message>,
        mut offer: impl FnMut(usize, &[Option<Sample>], Option<Timestamp>) -> bool,
    ) {
        let tags = std::mem::take(&mut self.dirty_tags);
        for tag in &tags {
            self.dirty[tag.index()] = false;
            if let Some(mut m) = self.attribute_message(ns, *tag) {
                m.group = group;
                out.push_back(m);
            }
        }
        self.dirty_tags = tags;
        self.dirty_tags.clear();
        let assets = std::mem::take(&mut self.dirty_assets);
        for asset in &assets {
            self.asset_dirty[*asset] = false;
            let born = self.asset_born[*asset].take();
            if out.is_empty() && offer(*asset, &self.latest, born) {
                continue;
            }
            if let Some(mut m) = ns.instance_message(*asset, &self.latest, self.buffers.take()) {
                m.group = group;
                m.born = born;
                out.push_back(m);
            }
        }
        self.dirty_assets = assets;
        self.dirty_assets.clear();
    }

    /// Messages for every tag and asset with a known value: what a consumer needs after
    /// the broker lost its retained messages, or after the gateway was away.
    pub fn snapshot(&mut self, ns: &Namespace, out: &mut VecDeque<Message>) {
        for tag in &mut self.dirty_tags.drain(..) {
            self.dirty[tag.index()] = false;
        }
        for asset in self.dirty_assets.drain(..) {
            self.asset_dirty[asset] = false;
            self.asset_born[asset] = None;
        }
        for i in 0..self.latest.len() {
            if let Some(mut m) = self.attribute_message(ns, TagId(i as u32)) {
                // Old values repeated: their age is not a delay of the path.
                m.born = None;
                out.push_back(m);
            }
        }
        for asset in 0..ns.topology().assets.len() {
            if let Some(m) = ns.instance_message(asset, &self.latest, self.buffers.take()) {
                out.push_back(m);
            }
        }
    }

    /// A tag's latest value as its (live, retained if configured) attribute message.
    fn attribute_message(&mut self, ns: &Namespace, tag: TagId) -> Option<Message> {
        let sample = self.latest.get(tag.index())?.as_ref()?;
        let seq = self.latest_seq.get(tag.index()).copied().filter(|s| *s != NO_SEQ);
        ns.attribute_message(sample, seq, false, ns.retain(), None, self.buffers.take())
    }

    /// The payload buffer of a message handed out (the link copied it), for reuse.
    pub fn recycle(&mut self, payload: Vec<u8>) {
        self.buffers.give(payload);
    }
}

/// What the driver must do besides publishing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Every message made from this log record is confirmed: acknowledge it to the engine.
    Ack(u64),
    /// The broker refused a message for good (resending would not help); `total` counts
    /// the refusals of this sink so far.
    Rejected { reason: String, total: u64 },
}

/// A message to publish now.
#[derive(Clone, Debug, PartialEq)]
pub struct Publish<'a> {
    pub topic: &'a str,
    /// Borrowed from the message waiting in the session: the link copies it into its
    /// buffer, so nothing is cloned or shared per message.
    pub payload: Cow<'a, [u8]>,
    pub qos: Qos,
    pub retain: bool,
    /// [`Message::born`](super::namespace::Message::born).
    pub born: Option<Timestamp>,
}

/// Where a message is written straight away, topic and payload in place: the link's
/// outgoing buffer in the sink ([`PublishBatch`](crate::link::PublishBatch)), a recorder
/// in tests.
pub trait Outlet {
    /// Submits message `m`, whose payload `payload` writes; its token if submitted,
    /// `None` (nothing submitted) if it is to be sent the usual way: no room now, the
    /// session ended, or not written.
    fn offer(&mut self, m: &InPlaceMessage<'_>, payload: impl FnOnce(&mut BytesMut) -> bool) -> Option<u64>;
}

impl Outlet for PublishBatch<'_> {
    fn offer(&mut self, m: &InPlaceMessage<'_>, payload: impl FnOnce(&mut BytesMut) -> bool) -> Option<u64> {
        match self.publish_in_place(m, payload) {
            InPlace::Taken(token) => Some(token),
            InPlace::NoRoom | InPlace::Closed | InPlace::Unwritten => None,
        }
    }
}

/// The outlet of [`Session::on_delivery`]: takes nothing, so every message queues.
struct Queue;

impl Outlet for Queue {
    fn offer(&mut self, _: &InPlaceMessage<'_>, _: impl FnOnce(&mut BytesMut) -> bool) -> Option<u64> {
        None
    }
}

/// An attribute payload's expected size: its fields, context and names (about 300
/// bytes for a number of a small asset).
const ATTRIBUTE_BYTES: usize = 512;

/// Offers a delivery's messages to an [`Outlet`] while the window has room, recording
/// each one taken as unconfirmed in the delivery's acknowledgement group.
struct InPlaceWriter<'a, O> {
    outlet: &'a mut O,
    unconfirmed: &'a mut Unconfirmed,
    outstanding: &'a mut usize,
    max_inflight: usize,
    qos: Qos,
    group: u64,
    taken: usize,
}

impl<O: Outlet> InPlaceWriter<'_, O> {
    /// `true` if the outlet took the message.
    fn offer(
        &mut self,
        topic: [&str; 2],
        retain: bool,
        born: Option<Timestamp>,
        room: usize,
        payload: impl FnOnce(&mut BytesMut) -> bool,
    ) -> bool {
        if *self.outstanding >= self.max_inflight {
            return false;
        }
        let m = InPlaceMessage {
            topic,
            qos: self.qos,
            retain,
            born,
            room,
        };
        let Some(token) = self.outlet.offer(&m, payload) else {
            return false;
        };
        self.unconfirmed.push(token, Some(self.group));
        *self.outstanding += 1;
        self.taken += 1;
        true
    }
}

/// One `mqtt` sink's publishing state across its MQTT sessions (see the module
/// documentation).
#[derive(Debug)]
pub struct Session {
    ns: Namespace,
    latest: Latest,
    gateway: String,
    status_topic: String,
    qos: Qos,
    linger: Duration,
    max_inflight: usize,
    connected: bool,
    /// The engine may still deliver; once closed the session drains and stops.
    input_open: bool,
    /// Made and not yet handed to the client.
    pending: VecDeque<Message>,
    /// The next message's topic, written out (reused).
    topic: String,
    /// Handed to the client and not yet confirmed: publish token → acknowledgement group.
    unconfirmed: Unconfirmed,
    groups: Groups,
    /// When the open batch is flushed (batching on, samples waiting).
    linger_until: Option<Instant>,
    rejected: u64,
}

impl Session {
    pub fn new(ns: Namespace, settings: &MqttSinkSettings, gateway: &str) -> Session {
        Session {
            latest: Latest::new(ns.topology()),
            status_topic: settings
                .status_topic
                .clone()
                .unwrap_or_else(|| ns.default_status_topic(gateway)),
            ns,
            gateway: gateway.to_owned(),
            qos: settings.qos,
            linger: settings.linger,
            max_inflight: usize::from(settings.max_inflight),
            connected: false,
            input_open: true,
            pending: VecDeque::new(),
            topic: String::new(),
            unconfirmed: Unconfirmed::default(),
            groups: Groups::default(),
            linger_until: None,
            rejected: 0,
        }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    pub fn status_topic(&self) -> &str {
        &self.status_topic
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the engine may still deliver (its input has not closed).
    pub fn is_input_open(&self) -> bool {
        self.input_open
    }

    /// Whether to read the next delivery now: only while connected, and while the
    /// messages not yet handed out are few.
    pub fn wants_input(&self) -> bool {
        self.input_open && self.connected && self.pending.len() < PENDING_MAX
    }

    /// When [`on_timer`](Self::on_timer) has work: the end of the open batch's linger.
    pub fn deadline(&self) -> Option<Instant> {
        self.linger_until
    }

    /// The Last Will of every connection: retained "offline" status, `connection_lost`.
    pub fn will(&self) -> Will {
        Will {
            topic: self.status_topic.clone(),
            payload: status(&self.gateway, false, Some("connection_lost"), None),
            qos: Qos::AtLeastOnce,
            retain: true,
        }
    }

    /// The last message of an orderly stop: retained "offline" status, `shutdown`.
    pub fn goodbye(&self, now: Timestamp) -> Publish<'_> {
        Publish {
            topic: &self.status_topic,
            payload: Cow::Owned(status(&self.gateway, false, Some("shutdown"), Some(now)).into()),
            qos: Qos::AtLeastOnce,
            retain: true,
            born: None,
        }
    }

    /// The broker accepted the connection: the online status, then a snapshot.
    pub fn on_connected(&mut self, now: Timestamp) {
        self.connected = true;
        self.pending.push_back(Message {
            topic: Topic::Text(self.status_topic.clone()),
            payload: status(&self.gateway, true, None, Some(now)).to_vec(),
            retain: true,
            kind: MessageKind::State,
            born: None,
            group: None,
        });
        // The broker may have lost its retained messages: repeat the state.
        self.latest.snapshot(&self.ns, &mut self.pending);
    }

    /// The connection ended. Everything made from records is sent again from the log,
    /// marked replay, so nothing unsent or unconfirmed is kept. Returns how many messages
    /// were unconfirmed.
    pub fn on_disconnected(&mut self) -> u64 {
        let lost = self.unconfirmed.len() as u64;
        self.connected = false;
        self.unconfirmed.clear();
        self.pending.clear();
        self.groups.clear();
        self.linger_until = None;
        lost
    }

    /// What became of a publish.
    pub fn on_confirmation(&mut self, confirmation: Confirmation) -> Vec<Action> {
        let mut actions = Vec::new();
        self.on_confirmation_into(confirmation, &mut actions);
        actions
    }

    /// [`on_confirmation`](Self::on_confirmation), its actions appended to `actions`: for
    /// the link's batches, which mostly make none.
    pub fn on_confirmation_into(&mut self, confirmation: Confirmation, actions: &mut Vec<Action>) {
        let token = confirmation.token();
        match confirmation {
            Confirmation::Confirmed(_) => {}
            Confirmation::Rejected { reason, .. } => {
                self.rejected += 1;
                actions.push(Action::Rejected {
                    reason,
                    total: self.rejected,
                });
            }
            // Counted at the disconnect that follows.
            Confirmation::Lost(_) => return,
        }
        if let Some(Some(group)) = self.unconfirmed.settle(token) {
            let records = self.groups.done(group);
            if !records.is_empty() {
                actions.extend(records.into_iter().map(Action::Ack));
            }
        }
    }

    /// One entry of the link's [`Reports`](crate::delivery::Reports): a run of confirmed
    /// publishes is settled as one ([`on_confirmed_run`](Self::on_confirmed_run)).
    pub fn on_report(&mut self, report: Report, actions: &mut Vec<Action>) {
        match report {
            Report::Confirmed { first, count } => self.on_confirmed_run(first, count, actions),
            Report::Other(confirmation) => self.on_confirmation_into(confirmation, actions),
        }
    }

    /// The publishes `first..first + count` were confirmed (a write of QoS 0 publishes):
    /// [`on_confirmation_into`](Self::on_confirmation_into) for each, with each
    /// acknowledgement group counted down once per run of its messages.
    pub fn on_confirmed_run(&mut self, first: u64, count: u64, actions: &mut Vec<Action>) {
        let groups = &mut self.groups;
        let mut run: Option<(u64, usize)> = None;
        let mut done = |group: u64, n: usize| {
            let records = groups.done_many(group, n);
            actions.extend(records.into_iter().map(Action::Ack));
        };
        self.unconfirmed.settle_run(first, count, |group, k| {
            let Some(group) = group else { return };
            match &mut run {
                Some((g, n)) if *g == group => *n += k as usize,
                _ => {
                    if let Some((g, n)) = run.replace((group, k as usize)) {
                        done(g, n);
                    }
                }
            }
        });
        if let Some((g, n)) = run {
            done(g, n);
        }
    }

    /// A delivery from the engine, at `now`. Without batching its messages are made at
    /// once; with batching its samples wait for the end of the linger, which starts now
    /// unless a batch is already open.
    pub fn on_delivery(&mut self, delivery: &Delivery, now: Instant) -> Vec<Action> {
        self.on_delivery_into(delivery, now, &mut Queue, &mut 0)
    }

    /// [`on_delivery`](Self::on_delivery), each message written straight to `outlet` (no
    /// payload buffer, no queue) while connected, not batching, the window has room and
    /// nothing waits before it; what the outlet does not take is queued. `outstanding`
    /// (publishes unconfirmed) is counted up by what the outlet took.
    pub fn on_delivery_into(
        &mut self,
        delivery: &Delivery,
        now: Instant,
        outlet: &mut impl Outlet,
        outstanding: &mut usize,
    ) -> Vec<Action> {
        let group = self.groups.current();
        if let Some(record) = delivery.record {
            self.groups.add_record(group, record);
        }
        let before = self.pending.len();
        let coalesce = !self.linger.is_zero();
        let in_place = self.connected && !coalesce;
        let ns = &self.ns;
        let mut writer = InPlaceWriter {
            outlet,
            unconfirmed: &mut self.unconfirmed,
            outstanding,
            max_inflight: self.max_inflight,
            qos: self.qos,
            group,
            taken: 0,
        };
        self.latest.apply_delivery_with(
            ns,
            delivery,
            coalesce,
            Some(group),
            &mut self.pending,
            |sample, seq, replay, retain| {
                if !in_place {
                    return false;
                }
                let Some(topic) = ns.attribute_topic_parts(sample.tag) else {
                    return false;
                };
                let born = (!replay).then_some(sample.gateway_time);
                writer.offer(topic, retain, born, ATTRIBUTE_BYTES, |out| {
                    ns.write_attribute_payload(sample, seq, replay, out)
                })
            },
        );
        if !coalesce {
            self.latest
                .flush_group_with(ns, Some(group), &mut self.pending, |asset, latest, born| {
                    if !in_place {
                        return false;
                    }
                    let Some(topic) = ns.instance_topic_parts(asset) else {
                        return false;
                    };
                    writer.offer(topic, ns.retain(), born, ns.instance_bytes(asset), |out| {
                        ns.write_instance_payload(asset, latest, out)
                    })
                });
        }
        let taken = writer.taken;
        self.groups
            .add_messages(group, self.pending.len() - before + taken);
        if !coalesce {
            return self.close_group();
        }
        if self.linger_until.is_none() {
            self.linger_until = Some(now + self.linger);
        }
        Vec::new()
    }

    /// The time is `now`: flushes the open batch if its linger is over.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match self.linger_until {
            Some(at) if at <= now => {
                self.linger_until = None;
                self.flush_open_group()
            }
            _ => Vec::new(),
        }
    }

    /// The engine's input closed: the open batch is flushed; the session then drains (see
    /// [`is_drained`](Self::is_drained)).
    pub fn on_input_closed(&mut self) -> Vec<Action> {
        self.input_open = false;
        self.flush_open_group()
    }

    fn flush_open_group(&mut self) -> Vec<Action> {
        if let Some(group) = self.groups.open() {
            let before = self.pending.len();
            self.latest.flush_group(&self.ns, Some(group), &mut self.pending);
            self.groups.add_messages(group, self.pending.len() - before);
        }
        self.close_group()
    }

    /// Records whose messages are all confirmed already (or that made none) are done.
    fn close_group(&mut self) -> Vec<Action> {
        self.groups.close().into_iter().map(Action::Ack).collect()
    }

    /// Whether the in-flight window has room with `outstanding` publishes unconfirmed.
    pub fn has_room(&self, outstanding: usize) -> bool {
        outstanding < self.max_inflight
    }

    /// The next message to publish, if connected and the window has room; once the client
    /// took it, report its token with [`published`](Self::published). If the client did
    /// not take it (the link has ended), it stays next.
    pub fn next_publish(&mut self, outstanding: usize) -> Option<Publish<'_>> {
        if !self.connected || !self.has_room(outstanding) {
            return None;
        }
        let m = self.pending.front()?;
        self.ns.write_topic(&m.topic, &mut self.topic);
        Some(Publish {
            topic: &self.topic,
            payload: Cow::Borrowed(&m.payload),
            qos: self.qos,
            retain: m.retain,
            born: m.born,
        })
    }

    /// The client took the message [`next_publish`](Self::next_publish) returned, as
    /// publish `token`.
    pub fn published(&mut self, token: u64) {
        if let Some(m) = self.pending.pop_front() {
            self.unconfirmed.push(token, m.group);
            self.latest.recycle(m.payload);
        }
    }

    /// Whether the orderly stop may go ahead: connected, the input closed, and every
    /// message made was handed out and confirmed.
    pub fn is_drained(&self) -> bool {
        self.connected && !self.input_open && self.pending.is_empty() && self.unconfirmed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Reports;
    use crate::uns::fixture::{sample, topology};
    use bytes::Bytes;

    const LEVEL: &str = "acme/plant/area/tank-1/level";
    const LEVEL_TOPIC: &str = "v1/acme/plant/area/tank-1/level";

    #[test]
    fn samples_become_retained_attribute_and_instance_messages_under_the_prefix() {
        let (topology, settings) = topology();
        let ns = Namespace::new(topology.clone(), &settings);
        let mut latest = Latest::new(&topology);
        let batch = Batch {
            samples: vec![sample(&topology, "acme/plant/area/tank-1/level", 42.0, 1)],
            events: vec![],
        };
        let mut out = VecDeque::new();
        latest.apply(&ns, &batch, &mut out);
        latest.flush(&ns, &mut out);
        let topics: Vec<String> = out.iter().map(|m| ns.topic_text(&m.topic)).collect();
        assert_eq!(
            topics,
            [
                "v1/acme/plant/area/tank-1/level",
                "v1/acme/plant/area/tank-1/_instance"
            ]
        );
        assert!(out.iter().all(|m| m.retain));
        let json: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(json["kind"], "sample");
        assert_eq!(json["value"], 42.0);
        assert_eq!(json["unit"], "%");
        let json: serde_json::Value = serde_json::from_slice(&out[1].payload).unwrap();
        assert_eq!(json["kind"], "instance");
        assert_eq!(json["model"], "Tank");
        assert_eq!(json["attributes"]["level"]["value"], 42.0);
        // Never read: absent from the instance rather than null.
        assert!(json["attributes"].get("temperature").is_none());
    }

    #[test]
    fn batching_publishes_only_the_latest_sample_per_tag() {
        let (topology, settings) = topology();
        let ns = Namespace::new(topology.clone(), &settings);
        let mut latest = Latest::new(&topology);
        let mut out = VecDeque::new();
        for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
            let batch = Batch {
                samples: vec![sample(&topology, "acme/plant/area/tank-1/level", v, i as i64)],
                events: vec![],
            };
            latest.apply(&ns, &batch, &mut out);
        }
        assert!(out.is_empty());
        latest.flush(&ns, &mut out);
        let level: Vec<_> = out
            .iter()
            .filter(|m| ns.topic_text(&m.topic).ends_with("/level"))
            .collect();
        assert_eq!(level.len(), 1);
        let json: serde_json::Value = serde_json::from_slice(&level[0].payload).unwrap();
        assert_eq!(json["value"], 3.0);
        assert!(!latest.has_dirty());
    }

    #[test]
    fn every_sample_of_a_delivery_is_published_with_its_number_and_replays_never_regress_retained_state() {
        let (topology, settings) = topology();
        let ns = Namespace::new(topology.clone(), &settings);
        let mut latest = Latest::new(&topology);
        let level = "acme/plant/area/tank-1/level";
        let live = Delivery {
            batch: Arc::new(Batch {
                samples: vec![
                    sample(&topology, level, 5.0, 50),
                    sample(&topology, level, 6.0, 60),
                ],
                events: vec![],
            }),
            record: Some(10),
            seqs: Some(vec![10, 11].into()),
            replay: false,
        };
        let mut out = VecDeque::new();
        latest.apply_delivery(&ns, &live, false, Some(7), &mut out);
        let levels: Vec<_> = out
            .iter()
            .filter(|m| ns.topic_text(&m.topic).ends_with("/level"))
            .collect();
        assert_eq!(levels.len(), 2, "no coalescing: every number reaches the broker");
        let json: serde_json::Value = serde_json::from_slice(&levels[1].payload).unwrap();
        assert_eq!(json["seq"], 11);
        assert!(json.get("replay").is_none());
        assert!(levels.iter().all(|m| m.retain && m.group == Some(7)));

        // A replay older than the live value: sent, flagged, not retained.
        let old = Delivery {
            batch: Arc::new(Batch {
                samples: vec![sample(&topology, level, 1.0, 10)],
                events: vec![],
            }),
            record: Some(3),
            seqs: Some(vec![3].into()),
            replay: true,
        };
        out.clear();
        latest.apply_delivery(&ns, &old, false, Some(8), &mut out);
        assert_eq!(out.len(), 1);
        let json: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(
            (json["seq"].as_u64(), json["replay"].as_bool()),
            (Some(3), Some(true))
        );
        assert!(!out[0].retain);
        out.clear();
        latest.snapshot(&ns, &mut out);
        let json: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(json["value"], 6.0, "the snapshot keeps the live value");
    }

    #[test]
    fn a_snapshot_repeats_every_known_value() {
        let (topology, settings) = topology();
        let ns = Namespace::new(topology.clone(), &settings);
        let mut latest = Latest::new(&topology);
        let mut out = VecDeque::new();
        let batch = Batch {
            samples: vec![
                sample(&topology, "acme/plant/area/tank-1/level", 1.0, 1),
                sample(&topology, "acme/plant/area/tank-1/temperature", 4.0, 2),
            ],
            events: vec![],
        };
        latest.apply(&ns, &batch, &mut out);
        latest.flush(&ns, &mut out);
        out.clear();
        latest.snapshot(&ns, &mut out);
        assert_eq!(out.len(), 3, "two attributes and one instance");
    }

    #[test]
    fn an_instance_message_is_born_with_its_oldest_live_change_and_never_of_a_replay() {
        let (topology, settings) = topology();
        let ns = Namespace::new(topology.clone(), &settings);
        let mut latest = Latest::new(&topology);
        let mut out = VecDeque::new();
        let delivery = |level_at, temperature_at, replay| tank(&topology, level_at, temperature_at, replay);
        let born = |out: &mut VecDeque<Message>| {
            let instances: Vec<_> = out
                .drain(..)
                .filter(|m| ns.topic_text(&m.topic).ends_with("/_instance"))
                .map(|m| m.born)
                .collect();
            assert_eq!(instances.len(), 1, "one instance message a flush");
            instances[0]
        };

        // Two live changes before the flush: the one that waited longest sets the time.
        latest.apply_delivery(&ns, &delivery(30, 20, false), true, None, &mut out);
        latest.apply_delivery(&ns, &delivery(40, 40, false), true, None, &mut out);
        latest.flush(&ns, &mut out);
        assert_eq!(born(&mut out), Some(Timestamp::from_unix_nanos(20)));

        // The next flush starts afresh.
        latest.apply_delivery(&ns, &delivery(50, 55, false), true, None, &mut out);
        latest.flush(&ns, &mut out);
        assert_eq!(born(&mut out), Some(Timestamp::from_unix_nanos(50)));

        // A replay newer than the latest changes the asset, but its age is no delay.
        latest.apply_delivery(&ns, &delivery(60, 60, true), true, None, &mut out);
        latest.flush(&ns, &mut out);
        assert_eq!(born(&mut out), None);

        // Nor is the snapshot's, even with a live change waiting for the flush.
        latest.apply_delivery(&ns, &delivery(70, 70, false), true, None, &mut out);
        out.clear();
        latest.snapshot(&ns, &mut out);
        assert_eq!(born(&mut out), None);
        latest.apply_delivery(&ns, &delivery(80, 80, true), true, None, &mut out);
        latest.flush(&ns, &mut out);
        assert_eq!(
            born(&mut out),
            None,
            "the snapshot forgot the live change it sent"
        );
    }

    // The session's transitions.

    /// A session of the fixture's sink (prefix `v1`, attribute and instance forms,
    /// retained, QoS 1), `settings` adjusted by `adjust`.
    fn session(adjust: impl FnOnce(&mut MqttSinkSettings)) -> (Session, Arc<Topology>) {
        let (topology, mut settings) = topology();
        adjust(&mut settings);
        let ns = Namespace::new(topology.clone(), &settings);
        (Session::new(ns, &settings, "gw"), topology)
    }

    /// One sample of the tank's level, `value` at `at` ns, from log record `record`.
    fn level(topology: &Topology, record: u64, value: f64, at: i64, replay: bool) -> Delivery {
        Delivery {
            batch: Arc::new(Batch {
                samples: vec![sample(topology, LEVEL, value, at)],
                events: vec![],
            }),
            record: Some(record),
            seqs: Some(vec![record].into()),
            replay,
        }
    }

    /// Record 1 (numbers 1 and 2): the tank's level (1.0) read at `level_at` and its
    /// temperature (4.0) at `temperature_at`.
    fn tank(topology: &Topology, level_at: i64, temperature_at: i64, replay: bool) -> Delivery {
        Delivery {
            batch: Arc::new(Batch {
                samples: vec![
                    sample(topology, LEVEL, 1.0, level_at),
                    sample(
                        topology,
                        "acme/plant/area/tank-1/temperature",
                        4.0,
                        temperature_at,
                    ),
                ],
                events: vec![],
            }),
            record: Some(1),
            seqs: Some(vec![1, 2].into()),
            replay,
        }
    }

    /// What the driver does after each step: hands out everything the window takes, with
    /// `outstanding` publishes unconfirmed before. Returns (token, topic, retain, payload).
    fn pump(s: &mut Session, tokens: &mut u64, outstanding: usize) -> Vec<(u64, String, bool, Bytes)> {
        let mut sent = Vec::new();
        while let Some(p) = s.next_publish(outstanding + sent.len()) {
            *tokens += 1;
            sent.push((
                *tokens,
                p.topic.to_owned(),
                p.retain,
                Bytes::copy_from_slice(&p.payload),
            ));
            s.published(*tokens);
        }
        sent
    }

    fn topics(sent: &[(u64, String, bool, Bytes)]) -> Vec<&str> {
        sent.iter().map(|(_, t, _, _)| t.as_str()).collect()
    }

    fn confirm(s: &mut Session, sent: &[(u64, String, bool, Bytes)]) -> Vec<Action> {
        sent.iter()
            .flat_map(|(token, ..)| s.on_confirmation(Confirmation::Confirmed(*token)))
            .collect()
    }

    #[test]
    fn input_is_read_only_while_connected() {
        let (mut s, _) = session(|_| {});
        assert!(!s.wants_input(), "before the first connection");
        s.on_connected(Timestamp::from_unix_nanos(0));
        assert!(s.wants_input());
        s.on_disconnected();
        assert!(
            !s.wants_input(),
            "the backlog waits in the log while the broker is away"
        );
        s.on_connected(Timestamp::from_unix_nanos(1));
        s.on_input_closed();
        assert!(!s.wants_input(), "after the input closed");
    }

    #[test]
    fn input_pauses_while_too_many_messages_wait_for_the_window() {
        let (mut s, topology) = session(|_| {});
        s.on_connected(Timestamp::from_unix_nanos(0));
        let now = Instant::now();
        let mut record = 0;
        while s.wants_input() {
            record += 1;
            s.on_delivery(&level(&topology, record, 1.0, record as i64, false), now);
        }
        // The status, then an attribute and an instance message per delivery.
        assert_eq!(record, PENDING_MAX as u64 / 2);
        let mut tokens = 0;
        pump(&mut s, &mut tokens, 0);
        assert!(s.wants_input(), "the window took some");
    }

    #[test]
    fn each_connection_starts_with_the_online_status_and_a_snapshot_of_every_known_value() {
        let (mut s, topology) = session(|_| {});
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        let sent = pump(&mut s, &mut tokens, 0);
        assert_eq!(topics(&sent), ["v1/backplane/gw/status"], "nothing known yet");
        let online: serde_json::Value = serde_json::from_slice(&sent[0].3).unwrap();
        assert_eq!(online["status"], "online");
        assert!(sent[0].2, "retained");
        s.on_delivery(&level(&topology, 1, 42.0, 10, false), Instant::now());
        pump(&mut s, &mut tokens, 0);

        s.on_disconnected();
        s.on_connected(Timestamp::from_unix_nanos(20));
        let sent = pump(&mut s, &mut tokens, 0);
        assert_eq!(
            topics(&sent),
            [
                "v1/backplane/gw/status",
                "v1/acme/plant/area/tank-1/level",
                "v1/acme/plant/area/tank-1/_instance"
            ]
        );
        assert!(sent.iter().all(|(_, _, retain, _)| *retain));
    }

    #[test]
    fn a_record_is_acknowledged_once_the_broker_confirmed_every_message_made_from_it() {
        let (mut s, topology) = session(|_| {});
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        let status = pump(&mut s, &mut tokens, 0);
        assert!(confirm(&mut s, &status).is_empty(), "the status is no record");
        assert!(
            s.on_delivery(&level(&topology, 10, 1.0, 1, false), Instant::now())
                .is_empty()
        );
        let sent = pump(&mut s, &mut tokens, 0);
        assert_eq!(sent.len(), 2, "attribute and instance");
        assert!(confirm(&mut s, &sent[..1]).is_empty());
        assert!(s.on_confirmation(Confirmation::Lost(sent[1].0)).is_empty());
        assert_eq!(confirm(&mut s, &sent[1..]), [Action::Ack(10)]);
    }

    #[test]
    fn confirmations_settled_by_the_run_acknowledge_what_one_by_one_would() {
        // Two sessions given the same deliveries: one settles the link's batch in runs, the
        // other each confirmation alone.
        let mut runs_session = session(|_| {}).0;
        let (mut single, topology) = session(|_| {});
        let mut sent = Vec::new();
        for s in [&mut runs_session, &mut single] {
            let mut tokens = 0;
            s.on_connected(Timestamp::from_unix_nanos(0));
            sent = pump(s, &mut tokens, 0);
            for record in 10..16 {
                s.on_delivery(
                    &level(&topology, record, record as f64, record as i64, false),
                    Instant::now(),
                );
                sent.extend(pump(s, &mut tokens, 0));
                // A token the session never saw (a command reply) between records.
                tokens += 1;
            }
        }
        let tokens: Vec<u64> = sent.iter().map(|(t, ..)| *t).collect();
        let last = *tokens.last().unwrap();
        // One confirmed alone before the batch, then the batch: a run over every token
        // (the unknown ones and the one confirmed before included), broken by a refusal.
        let early = tokens[5];
        let refused = tokens[8];
        let batch: Vec<Confirmation> = (1..=last)
            .map(|t| {
                if t == refused {
                    Confirmation::Rejected {
                        token: t,
                        reason: "NotAuthorized".into(),
                    }
                } else {
                    Confirmation::Confirmed(t)
                }
            })
            .collect();

        let mut by_runs = runs_session.on_confirmation(Confirmation::Confirmed(early));
        let mut reports = Reports::default();
        reports.extend(batch.iter().cloned());
        assert_eq!(reports.drain().count(), 3, "a run, the refusal, a run");
        reports.extend(batch.iter().cloned());
        for report in reports.drain() {
            runs_session.on_report(report, &mut by_runs);
        }

        let mut one_by_one = single.on_confirmation(Confirmation::Confirmed(early));
        for c in batch {
            one_by_one.extend(single.on_confirmation(c));
        }
        assert_eq!(by_runs, one_by_one);
        let acked: Vec<u64> = by_runs
            .iter()
            .filter_map(|a| match a {
                Action::Ack(r) => Some(*r),
                Action::Rejected { .. } => None,
            })
            .collect();
        assert_eq!(acked, [10, 11, 12, 13, 14, 15]);
        assert_eq!(runs_session.is_drained(), single.is_drained());
        assert_eq!(runs_session.unconfirmed.len(), 0);
    }

    #[test]
    fn a_message_the_broker_refuses_for_good_completes_its_record_and_is_counted() {
        let (mut s, topology) = session(|_| {});
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut s, &mut tokens, 0);
        s.on_delivery(&level(&topology, 10, 1.0, 1, false), Instant::now());
        let sent = pump(&mut s, &mut tokens, 0);
        let refused = s.on_confirmation(Confirmation::Rejected {
            token: sent[0].0,
            reason: "NotAuthorized".into(),
        });
        assert_eq!(
            refused,
            [Action::Rejected {
                reason: "NotAuthorized".into(),
                total: 1
            }]
        );
        assert_eq!(confirm(&mut s, &sent[1..]), [Action::Ack(10)]);
    }

    #[test]
    fn a_disconnect_drops_what_was_not_confirmed_and_never_acknowledges_it() {
        let (mut s, topology) = session(|_| {});
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        let status = pump(&mut s, &mut tokens, 0);
        s.on_delivery(&level(&topology, 10, 1.0, 1, false), Instant::now());
        let sent = pump(&mut s, &mut tokens, 0);
        s.on_delivery(&level(&topology, 11, 2.0, 2, false), Instant::now());
        confirm(&mut s, &status);
        confirm(&mut s, &sent[..1]);
        assert_eq!(s.on_disconnected(), 1, "one message was unconfirmed");
        assert!(s.next_publish(0).is_none(), "nothing is published while away");
        assert!(
            confirm(&mut s, &sent[1..]).is_empty(),
            "record 10 comes back as replay"
        );
        // Record 11 was never handed out: after the reconnect only the status and the
        // snapshot go out, and the replay brings the records back.
        s.on_connected(Timestamp::from_unix_nanos(3));
        assert_eq!(pump(&mut s, &mut tokens, 0).len(), 3);
    }

    #[test]
    fn publishing_pauses_at_the_in_flight_window() {
        let (mut s, topology) = session(|s| s.max_inflight = 2);
        s.on_connected(Timestamp::from_unix_nanos(0));
        s.on_delivery(&level(&topology, 10, 1.0, 1, false), Instant::now());
        assert!(s.next_publish(2).is_none());
        let mut tokens = 0;
        let sent = pump(&mut s, &mut tokens, 0);
        assert_eq!(topics(&sent), ["v1/backplane/gw/status", LEVEL_TOPIC]);
        confirm(&mut s, &sent[..1]);
        let sent = pump(&mut s, &mut tokens, 1);
        assert_eq!(topics(&sent), ["v1/acme/plant/area/tank-1/_instance"]);
    }

    #[test]
    fn with_batching_the_latest_sample_is_published_when_the_linger_ends() {
        let (mut s, topology) = session(|s| s.linger = Duration::from_millis(100));
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut s, &mut tokens, 0);
        let t0 = Instant::now();
        for (i, ms) in [0u64, 10, 20].into_iter().enumerate() {
            let d = level(&topology, 10 + i as u64, i as f64, ms as i64, false);
            assert!(s.on_delivery(&d, t0 + Duration::from_millis(ms)).is_empty());
        }
        assert_eq!(
            s.deadline(),
            Some(t0 + Duration::from_millis(100)),
            "the first delivery starts the linger"
        );
        assert!(pump(&mut s, &mut tokens, 0).is_empty());
        assert!(s.on_timer(t0 + Duration::from_millis(99)).is_empty());
        assert!(pump(&mut s, &mut tokens, 0).is_empty(), "not yet");
        assert!(s.on_timer(t0 + Duration::from_millis(100)).is_empty());
        assert_eq!(s.deadline(), None);
        let sent = pump(&mut s, &mut tokens, 0);
        assert_eq!(
            topics(&sent),
            [LEVEL_TOPIC, "v1/acme/plant/area/tank-1/_instance"]
        );
        let json: serde_json::Value = serde_json::from_slice(&sent[0].3).unwrap();
        assert_eq!(json["value"], 2.0);
        assert_eq!(
            confirm(&mut s, &sent),
            [Action::Ack(10), Action::Ack(11), Action::Ack(12)]
        );
    }

    #[test]
    fn a_delivery_that_makes_no_message_is_acknowledged_at_once() {
        let (mut s, _) = session(|_| {});
        s.on_connected(Timestamp::from_unix_nanos(0));
        let empty = Delivery {
            batch: Arc::new(Batch::default()),
            record: Some(5),
            seqs: None,
            replay: false,
        };
        assert_eq!(s.on_delivery(&empty, Instant::now()), [Action::Ack(5)]);
    }

    #[test]
    fn a_replay_is_retained_only_if_it_is_newer_than_what_the_topic_holds() {
        let (mut s, topology) = session(|_| {});
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut s, &mut tokens, 0);
        let mut level_retained = |s: &mut Session, d: Delivery| {
            s.on_delivery(&d, Instant::now());
            let sent = pump(s, &mut tokens, 0);
            sent.iter()
                .find(|(_, t, _, _)| t == LEVEL_TOPIC)
                .map(|(_, _, retain, _)| *retain)
        };
        assert_eq!(
            level_retained(&mut s, level(&topology, 1, 6.0, 60, false)),
            Some(true)
        );
        assert_eq!(
            level_retained(&mut s, level(&topology, 2, 1.0, 10, true)),
            Some(false),
            "older than the live value"
        );
        assert_eq!(
            level_retained(&mut s, level(&topology, 3, 7.0, 70, true)),
            Some(true),
            "newer"
        );
    }

    #[test]
    fn stopping_flushes_the_open_batch_and_drains_before_the_goodbye() {
        let (mut s, topology) = session(|s| s.linger = Duration::from_secs(10));
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        let status = pump(&mut s, &mut tokens, 0);
        s.on_delivery(&level(&topology, 10, 1.0, 1, false), Instant::now());
        assert!(s.on_input_closed().is_empty());
        assert!(!s.is_drained());
        let sent = pump(&mut s, &mut tokens, 0);
        assert_eq!(
            sent.len(),
            2,
            "the batch was flushed without waiting for the linger"
        );
        confirm(&mut s, &status);
        assert!(!s.is_drained(), "messages are unconfirmed");
        assert_eq!(confirm(&mut s, &sent), [Action::Ack(10)]);
        assert!(s.is_drained());
        let bye = s.goodbye(Timestamp::from_unix_nanos(0));
        assert_eq!(
            (bye.topic, bye.qos, bye.retain),
            ("v1/backplane/gw/status", Qos::AtLeastOnce, true)
        );
        let json: serde_json::Value = serde_json::from_slice(&bye.payload).unwrap();
        assert_eq!(
            (json["status"].as_str(), json["reason"].as_str()),
            (Some("offline"), Some("shutdown"))
        );
        s.on_disconnected();
        assert!(!s.is_drained(), "the goodbye needs a connection");
    }

    #[test]
    fn an_instance_only_sink_takes_no_payload_buffer_per_sample() {
        let (topology, mut settings) = topology();
        settings.attributes = false;
        let ns = Namespace::new(topology.clone(), &settings);
        let mut latest = Latest::new(&topology);
        latest.buffers.give(Vec::with_capacity(64 * 1024));
        let delivery = tank(&topology, 10, 10, false);
        let mut out = VecDeque::new();
        // Without batching: each sample would be its own attribute message.
        latest.apply_delivery(&ns, &delivery, false, None, &mut out);
        assert!(out.is_empty());
        assert_eq!(latest.buffers.len(), 1, "the kept buffer is still there");
        latest.flush(&ns, &mut out);
        assert_eq!(out.len(), 1, "one instance message");
        assert!(ns.topic_text(&out[0].topic).ends_with("/_instance"));
        assert_eq!(
            out[0].payload.capacity(),
            64 * 1024,
            "written into the kept buffer"
        );
    }

    #[test]
    fn payload_buffers_are_reused_and_hold_only_their_own_message() {
        let (mut s, topology) = session(|_| {});
        let mut tokens = 0;
        s.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut s, &mut tokens, 0);
        // Long payloads first (an instance and a long number), then shorter ones written
        // into their buffers.
        for (record, value) in [(1, -123_456.789_012_345), (2, 1.0), (3, 2.5)] {
            let at = record as i64 * 10;
            s.on_delivery(&level(&topology, record, value, at, false), Instant::now());
            let sent = pump(&mut s, &mut tokens, 0);
            let (_, _, _, payload) = sent.iter().find(|(_, t, _, _)| t == LEVEL_TOPIC).unwrap();
            let mut fresh = Vec::new();
            let sample = sample(&topology, LEVEL, value, at);
            assert!(
                s.namespace()
                    .write_attribute_payload(&sample, Some(record), false, &mut fresh)
            );
            assert_eq!(&payload[..], &fresh[..], "byte for byte a fresh encoding");
            for (_, _, _, payload) in &sent {
                serde_json::from_slice::<serde_json::Value>(payload).expect("one whole document");
            }
        }
        assert!(
            !s.latest.buffers.is_empty(),
            "handed-out buffers are kept for reuse"
        );
    }

    /// An outlet that takes `room` messages, recording each as the link would send it;
    /// with `refuse_first`, it refuses the first offer whatever its room.
    struct Recorder {
        room: usize,
        refuse_first: bool,
        tokens: u64,
        sent: Vec<(u64, String, bool, Bytes)>,
    }

    impl Outlet for Recorder {
        fn offer(
            &mut self,
            m: &InPlaceMessage<'_>,
            payload: impl FnOnce(&mut BytesMut) -> bool,
        ) -> Option<u64> {
            if self.room == 0 || std::mem::take(&mut self.refuse_first) {
                return None;
            }
            let mut buf = BytesMut::new();
            if !payload(&mut buf) {
                return None;
            }
            self.room -= 1;
            self.tokens += 1;
            self.sent
                .push((self.tokens, m.topic.concat(), m.retain, buf.freeze()));
            Some(self.tokens)
        }
    }

    #[test]
    fn messages_written_in_place_are_those_the_queue_hands_out_in_the_same_order() {
        let deliveries = |topology: &Topology| {
            vec![
                tank(topology, 10, 10, false),
                level(topology, 2, 3.5, 20, false),
                // A replay behind live data: not retained.
                level(topology, 3, 2.5, 15, true),
            ]
        };
        let (mut queued, topology) = session(|_| {});
        let mut tokens = 0;
        queued.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut queued, &mut tokens, 0);
        let mut expected = Vec::new();
        for d in deliveries(&topology) {
            queued.on_delivery(&d, Instant::now());
            expected.extend(pump(&mut queued, &mut tokens, 0));
        }

        let (mut direct, topology) = session(|_| {});
        let mut outlet = Recorder {
            room: usize::MAX,
            refuse_first: false,
            tokens: 0,
            sent: Vec::new(),
        };
        direct.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut direct, &mut outlet.tokens, 0);
        let mut sent = Vec::new();
        let mut acks = Vec::new();
        for d in deliveries(&topology) {
            let mut outstanding = 0;
            acks.extend(direct.on_delivery_into(&d, Instant::now(), &mut outlet, &mut outstanding));
            let in_place = std::mem::take(&mut outlet.sent);
            assert_eq!(outstanding, in_place.len(), "counted as outstanding");
            sent.extend(in_place);
            let queued = pump(&mut direct, &mut outlet.tokens, outstanding);
            assert!(
                queued.is_empty(),
                "all in place, instances too: {:?}",
                topics(&queued)
            );
        }
        assert_eq!(sent, expected, "tokens, topics, retain flags and payloads");
        assert!(
            sent.iter().filter(|(_, t, ..)| t == LEVEL_TOPIC).count() == 3,
            "every sample its own message"
        );
        assert!(acks.is_empty(), "nothing confirmed yet");
        let acks = confirm(&mut direct, &sent);
        assert_eq!(acks, vec![Action::Ack(1), Action::Ack(2), Action::Ack(3)]);
    }

    #[test]
    fn what_the_outlet_cannot_take_waits_in_order_and_its_record_waits_for_both() {
        let (mut s, topology) = session(|_| {});
        let mut outlet = Recorder {
            room: 1,
            refuse_first: false,
            tokens: 0,
            sent: Vec::new(),
        };
        s.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut s, &mut outlet.tokens, 0);
        let mut outstanding = 0;
        let acks = s.on_delivery_into(
            &tank(&topology, 10, 10, false),
            Instant::now(),
            &mut outlet,
            &mut outstanding,
        );
        assert!(acks.is_empty());
        assert_eq!(
            topics(&outlet.sent),
            vec![LEVEL_TOPIC],
            "the first sample in place"
        );
        let queued = pump(&mut s, &mut outlet.tokens, outstanding);
        assert_eq!(
            topics(&queued),
            vec![
                "v1/acme/plant/area/tank-1/temperature",
                "v1/acme/plant/area/tank-1/_instance"
            ],
            "the rest behind it"
        );
        assert!(
            confirm(&mut s, &queued).is_empty(),
            "the message in place is not confirmed yet"
        );
        assert_eq!(confirm(&mut s, &outlet.sent), vec![Action::Ack(1)]);

        // Refused once: what follows queues behind it, though the outlet has room again.
        let (mut s, topology) = session(|_| {});
        s.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut s, &mut outlet.tokens, 0);
        outlet.room = usize::MAX;
        outlet.refuse_first = true;
        outlet.sent.clear();
        let mut outstanding = 0;
        s.on_delivery_into(
            &tank(&topology, 10, 10, false),
            Instant::now(),
            &mut outlet,
            &mut outstanding,
        );
        assert!(outlet.sent.is_empty(), "nothing overtakes the refused message");
        assert_eq!(
            topics(&pump(&mut s, &mut outlet.tokens, 0)),
            vec![
                LEVEL_TOPIC,
                "v1/acme/plant/area/tank-1/temperature",
                "v1/acme/plant/area/tank-1/_instance"
            ]
        );

        // The window full: nothing is offered, all waits in the queue.
        let (mut s, topology) = session(|settings| settings.max_inflight = 2);
        s.on_connected(Timestamp::from_unix_nanos(0));
        pump(&mut s, &mut outlet.tokens, 0);
        outlet.room = usize::MAX;
        outlet.sent.clear();
        let mut outstanding = 2;
        s.on_delivery_into(
            &tank(&topology, 20, 20, false),
            Instant::now(),
            &mut outlet,
            &mut outstanding,
        );
        assert!(outlet.sent.is_empty());
        assert_eq!(outstanding, 2);
        assert!(
            pump(&mut s, &mut outlet.tokens, 2).is_empty(),
            "the window is full"
        );
        assert_eq!(
            pump(&mut s, &mut outlet.tokens, 0).len(),
            2,
            "then the queue's own way"
        );
    }

    #[test]
    fn the_will_says_offline_because_the_connection_was_lost() {
        let (s, _) = session(|s| s.status_topic = Some("site/gw/state".into()));
        let will = s.will();
        assert_eq!(
            (will.topic.as_str(), will.qos, will.retain),
            ("site/gw/state", Qos::AtLeastOnce, true)
        );
        let json: serde_json::Value = serde_json::from_slice(&will.payload).unwrap();
        assert_eq!(json["reason"], "connection_lost");
    }
}
