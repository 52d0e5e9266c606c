//! Source kind `mqtt`: subscribes to topic filters and turns messages into readings.
//!
//! An address names a topic filter and, optionally, what to take from the message:
//!
//! ```text
//! dairy/reception/silo-1/level            the whole payload: a number, true/false, text, or a JSON scalar
//! dairy/reception/silo-1/telemetry#$.level     a field of a JSON payload ($.a.b, $.a[0], $['a b'])
//! dairy/+/+/status#$topic[2]              a level of the topic the message came on (0-based)
//! dairy/reception/##$.level               a filter ending in the `#` wildcard, then the selector
//! ```
//!
//! The selector starts at the first `#$`. The source subscribes to every address's filter
//! (plus any `subscribe` filters). A message feeds every address whose filter matches its
//! topic and whose field is present; the device timestamp comes from `timestamp_path`
//! when the payload has it. A time there that cannot be read is replaced by the gateway's,
//! counted, and makes the readings `uncertain (source_time_invalid)`. The connection is
//! the source's: when it is lost the source fails, its values turn bad, and the supervisor
//! reconnects with backoff. At QoS 1 or 2 the broker keeps the source's session (its
//! client id derives from the gateway's name) so what is published while the gateway is
//! away arrives when it is back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{AddressError, Table};
use backplane_connector::json::{excerpt, json_time};
use backplane_connector::{ComponentError, RawReading, Source, SourceContext, SourceIo, SourceKind};
use backplane_model::{BadReason, Quality, Timestamp, UncertainReason, Value};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::client_id::{Component, default_client_id};
use crate::common::parse_qos;
use crate::link::{Link, LinkEvent, LinkOptions, SessionMode};
use crate::settings::{ConnectionSettings, Qos, ResolvedConnection};
use crate::topic::{TopicError, matches, validate_filter};

/// One step of a JSON field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// What an address takes from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The whole payload.
    Payload,
    /// A field of a JSON payload.
    Json(Vec<PathStep>),
    /// One level of the topic.
    TopicLevel(usize),
}

/// A parsed source address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub filter: String,
    pub selector: Selector,
}

impl Address {
    /// Parses `FILTER[#SELECTOR]` (see the module documentation).
    pub fn parse(text: &str) -> Result<Address, AddressSyntaxError> {
        let (filter, selector) = match text.find("#$") {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        validate_filter(filter)?;
        let selector = match selector {
            None | Some("$") => Selector::Payload,
            Some(s) if s.starts_with("$topic[") => {
                let n = s
                    .strip_prefix("$topic[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| AddressSyntaxError::TopicLevel {
                        selector: s.to_owned(),
                    })?;
                Selector::TopicLevel(n)
            }
            Some(s) => Selector::Json(parse_json_path(s)?),
        };
        Ok(Address {
            filter: filter.to_owned(),
            selector,
        })
    }
}

