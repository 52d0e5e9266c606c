//! Sink kind `sparkplug`: drives the [`EdgeNode`] over one [`Link`] per MQTT session.
//!
//! Every session takes the next bdSeq, persisted in `{data_dir}/sparkplug/{sink}.bdseq`
//! before connecting, so the NDEATH will and the NBIRTH agree and the value keeps
//! increasing across restarts. Between sessions samples keep flowing into the edge node,
//! which holds them and replays them as historical data after the next births. DCMD
//! writes go through the engine's write gate in tasks of their own (at most
//! [`MAX_COMMANDS_IN_FLIGHT`] at once), so a slow device never stalls publishing. They are
//! attributed to the identity `sparkplug:<sink>` with the sink's `commands_role`.

use std::path::{Path, PathBuf};

use backplane_config::Table;
use backplane_connector::{ComponentError, Delivery, MachineWrite, Sink, SinkContext, SinkIo, SinkKind};
use backplane_model::Timestamp;
use backplane_security::{AuthMethod, Identity, Role};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::histogram::Histogram;

use super::codec::validate_id;
use super::edge::{EdgeConfig, EdgeNode, Output, Publish, devices};
use crate::client_id::{Component, default_client_id};
use crate::common::{CLOSE_TIMEOUT, Groups, Unconfirmed, next_event, parse_inflight, sleep_until};
use crate::delivery::Delivery as Confirmation;
use crate::link::{Link, LinkEvent, LinkOptions, SessionMode, Will};
use crate::settings::{ConnectionSettings, Protocol, Qos, ResolvedConnection};
use backplane_connector::Backoff;

/// Settings of one `sparkplug` sink.
#[derive(Clone, Debug, PartialEq)]
pub struct SparkplugSinkSettings {
    pub connection: ConnectionSettings,
    /// `None`: the namespace's site.
    pub group_id: Option<String>,
    /// `None`: the gateway's name.
    pub edge_node_id: Option<String>,
    pub primary_host: Option<String>,
    pub accept_commands: bool,
    /// The role DCMD writes are made with (`commands_role`, default viewer: the write
    /// gate refuses them unless a rule allows viewers).
    pub commands_role: Role,
    pub max_inflight: u16,
}

/// DCMD writes waiting for the gate at once; more are refused and counted.
pub const MAX_COMMANDS_IN_FLIGHT: usize = 16;

/// The kind registered as `sparkplug` (sink).
#[derive(Debug)]
pub struct SparkplugSinkKind;

impl backplane_connector::Kind for SparkplugSinkKind {
    type Settings = SparkplugSinkSettings;

    fn describe(&self) -> &'static str {
        "Sparkplug B edge node: assets with models are devices, attributes are metrics"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<SparkplugSinkSettings> {
        let connection = ConnectionSettings::parse(table);
        let id = |table: &mut Table<'_>, key: &str| {
            let value = table.optional_str(key).map(str::to_owned);
            if let Some(v) = &value
                && let Err(e) = validate_id(v)
            {
                table.error(key, e.to_string(), None);
            }
            value
        };
        let group_id = id(table, "group_id");
        let edge_node_id = id(table, "edge_node_id");
        let primary_host = id(table, "primary_host");
        if table.has("hold_max") {
            let _ = table.optional_item("hold_max");
            table.error(
                "hold_max",
                "`hold_max` is no longer used: data waits in the store-and-forward log while the node is not born",
                Some("remove it; size the backlog with `buffer = { quota = \"1GiB\" }` (docs/reliability.md)".to_owned()),
            );
        }
        let accept_commands = table.optional_bool("accept_commands").unwrap_or(false);
        let mut commands_role = Role::Viewer;
        if let Some(text) = table.optional_str("commands_role") {
            match text.parse::<Role>() {
                Ok(role) => commands_role = role,
                Err(e) => table.error("commands_role", e.to_string(), None),
            }
        }
        let max_inflight = parse_inflight(table);
        Some(SparkplugSinkSettings {
            connection: connection?,
            group_id,
            edge_node_id,
            primary_host,
            accept_commands,
            commands_role,
            max_inflight,
        })
    }
}

