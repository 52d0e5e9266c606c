//! Backplane's OPC UA server: the `opcua-server` sink kind serves the plant (models as
//! ObjectTypes, assets as Objects in the ISA-95 hierarchy) with live values, history from
//! the embedded historian, events, writes through the write gate and production methods.
//! The user's guide is docs/connectors/opcua-server.md.
//!
//! Layout:
//! - [`config`]: the sink's configuration keys ([`ServerSettings`]).
//! - [`nodes`]: the stable NodeId scheme (identifiers from configuration names).
//! - [`units`]: engineering units as UNECE `EUInformation`.
//! - [`value`]: Backplane values, timestamps and qualities as OPC UA DataValues.
//! - [`kind`]: [`OpcUaServerKind`] (registered as `opcua-server`).
//! - [`sink`]: the running sink: builds the server, pushes each batch into it.

pub mod config;
pub mod kind;
pub mod nodes;
pub mod sink;
pub mod units;
pub mod value;

pub use config::ServerSettings;
pub use kind::OpcUaServerKind;
