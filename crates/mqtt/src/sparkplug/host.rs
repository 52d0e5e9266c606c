//! The Sparkplug B host side: decodes births, data and deaths from edge nodes into
//! readings. No I/O; the driver is [`super::source`].
//!
//! Addresses name a metric of a node or of a device:
//!
//! ```text
//! {group}/{node}:{metric}            a node metric
//! {group}/{node}/{device}:{metric}   a device metric (metric names may contain `/`)
//! ```
//!
//! Births record each metric's alias and datatype, so data that carries only aliases
//! resolves. Sequence numbers are checked per node (0–255, wrapping); a gap, data from a
//! node never seen born, or an unknown alias asks the node for a rebirth (an NCMD with
//! `Node Control/Rebirth = true`), once until its next NBIRTH. NDEATH (with the bdSeq of
//! the node's birth) turns every value of the node and its devices bad at the host's time;
//! DDEATH those of the device, at the DDEATH's time.

use std::collections::HashMap;

use backplane_connector::RawReading;
use backplane_model::{BadReason, Quality, Timestamp, UncertainReason};

use super::codec::{self, MessageType, Topic, decode_payload, decode_value, metric_quality};
use super::edge::{BDSEQ_METRIC, REBIRTH_METRIC};
use super::proto::DataType as SpType;
use super::proto::Payload;
use super::proto::payload::{Metric, metric};

/// A parsed host address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricAddress {
    pub group: String,
    pub node: String,
    pub device: Option<String>,
    pub metric: String,
}

/// Why a host address is not `GROUP/NODE[/DEVICE]:METRIC`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricAddressError {
    /// No `:` before the metric name.
    #[error("`{address}`: write GROUP/NODE[/DEVICE]:METRIC")]
    NoMetric { address: String },
    /// Nothing after the `:`.
    #[error("`{address}`: the metric name is empty")]
    EmptyMetric { address: String },
    /// Fewer than two or more than three ids before the `:`.
    #[error("`{address}`: expected GROUP/NODE or GROUP/NODE/DEVICE before `:`")]
    Ids { address: String },
    /// A group, node or device id that cannot be in a topic.
    #[error(transparent)]
    Id(#[from] codec::IdError),
}

impl MetricAddress {
    pub fn parse(text: &str) -> Result<MetricAddress, MetricAddressError> {
        let address = || text.to_owned();
        let (path, metric) = text
            .split_once(':')
            .ok_or_else(|| MetricAddressError::NoMetric { address: address() })?;
        if metric.is_empty() {
            return Err(MetricAddressError::EmptyMetric { address: address() });
        }
        let ids: Vec<&str> = path.split('/').collect();
        let (group, node, device) = match ids[..] {
            [g, n] => (g, n, None),
            [g, n, d] => (g, n, Some(d)),
            _ => return Err(MetricAddressError::Ids { address: address() }),
        };
        for id in [Some(group), Some(node), device].into_iter().flatten() {
            codec::validate_id(id)?;
        }
        Ok(MetricAddress {
            group: group.to_owned(),
            node: node.to_owned(),
            device: device.map(str::to_owned),
            metric: metric.to_owned(),
        })
    }
}

type NodeKey = (String, String);

#[derive(Debug, Default)]
struct Scope {
    /// alias → (name, datatype), from the birth.
    aliases: HashMap<u64, (String, u32)>,
    /// name → datatype, from the birth.
    datatypes: HashMap<String, u32>,
}

impl Scope {
    fn learn(&mut self, metrics: &[Metric]) {
        self.aliases.clear();
        self.datatypes.clear();
        for m in metrics {
            let (Some(name), Some(datatype)) = (&m.name, m.datatype) else {
                continue;
            };
            if let Some(alias) = m.alias {
                self.aliases.insert(alias, (name.clone(), datatype));
            }
            self.datatypes.insert(name.clone(), datatype);
        }
    }
}

#[derive(Debug, Default)]
struct NodeState {
    bd_seq: Option<u64>,
    /// The seq the next message must carry; `None` until a birth.
    expected: Option<u8>,
    node: Scope,
    devices: HashMap<String, Scope>,
    rebirth_requested: bool,
}

/// What one message produced.
#[derive(Debug, Default, PartialEq)]
pub struct HostOutput {
    pub readings: Vec<RawReading>,
    /// Ask this node (group, node) for a rebirth.
    pub rebirth: Option<(String, String)>,
    /// Something worth a log line (seq gap, unknown alias, undecodable payload).
    pub note: Option<String>,
    /// A timestamp of the message was beyond what a timestamp holds (after the year
    /// 2262): the gateway's time stands in, and good readings are uncertain.
    pub invalid_time: bool,
}

