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
//! - [`space`]: the address space built from the topology (types, assets, variables,
//!   properties) and the index of its nodes.
//! - [`live`]: the tag variables' values, by tag index, beside the address space.
//! - [`watchers`]: the data items on the tag variables; a batch's values handed straight
//!   to their subscriptions.
//! - [`manager`]: the plant's node manager (writes, methods, history).
//! - [`writes`]: OPC UA Write through the write gate, and its answers as StatusCodes.
//! - [`events`]: downtimes, state changes, work orders, rejects and context changes as
//!   OPC UA events (BaseEventType subtypes).
//! - [`conditions`]: limit alarms as ExclusiveLimitAlarmType conditions and their events.
//! - [`notifiers`]: the notifier hierarchy: each event once to the subscribers of its
//!   asset, of every ancestor and of the Server object.
//! - [`condition_methods`]: Acknowledge and ConditionRefresh, by their standard NodeIds.
//! - [`history`]: HistoryRead (raw, processed) from the embedded historian.
//! - [`methods`]: production actions as methods of the `Production` object.
//! - [`auth`]: users of the users file and anonymous sessions.
//! - [`server`]: endpoints, certificates, limits; starting the server.
//! - [`kind`]: [`OpcUaServerKind`] (registered as `opcua-server`).
//! - [`sink`]: the running sink: builds the server, pushes each batch into it.

pub mod auth;
pub mod condition_methods;
pub mod conditions;
pub mod config;
pub mod events;
pub mod history;
pub mod kind;
pub mod live;
pub mod manager;
pub mod methods;
pub mod nodes;
pub mod notifiers;
pub mod server;
pub mod sink;
pub mod space;
pub mod units;
pub mod value;
pub mod watchers;
pub mod writes;

pub use config::ServerSettings;
pub use kind::OpcUaServerKind;
