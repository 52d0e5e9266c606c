//! The Sparkplug B Edge Node protocol state machine. It does no I/O: the driver
//! ([`super::sink`]) feeds it connection events, batches and received messages, and
//! carries out the [`Output`]s (publishes, writes, session ends). Everything here is
//! tested without a broker.
//!
//! Mapping: Backplane is one Edge Node (`group_id`, `edge_node_id`); every asset with a
//! model is a Device whose id is its path below the site with `/` replaced by `.`
//! (`packaging.line-1.filler`); every attribute is a metric named after it, with alias
//! `16 + tag index` (stable while the configuration is), its Sparkplug datatype, and the
//! properties `engUnit`, `engLow`, `engHigh` and `Quality` in the DBIRTH.
//!
//! Lifecycle: each MQTT session gets the next bdSeq (the driver persists it); its will is
//! an NDEATH with that bdSeq, and the NBIRTH (seq 0) carries the same bdSeq and the
//! `Node Control/Rebirth` metric. DBIRTHs follow, then DDATA with only the metrics whose
//! value or quality changed (report by exception); seq counts every message but NDEATH,
//! wrapping 255 → 0. A device whose every metric is bad because its source is down gets a
//! DDEATH, and a DBIRTH when a value comes back. `Node Control/Rebirth` in an NCMD repeats
//! the births. With a primary host configured, nothing is born until its STATE says
//! online (a STATE older than the last one counts for nothing); while it is offline samples
//! are held (bounded, oldest dropped first) and sent after the next births as DDATA with
//! every metric flagged historical. Births and data list their metrics in time order.

use std::collections::VecDeque;

use backplane_model::{BadReason, DataType, Quality, TagId, Timestamp, Value};

use super::codec::{
    self, MessageType, Topic, datatype_for, decode_payload, decode_value, encode_payload, encode_value,
    millis, quality_property,
};
use super::ddata::{DataMetric, DataPayload};
use super::proto::DataType as SpType;
use super::proto::Payload;
use super::proto::payload::{Metric, PropertySet, PropertyValue, property_value};
use super::state::parse_state;
use crate::settings::Qos;

/// The node metric that asks for a rebirth. It is addressed by name only: the
/// specification forbids an alias on it (tck-id-operational-behavior-data-commands-rebirth-name-aliases).
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";
pub const BDSEQ_METRIC: &str = "bdSeq";
/// Device metric aliases start here; below are node metrics.
pub const FIRST_DEVICE_ALIAS: u64 = 16;
/// Metrics per replayed DDATA message.
const REPLAY_CHUNK: usize = 500;

/// How the edge node is named and behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeConfig {
    pub group: String,
    pub node: String,
    /// The host application whose STATE gates births; `None` to publish regardless.
    pub primary_host: Option<String>,
    /// Samples held while the primary host is offline.
    pub hold_max: usize,
    /// Forward DCMD writes to the write path; otherwise refuse them.
    pub accept_commands: bool,
}

/// One metric of a device.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub alias: u64,
    pub tag: TagId,
    pub data_type: DataType,
    pub datatype: SpType,
    pub unit: Option<String>,
    pub range: Option<[f64; 2]>,
}

/// One device: an asset with a model.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceDef {
    pub id: String,
    pub metrics: Vec<MetricDef>,
}

/// The device id of an asset path: the levels below enterprise and site, joined by `.`.
pub fn device_id(asset_path: &str) -> String {
    let levels: Vec<&str> = asset_path.split('/').collect();
    let below_site = levels.get(2..).filter(|l| !l.is_empty()).unwrap_or(&levels[..]);
    below_site.join(".")
}

/// The devices of a topology: every asset with a model and at least one attribute.
pub fn devices(topology: &backplane_connector::Topology) -> Vec<DeviceDef> {
    topology
        .assets
        .iter()
        .filter(|a| a.model.is_some() && !a.tags.is_empty())
        .map(|a| DeviceDef {
            id: device_id(a.path.as_str()),
            metrics: a
                .tags
                .iter()
                .filter_map(|t| topology.tag(*t))
                .map(|t| MetricDef {
                    name: t.attribute.name.clone(),
                    alias: FIRST_DEVICE_ALIAS + u64::from(t.id.0),
                    tag: t.id,
                    data_type: t.attribute.data_type,
                    datatype: datatype_for(t.attribute.data_type),
                    unit: t.attribute.unit.as_ref().map(|u| u.to_string()),
                    range: t.attribute.range,
                })
                .collect(),
        })
        .collect()
}

/// A message to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
    /// A DDATA of live samples: the gateway time of the oldest of them, from which the
    /// sink records the delay to the socket write (`device_to_socket`). `None` for
    /// births, deaths and replays, whose age is not a delay of the path.
    pub born: Option<Timestamp>,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Publish(Publish),
    /// A DCMD asked to write `value` to the tag (already decoded to a Backplane value).
    Write {
        tag: TagId,
        value: Value,
        device: String,
        metric: String,
    },
    /// A DCMD write refused here (commands disabled, unknown metric, undecodable value).
    Refused {
        device: String,
        metric: String,
        reason: String,
    },
    /// The primary host went offline: publish the NDEATH, disconnect, and start a new
    /// session (the specification's rule, so the host sees a clean death and rebirth).
    EndSession(String),
    /// A received message that was ignored, with the reason (for the log).
    Ignored(String),
}