/// The host's view of every edge node it has heard from.
#[derive(Debug)]
pub struct Host {
    /// (group, node, device, metric) → addresses.
    addresses: HashMap<MetricAddress, Vec<u32>>,
    by_node: HashMap<NodeKey, Vec<u32>>,
    by_device: HashMap<(String, String, String), Vec<u32>>,
    nodes: HashMap<NodeKey, NodeState>,
    max_payload_bytes: usize,
}

impl Host {
    pub fn new(addresses: &[MetricAddress], max_payload_bytes: usize) -> Host {
        let mut map: HashMap<MetricAddress, Vec<u32>> = HashMap::new();
        let mut by_node: HashMap<NodeKey, Vec<u32>> = HashMap::new();
        let mut by_device: HashMap<(String, String, String), Vec<u32>> = HashMap::new();
        for (i, a) in addresses.iter().enumerate() {
            let i = i as u32;
            map.entry(a.clone()).or_default().push(i);
            by_node
                .entry((a.group.clone(), a.node.clone()))
                .or_default()
                .push(i);
            if let Some(d) = &a.device {
                by_device
                    .entry((a.group.clone(), a.node.clone(), d.clone()))
                    .or_default()
                    .push(i);
            }
        }
        Host {
            addresses: map,
            by_node,
            by_device,
            nodes: HashMap::new(),
            max_payload_bytes,
        }
    }

