//! Sink kind `mqtt`: the unified namespace (UNS) over MQTT.
//!
//! Every tag is published to the topic `[{topic_prefix}/]{asset path}/{attribute}` with the
//! engine's sample payload (`docs/payloads.md`, the same JSON as the JSON-lines sink and the
//! API). Optionally each asset's whole instance is published to `{asset path}/_instance`,
//! events to `{asset path}/_events`, and the gateway's status to a status topic whose
//! "offline" form is the MQTT Last Will. With `commands`, the sink also subscribes to a
//! command topic and runs the production commands an MES publishes there, replying on
//! `{topic}/reply`. `docs/connectors/mqtt.md` is the reference.
//!
//! Layout: [`Namespace`] turns batches into messages and does no I/O (it also coalesces
//! samples when batching is on); [`UnsSink`] drives one [`Link`] after another;
//! `CommandChannel` feeds the command topic's messages to one worker task that runs them
//! in arrival order ([`crate::commands`] reads and answers them, without I/O).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{Settings, Table};
use backplane_engine::payload::{EventPayload, SamplePayload};
use backplane_engine::{
    Batch, CommandFailed, CommandPath, ComponentError, Delivery, Sink, SinkContext, SinkIo, SinkKind,
    Topology,
};
use backplane_model::{Context, DataType, Quality, Sample, TagId, Timestamp, Unit, Value};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::backoff::Backoff;
use crate::commands::{Reply, Request};
use crate::common::{CLOSE_TIMEOUT, Groups, next_event, parse_inflight, parse_qos, sleep_until};
use crate::delivery::Delivery as Confirmation;
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
    /// The production command topic (`commands`); off unless configured.
    pub commands: CommandTopic,
}

/// Whether the sink takes production commands, and on which topic (`commands`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CommandTopic {
    /// `commands = false` or absent: the sink subscribes to nothing.
    #[default]
    Off,
    /// `commands = true` (or a table without `topic`): `[{prefix}/]backplane/{gateway}/commands`.
    Default,
    /// `commands = { topic = "..." }`: this topic, as written (no prefix).
    Topic(String),
}

impl CommandTopic {
    /// Reads `commands`: `true`, `false`, or `{ topic = "..." }`.
    fn parse(table: &mut Table<'_>) -> CommandTopic {
        let Some(item) = table.optional_item("commands") else {
            return CommandTopic::Off;
        };
        let hint = Some("write `commands = true`, or `commands = { topic = \"mes/line-1/commands\" }` for a topic of your own".to_owned());
        if let Some(on) = item.as_bool() {
            return if on {
                CommandTopic::Default
            } else {
                CommandTopic::Off
            };
        }
        let Some(mut t) = item.as_table() else {
            let found = item.type_name();
            let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            item.error(
                format!("`commands` must be true, false or a table with a `topic`, found {article} {found}"),
                hint,
            );
            return CommandTopic::Off;
        };
        let topic = t.optional_str("topic");
        let checked = match topic {
            None => CommandTopic::Default,
            Some(topic) => match validate_topic(topic) {
                Err(e) => {
                    t.error("topic", format!("invalid command `topic`: {e}"), hint);
                    CommandTopic::Off
                }
                Ok(()) if topic.starts_with('$') => {
                    t.error(
                        "topic",
                        format!("invalid command `topic`: `{topic}` starts with `$`, which is reserved for the broker"),
                        hint,
                    );
                    CommandTopic::Off
                }
                Ok(()) => CommandTopic::Topic(topic.to_owned()),
            },
        };
        t.finish();
        checked
    }
}

/// The kind registered as `mqtt` (sink).
#[derive(Debug)]
pub struct MqttSinkKind;

impl backplane_config::KindSpec for MqttSinkKind {
    fn describe(&self) -> &'static str {
        "unified namespace over MQTT: JSON per attribute and per instance, retained, with a status topic"
    }

    fn buffered(&self) -> bool {
        true
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
        let commands = CommandTopic::parse(table);
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
            commands,
        }))
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