#[derive(Clone, Debug, PartialEq)]
struct Last {
    value: Option<Value>,
    quality: Quality,
    time: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
struct Held {
    tag: TagId,
    value: Option<Value>,
    quality: Quality,
    time: Timestamp,
}

/// A metric of a delivery that goes in its device's DDATA.
#[derive(Clone, Copy, Debug)]
struct Change {
    /// The device's place in [`Touched`] order.
    rank: usize,
    metric: usize,
    /// The sample's index in the delivery.
    sample: usize,
    /// Milliseconds, the metric's timestamp.
    time: u64,
    with_quality: bool,
}

/// A device with changes in a delivery, in the order the delivery first touched it.
#[derive(Clone, Copy, Debug)]
struct Touched {
    device: usize,
    /// The gateway time of its oldest changed sample.
    born: Timestamp,
}

const UNRANKED: usize = usize::MAX;

/// Entries `changes` and `touched` keep between deliveries: a poll's answer is a few
/// hundred changes; the room a burst took (a whole source's tags at once) is given back,
/// as the engine's scratch vectors do (`backplane_buffer::scratch`).
const SCRATCH_KEEP: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not connected.
    Offline,
    /// Connected; waiting for the primary host to be online.
    WaitingForHost,
    /// NBIRTH published.
    Born,
}

/// The edge node.
#[derive(Debug)]
pub struct EdgeNode {
    config: EdgeConfig,
    devices: Vec<DeviceDef>,
    /// Per tag index: (device, metric) it is published as.
    index: Vec<Option<(usize, usize)>>,
    /// Per tag index: what the last birth or data message said.
    published: Vec<Option<Last>>,
    /// Per tag index: the latest sample.
    latest: Vec<Option<Last>>,
    alive: Vec<bool>,
    /// Per device: its rank in `touched` while a delivery is taken, else [`UNRANKED`].
    /// With `changes` and `touched`, kept from delivery to delivery so that taking one
    /// allocates nothing per device of the node.
    rank: Vec<usize>,
    changes: Vec<Change>,
    touched: Vec<Touched>,
    bd_seq: u8,
    seq: u8,
    phase: Phase,
    held: VecDeque<Held>,
    held_dropped: u64,
    /// The timestamp of the primary host's latest STATE taken into account: an older one
    /// (a will delivered late, a retained message overtaken) is ignored. Kept across
    /// sessions.
    host_state_time: Option<u64>,
}

