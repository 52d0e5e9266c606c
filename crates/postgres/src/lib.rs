//! The `postgresql` sink: samples, events and context written to PostgreSQL (optionally
//! TimescaleDB) in a versioned, partitioned schema with views for BI and MES users.
//! See `docs/connectors/postgresql.md`.
//!
//! Layout:
//! - [`config`]: settings and their parsing.
//! - [`partition`]: which time partition a row goes to; retention (no I/O).
//! - [`rows`]: samples and events as typed columns (no I/O).
//! - [`copy`]: rows in the binary COPY format (no I/O).
//! - [`migrate`]: the embedded, versioned schema and its advisory lock.
//! - [`catalog`]: gateways, models, attributes, assets and tags from the topology; the
//!   per-model wide views.
//! - [`connect`]: sessions, TLS, and telling a lost session from a failed statement.
//! - [`writer`]: one transaction per flush, idempotent by `(gateway_id, seq, time)`: new
//!   rows COPYed straight in, rows the database may hold through staging.
//! - [`sink`]: the running sink (batching, acknowledgements, retention checks).
//! - [`kind`]: the `postgresql` kind.

pub mod catalog;
pub mod config;
pub mod connect;
pub mod copy;
pub mod kind;
pub mod migrate;
pub mod partition;
pub mod rows;
pub mod sink;
pub mod writer;

pub use config::{Method, PostgresSettings, TlsMode};
pub use kind::PostgresKind;
pub use partition::PartitionBy;
pub use writer::{Writer, Written};