/// Why an address is not `FILTER[#SELECTOR]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressSyntaxError {
    /// The part before `#$` is not a topic filter.
    #[error(transparent)]
    Filter(#[from] TopicError),
    /// `$topic[...]` without a level number.
    #[error("`{selector}`: write the topic level as `$topic[N]`, N from 0")]
    TopicLevel { selector: String },
    /// A malformed JSON field path.
    #[error(transparent)]
    Path(#[from] JsonPathError),
}

/// Why a JSON field path such as `$.a.b[0]` is malformed; each names the whole path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The path does not start at the root, `$`.
    #[error("a field path starts with `$`, found `{path}`")]
    NoDollar { path: String },
    /// `.` followed by nothing, `.` or `[`.
    #[error("`{path}`: empty field name")]
    EmptyName { path: String },
    /// `['` or `[` without its closing `']` or `]`.
    #[error("`{path}`: unclosed `{opening}`")]
    Unclosed { path: String, opening: &'static str },
    /// Something other than a non-negative integer inside `[` `]`.
    #[error("`{path}`: `[{index}]` is not an array index")]
    NotAnIndex { path: String, index: String },
    /// Something other than a step; `at` is the rest of the path.
    #[error("`{path}`: expected `.name`, `[N]` or `['name']` at `{at}`")]
    Unexpected { path: String, at: String },
    /// More than 32 steps, the limit that bounds a lookup's work.
    #[error("`{path}`: more than 32 steps")]
    TooLong { path: String },
}

/// Parses `$.a.b[0]['c d']`.
pub fn parse_json_path(text: &str) -> Result<Vec<PathStep>, JsonPathError> {
    let path = || text.to_owned();
    let mut rest = text
        .strip_prefix('$')
        .ok_or_else(|| JsonPathError::NoDollar { path: path() })?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err(JsonPathError::EmptyName { path: path() });
            }
            steps.push(PathStep::Key(key.to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']").ok_or_else(|| JsonPathError::Unclosed {
                path: path(),
                opening: "['",
            })?;
            steps.push(PathStep::Key(r[..end].to_owned()));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| JsonPathError::Unclosed {
                path: path(),
                opening: "[",
            })?;
            let index = r[..end].parse::<usize>().map_err(|_| JsonPathError::NotAnIndex {
                path: path(),
                index: r[..end].to_owned(),
            })?;
            steps.push(PathStep::Index(index));
            rest = &r[end + 1..];
        } else {
            return Err(JsonPathError::Unexpected {
                path: path(),
                at: rest.to_owned(),
            });
        }
        if steps.len() > 32 {
            return Err(JsonPathError::TooLong { path: path() });
        }
    }
    Ok(steps)
}

fn lookup<'v>(value: &'v serde_json::Value, path: &[PathStep]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(value, |v, step| match step {
        PathStep::Key(k) => v.get(k.as_str()),
        PathStep::Index(i) => v.get(*i),
    })
}

/// A plain (non-JSON) payload: `true`/`false`, an integer, a float, else the text.
pub fn plain_value(payload: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(payload).ok()?;
    let t = text.trim();
    Some(match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(u) = t.parse::<u64>() {
                Value::UInt(u)
            } else if let Ok(i) = t.parse::<i64>() {
                Value::Int(i)
            } else if let Some(f) = t.parse::<f64>().ok().filter(|f| f.is_finite()) {
                Value::Float(f)
            } else {
                Value::String(text.into())
            }
        }
    })
}

/// How numbers in `timestamp_path` count time since the Unix epoch.
pub use backplane_connector::json::EpochUnit;
/// A JSON value as a reading's value (shared with the other JSON sources).
pub use backplane_connector::json::json_value;

/// Settings of one `mqtt` source.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttSourceSettings {
    pub connection: ConnectionSettings,
    pub qos: Qos,
    /// Filters subscribed besides those of the addresses.
    pub subscribe: Vec<String>,
    /// Where a JSON payload carries the device time; `None` to never look.
    pub timestamp_path: Option<Vec<PathStep>>,
    pub timestamp_unit: EpochUnit,
    /// Larger messages are refused (counted as bad readings of their addresses).
    pub max_payload_bytes: usize,
    /// Whether the broker keeps the subscriptions and queues messages while the source is
    /// away (default: at QoS 1 and 2).
    pub persistent_session: bool,
    /// MQTT 5: how long the broker keeps the session after the connection ends.
    pub session_expiry: Duration,
}

/// How long an MQTT 5 broker keeps a source's session after it went away: a day covers a
/// night's outage, and a source removed from the configuration is forgotten by the next.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// The kind registered as `mqtt` (source).
#[derive(Debug)]
pub struct MqttSourceKind;

impl backplane_connector::Kind for MqttSourceKind {
    type Settings = MqttSourceSettings;

