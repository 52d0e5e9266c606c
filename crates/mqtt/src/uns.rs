//! Sink kind `mqtt`: the unified namespace (UNS) over MQTT.
//!
//! Every tag is published to the topic `[{topic_prefix}/]{asset path}/{attribute}` with the
//! engine's sample payload (`docs/payloads.md`, the same JSON as the JSON-lines sink and the
//! API). Optionally each asset's whole instance is published to `{asset path}/_instance`,
//! events to `{asset path}/_events`, and the gateway's status to a status topic whose
//! "offline" form is the MQTT Last Will. `docs/connectors/mqtt.md` is the reference.
//!
//! Layout: [`Namespace`] turns batches into messages and does no I/O (it also coalesces
//! samples when batching is on); [`UnsSink`] drives one [`Link`] after another.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{Settings, Table};
use backplane_engine::payload::{EventPayload, SamplePayload};
use backplane_engine::{Batch, ComponentError, Sink, SinkContext, SinkIo, SinkKind, Topology};
use backplane_model::{Context, DataType, Quality, Sample, TagId, Timestamp, Unit, Value};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::backoff::Backoff;
use crate::delivery::Delivery;
use crate::link::{Link, LinkEvent, LinkOptions, Will};
use crate::settings::{ConnectionSettings, Qos, ResolvedConnection};
use crate::topic::validate_topic;

/// Settings of one `mqtt` sink.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttSinkSettings {
    pub connection: ConnectionSettings,
    /// Prepended to every topic (without a trailing `/`).
    pub topic_prefix: Option<String>,
    pub qos: Qos,
    /// Publish samples and instances retained, so a new subscriber sees the last values.
    pub retain: bool,
    /// Publish one message per attribute (`{asset}/{attribute}`).
    pub attributes: bool,
    /// Publish one message per asset with all its attributes (`{asset}/_instance`).
    pub instances: bool,
    /// Publish events (`{asset}/_events`, not retained).
    pub events: bool,
    /// `None`: `[{prefix}/]backplane/{gateway}/status`.
    pub status_topic: Option<String>,
    /// Batching: collect samples this long and publish only the latest per tag. Zero
    /// publishes every sample as it comes.
    pub linger: Duration,
    /// Most publishes waiting for the broker's acknowledgement at once.
    pub max_inflight: u16,
}

/// The kind registered as `mqtt` (sink).
#[derive(Debug)]
pub struct MqttSinkKind;

impl backplane_config::KindSpec for MqttSinkKind {
    fn describe(&self) -> &'static str {
        "unified namespace over MQTT: JSON per attribute and per instance, retained, with a status topic"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        let connection = ConnectionSettings::parse(table);
        let topic_prefix = table
            .optional_str("topic_prefix")
            .map(|p| p.trim_end_matches('/').to_owned());
        if let Some(p) = &topic_prefix
            && let Err(e) = validate_topic(p).and_then(|()| {
                if p.starts_with('/') {
                    Err("a prefix must not start with `/`".into())
                } else {
                    Ok(())
                }
            })
        {
            table.error("topic_prefix", format!("invalid `topic_prefix`: {e}"), None);
        }
        let qos = parse_qos(table, "qos", Qos::AtLeastOnce);
        let retain = table.optional_bool("retain").unwrap_or(true);
        let (attributes, instances) = match table.optional_str("payload") {
            None | Some("attribute") => (true, false),
            Some("instance") => (false, true),
            Some("both") => (true, true),
            Some(other) => {
                table.error(
                    "payload",
                    format!("unknown payload form `{other}`"),
                    Some("one of: \"attribute\", \"instance\", \"both\"".into()),
                );
                (true, false)
            }
        };
        let events = table.optional_bool("events").unwrap_or(true);
        let status_topic = table.optional_str("status_topic").map(str::to_owned);
        if let Some(t) = &status_topic
            && let Err(e) = validate_topic(t)
        {
            table.error("status_topic", format!("invalid `status_topic`: {e}"), None);
        }
        let linger = table.optional_duration("batch_linger").unwrap_or(Duration::ZERO);
        if linger > Duration::from_secs(60) {
            table.error("batch_linger", "`batch_linger` must be at most 60s", None);
        }
        let max_inflight = parse_inflight(table);
        Some(Arc::new(MqttSinkSettings {
            connection: connection?,
            topic_prefix,
            qos,
            retain,
            attributes,
            instances,
            events,
            status_topic,
            linger,
            max_inflight,
        }))
    }
}

