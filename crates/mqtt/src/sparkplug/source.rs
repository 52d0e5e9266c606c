//! Source kind `sparkplug`: a Sparkplug B host application that ingests edge nodes'
//! births and data ([`Host`]), asks nodes for a rebirth when it missed something, and, with
//! a `host_id`, announces itself on `spBv1.0/STATE/{host_id}` (online while connected,
//! offline as its will) so edge nodes that name it as primary host publish to it.

use std::time::Duration;

use backplane_config::{AddressError, Table};
use backplane_connector::{ComponentError, Source, SourceContext, SourceIo, SourceKind};
use backplane_model::Timestamp;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::codec::{self, MessageType, validate_id};
use super::host::{Host, MetricAddress, rebirth_request, state_payload};
use crate::client_id::{Component, default_client_id};
use crate::link::{Link, LinkEvent, LinkOptions, SessionMode, Will};
use crate::settings::{ConnectionSettings, Qos, ResolvedConnection};

/// Settings of one `sparkplug` source.
#[derive(Clone, Debug, PartialEq)]
pub struct SparkplugSourceSettings {
    pub connection: ConnectionSettings,
    /// Announce this host application on `spBv1.0/STATE/{host_id}`.
    pub host_id: Option<String>,
    /// Groups subscribed besides those of the addresses.
    pub groups: Vec<String>,
    pub max_payload_bytes: usize,
}

/// The kind registered as `sparkplug` (source).
#[derive(Debug)]
pub struct SparkplugSourceKind;

impl backplane_connector::Kind for SparkplugSourceKind {
    type Settings = SparkplugSourceSettings;

    fn describe(&self) -> &'static str {
        "Sparkplug B host: metrics of edge nodes and devices as readings"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<SparkplugSourceSettings> {
        let connection = ConnectionSettings::parse(table);
        let host_id = table.optional_str("host_id").map(str::to_owned);
        if let Some(h) = &host_id
            && let Err(e) = validate_id(h)
        {
            table.error("host_id", e.to_string(), None);
        }
        let mut groups = Vec::new();
        if let Some(item) = table.optional_item("groups") {
            match item.as_array() {
                Some(items) => {
                    for i in items {
                        match i.as_str().map(|g| (g, validate_id(g))) {
                            Some((g, Ok(()))) => groups.push(g.to_owned()),
                            Some((_, Err(e))) => i.error(e.to_string(), None),
                            None => i.error("expected a group id string", None),
                        }
                    }
                }
                None => item.error("`groups` must be an array of group ids", None),
            }
        }
        let max_payload_bytes = table.optional_u64("max_payload_bytes").unwrap_or(1024 * 1024);
        if !(64..=codec::MAX_PAYLOAD_BYTES as u64).contains(&max_payload_bytes) {
            table.error(
                "max_payload_bytes",
                format!(
                    "`max_payload_bytes` must be between 64 and {}",
                    codec::MAX_PAYLOAD_BYTES
                ),
                None,
            );
        }
        Some(SparkplugSourceSettings {
            connection: connection?,
            host_id,
            groups,
            max_payload_bytes: max_payload_bytes as usize,
        })
    }

    fn check_address(&self, _settings: &SparkplugSourceSettings, address: &str) -> Result<(), AddressError> {
        MetricAddress::parse(address)
            .map(|_| ())
            .map_err(|e| AddressError {
                message: e.to_string(),
                hint: Some("write GROUP/NODE:METRIC or GROUP/NODE/DEVICE:METRIC".into()),
            })
    }
}

impl SourceKind for SparkplugSourceKind {
    fn build(
        &self,
        ctx: &SourceContext<'_, SparkplugSourceSettings>,
    ) -> Result<Box<dyn Source>, ComponentError> {
        let settings = ctx.settings;
        let addresses = ctx
            .addresses
            .iter()
            .map(|a| MetricAddress::parse(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ComponentError::config_because(format!("sparkplug source `{}`: {e}", ctx.name), e)
            })?;
        let connection = settings.connection.resolve().map_err(|e| {
            ComponentError::config_because(format!("sparkplug source `{}`: {e}", ctx.name), e)
        })?;
        Ok(Box::new(SparkplugSource {
            name: ctx.name.to_owned(),
            settings: settings.clone(),
            connection,
            host: Host::new(&addresses, settings.max_payload_bytes),
            client_id: settings
                .connection
                .client_id
                .clone()
                .unwrap_or_else(|| default_client_id(ctx.gateway, Component::Source, ctx.name)),
        }))
    }
}