    fn describe(&self) -> &'static str {
        "MQTT subscriber: JSON fields, plain values or topic levels as readings"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<MqttSourceSettings> {
        let connection = ConnectionSettings::parse(table);
        let qos = parse_qos(table, "qos", Qos::AtLeastOnce);
        let mut subscribe = Vec::new();
        if let Some(item) = table.optional_item("subscribe") {
            match item.as_array() {
                Some(items) => {
                    for i in items {
                        match i.as_str() {
                            Some(f) => match validate_filter(f) {
                                Ok(()) => subscribe.push(f.to_owned()),
                                Err(e) => i.error(e.to_string(), None),
                            },
                            None => i.error("expected a topic filter string", None),
                        }
                    }
                }
                None => item.error(
                    "`subscribe` must be an array of topic filters",
                    Some("subscribe = [\"dairy/+/level\"]".into()),
                ),
            }
        }
        let timestamp_path = match table.optional_str("timestamp_path") {
            None => Some(vec![PathStep::Key("timestamp".into())]),
            Some("") => None,
            Some(p) => match parse_json_path(p) {
                Ok(path) => Some(path),
                Err(e) => {
                    table.error(
                        "timestamp_path",
                        e.to_string(),
                        Some("write e.g. \"$.ts\", or \"\" to ignore".into()),
                    );
                    None
                }
            },
        };
        let timestamp_unit = match table.optional_str("timestamp_unit") {
            None | Some("ms") => EpochUnit::Millis,
            Some("s") => EpochUnit::Seconds,
            Some("us") => EpochUnit::Micros,
            Some("ns") => EpochUnit::Nanos,
            Some(other) => {
                table.error(
                    "timestamp_unit",
                    format!("unknown unit `{other}`"),
                    Some("one of: s, ms, us, ns".into()),
                );
                EpochUnit::Millis
            }
        };
        let max_payload_bytes = table.optional_u64("max_payload_bytes").unwrap_or(256 * 1024);
        if !(16..=16 * 1024 * 1024).contains(&max_payload_bytes) {
            table.error(
                "max_payload_bytes",
                "`max_payload_bytes` must be between 16 and 16777216",
                None,
            );
        }
        // At QoS 0 the broker queues nothing for an absent client: a kept session would
        // only keep the subscriptions.
        let persistent_session = table
            .optional_bool("persistent_session")
            .unwrap_or(qos != Qos::AtMostOnce);
        let session_expiry = table
            .optional_duration("session_expiry")
            .unwrap_or(DEFAULT_SESSION_EXPIRY);
        if session_expiry < Duration::from_secs(1) || session_expiry.as_secs() > u64::from(u32::MAX) {
            table.error(
                "session_expiry",
                "`session_expiry` must be between 1s and 4294967295s (about 136 years)",
                Some("e.g. \"1d\"".into()),
            );
        }
        Some(MqttSourceSettings {
            connection: connection?,
            qos,
            subscribe,
            timestamp_path,
            timestamp_unit,
            max_payload_bytes: max_payload_bytes as usize,
            persistent_session,
            session_expiry,
        })
    }

    fn check_address(&self, _settings: &MqttSourceSettings, address: &str) -> Result<(), AddressError> {
        Address::parse(address).map(|_| ()).map_err(|e| AddressError {
            message: e.to_string(),
            hint: Some("write TOPIC_FILTER, TOPIC_FILTER#$.json.field or TOPIC_FILTER#$topic[N]".into()),
        })
    }
}

/// An address of the source that [`Router::new`] could not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("address `{address}`: {source}")]
pub struct RouterError {
    pub address: String,
    #[source]
    pub source: AddressSyntaxError,
}

/// Routes messages to addresses and extracts readings. No I/O.
#[derive(Debug)]
pub struct Router {
    addresses: Vec<Address>,
    /// Addresses whose filter is a plain topic, by topic.
    exact: HashMap<String, Vec<u32>>,
    /// Addresses whose filter has wildcards.
    wildcard: Vec<u32>,
    timestamp_path: Option<Vec<PathStep>>,
    timestamp_unit: EpochUnit,
    max_payload_bytes: usize,
}