impl SinkKind for SparkplugSinkKind {
    /// Reads its settings, its feed, the topology and the write gate: kept running by a reload that
    /// changes neither its entry nor the asset tree.
    fn survives_reload(&self, _settings: &SparkplugSinkSettings) -> bool {
        true
    }

    fn buffered(&self) -> bool {
        true
    }

    fn build(&self, ctx: &SinkContext<'_, SparkplugSinkSettings>) -> Result<Box<dyn Sink>, ComponentError> {
        let settings = ctx.settings;
        let connection = settings
            .connection
            .resolve()
            .map_err(|e| ComponentError::config_because(format!("sparkplug sink `{}`: {e}", ctx.name), e))?;
        Ok(Box::new(SparkplugSink {
            name: ctx.name.to_owned(),
            settings: settings.clone(),
            connection,
            bd_seq_file: bd_seq_path(ctx.data_dir, ctx.name),
        }))
    }
}

/// Where a sink's bdSeq lives.
pub fn bd_seq_path(data_dir: &Path, sink: &str) -> PathBuf {
    data_dir.join("sparkplug").join(format!("{sink}.bdseq"))
}

/// Takes the next bdSeq (0 the first time, then last + 1, wrapping after 255) and
/// persists it before it is used, so a crash can never reuse one.
pub fn next_bd_seq(path: &Path) -> std::io::Result<u8> {
    let next = match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u8>().map_or(0, |last| last.wrapping_add(1)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("bdseq.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{next}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(next)
}

struct SparkplugSink {
    name: String,
    settings: SparkplugSinkSettings,
    connection: ResolvedConnection,
    bd_seq_file: PathBuf,
}

impl Sink for SparkplugSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move { self.run_loop(io).await }.boxed()
    }
}

enum Step {
    Link(LinkEvent),
    Input(Option<Delivery>),
    Retry,
}

impl SparkplugSink {
    fn will(p: &Publish) -> Will {
        Will {
            topic: p.topic.clone(),
            payload: Bytes::from(p.payload.clone()),
            qos: p.qos,
            retain: p.retain,
        }
    }

