//! The unified namespace's topics and payload forms: attribute, instance, event and
//! status messages (`docs/payloads.md`), and the latest sample of every tag. No I/O.

use std::collections::VecDeque;
use std::sync::Arc;

use backplane_engine::payload::{EventPayload, SamplePayload};
use backplane_engine::{Batch, Delivery, Topology};
use backplane_model::{Context, DataType, Quality, Sample, TagId, Timestamp, Unit, Value};
use bytes::Bytes;
use serde::Serialize;
use serde::ser::SerializeMap;

use super::config::MqttSinkSettings;

/// Whether a message is part of the namespace's state (superseded by a newer value of the
/// same topic) or a record that must not be skipped (events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    State,
    Event,
}

/// One MQTT message to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    pub kind: MessageKind,
    /// The acknowledgement group the message belongs to (see [`Groups`]); `None` for
    /// messages made from no log record (status, snapshots).
    pub group: Option<u64>,
}

/// The namespace's topics and payloads, and the latest sample of every tag. No I/O.
#[derive(Debug)]
pub struct Namespace {
    topology: Arc<Topology>,
    prefix: String,
    attributes: bool,
    instances: bool,
    events: bool,
    retain: bool,
    latest: Vec<Option<Sample>>,
    /// The stream number of each tag's latest sample.
    latest_seq: Vec<Option<u64>>,
    dirty: Vec<bool>,
    dirty_tags: Vec<TagId>,
    dirty_assets: Vec<usize>,
    asset_dirty: Vec<bool>,
}

impl Namespace {
    pub fn new(topology: Arc<Topology>, settings: &MqttSinkSettings) -> Namespace {
        let tags = topology.tags.len();
        let assets = topology.assets.len();
        Namespace {
            prefix: settings
                .topic_prefix
                .as_ref()
                .filter(|p| !p.is_empty())
                .map(|p| format!("{p}/"))
                .unwrap_or_default(),
            topology,
            attributes: settings.attributes,
            instances: settings.instances,
            events: settings.events,
            retain: settings.retain,
            latest: vec![None; tags],
            latest_seq: vec![None; tags],
            dirty: vec![false; tags],
            dirty_tags: Vec::new(),
            dirty_assets: Vec::new(),
            asset_dirty: vec![false; assets],
        }
    }

    /// The topic of a tag's attribute payload.
    pub fn attribute_topic(&self, tag: TagId) -> Option<String> {
        self.topology
            .tag(tag)
            .map(|t| format!("{}{}", self.prefix, t.path))
    }