struct UnsSink {
    name: String,
    settings: MqttSinkSettings,
    connection: ResolvedConnection,
}

/// Most messages made and not yet handed to the client before the sink reads more input.
const PENDING_MAX: usize = 4096;

impl Sink for UnsSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move { self.run_loop(io).await }.boxed()
    }
}

enum Step {
    Link(LinkEvent),
    Input(Option<Delivery>),
    Linger,
    Retry,
    /// A reply of the command worker; `None` if the worker has stopped.
    Reply(Option<Bytes>),
}

/// Commands read from the command topic and not yet run; more are refused as busy.
const COMMAND_QUEUE: usize = 256;

/// Replies waiting for the broker connection; more are dropped (and logged).
const REPLIES_MAX: usize = 1024;

/// The command topic of a running sink: the queue of the worker that runs the commands in
/// arrival order, and the replies it made, waiting to be published.
struct CommandChannel {
    topic: String,
    reply_topic: String,
    queue: tokio::sync::mpsc::Sender<Bytes>,
    replies: Option<tokio::sync::mpsc::UnboundedReceiver<Bytes>>,
    waiting: VecDeque<Bytes>,
}

impl CommandChannel {
    /// Starts the worker. `accepted` and `refused` count its outcomes.
    fn start(
        sink: &str,
        topic: String,
        path: CommandPath,
        accepted: impl Fn() + Send + Sync + 'static,
        refused: impl Fn() + Send + Sync + 'static,
    ) -> CommandChannel {
        let (queue, commands) = tokio::sync::mpsc::channel(COMMAND_QUEUE);
        let (reply_tx, replies) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run_commands(
            sink.to_owned(),
            path,
            commands,
            reply_tx,
            accepted,
            refused,
        ));
        CommandChannel {
            reply_topic: format!("{topic}/reply"),
            topic,
            queue,
            replies: Some(replies),
            waiting: VecDeque::new(),
        }
    }

    /// A message on the command topic: queued for the worker, or refused at once (a
    /// replayed retained message, a full queue). Empty messages (how MQTT clears a
    /// retained message) are ignored.
    fn receive(&mut self, sink: &str, payload: Bytes, retain: bool, refused: &dyn Fn()) {
        if payload.is_empty() {
            return;
        }
        let why = if retain {
            "a retained message is never run as a command (it would run again at every reconnect): publish commands with retain off, and clear the retained message with an empty one"
                .to_owned()
        } else {
            match self.queue.try_send(payload.clone()) {
                Ok(()) => return,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    format!(
                        "{COMMAND_QUEUE} commands are waiting to run; the command was not run: send it again later"
                    )
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    "the gateway is not running commands now; the command was not run".to_owned()
                }
            }
        };
        refused();
        let (request_id, command) = crate::commands::envelope_of(&payload);
        tracing::warn!(sink = %sink, request_id = ?request_id, command = ?command, error = %why, "mqtt: command refused");
        let reply = Reply::unavailable(request_id.as_deref(), command.as_deref(), why).to_bytes();
        self.reply(sink, reply.into());
    }

    fn reply(&mut self, sink: &str, reply: Bytes) {
        if self.waiting.len() >= REPLIES_MAX {
            tracing::warn!(sink = %sink, "mqtt: {REPLIES_MAX} command replies are waiting for the broker; dropping one");
            return;
        }
        self.waiting.push_back(reply);
    }
}

