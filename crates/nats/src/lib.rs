//! Backplane's NATS JetStream connector.
//!
//! - the `nats` sink ([`NatsSinkKind`]): the unified namespace on subjects
//!   `<prefix>.<enterprise>.<site>...<attribute>`, JSON payloads, `Nats-Msg-Id`
//!   de-duplication, log records acknowledged only after JetStream's publish ack;
//! - the `nats` source ([`NatsSourceKind`]): a durable pull consumer that mirrors other
//!   gateways' namespaces into a hub, with context, events, definitions and drift.
//!
//! Layout: [`connection`] (servers, auth, TLS), [`subjects`] (the namespace on subjects),
//! [`stream`] (stream settings and creation), [`sink_config`], [`messages`] (what a
//! delivery becomes, no I/O; sample payloads by the connector's shared
//! [`SampleEncoder`](backplane_connector::payload::SampleEncoder)), [`sink`] (the publish loop), [`acks`] (publishes awaiting their ack, no I/O),
//! [`puback`] (what JetStream answered), [`mirror`] (what a mirrored message means, no
//! I/O), [`dedup`] (redelivery windows), [`source`] (the consumer loop), [`browse`] (a
//! hub's bindings from the sites' definitions).

pub mod acks;
pub mod browse;
pub mod connection;
pub mod dedup;
pub mod messages;
pub mod mirror;
pub mod puback;
pub mod sink;
pub mod sink_config;
pub mod source;
pub mod stream;
pub mod subjects;

pub use sink::NatsSinkKind;
pub use sink_config::{NatsSinkSettings, PayloadForm};
pub use source::{NatsSourceKind, NatsSourceSettings};

/// Registers the `nats` sink and source kinds.
pub fn register(registry: &mut backplane_connector::Registry) {
    registry.add_sink("nats", NatsSinkKind);
    registry.add_source("nats", NatsSourceKind);
}
