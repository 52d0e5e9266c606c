//! Backplane's OPC UA connector: the `opcua` source kind (subscriptions or polled reads,
//! security and trust, recovery), discovery (`browse`) and a dairy simulator server. The
//! user's guide is docs/connectors/opcua.md.
//!
//! Layout:
//! - [`address`]: the address syntax bindings use (`ns=2;s=Filler2.Speed`, `i=2258`,
//!   `nsu=URI;s=...`, with `group=NAME;` / `field=NAME;` options before the node id).
//! - [`config`]: the source's configuration keys ([`OpcUaSettings`]).
//! - [`pki`]: the application certificate and the trust list (`trusted/`, `rejected/`).
//! - [`session`]: endpoint discovery and selection, the trust check, user identity, the
//!   session and its reconnecting event loop.
//! - [`plan`]: splitting items across subscriptions and calls within operation limits.
//! - [`republish`]: gaps in a subscription's sequence numbers, asked for again.
//! - [`value`]: OPC UA values and status codes to Backplane values and quality.
//! - [`kind`]: [`OpcUaKind`] (registered as `opcua`) and its hooks: the address-space walk
//!   for `backplane browse opc.tcp://...` and the dairy simulator.
//! - [`source`]: the running source.
//! - [`write`]: writes under the write gate (the node's DataType, Write, read-back).
//! - [`browse`]: [`browse()`], [`BrowseArgs`] and its command-line [`browse::OPTIONS`].
//! - [`simulator`]: [`spawn_dairy_simulator`], the demo's line 2 filler and pasteurizer.

pub mod address;
pub mod browse;
pub mod config;
pub mod kind;
pub mod pki;
pub mod plan;
pub mod republish;
pub mod session;
pub mod simulator;
pub mod source;
pub mod value;
pub mod write;

pub use address::Address;
pub use browse::{BrowseArgs, BrowseError, BrowseOptions, BrowseReport, browse};
pub use config::OpcUaSettings;
pub use kind::OpcUaKind;
pub use simulator::{DairySimulator, SimulatorError, spawn_dairy_simulator, spawn_simulator};