impl EdgeNode {
    pub fn new(config: EdgeConfig, devices: Vec<DeviceDef>) -> EdgeNode {
        let tags = devices
            .iter()
            .flat_map(|d| d.metrics.iter().map(|m| m.tag.index() + 1))
            .max()
            .unwrap_or(0);
        let mut index = vec![None; tags];
        for (d, device) in devices.iter().enumerate() {
            for (m, metric) in device.metrics.iter().enumerate() {
                index[metric.tag.index()] = Some((d, m));
            }
        }
        EdgeNode {
            alive: vec![false; devices.len()],
            rank: vec![UNRANKED; devices.len()],
            changes: Vec::new(),
            touched: Vec::new(),
            config,
            devices,
            index,
            published: vec![None; tags],
            latest: vec![None; tags],
            bd_seq: 0,
            seq: 0,
            phase: Phase::Offline,
            held: VecDeque::new(),
            held_dropped: 0,
            host_state_time: None,
        }
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    pub fn devices(&self) -> &[DeviceDef] {
        &self.devices
    }

    pub fn bd_seq(&self) -> u8 {
        self.bd_seq
    }

    pub fn is_born(&self) -> bool {
        self.phase == Phase::Born
    }

    /// Samples held for the primary host, and how many were dropped because the hold
    /// was full.
    pub fn held(&self) -> (usize, u64) {
        (self.held.len(), self.held_dropped)
    }

    /// A new MQTT session is about to connect with this bdSeq (the driver persisted it).
    pub fn start_session(&mut self, bd_seq: u8) {
        self.bd_seq = bd_seq;
        self.seq = 0;
        self.phase = Phase::Offline;
        self.alive.iter_mut().for_each(|a| *a = false);
    }

    /// The session's will: an NDEATH with its bdSeq (QoS 1, not retained, as required).
    pub fn will(&self) -> Publish {
        self.death(None)
    }

    /// The NDEATH published before an orderly disconnect.
    pub fn death(&self, now: Option<Timestamp>) -> Publish {
        let payload = Payload {
            timestamp: now.map(millis),
            metrics: vec![bd_seq_metric(self.bd_seq, now)],
            ..Payload::default()
        };
        Publish {
            topic: codec::topic(&self.config.group, MessageType::NDeath, &self.config.node, None),
            payload: encode_payload(&payload),
            qos: Qos::AtLeastOnce,
            retain: false,
            born: None,
        }
    }

    /// Topics to subscribe to once connected.
    pub fn subscriptions(&self) -> Vec<String> {
        let g = &self.config.group;
        let n = &self.config.node;
        let mut out = vec![
            codec::topic(g, MessageType::NCmd, n, None),
            codec::topic(g, MessageType::DCmd, n, Some("+")),
        ];
        if let Some(host) = &self.config.primary_host {
            out.push(format!("{}/STATE/{host}", codec::NAMESPACE));
        }
        out
    }

    /// The session is up (subscriptions made): births now, or once the primary host is
    /// online.
    pub fn on_connected(&mut self, now: Timestamp) -> Vec<Output> {
        if self.config.primary_host.is_some() {
            self.phase = Phase::WaitingForHost;
            Vec::new()
        } else {
            self.births(now)
        }
    }

    /// The session ended.
    pub fn on_disconnected(&mut self) {
        self.phase = Phase::Offline;
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        u64::from(s)
    }

    fn publish(&mut self, kind: MessageType, device: Option<&str>, mut payload: Payload) -> Output {
        payload.seq = Some(self.next_seq());
        self.message(kind, device, encode_payload(&payload), None)
    }

    /// A message of the session (the will and NDEATH aside): QoS 0, not retained.
    fn message(
        &self,
        kind: MessageType,
        device: Option<&str>,
        payload: Vec<u8>,
        born: Option<Timestamp>,
    ) -> Output {
        Output::Publish(Publish {
            topic: codec::topic(&self.config.group, kind, &self.config.node, device),
            payload,
            qos: Qos::AtMostOnce,
            retain: false,
            born,
        })
    }

    /// NBIRTH, a DBIRTH per device, then whatever was held, flagged historical.
    fn births(&mut self, now: Timestamp) -> Vec<Output> {
        self.phase = Phase::Born;
        self.seq = 0;
        let mut out = Vec::with_capacity(self.devices.len() + 2);
        let nbirth = Payload {
            timestamp: Some(millis(now)),
            metrics: vec![
                bd_seq_metric(self.bd_seq, Some(now)),
                Metric {
                    name: Some(REBIRTH_METRIC.into()),
                    timestamp: Some(millis(now)),
                    datatype: Some(SpType::Boolean as u32),
                    value: Some(super::proto::payload::metric::Value::BooleanValue(false)),
                    ..Metric::default()
                },
            ],
            ..Payload::default()
        };
        out.push(self.publish(MessageType::NBirth, None, nbirth));
        for d in 0..self.devices.len() {
            out.push(self.device_birth(d, now));
        }
        out.extend(self.replay(now));
        out
    }

    fn device_birth(&mut self, d: usize, now: Timestamp) -> Output {
        self.alive[d] = true;
        let device = self.devices[d].clone();
        let mut metrics = Vec::with_capacity(device.metrics.len());
        for m in &device.metrics {
            let last = self.latest[m.tag.index()].clone();
            let quality = last
                .as_ref()
                .map_or(Quality::Bad(BadReason::WaitingForInitialData), |l| l.quality);
            let mut keys = Vec::new();
            let mut values = Vec::new();
            if let Some(unit) = &m.unit {
                keys.push("engUnit".to_owned());
                values.push(string_property(unit));
            }
            if let Some([low, high]) = m.range {
                keys.push("engLow".to_owned());
                values.push(double_property(low));
                keys.push("engHigh".to_owned());
                values.push(double_property(high));
            }
            let (k, v) = quality_property(quality);
            keys.push(k);
            values.push(v);
            let value = last.as_ref().and_then(|l| l.value.as_ref());
            let encoded = value.and_then(|v| encode_value(v, m.datatype));
            metrics.push(Metric {
                name: Some(m.name.clone()),
                alias: Some(m.alias),
                timestamp: Some(millis(last.as_ref().map_or(now, |l| l.time))),
                datatype: Some(m.datatype as u32),
                is_null: encoded.is_none().then_some(true),
                properties: Some(PropertySet { keys, values }),
                value: encoded,
                ..Metric::default()
            });
            self.published[m.tag.index()] = last;
        }
        chronological(&mut metrics);
        let payload = Payload {
            timestamp: Some(millis(now)),
            metrics,
            ..Payload::default()
        };
        self.publish(MessageType::DBirth, Some(&device.id), payload)
    }

    fn replay(&mut self, now: Timestamp) -> Vec<Output> {
        let held: Vec<Held> = self.held.drain(..).collect();
        if self.held_dropped > 0 {
            tracing::warn!(
                dropped = self.held_dropped,
                "sparkplug: the hold was full; oldest samples were dropped"
            );
            self.held_dropped = 0;
        }
        let mut out = Vec::new();
        // Runs of one device, at most REPLAY_CHUNK metrics each: (metric, sample).
        let mut chunk: Vec<(usize, &Held)> = Vec::new();
        let mut current = None;
        for h in &held {
            let Some(Some((d, m))) = self.index.get(h.tag.index()).copied() else {
                continue;
            };
            if current != Some(d) || chunk.len() >= REPLAY_CHUNK {
                if let Some(cd) = current {
                    out.push(self.replayed(cd, &mut chunk, now));
                }
                current = Some(d);
            }
            chunk.push((m, h));
        }
        if let Some(cd) = current {
            out.push(self.replayed(cd, &mut chunk, now));
        }
        out
    }

    /// A DDATA of device `d` with the held samples of `chunk` (emptied), every metric
    /// flagged historical and carrying its quality.
    fn replayed(&mut self, d: usize, chunk: &mut Vec<(usize, &Held)>, now: Timestamp) -> Output {
        chunk.sort_by_key(|(_, h)| millis(h.time));
        let mut payload = DataPayload::new(millis(now), chunk.len());
        for (m, h) in chunk.drain(..) {
            let def = &self.devices[d].metrics[m];
            let value = h.value.as_ref().and_then(|v| encode_value(v, def.datatype));
            payload.metric(&DataMetric {
                alias: def.alias,
                timestamp: millis(h.time),
                value: value.as_ref(),
                quality: Some(h.quality),
                historical: true,
            });
        }
        self.data(d, payload, None)
    }

    /// A DDATA of device `d`; `born`: the gateway time of its oldest live sample.
    fn data(&mut self, d: usize, payload: DataPayload, born: Option<Timestamp>) -> Output {
        let payload = payload.finish(self.next_seq());
        self.message(MessageType::DData, Some(&self.devices[d].id), payload, born)
    }

    /// New samples: DDATA with what changed, DDEATH / DBIRTH when a device goes down or
    /// comes back; held instead while not born.
    /// Samples delivered late (a store-and-forward replay behind live data): sent as DDATA
    /// with every metric flagged historical, without touching what report by exception
    /// compares live data against. Nothing while not born (they stay in the log).
    pub fn on_replay(&mut self, samples: &[backplane_model::Sample], now: Timestamp) -> Vec<Output> {
        if self.phase != Phase::Born {
            return Vec::new();
        }
        for s in samples {
            self.held.push_back(Held {
                tag: s.tag,
                value: s.value.clone(),
                quality: s.quality,
                time: s.source_time.unwrap_or(s.gateway_time),
            });
        }
        self.replay(now)
    }

    pub fn on_samples(&mut self, samples: &[backplane_model::Sample], now: Timestamp) -> Vec<Output> {
        // Empty: left so by `kept` after the last delivery.
        let mut changes = std::mem::take(&mut self.changes);
        let mut touched = std::mem::take(&mut self.touched);
        for (j, s) in samples.iter().enumerate() {
            let i = s.tag.index();
            let Some(Some((d, m))) = self.index.get(i).copied() else {
                continue;
            };
            let time = s.source_time.unwrap_or(s.gateway_time);
            let last = Last {
                value: s.value.clone(),
                quality: s.quality,
                time,
            };
            self.latest[i] = Some(last.clone());
            if self.phase != Phase::Born {
                // A hold of zero holds nothing, and so drops nothing either.
                if self.config.hold_max > 0 && self.held.len() >= self.config.hold_max {
                    self.held.pop_front();
                    self.held_dropped += 1;
                }
                if self.config.hold_max > 0 {
                    self.held.push_back(Held {
                        tag: s.tag,
                        value: s.value.clone(),
                        quality: s.quality,
                        time,
                    });
                }
                continue;
            }
            let before = self.published[i].as_ref();
            let differs = before.is_none_or(|b| b.value != last.value || b.quality != last.quality);
            if !differs {
                continue;
            }
            let quality_changed = before.is_none_or(|b| b.quality != last.quality);
            let rank = match self.rank[d] {
                UNRANKED => {
                    self.rank[d] = touched.len();
                    touched.push(Touched {
                        device: d,
                        born: s.gateway_time,
                    });
                    touched.len() - 1
                }
                r => {
                    let t = &mut touched[r];
                    t.born = t.born.min(s.gateway_time);
                    r
                }
            };
            changes.push(Change {
                rank,
                metric: m,
                sample: j,
                time: millis(time),
                with_quality: quality_changed || !last.quality.is_good(),
            });
            self.published[i] = Some(last);
        }
        // Each device's metrics together, in time order (equal times in delivery order).
        if !changes.is_sorted_by_key(|c| (c.rank, c.time)) {
            changes.sort_by_key(|c| (c.rank, c.time));
        }
        let mut out = Vec::new();
        let mut rest = &changes[..];
        for (rank, t) in touched.iter().enumerate() {
            let d = t.device;
            self.rank[d] = UNRANKED;
            let n = rest.iter().position(|c| c.rank != rank).unwrap_or(rest.len());
            let (metrics, tail) = rest.split_at(n);
            rest = tail;
            let down = self.device_down(d);
            match (self.alive[d], down) {
                (true, true) => {
                    self.alive[d] = false;
                    let id = self.devices[d].id.clone();
                    let payload = Payload {
                        timestamp: Some(millis(now)),
                        ..Payload::default()
                    };
                    out.push(self.publish(MessageType::DDeath, Some(&id), payload));
                }
                (false, false) => out.push(self.device_birth(d, now)),
                (true, false) => {
                    let mut payload = DataPayload::new(millis(now), metrics.len());
                    for c in metrics {
                        let s = &samples[c.sample];
                        let def = &self.devices[d].metrics[c.metric];
                        let value = s.value.as_ref().and_then(|v| encode_value(v, def.datatype));
                        payload.metric(&DataMetric {
                            alias: def.alias,
                            timestamp: c.time,
                            value: value.as_ref(),
                            quality: c.with_quality.then_some(s.quality),
                            historical: false,
                        });
                    }
                    out.push(self.data(d, payload, Some(t.born)));
                }
                (false, true) => {}
            }
        }
        self.changes = kept(changes);
        self.touched = kept(touched);
        out
    }

    /// Every metric of the device is bad because its connection is down.
    fn device_down(&self, d: usize) -> bool {
        self.devices[d].metrics.iter().all(|m| {
            matches!(
                self.latest[m.tag.index()].as_ref().map(|l| l.quality),
                Some(Quality::Bad(BadReason::CommFailure | BadReason::NotConnected))
            )
        })
    }

    /// A message on a subscribed topic.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now: Timestamp) -> Vec<Output> {
        match Topic::parse(topic) {
            Some(Topic::State { host }) if Some(host) == self.config.primary_host.as_deref() => {
                self.host_state(host, payload, now)
            }
            Some(Topic::Edge {
                group,
                kind: MessageType::NCmd,
                node,
                device: None,
            }) if group == self.config.group && node == self.config.node => self.node_command(payload, now),
            Some(Topic::Edge {
                group,
                kind: MessageType::DCmd,
                node,
                device: Some(device),
            }) if group == self.config.group && node == self.config.node => {
                self.device_command(device, payload)
            }
            _ => vec![Output::Ignored(format!("unexpected message on `{topic}`"))],
        }
    }

