//! The unified namespace's topics and payload forms: attribute, instance, event and
//! status messages (`docs/payloads.md`). No I/O, no state. Attribute and instance payloads
//! are written by the connector's shared [`SampleEncoder`] (byte for byte the serde form,
//! without serde), topics by copying the asset's part (prefix and path, kept per asset)
//! and the attribute's name.

use std::collections::VecDeque;
use std::sync::Arc;

use backplane_connector::payload::{EventPayload, SampleEncoder, json};
use backplane_connector::{Delivery, Topology};
use backplane_model::{Sample, TagId, Timestamp};
use bytes::{BufMut, Bytes};
use serde::Serialize;

use super::config::MqttSinkSettings;

/// Whether a message is part of the namespace's state (superseded by a newer value of the
/// same topic) or a record that must not be skipped (events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    State,
    Event,
}

/// A message's topic. An attribute or instance topic is written out when the message is
/// sent, from the prefix and the tag's or asset's path, rather than kept as a string per
/// message.
#[derive(Clone, Debug, PartialEq)]
pub enum Topic {
    Attribute(TagId),
    /// An asset's instance topic (`…/_instance`), by the asset's index.
    Instance(usize),
    Text(String),
}

/// One MQTT message to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub topic: Topic,
    /// A plain vector: the link copies it into its buffer, so it is never shared.
    pub payload: Vec<u8>,
    pub retain: bool,
    pub kind: MessageKind,
    /// When its live sample was read (gateway time), for the device-to-socket delay: for
    /// an instance message, the oldest live change it carries; `None` for replays, the
    /// snapshot and messages made from no reading.
    pub born: Option<Timestamp>,
    /// The acknowledgement group the message belongs to (see [`Groups`](crate::common::Groups)); `None` for
    /// messages made from no log record (status, snapshots).
    pub group: Option<u64>,
}

/// The namespace's topics and payload forms, as configured (prefix, `payload`, `events`,
/// `retain`). Holds no values: [`Latest`](super::session::Latest) does. No I/O.
#[derive(Debug)]
pub struct Namespace {
    topology: Arc<Topology>,
    encoder: SampleEncoder,
    prefix: String,
    /// Per asset (by index): `prefix` and its path and a `/`, the head of its topics; empty
    /// for an asset without tags. Two copies a topic rather than four.
    topic_heads: Vec<Box<str>>,
    attributes: bool,
    instances: bool,
    events: bool,
    retain: bool,
}

/// An instance payload's size estimate, for its buffer's room: the fixed fields and the
/// context, then each attribute's value, type, quality and time (about 100 bytes for a
/// number without a unit or source time).
const INSTANCE_BYTES: usize = 512;
const INSTANCE_BYTES_PER_ATTRIBUTE: usize = 128;