    pub fn instance_topic(&self, asset: usize) -> Option<String> {
        self.topology
            .assets
            .get(asset)
            .map(|a| format!("{}{}/_instance", self.prefix, a.path))
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

    /// Records a batch: events become messages at once, samples mark their tags for the
    /// next [`flush`](Self::flush) (several samples of one tag collapse into the latest).
    pub fn apply(&mut self, batch: &Batch, out: &mut VecDeque<Message>) {
        let delivery = Delivery {
            batch: Arc::new(batch.clone()),
            record: None,
            seqs: None,
            replay: false,
        };
        self.apply_delivery(&delivery, true, None, out);
    }

    /// Records a delivery from the engine. Events always become messages at once. With
    /// `coalesce` (batching on), live samples mark their tags for the next flush; without
    /// it, and for replays, every sample becomes its own attribute message, so every
    /// stream number reaches the broker. A sample newer than its tag's latest becomes the
    /// latest (retained); an older one (a replay behind live data) is sent unretained, so
    /// the retained state never goes back in time.
    pub fn apply_delivery(
        &mut self,
        delivery: &Delivery,
        coalesce: bool,
        group: Option<u64>,
        out: &mut VecDeque<Message>,
    ) {
        let batch = &delivery.batch;
        if self.events {
            for (j, event) in batch.events.iter().enumerate() {
                let payload = EventPayload::new(event).with_seq(delivery.event_seq(j), delivery.replay);
                if let Ok(payload) = serde_json::to_vec(&payload) {
                    out.push_back(Message {
                        topic: self.events_topic(event.asset.as_str()),
                        payload: payload.into(),
                        retain: false,
                        kind: MessageKind::Event,
                        group,
                    });
                }
            }
        }
        let coalesce = coalesce && !delivery.replay;
        for (k, sample) in batch.samples.iter().enumerate() {
            let i = sample.tag.index();
            let seq = delivery.sample_seq(k);
            let Some(slot) = self.latest.get_mut(i) else {
                continue;
            };
            let newest = slot
                .as_ref()
                .is_none_or(|l| sample.gateway_time >= l.gateway_time);
            if newest {
                *slot = Some(sample.clone());
                self.latest_seq[i] = seq;
                if let Some(asset) = self.topology.tag(sample.tag).map(|t| t.asset)
                    && !self.asset_dirty[asset]
                {
                    self.asset_dirty[asset] = true;
                    self.dirty_assets.push(asset);
                }
            }
            if coalesce {
                if !self.dirty[i] {
                    self.dirty[i] = true;
                    self.dirty_tags.push(sample.tag);
                }
            } else if self.attributes
                && let Some(m) =
                    self.sample_message(sample, seq, delivery.replay, newest && self.retain, group)
            {
                out.push_back(m);
            }
        }
    }

    /// Whether samples are waiting for a flush.
    pub fn has_dirty(&self) -> bool {
        !self.dirty_tags.is_empty()
    }

    /// Messages for every tag and asset changed since the last flush.
    pub fn flush(&mut self, out: &mut VecDeque<Message>) {
        self.flush_group(None, out);
    }

    /// [`flush`](Self::flush), the messages belonging to acknowledgement `group`.
    pub fn flush_group(&mut self, group: Option<u64>, out: &mut VecDeque<Message>) {
        let tags = std::mem::take(&mut self.dirty_tags);
        for tag in &tags {
            self.dirty[tag.index()] = false;
            if self.attributes
                && let Some(mut m) = self.attribute_message(*tag)
            {
                m.group = group;
                out.push_back(m);
            }
        }
        self.dirty_tags = tags;
        self.dirty_tags.clear();
        let assets = std::mem::take(&mut self.dirty_assets);
        for asset in &assets {
            self.asset_dirty[*asset] = false;
            if self.instances
                && let Some(mut m) = self.instance_message(*asset)
            {
                m.group = group;
                out.push_back(m);
            }
        }
        self.dirty_assets = assets;
        self.dirty_assets.clear();
    }

    /// Messages for every tag and asset with a known value: what a consumer needs after
    /// the broker lost its retained messages, or after the gateway was away.
    pub fn snapshot(&mut self, out: &mut VecDeque<Message>) {
        for tag in &mut self.dirty_tags.drain(..) {
            self.dirty[tag.index()] = false;
        }
        for asset in self.dirty_assets.drain(..) {
            self.asset_dirty[asset] = false;
        }
        if self.attributes {
            for i in 0..self.latest.len() {
                if let Some(m) = self.attribute_message(TagId(i as u32)) {
                    out.push_back(m);
                }
            }
        }
        if self.instances {
            for asset in 0..self.topology.assets.len() {
                if let Some(m) = self.instance_message(asset) {
                    out.push_back(m);
                }
            }
        }
    }

    fn attribute_message(&self, tag: TagId) -> Option<Message> {
        let sample = self.latest.get(tag.index())?.as_ref()?;
        let seq = self.latest_seq.get(tag.index()).copied().flatten();
        self.sample_message(sample, seq, false, self.retain, None)
    }

    fn sample_message(
        &self,
        sample: &Sample,
        seq: Option<u64>,
        replay: bool,
        retain: bool,
        group: Option<u64>,
    ) -> Option<Message> {
        let payload = SamplePayload::new(&self.topology, sample)?.with_seq(seq, replay);
        let bytes = serde_json::to_vec(&payload).ok()?;
        Some(Message {
            topic: self.attribute_topic(sample.tag)?,
            payload: bytes.into(),
            retain,
            kind: MessageKind::State,
            group,
        })
    }

    fn instance_message(&self, asset: usize) -> Option<Message> {
        let node = self.topology.assets.get(asset)?;
        let model = node.model.as_ref()?;
        let mut attributes = Vec::with_capacity(node.tags.len());
        let mut newest: Option<&Sample> = None;
        for tag in &node.tags {
            let Some(sample) = self.latest.get(tag.index()).and_then(Option::as_ref) else {
                continue;
            };
            let Some(info) = self.topology.tag(*tag) else {
                continue;
            };
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
        let payload = InstancePayload {
            kind: "instance",
            asset: node.path.as_str(),
            model: &model.name,
            gateway_time: newest.gateway_time,
            context: &newest.context,
            attributes: Attributes(attributes),
        };
        let bytes = serde_json::to_vec(&payload).ok()?;
        Some(Message {
            topic: self.instance_topic(asset)?,
            payload: bytes.into(),
            retain: self.retain,
            kind: MessageKind::State,
            group: None,
        })
    }
}

/// The instance form (`docs/payloads.md`, "Instance"): one asset, all its attributes.
#[derive(Debug, Serialize)]
struct InstancePayload<'a> {
    kind: &'static str,
    asset: &'a str,
    model: &'a str,
    /// The newest `gateway_time` among the attributes.
    gateway_time: Timestamp,
    context: &'a Context,
    attributes: Attributes<'a>,
}

/// Attributes in model order, as a JSON object.
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

/// One attribute inside the instance form: the sample fields that are not the asset's.
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
    use super::*;
    use crate::uns::fixture::{sample, topology};