    /// The primary host's STATE. Only one at least as recent as the last one counts
    /// (Sparkplug 3.0 §5.4: a STATE older than the previous one is not the host's state).
    fn host_state(&mut self, host: &str, payload: &[u8], now: Timestamp) -> Vec<Output> {
        let Some(state) = parse_state(payload) else {
            return vec![Output::Ignored(format!("unreadable STATE of `{host}`"))];
        };
        if let (Some(time), Some(last)) = (state.timestamp, self.host_state_time)
            && time < last
        {
            return vec![Output::Ignored(format!(
                "STATE of `{host}` at {time} is older than the one at {last}"
            ))];
        }
        if state.timestamp.is_some() {
            self.host_state_time = state.timestamp;
        }
        match (state.online, self.phase) {
            (true, Phase::WaitingForHost) => self.births(now),
            (false, Phase::Born) => vec![Output::EndSession(format!("primary host `{host}` went offline"))],
            _ => Vec::new(),
        }
    }

    fn node_command(&mut self, payload: &[u8], now: Timestamp) -> Vec<Output> {
        let payload = match decode_payload(payload, codec::MAX_PAYLOAD_BYTES) {
            Ok(p) => p,
            Err(e) => return vec![Output::Ignored(format!("NCMD: {e}"))],
        };
        let rebirth = payload.metrics.iter().any(|m| {
            m.name.as_deref() == Some(REBIRTH_METRIC)
                && matches!(
                    decode_value(m, SpType::Boolean as u32),
                    Ok(Some(Value::Bool(true)))
                )
        });
        if !rebirth {
            return vec![Output::Ignored(
                "NCMD without `Node Control/Rebirth = true`".into(),
            )];
        }
        if self.phase != Phase::Born {
            return vec![Output::Ignored("NCMD rebirth before birth".into())];
        }
        self.births(now)
    }