impl Namespace {
    pub fn new(topology: Arc<Topology>, settings: &MqttSinkSettings) -> Namespace {
        let prefix = settings
            .topic_prefix
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        let topic_heads = topology
            .assets
            .iter()
            .map(|a| {
                if a.tags.is_empty() {
                    Box::default()
                } else {
                    format!("{prefix}{}/", a.path).into_boxed_str()
                }
            })
            .collect();
        Namespace {
            prefix,
            topic_heads,
            encoder: SampleEncoder::new(topology.clone()),
            topology,
            attributes: settings.attributes,
            instances: settings.instances,
            events: settings.events,
            retain: settings.retain,
        }
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// Whether attribute messages are published (`payload` `attribute` or `both`).
    pub fn attributes(&self) -> bool {
        self.attributes
    }

    /// Whether instance messages are published (`payload` `instance` or `both`).
    pub fn instances(&self) -> bool {
        self.instances
    }

    /// Whether state messages (attributes, instances) are published retained (`retain`).
    pub fn retain(&self) -> bool {
        self.retain
    }

    /// Writes `topic` into `out` (cleared first), a buffer the caller reuses.
    pub fn write_topic(&self, topic: &Topic, out: &mut String) {
        out.clear();
        match topic {
            Topic::Attribute(tag) => {
                self.write_attribute_topic(*tag, out);
            }
            Topic::Instance(asset) => {
                if let Some(a) = self.topology.assets.get(*asset) {
                    out.push_str(&self.prefix);
                    out.push_str(a.path.as_str());
                    out.push_str("/_instance");
                }
            }
            Topic::Text(text) => out.push_str(text),
        }
    }

    /// `topic` as a string.
    pub fn topic_text(&self, topic: &Topic) -> String {
        let mut out = String::new();
        self.write_topic(topic, &mut out);
        out
    }

    /// Appends the topic of a tag's attribute payload to `out` (a caller's reused buffer);
    /// `false`, with nothing written, for a tag not in the topology.
    pub fn write_attribute_topic(&self, tag: TagId, out: &mut String) -> bool {
        let Some(t) = self.topology.tag(tag) else {
            return false;
        };
        match self.topic_heads.get(t.asset).filter(|h| !h.is_empty()) {
            Some(head) => {
                out.reserve(head.len() + t.attribute.name.len());
                out.push_str(head);
                out.push_str(&t.attribute.name);
            }
            // A tag of an asset the topology does not have: never from the pipeline.
            None => {
                let path = self.topology.path(t);
                out.reserve(self.prefix.len() + path.len());
                out.push_str(&self.prefix);
                path.push_to(out);
            }
        }
        true
    }

    /// The two parts of a tag's attribute topic (its asset's head and its attribute's
    /// name), for a writer that joins them itself; `None` for a tag not in the topology,
    /// or of an asset without a head.
    pub fn attribute_topic_parts(&self, tag: TagId) -> Option<[&str; 2]> {
        let t = self.topology.tag(tag)?;
        let head = self.topic_heads.get(t.asset).filter(|h| !h.is_empty())?;
        Some([head, &t.attribute.name])
    }

    /// The two parts of an asset's instance topic (its head and `_instance`); `None` for
    /// an asset not in the topology or without tags.
    pub fn instance_topic_parts(&self, asset: usize) -> Option<[&str; 2]> {
        let head = self.topic_heads.get(asset).filter(|h| !h.is_empty())?;
        Some([head, "_instance"])
    }

    /// Room for an asset's instance payload at once (see [`INSTANCE_BYTES`]).
    pub fn instance_bytes(&self, asset: usize) -> usize {
        let attributes = self.topology.assets.get(asset).map_or(0, |a| a.tags.len());
        INSTANCE_BYTES + attributes * INSTANCE_BYTES_PER_ATTRIBUTE
    }

    /// Appends a sample's attribute payload with its stream number to `out` (a caller's
    /// reused buffer); `false`, with nothing written, for a tag not in the topology. Written
    /// whatever the `payload` setting: [`attribute_message`](Self::attribute_message) checks it.
    pub fn write_attribute_payload<B: BufMut>(
        &self,
        sample: &Sample,
        seq: Option<u64>,
        replay: bool,
        out: &mut B,
    ) -> bool {
        self.encoder.write(sample, seq, replay, out)
    }

    pub fn events_topic(&self, asset: &str) -> String {
        format!("{}{asset}/_events", self.prefix)
    }

    /// The default status topic for a gateway.
    pub fn default_status_topic(&self, gateway: &str) -> String {
        format!("{}backplane/{gateway}/status", self.prefix)
    }

    /// The default command topic for a gateway (`commands = true`).
    pub fn default_commands_topic(&self, gateway: &str) -> String {
        format!("{}backplane/{gateway}/commands", self.prefix)
    }

    /// The messages of a delivery's events (none with `events = false`), never retained.
    pub fn event_messages(&self, delivery: &Delivery, group: Option<u64>, out: &mut VecDeque<Message>) {
        if !self.events {
            return;
        }
        for (j, event) in delivery.batch.events.iter().enumerate() {
            let payload = EventPayload::new(event).with_seq(delivery.event_seq(j), delivery.replay);
            if let Ok(payload) = serde_json::to_vec(&payload) {
                out.push_back(Message {
                    topic: Topic::Text(self.events_topic(event.asset.as_str())),
                    payload,
                    retain: false,
                    kind: MessageKind::Event,
                    born: None,
                    group,
                });
            }
        }
    }

    /// A sample's attribute message with its stream number, its payload written into
    /// `payload` (an empty buffer, reused: [`BufferPool`](super::pool::BufferPool));
    /// `None` unless the attribute form is published. Whether it is retained is the
    /// caller's decision.
    pub fn attribute_message(
        &self,
        sample: &Sample,
        seq: Option<u64>,
        replay: bool,
        retain: bool,
        group: Option<u64>,
        mut payload: Vec<u8>,
    ) -> Option<Message> {
        if !self.attributes {
            return None;
        }
        self.topology.tag(sample.tag)?;
        payload.clear();
        if !self.write_attribute_payload(sample, seq, replay, &mut payload) {
            return None;
        }
        Some(Message {
            topic: Topic::Attribute(sample.tag),
            payload,
            retain,
            kind: MessageKind::State,
            born: (!replay).then_some(sample.gateway_time),
            group,
        })
    }

    /// An asset's instance message from the latest sample of every tag (indexed by tag),
    /// written into `payload` (an empty buffer, reused); `None` unless the instance form is
    /// published, or if no attribute has a value yet.
    pub fn instance_message(
        &self,
        asset: usize,
        latest: &[Option<Sample>],
        mut payload: Vec<u8>,
    ) -> Option<Message> {
        if !self.instances {
            return None;
        }
        payload.clear();
        // Room for the payload at once: from a new buffer of the pool's 512 bytes, an
        // asset of 125 attributes grew it five or six times (reallocations were 2 % of the
        // instructions of a per-instance point under callgrind).
        payload.reserve(self.instance_bytes(asset));
        if !self.write_instance_payload(asset, latest, &mut payload) {
            return None;
        }
        Some(Message {
            topic: Topic::Instance(asset),
            payload,
            retain: self.retain,
            kind: MessageKind::State,
            born: None,
            group: None,
        })
    }

    /// Appends an asset's instance payload (`docs/payloads.md`, "Instance") from the latest
    /// sample of every tag (indexed by tag) to `out`; `false`, with nothing written, for an
    /// asset without a model or without any value yet. Its `gateway_time` and `context` are
    /// the newest sample's (the last of equally new ones); attributes in model order.
    pub fn write_instance_payload<B: BufMut>(
        &self,
        asset: usize,
        latest: &[Option<Sample>],
        out: &mut B,
    ) -> bool {
        let Some(node) = self.topology.assets.get(asset) else {
            return false;
        };
        let Some(model) = node.model.as_ref() else {
            return false;
        };
        let readings = || {
            node.tags.iter().filter_map(|tag| {
                let sample = latest.get(tag.index())?.as_ref()?;
                Some((self.topology.tag(*tag)?, sample))
            })
        };
        let Some(newest) = readings().map(|(_, sample)| sample).reduce(|newest, s| {
            if s.gateway_time >= newest.gateway_time {
                s
            } else {
                newest
            }
        }) else {
            return false;
        };
        out.put_slice(b"{\"kind\":\"instance\",\"asset\":");
        self.encoder.name(out, node.path.as_str());
        out.put_slice(b",\"model\":");
        self.encoder.name(out, &model.name);
        out.put_slice(b",\"gateway_time\":");
        json::timestamp(out, newest.gateway_time);
        out.put_slice(b",\"context\":");
        json::context(out, &newest.context);
        out.put_slice(b",\"attributes\":{");
        for (i, (tag, sample)) in readings().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            self.encoder.name(out, &tag.attribute.name);
            out.put_slice(b":{");
            self.encoder.write_reading(tag, sample, out);
            out.put_u8(b'}');
        }
        out.put_slice(b"}}");
        true
    }
}