/// Runs the commands of one sink's command topic, one after another in arrival order, and
/// sends back each reply.
async fn run_commands(
    sink: String,
    path: CommandPath,
    mut commands: tokio::sync::mpsc::Receiver<Bytes>,
    replies: tokio::sync::mpsc::UnboundedSender<Bytes>,
    accepted: impl Fn() + Send + Sync + 'static,
    refused: impl Fn() + Send + Sync + 'static,
) {
    while let Some(payload) = commands.recv().await {
        let reply = match crate::commands::parse(&payload) {
            Err(rejected) => {
                refused();
                tracing::warn!(sink = %sink, request_id = ?rejected.request_id, command = ?rejected.command, error = %rejected.refusal.message(), "mqtt: command refused");
                rejected.reply().to_bytes()
            }
            Ok(Request {
                request_id,
                by,
                command,
            }) => {
                let name = command.name();
                match path.execute(command, Some(by.clone())).await {
                    Ok(result) => {
                        accepted();
                        tracing::info!(sink = %sink, request_id = ?request_id, command = name, by = %by, "mqtt: command carried out");
                        Reply::ok(request_id.as_deref(), name, &result).to_bytes()
                    }
                    Err(CommandFailed::Refused(refusal)) => {
                        refused();
                        tracing::warn!(sink = %sink, request_id = ?request_id, command = name, by = %by, error = %refusal.message(), "mqtt: command refused");
                        Reply::refused(request_id.as_deref(), Some(name), &refusal).to_bytes()
                    }
                    Err(CommandFailed::Stopped) => {
                        refused();
                        tracing::warn!(sink = %sink, request_id = ?request_id, command = name, "mqtt: command not run: the engine is stopping");
                        Reply::unavailable(
                            request_id.as_deref(),
                            Some(name),
                            "the gateway is shutting down; the command was not run".to_owned(),
                        )
                        .to_bytes()
                    }
                }
            }
        };
        if replies.send(reply.into()).is_err() {
            return;
        }
    }
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
        // Unconfirmed messages at a disconnect; their records are sent again (replayed).
        let lost = io.status.counter("messages_unconfirmed_at_disconnect");
        let rejected_counter = io.status.counter("messages_rejected");
        let mut pending: VecDeque<Message> = VecDeque::new();
        let mut unconfirmed: HashMap<u64, Option<u64>> = HashMap::new();
        let mut groups = Groups::default();
        let mut link: Option<Link> = Some(Link::open(&self.connection, &options));
        let mut connected = false;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut input_open = true;
        let mut linger_until: Option<tokio::time::Instant> = None;
        let mut rejected = 0u64;
        let mut commands = None;
        let mut commands_refused = None;
        let command_topic = match &s.commands {
            CommandTopic::Off => None,
            CommandTopic::Default => Some(ns.default_commands_topic(&gateway)),
            CommandTopic::Topic(topic) => Some(topic.clone()),
        };
        if let Some(topic) = command_topic {
            let accepted = io.status.counter("commands_accepted");
            let refused = io.status.counter("commands_refused");
            commands_refused = Some(refused.clone());
            commands = Some(CommandChannel::start(
                &self.name,
                topic,
                io.commands.clone(),
                move || {
                    accepted.inc();
                },
                move || {
                    refused.inc();
                },
            ));
        }
        let count_refused = move || {
            if let Some(c) = &commands_refused {
                c.inc();
            }
        };

        loop {
            // Read input only while connected: while the broker is away the backlog
            // waits in the store-and-forward log, not in memory.
            let want_input = input_open && connected && pending.len() < PENDING_MAX;
            let step = tokio::select! {
                biased;
                event = next_event(&mut link) => Step::Link(event),
                () = sleep_until(retry_at) => Step::Retry,
                () = sleep_until(linger_until) => Step::Linger,
                reply = async { match commands.as_mut().and_then(|c| c.replies.as_mut()) { Some(r) => r.recv().await, None => std::future::pending().await } } => Step::Reply(reply),
                delivery = io.next(), if want_input => Step::Input(delivery),
                () = io.input_closed(), if input_open && !connected => Step::Input(None),
            };
            match step {
                Step::Link(LinkEvent::Connected) => {
                    connected = true;
                    backoff.reset();
                    io.status.set_degraded(None);
                    tracing::info!(sink = %self.name, broker = %s.connection.host, "mqtt: connected");
                    pending.push_back(Message {
                        topic: status_topic.clone(),
                        payload: status(&gateway, true, None, Some(Timestamp::now())),
                        retain: true,
                        kind: MessageKind::State,
                        group: None,
                    });
                    // The broker may have lost its retained messages: repeat the state.
                    ns.snapshot(&mut pending);
                    // Clean session: subscribe again at every connection. A failure means
                    // the link has ended; its Disconnected event follows.
                    if let (Some(c), Some(l)) = (commands.as_ref(), link.as_ref())
                        && l.subscribe(std::slice::from_ref(&c.topic), Qos::AtLeastOnce)
                            .await
                            .is_ok()
                    {
                        tracing::info!(sink = %self.name, topic = %c.topic, "mqtt: taking production commands");
                    }
                }
                Step::Link(LinkEvent::Delivered(d)) => {
                    let token = d.token();
                    if let Confirmation::Rejected { reason, .. } = &d {
                        // Refused for good (e.g. not authorized): resending would not help.
                        rejected += 1;
                        rejected_counter.inc();
                        tracing::warn!(sink = %self.name, %reason, rejected, "mqtt: the broker refused a message");
                    }
                    match d {
                        Confirmation::Confirmed(_) | Confirmation::Rejected { .. } => {
                            if let Some(Some(group)) = unconfirmed.remove(&token) {
                                for record in groups.done(group) {
                                    io.ack(record);
                                }
                            }
                        }
                        // Counted at the disconnect that follows.
                        Confirmation::Lost(_) => {}
                    }
                }
                Step::Link(LinkEvent::Message {
                    topic,
                    payload,
                    retain,
                }) => {
                    if let Some(c) = commands.as_mut()
                        && topic == c.topic
                    {
                        c.receive(&self.name, payload, retain, &count_refused);
                    }
                }
                Step::Reply(Some(reply)) => {
                    if let Some(c) = commands.as_mut() {
                        c.reply(&self.name, reply);
                    }
                }
                Step::Reply(None) => {
                    tracing::error!(sink = %self.name, "mqtt: the command worker stopped; commands are no longer run");
                    if let Some(c) = commands.as_mut() {
                        c.replies = None;
                    }
                }
                Step::Link(LinkEvent::Disconnected(why)) => {
                    if connected {
                        tracing::warn!(sink = %self.name, %why, "mqtt: connection lost; buffering on disk");
                    } else {
                        tracing::warn!(sink = %self.name, %why, "mqtt: cannot connect");
                    }
                    io.status
                        .set_degraded(Some(format!("broker unreachable, buffering on disk: {why}")));
                    lost.inc_by(unconfirmed.len() as u64);
                    connected = false;
                    link = None;
                    unconfirmed.clear();
                    // Everything made from records is sent again from the log, marked replay.
                    pending.clear();
                    groups.clear();
                    linger_until = None;
                    io.rewind();
                    if !input_open {
                        return Ok(());
                    }
                    retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                }
                Step::Retry => {
                    retry_at = None;
                    link = Some(Link::open(&self.connection, &options));
                }
                Step::Input(Some(delivery)) => {
                    let group = groups.current();
                    if let Some(record) = delivery.record {
                        groups.add_record(group, record);
                    }
                    let before = pending.len();
                    let coalesce = !s.linger.is_zero();
                    ns.apply_delivery(&delivery, coalesce, Some(group), &mut pending);
                    if !coalesce {
                        ns.flush_group(Some(group), &mut pending);
                    }
                    groups.add_messages(group, pending.len() - before);
                    if !coalesce {
                        for record in groups.close() {
                            io.ack(record);
                        }
                    } else if linger_until.is_none() {
                        linger_until = Some(tokio::time::Instant::now() + s.linger);
                    }
                }
                Step::Input(None) => {
                    input_open = false;
                    if let Some(group) = groups.open() {
                        let before = pending.len();
                        ns.flush_group(Some(group), &mut pending);
                        groups.add_messages(group, pending.len() - before);
                    }
                    for record in groups.close() {
                        io.ack(record);
                    }
                    if !connected {
                        tracing::warn!(sink = %self.name, "mqtt: stopping while disconnected; the backlog stays buffered on disk");
                        return Ok(());
                    }
                }
                Step::Linger => {
                    linger_until = None;
                    if let Some(group) = groups.open() {
                        let before = pending.len();
                        ns.flush_group(Some(group), &mut pending);
                        groups.add_messages(group, pending.len() - before);
                    }
                    for record in groups.close() {
                        io.ack(record);
                    }
                }
            }
            if connected && let Some(l) = link.as_mut() {
                // Command replies first: they are few, and someone is waiting for them.
                if let Some(c) = commands.as_mut() {
                    while l.outstanding() < usize::from(s.max_inflight) {
                        let Some(reply) = c.waiting.pop_front() else { break };
                        if l.publish(&c.reply_topic, Qos::AtLeastOnce, false, reply.clone())
                            .await
                            .is_err()
                        {
                            c.waiting.push_front(reply);
                            break;
                        }
                    }
                }
                while l.outstanding() < usize::from(s.max_inflight) {
                    let Some(m) = pending.pop_front() else { break };
                    match l.publish(&m.topic, s.qos, m.retain, m.payload.clone()).await {
                        Ok(token) => {
                            unconfirmed.insert(token, m.group);
                        }
                        Err(_) => {
                            pending.push_front(m);
                            break;
                        }
                    }
                }
                if !input_open && pending.is_empty() && unconfirmed.is_empty() {
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

    fn commands_setting(line: &str) -> Result<CommandTopic, Vec<String>> {
        let mut registry = Registry::with_builtins();
        registry.add_sink("mqtt", Arc::new(MqttSinkKind));
        let config = format!("{CONFIG}{line}\n");
        match backplane_config::load_str(&config, Path::new("t.toml"), &registry.catalog()) {
            Ok(plan) => Ok(plan.sinks[0]
                .settings
                .downcast_ref::<MqttSinkSettings>()
                .unwrap()
                .commands
                .clone()),
            Err(diagnostics) => Err(diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.key, d.message))
                .collect()),
        }
    }

    #[test]
    fn the_commands_key_turns_the_command_topic_on_with_the_default_or_its_own_topic() {
        assert_eq!(commands_setting(""), Ok(CommandTopic::Off));
        assert_eq!(commands_setting("commands = false"), Ok(CommandTopic::Off));
        assert_eq!(commands_setting("commands = true"), Ok(CommandTopic::Default));
        assert_eq!(commands_setting("commands = {}"), Ok(CommandTopic::Default));
        assert_eq!(
            commands_setting("commands = { topic = \"mes/line-1/commands\" }"),
            Ok(CommandTopic::Topic("mes/line-1/commands".into()))
        );
        let (topology, settings) = topology();
        let ns = Namespace::new(topology, &settings);
        assert_eq!(ns.default_commands_topic("gw"), "v1/backplane/gw/commands");
    }

    #[test]
    fn bad_commands_values_are_diagnosed_naming_the_key() {
        for (line, key, says) in [
            (
                "commands = \"yes\"",
                "sinks[0].commands",
                "must be true, false or a table",
            ),
            ("commands = 1", "sinks[0].commands", "found an integer"),
            (
                "commands = { topic = \"mes/+/commands\" }",
                "sinks[0].commands.topic",
                "wildcard",
            ),
            (
                "commands = { topic = \"\" }",
                "sinks[0].commands.topic",
                "cannot be empty",
            ),
            (
                "commands = { topic = \"$SYS/commands\" }",
                "sinks[0].commands.topic",
                "reserved",
            ),
            (
                "commands = { topc = \"a/b\" }",
                "sinks[0].commands.topc",
                "unknown key",
            ),
        ] {
            let errors = commands_setting(line).expect_err(line);
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{key}: ")) && e.contains(says)),
                "{line}: {errors:?}"
            );
        }
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