    fn device_command(&mut self, device: &str, payload: &[u8]) -> Vec<Output> {
        let payload = match decode_payload(payload, codec::MAX_PAYLOAD_BYTES) {
            Ok(p) => p,
            Err(e) => return vec![Output::Ignored(format!("DCMD for `{device}`: {e}"))],
        };
        let Some(def) = self.devices.iter().find(|d| d.id == device) else {
            return vec![Output::Ignored(format!("DCMD for unknown device `{device}`"))];
        };
        let mut out = Vec::new();
        for m in &payload.metrics {
            let found = def.metrics.iter().find(|d| {
                m.name.as_deref() == Some(d.name.as_str()) || (m.name.is_none() && m.alias == Some(d.alias))
            });
            let label = m
                .name
                .clone()
                .or_else(|| m.alias.map(|a| format!("alias {a}")))
                .unwrap_or_default();
            let refuse = |reason: String| Output::Refused {
                device: device.to_owned(),
                metric: label.clone(),
                reason,
            };
            let Some(metric) = found else {
                out.push(refuse("no such metric on this device".into()));
                continue;
            };
            if !self.config.accept_commands {
                out.push(refuse(
                    "commands are disabled on this edge node (accept_commands = false)".into(),
                ));
                continue;
            }
            let datatype = m.datatype.unwrap_or(metric.datatype as u32);
            match decode_value(m, datatype) {
                Ok(Some(value)) => out.push(Output::Write {
                    tag: metric.tag,
                    value,
                    device: device.to_owned(),
                    metric: metric.name.clone(),
                }),
                Ok(None) => out.push(refuse("the command carries no value".into())),
                Err(e) => out.push(refuse(e.to_string())),
            }
        }
        out
    }
}

/// `v` emptied, with room for at most [`SCRATCH_KEEP`] entries.
fn kept<T>(mut v: Vec<T>) -> Vec<T> {
    v.clear();
    backplane_buffer::scratch::release_after(&mut v, SCRATCH_KEEP);
    v
}

/// Metrics in time order, as births and data must list them
/// (tck-id-operational-behavior-data-publish-dbirth-order). Stable: metrics of the same
/// time keep their order.
fn chronological(metrics: &mut [Metric]) {
    metrics.sort_by_key(|m| m.timestamp);
}

/// Every metric of a birth carries a timestamp (tck-id-payloads-name-birth-data-requirement);
/// the will's NDEATH is made before the session starts and has none to give.
fn bd_seq_metric(bd_seq: u8, now: Option<Timestamp>) -> Metric {
    Metric {
        name: Some(BDSEQ_METRIC.into()),
        timestamp: now.map(millis),
        datatype: Some(SpType::Int64 as u32),
        value: Some(super::proto::payload::metric::Value::LongValue(u64::from(bd_seq))),
        ..Metric::default()
    }
}

fn string_property(s: &str) -> PropertyValue {
    PropertyValue {
        r#type: Some(SpType::String as u32),
        is_null: None,
        value: Some(property_value::Value::StringValue(s.to_owned())),
    }
}