/// The gateway status payload (`docs/payloads.md`, "Gateway status").
#[derive(Debug, Serialize)]
pub struct StatusPayload<'a> {
    pub kind: &'static str,
    pub gateway: &'a str,
    /// `online` or `offline`.
    pub status: &'static str,
    /// Why offline: `shutdown` (orderly stop) or `connection_lost` (the Last Will).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// When the status was published; absent in the Last Will, whose time is unknown
    /// when it is registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    pub version: &'static str,
}

impl StatusPayload<'_> {
    pub fn to_bytes(&self) -> Bytes {
        serde_json::to_vec(self).map(Bytes::from).unwrap_or_default()
    }
}

pub(crate) fn status(
    gateway: &str,
    online: bool,
    reason: Option<&'static str>,
    time: Option<Timestamp>,
) -> Bytes {
    StatusPayload {
        kind: "status",
        gateway,
        status: if online { "online" } else { "offline" },
        reason,
        time,
        version: env!("CARGO_PKG_VERSION"),
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use backplane_connector::payload::SamplePayload;
    use backplane_model::{Context, DataType, Quality, Unit, Value};
    use proptest::prelude::*;
    use serde::ser::SerializeMap;

    use super::super::fixture;
    use super::*;

    /// The instance form through serde, as it was written before the shared encoder: the
    /// reference the encoder's output is compared with.
    #[derive(Debug, Serialize)]
    struct InstancePayload<'a> {
        kind: &'static str,
        asset: &'a str,
        model: &'a str,
        gateway_time: Timestamp,
        context: &'a Context,
        attributes: Attributes<'a>,
    }

    #[derive(Debug)]
    struct Attributes<'a>(Vec<(&'a str, AttributeEntry<'a>)>);

    impl Serialize for Attributes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (name, entry) in &self.0 {
                map.serialize_entry(name, entry)?;
            }
            map.end()
        }
    }

    #[derive(Debug, Serialize)]
    struct AttributeEntry<'a> {
        value: &'a Option<Value>,
        #[serde(rename = "type", serialize_with = "display")]
        data_type: DataType,
        #[serde(skip_serializing_if = "Option::is_none")]
        unit: Option<&'a Unit>,
        quality: Quality,
        #[serde(skip_serializing_if = "Option::is_none")]
        quality_reason: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source_time: Option<Timestamp>,
        gateway_time: Timestamp,
    }

    fn display<S: serde::Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    fn reference_instance(topology: &Topology, asset: usize, latest: &[Option<Sample>]) -> Option<String> {
        let node = topology.assets.get(asset)?;
        let model = node.model.as_ref()?;
        let mut attributes = Vec::new();
        let mut newest: Option<&Sample> = None;
        for tag in &node.tags {
            let Some(sample) = latest.get(tag.index()).and_then(Option::as_ref) else {
                continue;
            };
            let info = topology.tag(*tag)?;
            if newest.is_none_or(|n| sample.gateway_time >= n.gateway_time) {
                newest = Some(sample);
            }
            attributes.push((
                info.attribute.name.as_str(),
                AttributeEntry {
                    value: &sample.value,
                    data_type: info.attribute.data_type,
                    unit: info.attribute.unit.as_ref(),
                    quality: sample.quality,
                    quality_reason: sample.quality.reason(),
                    source_time: sample.source_time,
                    gateway_time: sample.gateway_time,
                },
            ));
        }
        let newest = newest?;
        serde_json::to_string(&InstancePayload {
            kind: "instance",
            asset: node.path.as_str(),
            model: &model.name,
            gateway_time: newest.gateway_time,
            context: &newest.context,
            attributes: Attributes(attributes),
        })
        .ok()
    }

    fn value() -> impl Strategy<Value = Option<Value>> {
        prop::option::weighted(
            0.9,
            prop_oneof![
                any::<u64>().prop_map(|bits| Value::Float(f64::from_bits(bits))),
                any::<i64>().prop_map(Value::Int),
                "(.|[\"\\\\\u{0}-\u{1f}])*".prop_map(|s: String| Value::String(s.into())),
            ],
        )
    }

    prop_compose! {
        fn reading()(
            value in value(),
            code in prop_oneof![Just(0u32), Just(0x4090_0000), Just(0x8005_0000), any::<u32>()],
            source_time in prop::option::of(any::<i64>()),
            // Few distinct times, so ties for the newest happen.
            gateway_time in 0i64..4,
            work_order in prop::option::of("(.|[\"\u{0}-\u{1f}])*"),
        ) -> (Option<Value>, Quality, Option<Timestamp>, Timestamp, Context) {
            let context = Context { work_order: work_order.map(Into::into), shift: Some("A".into()), ..Context::default() };
            (
                value,
                Quality::from_status_code(code),
                source_time.map(Timestamp::from_unix_nanos),
                Timestamp::from_unix_nanos(1_795_000_000_000_000_000 + gateway_time * 500_000_000),
                context,
            )
        }
    }

    proptest! {
        #[test]
        fn attribute_and_instance_payloads_are_what_serde_json_writes(
            readings in prop::collection::vec(prop::option::of(reading()), 2),
            seq in prop::option::of(any::<u64>()),
            replay in any::<bool>(),
        ) {
            let (topology, settings) = fixture::topology();
            let ns = Namespace::new(topology.clone(), &settings);
            let latest: Vec<Option<Sample>> = readings
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    r.map(|(value, quality, source_time, gateway_time, context)| Sample {
                        tag: TagId(i as u32),
                        value,
                        quality,
                        source_time,
                        gateway_time,
                        context: Arc::new(context),
                    })
                })
                .collect();
            let asset = topology.asset_index("acme/plant/area/tank-1").unwrap();
            let instance = ns.instance_message(asset, &latest, Vec::new());
            let text = instance.as_ref().map(|m| std::str::from_utf8(&m.payload).unwrap().to_owned());
            prop_assert_eq!(text, reference_instance(&topology, asset, &latest));
            for sample in latest.iter().flatten() {
                let m = ns.attribute_message(sample, seq, replay, true, None, Vec::new()).unwrap();
                let want = serde_json::to_string(
                    &SamplePayload::new(&topology, sample).unwrap().with_seq(seq, replay),
                )
                .unwrap();
                prop_assert_eq!(std::str::from_utf8(&m.payload).unwrap(), want);
                let path = topology.path(topology.tag(sample.tag).unwrap());
                prop_assert_eq!(ns.topic_text(&m.topic), format!("v1/{path}"));
            }
        }
    }

    #[test]
    fn topics_are_the_prefix_and_the_tags_path() {
        let (topology, settings) = fixture::topology();
        let ns = Namespace::new(topology.clone(), &settings);
        let tag = topology.tag_by_path("acme/plant/area/tank-1/level").unwrap().id;
        assert_eq!(
            ns.topic_text(&Topic::Attribute(tag)),
            "v1/acme/plant/area/tank-1/level"
        );
        let mut topic = String::from("kept:");
        assert!(ns.write_attribute_topic(tag, &mut topic));
        assert_eq!(topic, "kept:v1/acme/plant/area/tank-1/level");
        assert!(!ns.write_attribute_topic(TagId(99), &mut topic));
        assert_eq!(topic, "kept:v1/acme/plant/area/tank-1/level", "nothing written");
        assert_eq!(ns.topic_text(&Topic::Attribute(TagId(99))), "");
        let tank = topology.tag(tag).unwrap().asset;
        assert_eq!(
            ns.topic_text(&Topic::Instance(tank)),
            "v1/acme/plant/area/tank-1/_instance"
        );
        assert_eq!(ns.topic_text(&Topic::Instance(999)), "");
    }

    #[test]
    fn status_payloads_say_online_or_why_offline() {
        let online: serde_json::Value =
            serde_json::from_slice(&status("gw", true, None, Some(Timestamp::from_unix_nanos(0)))).unwrap();
        assert_eq!(online["status"], "online");
        assert_eq!(online["time"], "1970-01-01T00:00:00Z");
        let will: serde_json::Value =
            serde_json::from_slice(&status("gw", false, Some("connection_lost"), None)).unwrap();
        assert_eq!(will["reason"], "connection_lost");
        assert!(will.get("time").is_none());
    }
}