    /// The groups addressed, to subscribe `spBv1.0/{group}/#` for each.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.by_node.keys().map(|(g, _)| g.clone()).collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Handles one message from `spBv1.0/...`.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now: Timestamp) -> HostOutput {
        let Some(Topic::Edge {
            group,
            kind,
            node,
            device,
        }) = Topic::parse(topic)
        else {
            return HostOutput::default();
        };
        if matches!(kind, MessageType::NCmd | MessageType::DCmd) {
            return HostOutput::default();
        }
        let payload = match decode_payload(payload, self.max_payload_bytes) {
            Ok(p) => p,
            Err(e) => {
                return HostOutput {
                    note: Some(format!("{topic}: {e}")),
                    ..HostOutput::default()
                };
            }
        };
        let key = (group.to_owned(), node.to_owned());
        let mut out = HostOutput::default();
        match kind {
            MessageType::NBirth => {
                let state = self.nodes.entry(key.clone()).or_default();
                state.bd_seq = bd_seq(&payload);
                state.node.learn(&payload.metrics);
                state.devices.clear();
                state.rebirth_requested = false;
                state.expected = Some(seq_of(&payload).unwrap_or(0).wrapping_add(1));
                self.readings(&key, None, &payload, &mut out);
            }
            MessageType::NDeath => {
                let Some(state) = self.nodes.get_mut(&key) else {
                    return out;
                };
                // A death whose bdSeq is not the birth's belongs to an older session.
                let death = bd_seq(&payload);
                if state.bd_seq.is_some() && death.is_some() && death != state.bd_seq {
                    out.note = Some(format!(
                        "{topic}: stale NDEATH (bdSeq {death:?}, born with {:?})",
                        state.bd_seq
                    ));
                    return out;
                }
                state.expected = None;
                state.rebirth_requested = false;
                // The host's own time, not the payload's: a will carries the time of the
                // CONNECT, long before the node died (Sparkplug 3.0 §5.5).
                for a in self.by_node.get(&key).into_iter().flatten() {
                    out.readings.push(down(*a, now));
                }
            }
            MessageType::DBirth | MessageType::DData | MessageType::DDeath | MessageType::NData => {
                let Some(state) = self.nodes.get_mut(&key).filter(|s| s.expected.is_some()) else {
                    out.note = Some(format!("{topic}: from a node not seen born"));
                    self.ask_rebirth(&key, &mut out);
                    return out;
                };
                let seq = seq_of(&payload);
                if let (Some(expected), Some(seq)) = (state.expected, seq) {
                    if seq != expected {
                        out.note = Some(format!("{topic}: seq {seq}, expected {expected}"));
                        state.expected = Some(seq.wrapping_add(1));
                        self.ask_rebirth(&key, &mut out);
                    } else {
                        state.expected = Some(expected.wrapping_add(1));
                    }
                }
                let Some(state) = self.nodes.get_mut(&key) else {
                    return out;
                };
                match (kind, device) {
                    (MessageType::DBirth, Some(d)) => {
                        state
                            .devices
                            .entry(d.to_owned())
                            .or_default()
                            .learn(&payload.metrics);
                        self.readings(&key, Some(d), &payload, &mut out);
                    }
                    (MessageType::DDeath, Some(d)) => {
                        state.devices.remove(d);
                        let time = death_time(&payload, now, &mut out);
                        let device_key = (key.0.clone(), key.1.clone(), d.to_owned());
                        for a in self.by_device.get(&device_key).into_iter().flatten() {
                            out.readings.push(down(*a, time));
                        }
                    }
                    (MessageType::DData, Some(d)) => {
                        if !state.devices.contains_key(d) {
                            out.note = Some(format!("{topic}: data from device `{d}` before its DBIRTH"));
                            self.ask_rebirth(&key, &mut out);
                            return out;
                        }
                        self.readings(&key, Some(d), &payload, &mut out);
                    }
                    _ => self.readings(&key, None, &payload, &mut out),
                }
            }
            MessageType::NCmd | MessageType::DCmd => {}
        }
        out
    }

    fn ask_rebirth(&mut self, key: &NodeKey, out: &mut HostOutput) {
        let state = self.nodes.entry(key.clone()).or_default();
        if !state.rebirth_requested {
            state.rebirth_requested = true;
            out.rebirth = Some(key.clone());
        }
    }

    fn readings(&mut self, key: &NodeKey, device: Option<&str>, payload: &Payload, out: &mut HostOutput) {
        let Some(state) = self.nodes.get(key) else { return };
        let scope = match device {
            Some(d) => match state.devices.get(d) {
                Some(s) => s,
                None => return,
            },
            None => &state.node,
        };
        let payload_time = payload.timestamp.map(sparkplug_time);
        let mut unknown_alias = None;
        for m in &payload.metrics {
            let (name, datatype) = match (&m.name, m.alias) {
                (Some(name), _) => (
                    name.clone(),
                    m.datatype.or_else(|| scope.datatypes.get(name).copied()),
                ),
                (None, Some(alias)) => match scope.aliases.get(&alias) {
                    Some((name, datatype)) => (name.clone(), Some(m.datatype.unwrap_or(*datatype))),
                    None => {
                        unknown_alias = Some(alias);
                        continue;
                    }
                },
                (None, None) => continue,
            };
            let address = MetricAddress {
                group: key.0.clone(),
                node: key.1.clone(),
                device: device.map(str::to_owned),
                metric: name,
            };
            let Some(targets) = self.addresses.get(&address) else {
                continue;
            };
            let (source_time, time_invalid) = match m.timestamp.map(sparkplug_time).or(payload_time) {
                Some(Some(t)) => (Some(t), false),
                Some(None) => (None, true),
                None => (None, false),
            };
            let (value, mut quality) = match datatype.map(|d| decode_value(m, d)) {
                Some(Ok(Some(v))) => (Some(v), metric_quality(m)),
                Some(Ok(None)) => (None, metric_quality(m).min_bad()),
                Some(Err(_)) | None => (None, Quality::Bad(BadReason::TypeMismatch)),
            };
            if time_invalid {
                out.invalid_time = true;
                if quality.is_good() {
                    quality = Quality::Uncertain(UncertainReason::SourceTimeInvalid);
                }
            }
            for a in targets {
                out.readings.push(RawReading {
                    address: *a,
                    value: value.clone(),
                    quality,
                    source_time,
                });
            }
        }
        if let Some(alias) = unknown_alias {
            out.note = Some(format!("{}/{}: unknown metric alias {alias}", key.0, key.1));
            self.ask_rebirth(key, out);
        }
    }
}

trait MinBad {
    fn min_bad(self) -> Quality;
}

impl MinBad for Quality {
    /// A null value is at best bad: there is nothing to use.
    fn min_bad(self) -> Quality {
        if self.is_bad() {
            self
        } else {
            Quality::Bad(BadReason::Unspecified)
        }
    }
}

/// A Sparkplug time (ms since the epoch); `None` after the year 2262, which a timestamp
/// cannot hold (a cast used to wrap it into a time centuries off).
fn sparkplug_time(millis: u64) -> Option<Timestamp> {
    i64::try_from(millis)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .map(Timestamp::from_unix_nanos)
}

