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
//! Layout:
//! - [`config`]: the kind's settings, read from its TOML table.
//! - [`namespace`]: topics and payload forms (attribute, instance, event, status). No I/O.
//! - `pool`: payload buffers reused from message to message (bounded).
//! - [`session`]: the publishing session as a state machine, without I/O: connection
//!   state, the latest value of every tag (what is retained, and whether a replay may be),
//!   batching, the in-flight window, and when a log record may be acknowledged.
//! - `sink`: the running sink; drives the session with one [`Link`](crate::link::Link)
//!   after another and the engine's sink I/O.
//! - `command_channel`: feeds the command topic's messages to one worker task that runs
//!   them in arrival order ([`crate::commands`] reads and answers them, without I/O).

mod command_channel;
pub mod config;
pub mod namespace;
mod pool;
pub mod session;
mod sink;

#[cfg(test)]
mod fixture;

pub use config::{CommandTopic, MqttSinkKind, MqttSinkSettings};
pub use namespace::{Message, MessageKind, Namespace, StatusPayload};
pub use session::{Latest, Session};