impl Router {
    pub fn new(addresses: &[Arc<str>], settings: &MqttSourceSettings) -> Result<Router, RouterError> {
        let parsed = addresses
            .iter()
            .map(|a| {
                Address::parse(a).map_err(|source| RouterError {
                    address: a.to_string(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut exact: HashMap<String, Vec<u32>> = HashMap::new();
        let mut wildcard = Vec::new();
        for (i, a) in parsed.iter().enumerate() {
            if a.filter.contains(['+', '#']) {
                wildcard.push(i as u32);
            } else {
                exact.entry(a.filter.clone()).or_default().push(i as u32);
            }
        }
        Ok(Router {
            addresses: parsed,
            exact,
            wildcard,
            timestamp_path: settings.timestamp_path.clone(),
            timestamp_unit: settings.timestamp_unit,
            max_payload_bytes: settings.max_payload_bytes,
        })
    }

    /// The distinct filters to subscribe to.
    pub fn filters(&self, extra: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self.addresses.iter().map(|a| a.filter.clone()).collect();
        out.extend(extra.iter().cloned());
        out.sort();
        out.dedup();
        out
    }

    /// The addresses whose filter matches `topic`.
    fn targets(&self, topic: &str) -> Vec<u32> {
        let mut targets: Vec<u32> = self.exact.get(topic).cloned().unwrap_or_default();
        targets.extend(
            self.wildcard
                .iter()
                .copied()
                .filter(|i| matches(&self.addresses[*i as usize].filter, topic)),
        );
        targets
    }

    /// A message on `topic` that was refused unread (over `max_packet_bytes`): every
    /// address it would have fed reads bad, as for an oversized payload.
    pub fn refused(&self, topic: &str) -> Vec<RawReading> {
        self.targets(topic)
            .into_iter()
            .map(|address| bad(address, BadReason::OutOfRange, None))
            .collect()
    }

    /// The readings one message yields (none if no address matches or has its field).
    pub fn readings(&self, topic: &str, payload: &[u8]) -> Vec<RawReading> {
        self.route(topic, payload).readings
    }

    /// What one message yields: its readings, and whether its time was invalid.
    pub fn route(&self, topic: &str, payload: &[u8]) -> Routed {
        let targets = self.targets(topic);
        if targets.is_empty() {
            return Routed::default();
        }
        if payload.len() > self.max_payload_bytes {
            return Routed {
                readings: targets
                    .into_iter()
                    .map(|address| bad(address, BadReason::OutOfRange, None))
                    .collect(),
                invalid_time: None,
            };
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
        let time = match (&json, &self.timestamp_path) {
            (Some(j), Some(path)) => lookup(j, path).filter(|t| !t.is_null()),
            _ => None,
        };
        let (source_time, invalid_time) = match time {
            None => (None, None),
            Some(t) => match self.timestamp(t) {
                Some(ts) => (Some(ts), None),
                None => (None, Some(excerpt(t))),
            },
        };
        let mut out = Vec::with_capacity(targets.len());
        for address in targets {
            let reading = match &self.addresses[address as usize].selector {
                Selector::Payload => match &json {
                    Some(serde_json::Value::Object(_) | serde_json::Value::Null) => {
                        Some(bad(address, BadReason::TypeMismatch, source_time))
                    }
                    Some(j) => Some(good(address, json_value(j), source_time)),
                    None => Some(good(address, plain_value(payload), source_time)),
                },
                Selector::Json(path) => match &json {
                    // A message without the field is about something else: no reading.
                    Some(j) => lookup(j, path).map(|v| match json_value(v) {
                        Some(value) => good(address, Some(value), source_time),
                        None => bad(address, BadReason::TypeMismatch, source_time),
                    }),
                    None => Some(bad(address, BadReason::TypeMismatch, source_time)),
                },
                Selector::TopicLevel(n) => topic
                    .split('/')
                    .nth(*n)
                    .map(|level| good(address, Some(Value::String(level.into())), source_time)),
            };
            out.extend(reading);
        }
        if invalid_time.is_some() {
            // The value is as the device sent it; its time is the gateway's, not the
            // device's: say so to every consumer of the sample.
            for r in &mut out {
                if r.quality.is_good() {
                    r.quality = Quality::Uncertain(UncertainReason::SourceTimeInvalid);
                }
            }
        }
        Routed {
            readings: out,
            invalid_time,
        }
    }

    /// The time at `timestamp_path`: RFC 3339 text, or a number of `timestamp_unit` since
    /// the epoch. `None` when it is neither, or outside what a timestamp holds (the years
    /// 1677 to 2262).
    fn timestamp(&self, v: &serde_json::Value) -> Option<Timestamp> {
        json_time(v, self.timestamp_unit)
    }
}

/// What [`Router::route`] made of one message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routed {
    pub readings: Vec<RawReading>,
    /// The payload's time at `timestamp_path` (as JSON, cut to 64 characters) when it was
    /// there but invalid: the readings carry no source time, so the gateway's stands in,
    /// and the good ones are `uncertain (source_time_invalid)`.
    pub invalid_time: Option<String>,
}

fn good(address: u32, value: Option<Value>, source_time: Option<Timestamp>) -> RawReading {
    match value {
        Some(value) => RawReading {
            address,
            value: Some(value),
            quality: Quality::Good,
            source_time,
        },
        None => bad(address, BadReason::TypeMismatch, source_time),
    }
}

fn bad(address: u32, reason: BadReason, source_time: Option<Timestamp>) -> RawReading {
    RawReading {
        address,
        value: None,
        quality: Quality::Bad(reason),
        source_time,
    }
}

impl SourceKind for MqttSourceKind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, MqttSourceSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let settings = ctx.settings;
        let router = Router::new(ctx.addresses, settings)
            .map_err(|e| ComponentError::config_because(format!("mqtt source `{}`: {e}", ctx.name), e))?;
        let connection = settings
            .connection
            .resolve()
            .map_err(|e| ComponentError::config_because(format!("mqtt source `{}`: {e}", ctx.name), e))?;
        let client_id = settings
            .connection
            .client_id
            .clone()
            .unwrap_or_else(|| default_client_id(ctx.gateway, Component::Source, ctx.name));
        Ok(Box::new(MqttSource {
            name: ctx.name.to_owned(),
            settings: settings.clone(),
            connection,
            router,
            client_id,
        }))
    }
}

struct MqttSource {
    name: String,
    settings: MqttSourceSettings,
    connection: ResolvedConnection,
    router: Router,
    client_id: String,
}

impl Source for MqttSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let options = LinkOptions {
                client_id: self.client_id.clone(),
                will: None,
                inflight: 16,
                session: if self.settings.persistent_session {
                    SessionMode::Persistent {
                        expiry: self.settings.session_expiry,
                    }
                } else {
                    SessionMode::Clean
                },
                write_delay: None,
            };
            let mut link = Link::open(&self.connection, &options);
            let filters = self.router.filters(&self.settings.subscribe);
            let oversized = io.status.counter("messages_oversized");
            let invalid_times = io.status.counter("source_time_invalid");
            // Topics already warned about in this session: a retained message comes back at
            // every subscribe; one warning each is enough (bounded).
            let mut warned: HashSet<String> = HashSet::new();
            let mut warned_time: HashSet<String> = HashSet::new();
            loop {
                let event = tokio::select! {
                    event = link.next() => event,
                    () = io.cancelled() => {
                        // What the link received was acknowledged to the broker: hand it on
                        // before stopping, or a graceful stop (SIGTERM, a reload) loses it.
                        for event in link.close(std::time::Duration::from_millis(500)).await {
                            if let LinkEvent::Message { topic, payload, .. } = event {
                                let routed = self.router.route(&topic, &payload);
                                if !routed.readings.is_empty() {
                                    io.emit(Timestamp::now(), routed.readings).await;
                                }
                            }
                        }
                        return Ok(());
                    }
                    Some(write) = io.next_write() => {
                        let _ = write.reply.send(Err(ComponentError::config(
                            "the mqtt source does not accept writes",
                        )));
                        continue;
                    }
                };
                match event {
                    LinkEvent::Connected => {
                        tracing::info!(
                            source = %self.name,
                            client_id = %self.client_id,
                            filters = ?filters,
                            session_resumed = link.session_present(),
                            "mqtt: connected, subscribing"
                        );
                        link.subscribe(&filters, self.settings.qos)
                            .await
                            .map_err(|e| ComponentError::io(format!("mqtt source `{}`: {e}", self.name)))?;
                    }
                    LinkEvent::Message { topic, payload, .. } => {
                        let routed = self.router.route(&topic, &payload);
                        if let Some(time) = &routed.invalid_time {
                            invalid_times.inc();
                            if warned_time.len() < 64 && warned_time.insert(topic.clone()) {
                                tracing::warn!(
                                    source = %self.name,
                                    %topic,
                                    %time,
                                    "mqtt: the payload's time cannot be read or is out of range; the gateway's time stands in and the values are uncertain (source_time_invalid), counted as source_time_invalid"
                                );
                            }
                        }
                        if !routed.readings.is_empty() && !io.emit(Timestamp::now(), routed.readings).await {
                            return Ok(());
                        }
                    }
                    LinkEvent::Oversized { topic, bytes } => {
                        oversized.inc();
                        if warned.len() < 64 && warned.insert(topic.clone()) {
                            tracing::warn!(
                                source = %self.name,
                                %topic,
                                bytes,
                                max_packet_bytes = self.settings.connection.max_packet_bytes,
                                "mqtt: message over max_packet_bytes refused (counted as messages_oversized; the connection goes on)"
                            );
                        }
                        let readings = self.router.refused(&topic);
                        if !readings.is_empty() && !io.emit(Timestamp::now(), readings).await {
                            return Ok(());
                        }
                    }
                    LinkEvent::Delivered(_) => {}
                    LinkEvent::Disconnected(why) => {
                        return Err(ComponentError::connect(format!(
                            "mqtt source `{}`: {}:{}: {why}",
                            self.name, self.settings.connection.host, self.settings.connection.port
                        )));
                    }
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MqttSourceSettings {
        MqttSourceSettings {
            connection: ConnectionSettings {
                host: "h".into(),
                port: 1883,
                protocol: crate::settings::Protocol::V311,
                client_id: None,
                keep_alive: std::time::Duration::from_secs(30),
                username: None,
                password: None,
                tls: None,
                max_packet_bytes: 1 << 20,
                reconnect_min: std::time::Duration::from_millis(500),
                reconnect_max: std::time::Duration::from_secs(30),
            },
            qos: Qos::AtLeastOnce,
            subscribe: vec![],
            timestamp_path: Some(vec![PathStep::Key("ts".into())]),
            timestamp_unit: EpochUnit::Millis,
            max_payload_bytes: 1024,
            persistent_session: true,
            session_expiry: DEFAULT_SESSION_EXPIRY,
        }
    }

    fn router(addresses: &[&str]) -> Router {
        let addresses: Vec<Arc<str>> = addresses.iter().map(|a| Arc::from(*a)).collect();
        Router::new(&addresses, &settings()).unwrap()
    }

    #[test]
    fn addresses_split_filter_and_selector_at_the_first_hash_dollar() {
        assert_eq!(
            Address::parse("a/b#$.x[1]['y z']").unwrap(),
            Address {
                filter: "a/b".into(),
                selector: Selector::Json(vec![
                    PathStep::Key("x".into()),
                    PathStep::Index(1),
                    PathStep::Key("y z".into())
                ])
            }
        );
        assert_eq!(Address::parse("a/##$.v").unwrap().filter, "a/#");
        assert_eq!(Address::parse("a/#").unwrap().selector, Selector::Payload);
        assert_eq!(
            Address::parse("a/+/c#$topic[1]").unwrap().selector,
            Selector::TopicLevel(1)
        );
        assert!(Address::parse("a/#/b").is_err());
        assert!(Address::parse("a#$.").is_err());
        assert!(Address::parse("a#$topic[x]").is_err());
        assert!(Address::parse("a#$.x[").is_err());
    }

    #[test]
    fn json_fields_feed_their_addresses_with_the_payload_timestamp() {
        let r = router(&["silo/1#$.level", "silo/1#$.temp", "silo/+#$.level"]);
        let readings = r.readings("silo/1", br#"{"level": 61.5, "ts": 1700000000000}"#);
        assert_eq!(readings.len(), 2, "temp is absent: no reading");
        assert!(readings.iter().all(|r| r.value == Some(Value::Float(61.5))));
        assert_eq!(
            readings[0].source_time,
            Some(Timestamp::from_unix_millis(1_700_000_000_000))
        );
        assert!(r.readings("other", b"1").is_empty());
    }

    #[test]
    fn plain_payloads_parse_as_bool_number_or_text() {
        let r = router(&["t"]);
        let v = |p: &[u8]| r.readings("t", p)[0].value.clone();
        assert_eq!(v(b"true"), Some(Value::Bool(true)));
        assert_eq!(v(b" 42 "), Some(Value::UInt(42)));
        assert_eq!(v(b"-3"), Some(Value::Int(-3)));
        assert_eq!(v(b"2.5"), Some(Value::Float(2.5)));
        assert_eq!(v(b"\"quoted\""), Some(Value::String("quoted".into())));
        assert_eq!(v(b"running"), Some(Value::String("running".into())));
        let readings = r.readings("t", &[0xff, 0xfe]);
        assert_eq!(readings[0].quality, Quality::Bad(BadReason::TypeMismatch));
    }

    #[test]
    fn objects_where_a_value_is_expected_and_oversized_payloads_read_bad() {
        let r = router(&["t", "t#$.o"]);
        let readings = r.readings("t", br#"{"o": {"x": 1}}"#);
        assert!(
            readings
                .iter()
                .all(|r| r.quality == Quality::Bad(BadReason::TypeMismatch))
        );
        let big = vec![b'1'; 2000];
        let readings = r.readings("t", &big);
        assert!(
            readings
                .iter()
                .all(|r| r.quality == Quality::Bad(BadReason::OutOfRange))
        );
    }

    #[test]
    fn topic_levels_become_string_values() {
        let r = router(&["plant/+/state#$topic[1]"]);
        let readings = r.readings("plant/filler-2/state", b"x");
        assert_eq!(readings[0].value, Some(Value::String("filler-2".into())));
    }

    #[test]
    fn an_invalid_payload_time_gives_gateway_time_and_uncertain_source_time_invalid() {
        let r = router(&["t#$.v", "t#$.o"]);
        for (payload, shown) in [
            (&br#"{"v": 1, "ts": "yesterday"}"#[..], "\"yesterday\""),
            (
                br#"{"v": 1, "ts": "2026-13-45T00:00:00Z"}"#,
                "\"2026-13-45T00:00:00Z\"",
            ),
            // Milliseconds beyond the year 2262 (nanoseconds overflow i64).
            (br#"{"v": 1, "ts": 9300000000000000}"#, "9300000000000000"),
            (br#"{"v": 1, "ts": 1e300}"#, "1e+300"),
            (br#"{"v": 1, "ts": true}"#, "true"),
        ] {
            let routed = r.route("t", payload);
            assert_eq!(routed.invalid_time.as_deref(), Some(shown));
            assert_eq!(routed.readings.len(), 1);
            let reading = &routed.readings[0];
            assert_eq!(reading.value, Some(Value::UInt(1)));
            assert_eq!(reading.source_time, None, "the gateway's time stands in");
            assert_eq!(
                reading.quality,
                Quality::Uncertain(UncertainReason::SourceTimeInvalid)
            );
        }
        // A bad reading stays bad (its reason says more than the time's).
        let routed = r.route("t", br#"{"o": {"x": 1}, "ts": "yesterday"}"#);
        assert!(routed.invalid_time.is_some());
        assert_eq!(routed.readings[0].quality, Quality::Bad(BadReason::TypeMismatch));
    }

    #[test]
    fn a_missing_or_null_payload_time_is_no_invalid_time() {
        let r = router(&["t#$.v", "p"]);
        for payload in [&br#"{"v": 2}"#[..], br#"{"v": 2, "ts": null}"#] {
            let routed = r.route("t", payload);
            assert_eq!(routed.invalid_time, None);
            assert_eq!(routed.readings[0].quality, Quality::Good);
            assert_eq!(routed.readings[0].source_time, None);
        }
        let routed = r.route("p", b"42");
        assert_eq!(routed.invalid_time, None);
        assert_eq!(routed.readings[0].quality, Quality::Good);
    }

    #[test]
    fn integer_epoch_times_are_exact_to_the_nanosecond() {
        let r = router(&["t#$.v"]);
        let readings = r.readings("t", br#"{"v": 1, "ts": 1700000000123}"#);
        assert_eq!(
            readings[0].source_time,
            Some(Timestamp::from_unix_nanos(1_700_000_000_123_000_000))
        );
    }

    #[test]
    fn rfc3339_timestamps_are_read_too() {
        let r = router(&["t#$.v"]);
        let readings = r.readings("t", br#"{"v": 1, "ts": "2026-01-01T00:00:00Z"}"#);
        assert_eq!(
            readings[0].source_time,
            Timestamp::parse_rfc3339("2026-01-01T00:00:00Z")
        );
    }
}