/// The time of a death message: its own, else (absent or invalid) the gateway's.
fn death_time(payload: &Payload, now: Timestamp, out: &mut HostOutput) -> Timestamp {
    match payload.timestamp.map(sparkplug_time) {
        Some(Some(t)) => t,
        Some(None) => {
            out.invalid_time = true;
            now
        }
        None => now,
    }
}

fn down(address: u32, time: Timestamp) -> RawReading {
    RawReading {
        address,
        value: None,
        quality: Quality::Bad(BadReason::CommFailure),
        source_time: Some(time),
    }
}

fn seq_of(p: &Payload) -> Option<u8> {
    p.seq.map(|s| (s % 256) as u8)
}

fn bd_seq(p: &Payload) -> Option<u64> {
    p.metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(BDSEQ_METRIC))
        .and_then(|m| match m.value {
            Some(metric::Value::LongValue(v)) => Some(v),
            Some(metric::Value::IntValue(v)) => Some(u64::from(v)),
            _ => None,
        })
}

/// The NCMD payload that asks a node for a rebirth.
pub fn rebirth_request(now: Timestamp) -> Vec<u8> {
    codec::encode_payload(&Payload {
        timestamp: Some(codec::millis(now)),
        metrics: vec![Metric {
            name: Some(REBIRTH_METRIC.into()),
            datatype: Some(SpType::Boolean as u32),
            value: Some(metric::Value::BooleanValue(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparkplug::codec::encode_payload;
    use backplane_model::Value;

    fn metric(name: Option<&str>, alias: Option<u64>, datatype: Option<SpType>, v: f64) -> Metric {
        Metric {
            name: name.map(Into::into),
            alias,
            datatype: datatype.map(|d| d as u32),
            value: Some(metric::Value::DoubleValue(v)),
            ..Metric::default()
        }
    }

    fn payload(seq: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
        encode_payload(&Payload {
            timestamp: Some(1_000),
            seq,
            metrics,
            ..Payload::default()
        })
    }

    fn nbirth(bd: u64) -> Vec<u8> {
        payload(
            Some(0),
            vec![Metric {
                name: Some(BDSEQ_METRIC.into()),
                datatype: Some(SpType::Int64 as u32),
                value: Some(metric::Value::LongValue(bd)),
                ..Metric::default()
            }],
        )
    }

    fn host() -> Host {
        let addresses = ["g/n/d:Inputs/level", "g/n:temp"].map(|a| MetricAddress::parse(a).unwrap());
        Host::new(&addresses, 1 << 20)
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_millis(5)
    }

    #[test]
    fn addresses_name_node_or_device_metrics() {
        let a = MetricAddress::parse("g/n/d:Inputs/level").unwrap();
        assert_eq!(a.device.as_deref(), Some("d"));
        assert_eq!(a.metric, "Inputs/level");
        assert_eq!(MetricAddress::parse("g/n:x").unwrap().device, None);
        assert!(MetricAddress::parse("g:x").is_err());
        assert!(MetricAddress::parse("g/n/d").is_err());
        assert!(MetricAddress::parse("g/n+/d:x").is_err());
    }

    #[test]
    fn a_metric_time_after_2262_gives_gateway_time_and_uncertain_source_time_invalid() {
        let mut h = host();
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(1), now());
        // Beyond i64 milliseconds, and within them but beyond i64 nanoseconds.
        for (seq, millis) in [(1, u64::MAX), (2, 9_300_000_000_000_000)] {
            let mut m = metric(Some("temp"), None, Some(SpType::Double), 4.5);
            m.timestamp = Some(millis);
            let out = h.on_message("spBv1.0/g/NDATA/n", &payload(Some(seq), vec![m]), now());
            assert!(out.invalid_time);
            assert_eq!(out.readings[0].value, Some(Value::Float(4.5)));
            assert_eq!(out.readings[0].source_time, None, "the gateway's time stands in");
            assert_eq!(
                out.readings[0].quality,
                Quality::Uncertain(UncertainReason::SourceTimeInvalid)
            );
        }
        // A valid time is taken as it is.
        let mut m = metric(Some("temp"), None, Some(SpType::Double), 4.6);
        m.timestamp = Some(2_000);
        let out = h.on_message("spBv1.0/g/NDATA/n", &payload(Some(3), vec![m]), now());
        assert!(!out.invalid_time);
        assert_eq!(out.readings[0].quality, Quality::Good);
        assert_eq!(
            out.readings[0].source_time,
            Some(Timestamp::from_unix_millis(2_000))
        );
    }

    #[test]
    fn aliases_from_the_birth_resolve_later_data() {
        let mut h = host();
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(1), now());
        let birth = payload(
            Some(1),
            vec![metric(Some("Inputs/level"), Some(20), Some(SpType::Double), 10.0)],
        );
        let out = h.on_message("spBv1.0/g/DBIRTH/n/d", &birth, now());
        assert_eq!(out.readings[0].value, Some(Value::Float(10.0)));
        let data = payload(Some(2), vec![metric(None, Some(20), None, 11.5)]);
        let out = h.on_message("spBv1.0/g/DDATA/n/d", &data, now());
        assert_eq!(out.readings.len(), 1);
        assert_eq!(out.readings[0].address, 0);
        assert_eq!(out.readings[0].value, Some(Value::Float(11.5)));
        assert_eq!(
            out.readings[0].source_time,
            Some(Timestamp::from_unix_millis(1_000))
        );
        assert_eq!(out.rebirth, None);
    }

    #[test]
    fn a_seq_gap_asks_for_one_rebirth() {
        let mut h = host();
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(1), now());
        let out = h.on_message("spBv1.0/g/NDATA/n", &payload(Some(3), vec![]), now());
        assert_eq!(out.rebirth, Some(("g".into(), "n".into())));
        let out = h.on_message("spBv1.0/g/NDATA/n", &payload(Some(9), vec![]), now());
        assert_eq!(out.rebirth, None, "already asked");
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(2), now());
        let out = h.on_message("spBv1.0/g/NDATA/n", &payload(Some(1), vec![]), now());
        assert_eq!(out.rebirth, None);
        assert_eq!(out.note, None);
    }

    #[test]
    fn seq_wraps_from_255_to_0_without_a_gap() {
        let mut h = host();
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(1), now());
        for i in 1..=300u64 {
            let out = h.on_message("spBv1.0/g/NDATA/n", &payload(Some(i % 256), vec![]), now());
            assert_eq!(out.rebirth, None, "seq {i}");
        }
    }

    #[test]
    fn data_from_an_unknown_node_or_alias_asks_for_a_rebirth() {
        let mut h = host();
        let out = h.on_message("spBv1.0/g/NDATA/n", &payload(Some(4), vec![]), now());
        assert_eq!(out.rebirth, Some(("g".into(), "n".into())));
        let mut h = host();
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(1), now());
        let out = h.on_message(
            "spBv1.0/g/NDATA/n",
            &payload(Some(1), vec![metric(None, Some(99), None, 1.0)]),
            now(),
        );
        assert!(out.rebirth.is_some());
    }

    #[test]
    fn deaths_turn_values_bad_but_stale_deaths_do_not() {
        let mut h = host();
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(4), now());
        let birth = payload(
            Some(1),
            vec![metric(Some("Inputs/level"), Some(20), Some(SpType::Double), 1.0)],
        );
        h.on_message("spBv1.0/g/DBIRTH/n/d", &birth, now());
        let out = h.on_message("spBv1.0/g/DDEATH/n/d", &payload(Some(2), vec![]), now());
        assert_eq!(out.readings.len(), 1);
        assert_eq!(out.readings[0].quality, Quality::Bad(BadReason::CommFailure));
        let stale = payload(
            None,
            vec![metric(Some(BDSEQ_METRIC), None, Some(SpType::Int64), 0.0)],
        );
        // A double where an Int64 bdSeq belongs reads as no bdSeq: treated as current.
        let out = h.on_message("spBv1.0/g/NDEATH/n", &stale, now());
        assert_eq!(out.readings.len(), 2);
        h.on_message("spBv1.0/g/NBIRTH/n", &nbirth(5), now());
        let older = encode_payload(&Payload {
            metrics: vec![Metric {
                name: Some(BDSEQ_METRIC.into()),
                value: Some(metric::Value::LongValue(4)),
                ..Metric::default()
            }],
            ..Payload::default()
        });
        let out = h.on_message("spBv1.0/g/NDEATH/n", &older, now());
        assert!(out.readings.is_empty());
        assert!(out.note.unwrap().contains("stale"));
    }

    #[test]
    fn malformed_payloads_become_notes() {
        let mut h = host();
        let out = h.on_message("spBv1.0/g/NBIRTH/n", &[0x0a, 0xff, 0xff], now());
        assert!(out.note.is_some());
        assert!(out.readings.is_empty());
    }
}
