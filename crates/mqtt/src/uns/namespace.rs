//! The unified namespace's topics and payload forms: attribute, instance, event and
//! status messages (`docs/payloads.md`). No I/O, no state.

use std::collections::VecDeque;
use std::sync::Arc;

use backplane_connector::payload::{EventPayload, SamplePayload};
use backplane_connector::{Delivery, Topology};
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
    /// The acknowledgement group the message belongs to (see [`Groups`](crate::common::Groups)); `None` for
    /// messages made from no log record (status, snapshots).
    pub group: Option<u64>,
}

/// The namespace's topics and payload forms, as configured (prefix, `payload`, `events`,
/// `retain`). Holds no values: [`Latest`](super::session::Latest) does. No I/O.
#[derive(Debug)]
pub struct Namespace {
    topology: Arc<Topology>,
    prefix: String,
    attributes: bool,
    instances: bool,
    events: bool,
    retain: bool,
}

impl Namespace {
    pub fn new(topology: Arc<Topology>, settings: &MqttSinkSettings) -> Namespace {
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
        }
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// Whether state messages (attributes, instances) are published retained (`retain`).
    pub fn retain(&self) -> bool {
        self.retain
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

    /// The messages of a delivery's events (none with `events = false`), never retained.
    pub fn event_messages(&self, delivery: &Delivery, group: Option<u64>, out: &mut VecDeque<Message>) {
        if !self.events {
            return;
        }
        for (j, event) in delivery.batch.events.iter().enumerate() {
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

    /// A sample's attribute message with its stream number; `None` unless the attribute
    /// form is published. Whether it is retained is the caller's decision.
    pub fn attribute_message(
        &self,
        sample: &Sample,
        seq: Option<u64>,
        replay: bool,
        retain: bool,
        group: Option<u64>,
    ) -> Option<Message> {
        if !self.attributes {
            return None;
        }
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

    /// An asset's instance message from the latest sample of every tag (indexed by tag);
    /// `None` unless the instance form is published, or if no attribute has a value yet.
    pub fn instance_message(&self, asset: usize, latest: &[Option<Sample>]) -> Option<Message> {
        if !self.instances {
            return None;
        }
        let node = self.topology.assets.get(asset)?;
        let model = node.model.as_ref()?;
        let mut attributes = Vec::with_capacity(node.tags.len());
        let mut newest: Option<&Sample> = None;
        for tag in &node.tags {
            let Some(sample) = latest.get(tag.index()).and_then(Option::as_ref) else {
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