    #[test]
    fn samples_become_retained_attribute_and_instance_messages_under_the_prefix() {
        let (topology, settings) = topology();
        let mut ns = Namespace::new(topology.clone(), &settings);
        let batch = Batch {
            samples: vec![sample(&topology, "acme/plant/area/tank-1/level", 42.0, 1)],
            events: vec![],
        };
        let mut out = VecDeque::new();
        ns.apply(&batch, &mut out);
        ns.flush(&mut out);
        let topics: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
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
        let mut ns = Namespace::new(topology.clone(), &settings);
        let mut out = VecDeque::new();
        for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
            let batch = Batch {
                samples: vec![sample(&topology, "acme/plant/area/tank-1/level", v, i as i64)],
                events: vec![],
            };
            ns.apply(&batch, &mut out);
        }
        assert!(out.is_empty());
        ns.flush(&mut out);
        let level: Vec<_> = out.iter().filter(|m| m.topic.ends_with("/level")).collect();
        assert_eq!(level.len(), 1);
        let json: serde_json::Value = serde_json::from_slice(&level[0].payload).unwrap();
        assert_eq!(json["value"], 3.0);
        assert!(!ns.has_dirty());
    }

    #[test]
    fn every_sample_of_a_delivery_is_published_with_its_number_and_replays_never_regress_retained_state() {
        let (topology, settings) = topology();
        let mut ns = Namespace::new(topology.clone(), &settings);
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
        ns.apply_delivery(&live, false, Some(7), &mut out);
        let levels: Vec<_> = out.iter().filter(|m| m.topic.ends_with("/level")).collect();
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
        ns.apply_delivery(&old, false, Some(8), &mut out);
        assert_eq!(out.len(), 1);
        let json: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(
            (json["seq"].as_u64(), json["replay"].as_bool()),
            (Some(3), Some(true))
        );
        assert!(!out[0].retain);
        out.clear();
        ns.snapshot(&mut out);
        let json: serde_json::Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(json["value"], 6.0, "the snapshot keeps the live value");
    }

    #[test]
    fn a_snapshot_repeats_every_known_value() {
        let (topology, settings) = topology();
        let mut ns = Namespace::new(topology.clone(), &settings);
        let mut out = VecDeque::new();
        let batch = Batch {
            samples: vec![
                sample(&topology, "acme/plant/area/tank-1/level", 1.0, 1),
                sample(&topology, "acme/plant/area/tank-1/temperature", 4.0, 2),
            ],
            events: vec![],
        };
        ns.apply(&batch, &mut out);
        ns.flush(&mut out);
        out.clear();
        ns.snapshot(&mut out);
        assert_eq!(out.len(), 3, "two attributes and one instance");
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
