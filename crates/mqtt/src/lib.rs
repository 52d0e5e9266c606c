//! Backplane's MQTT connector.
//!
//! Kinds (registered by the binary):
//! - [`MqttSinkKind`] (`mqtt` sink): the unified namespace, JSON per attribute and per
//!   instance, retained, with a gateway status topic and Last Will ([`uns`]); optionally
//!   a production command topic for an MES or ERP ([`commands`] reads and answers it).
//! - [`MqttSourceKind`] (`mqtt` source): subscribes to topic filters and turns JSON or plain
//!   payloads into readings ([`source`]).
//! - [`SparkplugSinkKind`] (`sparkplug` sink): Backplane as a Sparkplug B Edge Node
//!   ([`sparkplug::edge`] is the protocol state machine, [`sparkplug::sink`] its driver).
//! - [`SparkplugSourceKind`] (`sparkplug` source): a Sparkplug B host that decodes births
//!   and data ([`sparkplug::host`], [`sparkplug::source`]).
//!
//! Layout: each sink is a protocol state machine that does no I/O and a driver that feeds
//! it link events, the engine's deliveries and the time: [`uns::session`] and the `uns`
//! sink ([`uns::config`] reads its settings, [`uns::namespace`] makes its topics and
//! payloads), [`sparkplug::edge`] and [`sparkplug::sink`]. The sources keep their protocol
//! logic in [`source::Router`] and [`sparkplug::host`].
//!
//! Shared machinery: [`settings`] (broker, credentials, TLS), [`common`] (what the kinds
//! read and do alike: the `qos` and `max_inflight` keys, which log records a sink may
//! acknowledge), [`client_id`] (default client ids from the gateway's and component's
//! names), [`link`] (one MQTT session on rumqttc, 3.1.1 or 5), [`takeover`] (two clients
//! sharing a client id), [`delivery`] (which publishes the broker acknowledged), [`topic`]
//! (filters and matching). Protocol logic never does I/O, so it is tested without a network; the
//! drivers are tested against Mosquitto.

pub mod client_id;
pub mod commands;
pub mod common;
pub mod delivery;
pub mod link;
pub mod settings;
pub mod source;
pub mod sparkplug;
pub mod takeover;
pub mod topic;
pub mod uns;

pub use source::MqttSourceKind;
pub use sparkplug::{SparkplugSinkKind, SparkplugSourceKind};
pub use uns::MqttSinkKind;

/// Registers the four kinds of this crate (`mqtt` and `sparkplug`, as source and sink).
pub fn register(registry: &mut backplane_connector::Registry) {
    registry.add_sink("mqtt", MqttSinkKind);
    registry.add_source("mqtt", MqttSourceKind);
    registry.add_sink("sparkplug", SparkplugSinkKind);
    registry.add_source("sparkplug", SparkplugSourceKind);
}