    /// Ends a session on purpose: the NDEATH first, then under MQTT 3.1.1 a DISCONNECT.
    /// Under MQTT 5 a DISCONNECT must carry the reason "Disconnect with Will Message"
    /// (0x04), which rumqttc cannot send; so once the NDEATH is confirmed the connection
    /// is dropped instead, to the same effect: the broker publishes the will (the same
    /// NDEATH) as well.
    async fn end_session(&self, mut link: Link, death: Publish) {
        let sent = link
            .publish(&death.topic, death.qos, death.retain, &death.payload)
            .await;
        match self.connection.settings.protocol {
            Protocol::V311 => {
                link.close(CLOSE_TIMEOUT).await;
            }
            Protocol::V5 => {
                let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
                while sent.is_ok() && link.outstanding() > 0 {
                    match tokio::time::timeout_at(deadline, link.next()).await {
                        Ok(LinkEvent::Disconnected(_)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                drop(link);
            }
        }
    }

    /// `write_delay`: where the link records the delay from a DDATA's oldest sample to
    /// its socket write.
    async fn open_session(
        &self,
        edge: &mut EdgeNode,
        client_id: &str,
        write_delay: &Histogram,
    ) -> Result<Link, ComponentError> {
        let bd = next_bd_seq(&self.bd_seq_file).map_err(|e| {
            ComponentError::io(format!(
                "sparkplug sink `{}`: cannot persist bdSeq in {}: {e}",
                self.name,
                self.bd_seq_file.display()
            ))
        })?;
        edge.start_session(bd);
        let options = LinkOptions {
            client_id: client_id.to_owned(),
            will: Some(Self::will(&edge.will())),
            inflight: self.settings.max_inflight,
            // Sparkplug 3.0 requires it of edge nodes (tck-id-principles-persistence-clean-session-311, -50).
            session: SessionMode::Clean,
            write_delay: Some(write_delay.clone()),
        };
        Ok(Link::open(&self.connection, &options))
    }

    async fn run_loop(self, io: SinkIo) -> Result<(), ComponentError> {
        let topology = io.topology.clone();
        let plan = &topology.plan;
        let config = EdgeConfig {
            group: self
                .settings
                .group_id
                .clone()
                .unwrap_or_else(|| plan.namespace.site.clone()),
            node: self
                .settings
                .edge_node_id
                .clone()
                .unwrap_or_else(|| plan.gateway.name.clone()),
            primary_host: self.settings.primary_host.clone(),
            // Nothing is read from the log while the node is not born, so the state
            // machine's own hold only ever carries a replay.
            hold_max: 0,
            accept_commands: self.settings.accept_commands,
        };
        for id in [&config.group, &config.node] {
            validate_id(id).map_err(|e| {
                ComponentError::config_because(format!("sparkplug sink `{}`: {e}", self.name), e)
            })?;
        }
        let client_id = self
            .settings
            .connection
            .client_id
            .clone()
            .unwrap_or_else(|| default_client_id(&plan.gateway.name, Component::Sink, &self.name));
        let mut edge = EdgeNode::new(config, devices(&topology));
        let refused = io.status.counter("dcmd_refused");
        let commander = Identity::new(
            format!("sparkplug:{}", self.name),
            self.settings.commands_role,
            AuthMethod::Connection,
        );
        let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_COMMANDS_IN_FLIGHT));
        let mut backoff = Backoff::new(
            self.settings.connection.reconnect_min,
            self.settings.connection.reconnect_max,
        );
        let write_delay = io.status.delay("device_to_socket");
        let mut link = Some(self.open_session(&mut edge, &client_id, &write_delay).await?);
        let mut connected = false;
        let mut retry_at: Option<tokio::time::Instant> = None;
        // Log records behind the DDATA in flight: acknowledged once written (QoS 0, as
        // Sparkplug requires) or confirmed (QoS 1).
        let mut groups = Groups::default();
        let mut unconfirmed = Unconfirmed::default();
        loop {
            // Input is read only while born: until then the backlog waits in the log, and
            // what was not delivered live comes back as replay, flagged historical.
            let want_input = connected
                && edge.is_born()
                && link
                    .as_ref()
                    .is_some_and(|l| l.outstanding() < usize::from(self.settings.max_inflight));
            let step = tokio::select! {
                biased;
                event = next_event(&mut link) => Step::Link(event),
                () = sleep_until(retry_at) => Step::Retry,
                delivery = io.next(), if want_input => Step::Input(delivery),
                () = io.input_closed(), if !want_input => Step::Input(None),
            };
            let mut group = None;
            let was_born = edge.is_born();
            let outputs = match step {
                Step::Link(LinkEvent::Connected) => {
                    connected = true;
                    backoff.reset();
                    io.status.set_degraded(None);
                    let Some(l) = link.as_ref() else { continue };
                    tracing::info!(sink = %self.name, bd_seq = edge.bd_seq(), "sparkplug: connected");
                    if l.subscribe(&edge.subscriptions(), Qos::AtLeastOnce)
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    edge.on_connected(Timestamp::now())
                }
                Step::Link(LinkEvent::Message { topic, payload, .. }) => {
                    edge.on_message(&topic, &payload, Timestamp::now())
                }
                Step::Link(LinkEvent::Oversized { topic, bytes }) => {
                    tracing::warn!(sink = %self.name, %topic, bytes, "sparkplug: message over max_packet_bytes refused");
                    Vec::new()
                }
                Step::Link(LinkEvent::Delivered(d)) => {
                    if !matches!(d, Confirmation::Lost(_))
                        && let Some(Some(g)) = unconfirmed.settle(d.token())
                    {
                        for record in groups.done(g) {
                            io.ack(record);
                        }
                    }
                    Vec::new()
                }
                Step::Link(LinkEvent::Disconnected(why)) => {
                    if connected {
                        tracing::warn!(sink = %self.name, %why, "sparkplug: connection lost; holding data");
                    } else {
                        tracing::warn!(sink = %self.name, %why, "sparkplug: cannot connect");
                    }
                    io.status
                        .set_degraded(Some(format!("broker unreachable, holding data: {why}")));
                    connected = false;
                    edge.on_disconnected();
                    link = None;
                    unconfirmed.clear();
                    groups.clear();
                    io.rewind();
                    retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                    Vec::new()
                }
                Step::Retry => {
                    retry_at = None;
                    link = Some(self.open_session(&mut edge, &client_id, &write_delay).await?);
                    Vec::new()
                }
                Step::Input(Some(delivery)) => {
                    let g = groups.current();
                    if let Some(record) = delivery.record {
                        groups.add_record(g, record);
                    }
                    group = Some(g);
                    if delivery.replay {
                        edge.on_replay(&delivery.batch.samples, Timestamp::now())
                    } else {
                        edge.on_samples(&delivery.batch.samples, Timestamp::now())
                    }
                }
                Step::Input(None) => {
                    // Orderly stop: an explicit NDEATH, then the end of the session.
                    if let (true, Some(l)) = (connected, link.take()) {
                        self.end_session(l, edge.death(Some(Timestamp::now()))).await;
                    }
                    return Ok(());
                }
            };
            if !was_born && edge.is_born() {
                // A new birth: whatever waited in the log meanwhile is history to the host
                // now, sent after the births flagged historical; live data flows at once.
                io.rewind();
            }
            for output in outputs {
                match output {
                    Output::Publish(p) => {
                        if let Some(l) = link.as_mut()
                            && connected
                            && let Ok(token) = l
                                .publish_stamped(&p.topic, p.qos, p.retain, &p.payload, p.born)
                                .await
                            && let Some(g) = group
                        {
                            groups.add_messages(g, 1);
                            unconfirmed.push(token, Some(g));
                        }
                    }
                    Output::Write {
                        tag,
                        value,
                        device,
                        metric,
                    } => {
                        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                            refused.inc();
                            tracing::warn!(sink = %self.name, %device, %metric, "sparkplug: DCMD refused: {MAX_COMMANDS_IN_FLIGHT} commands already wait for the write gate; counted as component event dcmd_refused");
                            continue;
                        };
                        let Some(path) = io.topology.tag(tag).map(|t| io.topology.path(t).to_string()) else {
                            continue;
                        };
                        let gate = io.gate.clone();
                        let refused = refused.clone();
                        let sink = self.name.clone();
                        let request = MachineWrite {
                            tag: path,
                            value,
                            dry_run: false,
                            who: commander.clone(),
                            from: format!("sparkplug sink {}", self.name),
                        };
                        tokio::spawn(async move {
                            let report = gate.write(request).await;
                            drop(permit);
                            if !report.is_done() {
                                refused.inc();
                                tracing::warn!(%sink, %device, %metric, status = ?report.status, "sparkplug: DCMD not written by the write gate; counted as component event dcmd_refused");
                            }
                        });
                    }
                    Output::Refused {
                        device,
                        metric,
                        reason,
                    } => {
                        refused.inc();
                        tracing::warn!(sink = %self.name, %device, %metric, %reason, "sparkplug: DCMD refused; counted as component event dcmd_refused");
                    }
                    Output::EndSession(why) => {
                        tracing::info!(sink = %self.name, %why, "sparkplug: ending the session");
                        if let Some(l) = link.take() {
                            self.end_session(l, edge.death(Some(Timestamp::now()))).await;
                        }
                        connected = false;
                        edge.on_disconnected();
                        unconfirmed.clear();
                        groups.clear();
                        io.rewind();
                        retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                    }
                    Output::Ignored(why) => {
                        tracing::debug!(sink = %self.name, %why, "sparkplug: message ignored")
                    }
                }
            }
            if group.is_some() {
                // Records whose samples made no message (nothing changed) are done now.
                for record in groups.close() {
                    io.ack(record);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bd_seq_starts_at_zero_persists_and_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let path = bd_seq_path(dir.path(), "spb");
        assert_eq!(next_bd_seq(&path).unwrap(), 0);
        assert_eq!(next_bd_seq(&path).unwrap(), 1);
        std::fs::write(&path, "255\n").unwrap();
        assert_eq!(next_bd_seq(&path).unwrap(), 0);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(next_bd_seq(&path).unwrap(), 0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n");
    }
}