pub(crate) fn parse_qos(table: &mut Table<'_>, key: &str, default: Qos) -> Qos {
    match table.optional_u64(key) {
        None => default,
        Some(level) => Qos::from_level(level).unwrap_or_else(|| {
            table.error(key, format!("`{key}` must be 0, 1 or 2"), None);
            default
        }),
    }
}

pub(crate) fn parse_inflight(table: &mut Table<'_>) -> u16 {
    match table.optional_u64("max_inflight") {
        None => 256,
        Some(n) if (1..=65535).contains(&n) => n as u16,
        Some(_) => {
            table.error("max_inflight", "`max_inflight` must be between 1 and 65535", None);
            256
        }
    }
}

impl SinkKind for MqttSinkKind {
    fn build(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, ComponentError> {
        let settings = ctx
            .settings
            .downcast_ref::<MqttSinkSettings>()
            .ok_or_else(|| ComponentError::new("mqtt: settings of another kind"))?;
        let connection = settings
            .connection
            .resolve()
            .map_err(|e| ComponentError::new(format!("mqtt sink `{}`: {e}", ctx.name)))?;
        Ok(Box::new(UnsSink {
            name: ctx.name.to_owned(),
            settings: settings.clone(),
            connection,
        }))
    }
}

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

    /// Records a batch: events become messages at once, samples mark their tags for the
    /// next [`flush`](Self::flush) (several samples of one tag collapse into the latest).
    pub fn apply(&mut self, batch: &Batch, out: &mut VecDeque<Message>) {
        if self.events {
            for event in &batch.events {
                if let Ok(payload) = serde_json::to_vec(&EventPayload::new(event)) {
                    out.push_back(Message {
                        topic: self.events_topic(event.asset.as_str()),
                        payload: payload.into(),
                        retain: false,
                        kind: MessageKind::Event,
                    });
                }
            }
        }
        for sample in &batch.samples {
            let i = sample.tag.index();
            let Some(slot) = self.latest.get_mut(i) else {
                continue;
            };
            *slot = Some(sample.clone());
            if !self.dirty[i] {
                self.dirty[i] = true;
                self.dirty_tags.push(sample.tag);
            }
            if let Some(asset) = self.topology.tag(sample.tag).map(|t| t.asset)
                && !self.asset_dirty[asset]
            {
                self.asset_dirty[asset] = true;
                self.dirty_assets.push(asset);
            }
        }
    }

    /// Whether samples are waiting for a flush.
    pub fn has_dirty(&self) -> bool {
        !self.dirty_tags.is_empty()
    }

