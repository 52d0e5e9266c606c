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
//! Layout: [`config`] reads the kind's settings; [`namespace`] turns batches into messages
//! and does no I/O (it also coalesces samples when batching is on); [`sink`] drives one
//! [`Link`](crate::link::Link) after another; [`command_channel`] feeds the command topic's
//! messages to one worker task that runs them in arrival order ([`crate::commands`] reads
//! and answers them, without I/O).

pub mod command_channel;
pub mod config;
pub mod namespace;
pub mod sink;

#[cfg(test)]
mod fixture;

pub use config::{CommandTopic, MqttSinkKind, MqttSinkSettings};
pub use namespace::{Message, MessageKind, Namespace, StatusPayload};