fn double_property(x: f64) -> PropertyValue {
    PropertyValue {
        r#type: Some(SpType::Double as u32),
        is_null: None,
        value: Some(property_value::Value::DoubleValue(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backplane_model::{Context, ScalarType};
    use std::sync::Arc;

    fn node(primary_host: Option<&str>, accept_commands: bool) -> EdgeNode {
        let metric = |name: &str, tag: u32, t: ScalarType| MetricDef {
            name: name.into(),
            alias: FIRST_DEVICE_ALIAS + u64::from(tag),
            tag: TagId(tag),
            data_type: DataType::Scalar(t),
            datatype: datatype_for(DataType::Scalar(t)),
            unit: Some("%".into()),
            range: Some([0.0, 100.0]),
        };
        EdgeNode::new(
            EdgeConfig {
                group: "g".into(),
                node: "n".into(),
                primary_host: primary_host.map(Into::into),
                hold_max: 3,
                accept_commands,
            },
            vec![
                DeviceDef {
                    id: "area.tank-1".into(),
                    metrics: vec![
                        metric("level", 0, ScalarType::Float),
                        metric("running", 1, ScalarType::Bool),
                    ],
                },
                DeviceDef {
                    id: "area.tank-2".into(),
                    metrics: vec![metric("level", 2, ScalarType::Float)],
                },
            ],
        )
    }

    fn sample(tag: u32, value: f64, quality: Quality, ms: i64) -> backplane_model::Sample {
        backplane_model::Sample {
            tag: TagId(tag),
            value: Some(Value::Float(value)),
            quality,
            source_time: None,
            gateway_time: Timestamp::from_unix_millis(ms),
            context: Arc::new(Context::default()),
        }
    }

    fn publishes(out: &[Output]) -> Vec<(String, Payload)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Publish(p) => Some((p.topic.clone(), decode_payload(&p.payload, 1 << 20).unwrap())),
                _ => None,
            })
            .collect()
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_millis(1_000)
    }

    #[test]
    fn births_carry_bdseq_rebirth_metric_aliases_and_consecutive_seq() {
        let mut n = node(None, false);
        n.start_session(7);
        let out = publishes(&n.on_connected(now()));
        let topics: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "spBv1.0/g/NBIRTH/n",
                "spBv1.0/g/DBIRTH/n/area.tank-1",
                "spBv1.0/g/DBIRTH/n/area.tank-2"
            ]
        );
        let (_, nbirth) = &out[0];
        assert_eq!(nbirth.seq, Some(0));
        assert_eq!(nbirth.metrics[0].name.as_deref(), Some(BDSEQ_METRIC));
        assert_eq!(
            nbirth.metrics[0].value,
            Some(super::super::proto::payload::metric::Value::LongValue(7))
        );
        assert_eq!(nbirth.metrics[1].name.as_deref(), Some(REBIRTH_METRIC));
        let (_, dbirth) = &out[1];
        assert_eq!(dbirth.seq, Some(1));
        assert_eq!(dbirth.metrics[0].alias, Some(FIRST_DEVICE_ALIAS));
        assert_eq!(dbirth.metrics[0].datatype, Some(SpType::Double as u32));
        // Not read yet: null, but typed.
        assert_eq!(dbirth.metrics[0].is_null, Some(true));
        assert_eq!(out[2].1.seq, Some(2));
        // The will is the NDEATH with the same bdSeq.
        let will = decode_payload(&n.will().payload, 1 << 20).unwrap();
        assert_eq!(will.metrics[0].value, nbirth.metrics[0].value);
        assert_eq!(will.seq, None);
        assert_eq!(n.will().qos, Qos::AtLeastOnce);
    }

    /// A delivery that touches two devices, interleaved and out of time order: a DDATA per
    /// device, in the order the delivery first touched them, each in time order (equal
    /// times in delivery order); the next delivery is grouped afresh.
    #[test]
    fn a_delivery_makes_one_ddata_per_device_each_in_time_order() {
        let mut n = node(None, false);
        n.start_session(0);
        n.on_connected(now());
        let alias = |tag: u64| Some(FIRST_DEVICE_ALIAS + tag);
        let metrics = |p: &Payload| -> Vec<(Option<u64>, Option<u64>)> {
            p.metrics.iter().map(|m| (m.alias, m.timestamp)).collect()
        };
        let delivery = [
            sample(2, 1.0, Quality::Good, 50),
            sample(0, 1.0, Quality::Good, 40),
            sample(2, 2.0, Quality::Good, 30),
            sample(1, 1.0, Quality::Good, 40),
            sample(0, 2.0, Quality::Good, 20),
        ];
        let out = publishes(&n.on_samples(&delivery, now()));
        let topics: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            ["spBv1.0/g/DDATA/n/area.tank-2", "spBv1.0/g/DDATA/n/area.tank-1"]
        );
        assert_eq!(metrics(&out[0].1), [(alias(2), Some(30)), (alias(2), Some(50))]);
        assert_eq!(
            metrics(&out[1].1),
            [(alias(0), Some(20)), (alias(0), Some(40)), (alias(1), Some(40))]
        );
        assert_eq!(
            out[1].1.metrics[0].value,
            Some(super::super::proto::payload::metric::Value::DoubleValue(2.0))
        );
        let out = publishes(&n.on_samples(
            &[
                sample(0, 3.0, Quality::Good, 60),
                sample(2, 3.0, Quality::Good, 60),
            ],
            now(),
        ));
        let topics: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            ["spBv1.0/g/DDATA/n/area.tank-1", "spBv1.0/g/DDATA/n/area.tank-2"]
        );
        assert_eq!(metrics(&out[0].1), [(alias(0), Some(60))]);
        assert_eq!(metrics(&out[1].1), [(alias(2), Some(60))]);
    }

    /// The scratch of a delivery far larger than a poll's answer is not kept afterwards.
    #[test]
    fn a_burst_leaves_no_scratch_room_behind() {
        let mut n = node(None, false);
        n.start_session(0);
        n.on_connected(now());
        let burst: Vec<_> = (0..3 * SCRATCH_KEEP as i64)
            .map(|k| sample(0, k as f64, Quality::Good, 10 + k))
            .collect();
        let out = publishes(&n.on_samples(&burst, now()));
        assert_eq!(out[0].1.metrics.len(), burst.len());
        assert!(n.changes.capacity() <= SCRATCH_KEEP, "{}", n.changes.capacity());
        let out = publishes(&n.on_samples(&[sample(0, -1.0, Quality::Good, 5)], now()));
        assert_eq!(out[0].1.metrics.len(), 1);
    }

    /// Every metric of NBIRTH and DBIRTH carries a timestamp, the bdSeq one included.
    #[test]
    fn tck_id_payloads_name_birth_data_requirement_every_birth_metric_has_a_timestamp() {
        let mut n = node(None, false);
        n.start_session(3);
        for (topic, birth) in publishes(&n.on_connected(now())) {
            for m in &birth.metrics {
                assert!(m.timestamp.is_some(), "{topic}: {:?} has no timestamp", m.name);
            }
        }
    }

    /// `Node Control/Rebirth` is announced without an alias, and an NCMD naming only an
    /// alias is no rebirth request.
    #[test]
    fn tck_id_operational_behavior_data_commands_rebirth_name_aliases_rebirth_has_no_alias() {
        let mut n = node(None, false);
        n.start_session(0);
        let births = publishes(&n.on_connected(now()));
        let rebirth = births[0]
            .1
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(REBIRTH_METRIC))
            .expect("the NBIRTH announces Node Control/Rebirth");
        assert_eq!(rebirth.alias, None);
        assert_eq!(rebirth.datatype, Some(SpType::Boolean as u32));
        let by_alias = Payload {
            metrics: vec![Metric {
                alias: Some(1),
                datatype: Some(SpType::Boolean as u32),
                value: Some(super::super::proto::payload::metric::Value::BooleanValue(true)),
                ..Metric::default()
            }],
            ..Payload::default()
        };
        let out = n.node_command(&encode_payload(&by_alias), now());
        assert!(matches!(out.as_slice(), [Output::Ignored(_)]), "{out:?}");
    }

    /// DDATA names metrics by alias and leaves the datatype to the birth.
    #[test]
    fn tck_id_payloads_metric_datatype_not_req_ddata_carries_no_datatype() {
        let mut n = node(None, false);
        n.start_session(0);
        n.on_connected(now());
        let data = publishes(&n.on_samples(&[sample(0, 1.0, Quality::Good, 1)], now()));
        assert_eq!(data.len(), 1);
        for m in &data[0].1.metrics {
            assert_eq!(m.datatype, None, "{m:?}");
            assert!(m.alias.is_some());
        }
    }

    #[test]
    fn data_is_reported_by_exception_with_seq_wrapping_after_255() {
        let mut n = node(None, false);
        n.start_session(0);
        n.on_connected(now());
        let first = publishes(&n.on_samples(&[sample(0, 1.0, Quality::Good, 1)], now()));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, "spBv1.0/g/DDATA/n/area.tank-1");
        assert_eq!(first[0].1.metrics[0].name, None, "DDATA uses the alias");
        // Same value, same quality: nothing to report.
        assert!(
            n.on_samples(&[sample(0, 1.0, Quality::Good, 2)], now())
                .is_empty()
        );
        let mut seqs = vec![first[0].1.seq.unwrap()];
        for i in 0..300 {
            let out = publishes(&n.on_samples(&[sample(0, f64::from(i) + 2.0, Quality::Good, 3)], now()));
            seqs.push(out[0].1.seq.unwrap());
        }
        for pair in seqs.windows(2) {
            assert_eq!(pair[1], (pair[0] + 1) % 256);
        }
    }

    #[test]
    fn a_device_whose_source_is_down_dies_and_is_born_again() {
        let mut n = node(None, false);
        n.start_session(0);
        n.on_connected(now());
        let down = Quality::Bad(BadReason::CommFailure);
        let out = publishes(&n.on_samples(&[sample(2, 5.0, down, 1)], now()));
        assert_eq!(out[0].0, "spBv1.0/g/DDEATH/n/area.tank-2");
        let out = publishes(&n.on_samples(&[sample(2, 6.0, Quality::Good, 2)], now()));
        assert_eq!(out[0].0, "spBv1.0/g/DBIRTH/n/area.tank-2");
        // One bad metric of two is not a dead device: it is data with its quality.
        let out = publishes(&n.on_samples(&[sample(0, 1.0, down, 3)], now()));
        assert_eq!(out[0].0, "spBv1.0/g/DDATA/n/area.tank-1");
        let props = out[0].1.metrics[0].properties.as_ref().unwrap();
        assert_eq!(props.keys, ["Quality"]);
    }

    #[test]
    fn rebirth_on_ncmd_resets_seq_and_keeps_bdseq() {
        let mut n = node(None, false);
        n.start_session(3);
        n.on_connected(now());
        n.on_samples(&[sample(0, 1.0, Quality::Good, 1)], now());
        let cmd = Payload {
            timestamp: Some(1),
            metrics: vec![Metric {
                name: Some(REBIRTH_METRIC.into()),
                datatype: Some(SpType::Boolean as u32),
                value: Some(super::super::proto::payload::metric::Value::BooleanValue(true)),
                ..Metric::default()
            }],
            ..Payload::default()
        };
        let out = publishes(&n.on_message("spBv1.0/g/NCMD/n", &encode_payload(&cmd), now()));
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].1.seq, Some(0));
        assert_eq!(
            out[0].1.metrics[0].value,
            Some(super::super::proto::payload::metric::Value::LongValue(3))
        );
        // The rebirth carries the latest value.
        assert_eq!(
            out[1].1.metrics[0].value,
            Some(super::super::proto::payload::metric::Value::DoubleValue(1.0))
        );
    }

    /// A DDATA of live samples carries the gateway time of its oldest, from which the sink
    /// records the delay to its socket write; births, deaths and replays carry none.
    #[test]
    fn a_ddata_of_live_samples_is_born_with_its_oldest_and_never_a_birth_or_a_replay() {
        let born = |out: &[Output]| -> Vec<(String, Option<Timestamp>)> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Publish(p) => Some((p.topic.clone(), p.born)),
                    _ => None,
                })
                .collect()
        };
        let mut n = node(None, false);
        n.start_session(0);
        let births = born(&n.on_connected(now()));
        assert_eq!(births.len(), 3);
        assert!(births.iter().all(|(_, b)| b.is_none()), "{births:?}");
        let out = n.on_samples(
            &[
                sample(0, 1.0, Quality::Good, 30),
                sample(2, 3.0, Quality::Good, 40),
                sample(0, 2.0, Quality::Good, 20),
            ],
            now(),
        );
        assert_eq!(
            born(&out),
            [
                (
                    "spBv1.0/g/DDATA/n/area.tank-1".to_owned(),
                    Some(Timestamp::from_unix_millis(20))
                ),
                (
                    "spBv1.0/g/DDATA/n/area.tank-2".to_owned(),
                    Some(Timestamp::from_unix_millis(40))
                )
            ]
        );
        let replayed = born(&n.on_replay(&[sample(0, 5.0, Quality::Good, 10)], now()));
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].1, None);
        assert_eq!(n.death(Some(now())).born, None);
    }

    #[test]
    fn data_waits_for_the_primary_host_and_is_replayed_as_historical() {
        let mut n = node(Some("scada"), false);
        n.start_session(0);
        assert!(n.on_connected(now()).is_empty());
        assert!(n.subscriptions().contains(&"spBv1.0/STATE/scada".to_owned()));
        for i in 0..5 {
            assert!(
                n.on_samples(&[sample(0, f64::from(i), Quality::Good, i64::from(i))], now())
                    .is_empty()
            );
        }
        assert_eq!(n.held(), (3, 2), "bounded: the two oldest were dropped");
        let out = publishes(&n.on_message(
            "spBv1.0/STATE/scada",
            br#"{"online": true, "timestamp": 5}"#,
            now(),
        ));
        assert_eq!(out.len(), 4, "NBIRTH, two DBIRTHs, one replayed DDATA");
        let (topic, replay) = &out[3];
        assert_eq!(topic, "spBv1.0/g/DDATA/n/area.tank-1");
        assert_eq!(replay.metrics.len(), 3);
        assert!(replay.metrics.iter().all(|m| m.is_historical == Some(true)));
        assert_eq!(replay.metrics[0].timestamp, Some(2));
        // The host goes away: end the session so it sees a death.
        let out = n.on_message(
            "spBv1.0/STATE/scada",
            br#"{"online": false, "timestamp": 6}"#,
            now(),
        );
        assert!(matches!(out[..], [Output::EndSession(_)]));
    }

    #[test]
    fn dcmd_writes_are_refused_unless_commands_are_accepted() {
        let cmd = Payload {
            timestamp: Some(1),
            metrics: vec![Metric {
                name: Some("level".into()),
                datatype: Some(SpType::Double as u32),
                value: Some(super::super::proto::payload::metric::Value::DoubleValue(42.0)),
                ..Metric::default()
            }],
            ..Payload::default()
        };
        let bytes = encode_payload(&cmd);
        let mut n = node(None, false);
        let out = n.on_message("spBv1.0/g/DCMD/n/area.tank-1", &bytes, now());
        assert!(matches!(&out[..], [Output::Refused { reason, .. }] if reason.contains("accept_commands")));
        let mut n = node(None, true);
        let out = n.on_message("spBv1.0/g/DCMD/n/area.tank-1", &bytes, now());
        assert_eq!(
            out,
            [Output::Write {
                tag: TagId(0),
                value: Value::Float(42.0),
                device: "area.tank-1".into(),
                metric: "level".into()
            }]
        );
        let out = n.on_message("spBv1.0/g/DCMD/n/area.tank-9", &bytes, now());
        assert!(matches!(&out[..], [Output::Ignored(_)]));
        let out = n.on_message("spBv1.0/g/DCMD/n/area.tank-1", b"\xff\xff", now());
        assert!(matches!(&out[..], [Output::Ignored(_)]));
    }

    #[test]
    fn device_ids_are_the_path_below_the_site() {
        assert_eq!(
            device_id("acme/plant/packaging/line-1/filler"),
            "packaging.line-1.filler"
        );
        assert_eq!(device_id("acme/plant"), "acme.plant");
    }
}
