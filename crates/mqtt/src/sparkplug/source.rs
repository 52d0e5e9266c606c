//! Source kind `sparkplug`: a Sparkplug B host application that ingests edge nodes'
//! births and data ([`Host`]), asks nodes for a rebirth when it missed something, and, with
//! a `host_id`, announces itself on `spBv1.0/STATE/{host_id}` ([`HostState`]: online while
//! connected, offline as its will and before an orderly DISCONNECT) so edge nodes that name
//! it as primary host publish to it.

use std::time::Duration;

use backplane_config::{AddressError, Table};
use backplane_connector::{ComponentError, Source, SourceContext, SourceIo, SourceKind};
use backplane_model::Timestamp;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::codec::{self, MessageType, validate_id};
use super::host::{Host, MetricAddress, rebirth_request};
use super::state::HostState;
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
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

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
            // One MQTT session per run: its STATE carries the time of its CONNECT.
            let state = self
                .settings
                .host_id
                .as_ref()
                .map(|h| HostState::new(h, Timestamp::now()));
            let options = LinkOptions {
                client_id: self.client_id.clone(),
                // Sparkplug 3.0: the will's timestamp equals the birth's.
                will: state.as_ref().map(|s| {
                    let w = s.will();
                    Will {
                        topic: w.topic,
                        payload: bytes::Bytes::from(w.payload),
                        qos: w.qos,
                        retain: w.retain,
                    }
                }),
                inflight: 16,
                // A host rebuilds its view from births; data kept from a past session
                // would arrive ahead of them.
                session: SessionMode::Clean,
                write_delay: None,
            };
            let mut groups = self.host.groups();
            groups.extend(self.settings.groups.iter().cloned());
            groups.sort();
            groups.dedup();
            let mut filters: Vec<String> = groups.iter().map(|g| format!("{}/{g}/#", codec::NAMESPACE)).collect();
            // Its own STATE too, to answer an `online: false` delivered there.
            filters.extend(state.as_ref().map(|s| s.topic().to_owned()));
            let mut link = Link::open(&self.connection, &options);
            let invalid_times = io.status.counter("source_time_invalid");
            let mut warned_time = false;
            loop {
                let event = tokio::select! {
                    event = link.next() => event,
                    () = io.cancelled() => {
                        // Orderly stop: the death certificate, then DISCONNECT.
                        if let Some(d) = state.as_ref().map(|s| s.death(Timestamp::now())) {
                            let _ = link.publish(&d.topic, d.qos, d.retain, &d.payload).await;
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
                        // Subscriptions first, then the birth: the first message published.
                        link.subscribe(&filters, Qos::AtLeastOnce).await.map_err(closed)?;
                        if let Some(b) = state.as_ref().map(HostState::birth) {
                            link.publish(&b.topic, b.qos, b.retain, &b.payload)
                                .await
                                .map_err(closed)?;
                        }
                    }
                    LinkEvent::Message { topic, payload, .. }
                        if state.as_ref().is_some_and(|s| s.topic() == topic) =>
                    {
                        if let Some(b) = state.as_ref().and_then(|s| s.on_own_state(&payload)) {
                            tracing::info!(source = %self.name, "sparkplug host: our STATE was set offline; announcing online again");
                            let closed = |e| ComponentError::io(format!("sparkplug source `{}`: {e}", self.name));
                            link.publish(&b.topic, b.qos, b.retain, &b.payload)
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
                                .publish(&ncmd, Qos::AtMostOnce, false, &rebirth_request(Timestamp::now()))
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