struct SparkplugSource {
    name: String,
    settings: SparkplugSourceSettings,
    connection: ResolvedConnection,
    client_id: String,
    host: Host,
}

impl Source for SparkplugSource {
    fn run(mut self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let started = Timestamp::now();
            let state_topic = self
                .settings
                .host_id
                .as_ref()
                .map(|h| format!("{}/STATE/{h}", codec::NAMESPACE));
            let options = LinkOptions {
                client_id: self.client_id.clone(),
                // Sparkplug 3.0: the will's timestamp equals the birth's.
                will: state_topic.as_ref().map(|t| Will {
                    topic: t.clone(),
                    payload: Bytes::from(state_payload(false, started)),
                    qos: Qos::AtLeastOnce,
                    retain: true,
                }),
                inflight: 16,
                // A host rebuilds its view from births; data kept from a past session
                // would arrive ahead of them.
                session: SessionMode::Clean,
            };
            let mut groups = self.host.groups();
            groups.extend(self.settings.groups.iter().cloned());
            groups.sort();
            groups.dedup();
            let filters: Vec<String> = groups.iter().map(|g| format!("{}/{g}/#", codec::NAMESPACE)).collect();
            let mut link = Link::open(&self.connection, &options);
            let invalid_times = io.status.counter("source_time_invalid");
            let mut warned_time = false;
            loop {
                let event = tokio::select! {
                    event = link.next() => event,
                    () = io.cancelled() => {
                        if let Some(t) = &state_topic {
                            let _ = link.publish(t, Qos::AtLeastOnce, true, Bytes::from(state_payload(false, Timestamp::now()))).await;
                        }
                        link.close(Duration::from_secs(2)).await;
                        return Ok(());
                    }
                    Some(write) = io.next_write() => {
                        let _ = write.reply.send(Err(ComponentError::config(
                            "the sparkplug source does not accept writes",
                        )));
                        continue;
                    }
                };
                match event {
                    LinkEvent::Connected => {
                        tracing::info!(source = %self.name, ?filters, "sparkplug host: connected");
                        let closed = |e| ComponentError::io(format!("sparkplug source `{}`: {e}", self.name));
                        link.subscribe(&filters, Qos::AtLeastOnce).await.map_err(closed)?;
                        if let Some(t) = &state_topic {
                            link.publish(t, Qos::AtLeastOnce, true, Bytes::from(state_payload(true, started)))
                                .await
                                .map_err(closed)?;
                        }
                    }
                    LinkEvent::Message { topic, payload, .. } => {
                        let out = self.host.on_message(&topic, &payload, Timestamp::now());
                        if out.invalid_time {
                            invalid_times.inc();
                            if !std::mem::replace(&mut warned_time, true) {
                                tracing::warn!(source = %self.name, %topic, "sparkplug host: a timestamp after the year 2262; the gateway's time stands in and the values are uncertain (source_time_invalid), counted as source_time_invalid");
                            }
                        }
                        if let Some(note) = &out.note {
                            tracing::info!(source = %self.name, %note, "sparkplug host");
                        }
                        if let Some((group, node)) = &out.rebirth {
                            let ncmd = codec::topic(group, MessageType::NCmd, node, None);
                            tracing::info!(source = %self.name, %group, %node, "sparkplug host: requesting a rebirth");
                            let _ = link
                                .publish(&ncmd, Qos::AtMostOnce, false, Bytes::from(rebirth_request(Timestamp::now())))
                                .await;
                        }
                        if !out.readings.is_empty() && !io.emit(Timestamp::now(), out.readings).await {
                            return Ok(());
                        }
                    }
                    LinkEvent::Oversized { topic, bytes } => {
                        tracing::warn!(source = %self.name, %topic, bytes, "sparkplug host: message over max_packet_bytes refused");
                    }
                    LinkEvent::Delivered(_) => {}
                    LinkEvent::Disconnected(why) => {
                        return Err(ComponentError::connect(format!(
                            "sparkplug source `{}`: {}:{}: {why}",
                            self.name, self.settings.connection.host, self.settings.connection.port
                        )));
                    }
                }
            }
        }
        .boxed()
    }
}