    /// Messages for every tag and asset changed since the last flush.
    pub fn flush(&mut self, out: &mut VecDeque<Message>) {
        let tags = std::mem::take(&mut self.dirty_tags);
        for tag in &tags {
            self.dirty[tag.index()] = false;
            if self.attributes
                && let Some(m) = self.attribute_message(*tag)
            {
                out.push_back(m);
            }
        }
        self.dirty_tags = tags;
        self.dirty_tags.clear();
        let assets = std::mem::take(&mut self.dirty_assets);
        for asset in &assets {
            self.asset_dirty[*asset] = false;
            if self.instances
                && let Some(m) = self.instance_message(*asset)
            {
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
        let payload = SamplePayload::new(&self.topology, sample)?;
        let bytes = serde_json::to_vec(&payload).ok()?;
        Some(Message {
            topic: self.attribute_topic(tag)?,
            payload: bytes.into(),
            retain: self.retain,
            kind: MessageKind::State,
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

struct UnsSink {
    name: String,
    settings: MqttSinkSettings,
    connection: ResolvedConnection,
}

/// Events kept for publishing while the broker is away; the oldest go first when full.
const HELD_EVENTS: usize = 10_000;

/// How long shutdown waits for the last messages to be acknowledged.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Sink for UnsSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move { self.run_loop(io).await }.boxed()
    }
}

enum Step {
    Link(LinkEvent),
    Batch(Option<Arc<Batch>>),
    Linger,
    Retry,
}

impl UnsSink {
    async fn run_loop(self, io: SinkIo) -> Result<(), ComponentError> {
        let s = &self.settings;
        let gateway = io.topology.plan.gateway.name.clone();
        let mut ns = Namespace::new(io.topology.clone(), s);
        let status_topic = s
            .status_topic
            .clone()
            .unwrap_or_else(|| ns.default_status_topic(&gateway));
        let client_id = s
            .connection
            .client_id
            .clone()
            .unwrap_or_else(|| format!("backplane-{gateway}-{}", self.name));
        let options = LinkOptions {
            client_id,
            will: Some(Will {
                topic: status_topic.clone(),
                payload: status(&gateway, false, Some("connection_lost"), None),
                qos: Qos::AtLeastOnce,
                retain: true,
            }),
            inflight: s.max_inflight,
        };
        let mut backoff = Backoff::new(s.connection.reconnect_min, s.connection.reconnect_max);
        // Unconfirmed messages at a disconnect: state is re-sent by the snapshot, events again.
        let lost = io.status.counter("messages_unconfirmed_at_disconnect");
        let rejected_counter = io.status.counter("messages_rejected");
        let mut pending: VecDeque<Message> = VecDeque::new();
        let mut unconfirmed: HashMap<u64, Message> = HashMap::new();
        let mut link: Option<Link> = Some(Link::open(&self.connection, &options));
        let mut connected = false;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut input_open = true;
        let mut linger_until: Option<tokio::time::Instant> = None;
        let mut rejected = 0u64;

        loop {
            // Read more input only when what the last batch produced has gone out (or
            // cannot go out now: then samples only update the latest values).
            let want_input = input_open && (pending.is_empty() || !connected);
            let step = tokio::select! {
                biased;
                event = async { match link.as_mut() { Some(l) => l.next().await, None => std::future::pending().await } } => Step::Link(event),
                () = async { match retry_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => Step::Retry,
                () = async { match linger_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => Step::Linger,
                batch = io.recv(), if want_input => Step::Batch(batch),
            };
            match step {
                Step::Link(LinkEvent::Connected) => {
                    connected = true;
                    backoff.reset();
                    io.status.set_degraded(None);
                    tracing::info!(sink = %self.name, broker = %s.connection.host, "mqtt: connected");
                    let mut fresh = VecDeque::new();
                    fresh.push_back(Message {
                        topic: status_topic.clone(),
                        payload: status(&gateway, true, None, Some(Timestamp::now())),
                        retain: true,
                        kind: MessageKind::State,
                    });
                    ns.snapshot(&mut fresh);
                    // Events held while away follow the snapshot.
                    fresh.extend(pending.drain(..).filter(|m| m.kind == MessageKind::Event));
                    pending = fresh;
                    linger_until = None;
                }
                Step::Link(LinkEvent::Delivered(d)) => match d {
                    Delivery::Confirmed(token) => {
                        unconfirmed.remove(&token);
                    }
                    Delivery::Rejected { token, reason } => {
                        rejected += 1;
                        rejected_counter.inc();
                        if let Some(m) = unconfirmed.remove(&token) {
                            tracing::warn!(sink = %self.name, topic = %m.topic, %reason, rejected, "mqtt: the broker refused a message");
                        }
                    }
                    Delivery::Lost(token) => {
                        // Events go again; state messages are covered by the snapshot
                        // published after the next connect.
                        if let Some(m) = unconfirmed.remove(&token)
                            && m.kind == MessageKind::Event
                        {
                            pending.push_front(m);
                        }
                    }
                },
                Step::Link(LinkEvent::Message { .. }) => {}
                Step::Link(LinkEvent::Disconnected(why)) => {
                    if connected {
                        tracing::warn!(sink = %self.name, %why, "mqtt: connection lost; holding latest values");
                    } else {
                        tracing::warn!(sink = %self.name, %why, "mqtt: cannot connect");
                    }
                    io.status
                        .set_degraded(Some(format!("broker unreachable, holding latest values: {why}")));
                    lost.inc_by(unconfirmed.len() as u64);
                    connected = false;
                    link = None;
                    unconfirmed.clear();
                    pending.retain(|m| m.kind == MessageKind::Event);
                    trim_events(&mut pending);
                    if !input_open {
                        return Ok(());
                    }
                    retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                }
                Step::Retry => {
                    retry_at = None;
                    link = Some(Link::open(&self.connection, &options));
                }
                Step::Batch(Some(batch)) => {
                    ns.apply(&batch, &mut pending);
                    if s.linger.is_zero() {
                        ns.flush(&mut pending);
                    } else if linger_until.is_none() && ns.has_dirty() {
                        linger_until = Some(tokio::time::Instant::now() + s.linger);
                    }
                    if !connected {
                        pending.retain(|m| m.kind == MessageKind::Event);
                        trim_events(&mut pending);
                    }
                }
                Step::Batch(None) => {
                    input_open = false;
                    ns.flush(&mut pending);
                    if !connected {
                        tracing::warn!(sink = %self.name, "mqtt: stopping while disconnected; latest values not published");
                        return Ok(());
                    }
                }
                Step::Linger => {
                    linger_until = None;
                    ns.flush(&mut pending);
                }
            }
            if connected && let Some(l) = link.as_mut() {
                while l.outstanding() < usize::from(s.max_inflight) {
                    let Some(m) = pending.pop_front() else { break };
                    match l.publish(&m.topic, s.qos, m.retain, m.payload.clone()).await {
                        Ok(token) => {
                            unconfirmed.insert(token, m);
                        }
                        Err(_) => {
                            pending.push_front(m);
                            break;
                        }
                    }
                }
                if !input_open && pending.is_empty() {
                    // Orderly stop: say so on the status topic, wait for the broker, then
                    // DISCONNECT (which discards the will).
                    let _ = l
                        .publish(
                            &status_topic,
                            Qos::AtLeastOnce,
                            true,
                            status(&gateway, false, Some("shutdown"), Some(Timestamp::now())),
                        )
                        .await;
                    if let Some(l) = link.take() {
                        l.close(CLOSE_TIMEOUT).await;
                    }
                    return Ok(());
                }
            }
        }
    }
}

fn trim_events(pending: &mut VecDeque<Message>) {
    let excess = pending.len().saturating_sub(HELD_EVENTS);
    if excess > 0 {
        pending.drain(..excess);
        tracing::warn!(
            dropped = excess,
            "mqtt: too many events held while disconnected; dropped the oldest"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backplane_engine::Registry;
    use std::path::Path;

    const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = { type = "float", unit = "%" }
temperature = { type = "float", unit = "degC" }
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = { address = "l" }
bindings.temperature = { address = "t" }
[[sources]]
name = "sim"
kind = "simulator"
signals.l = { signal = "constant", value = 1.0 }
signals.t = { signal = "constant", value = 4.0 }
[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:1883"
topic_prefix = "v1/"
payload = "both"
"#;

    fn topology() -> (Arc<Topology>, MqttSinkSettings) {
        let mut registry = Registry::with_builtins();
        registry.add_sink("mqtt", Arc::new(MqttSinkKind));
        let plan = backplane_config::load_str(CONFIG, Path::new("t.toml"), &registry.catalog()).unwrap();
        let settings = plan.sinks[0]
            .settings
            .downcast_ref::<MqttSinkSettings>()
            .unwrap()
            .clone();
        (Arc::new(Topology::new(plan)), settings)
    }

    fn sample(topology: &Topology, path: &str, value: f64, at: i64) -> Sample {
        Sample {
            tag: topology.tag_by_path(path).unwrap().id,
            value: Some(Value::Float(value)),
            quality: Quality::Good,
            source_time: None,
            gateway_time: Timestamp::from_unix_nanos(at),
            context: Arc::new(Context::default()),
        }
    }

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
