//! Backplane's `sql` source: new rows of a PostgreSQL or MariaDB/MySQL table (or of the
//! operator's query) read in watermark order, the watermark saved in the gateway's data
//! directory after each hand-over, columns to attributes and to production context.
//! Guarantees, errors and limits: docs/connectors/sql.md.
//!
//! Layout:
//! - `config.rs`: the `[[sources]]` keys ([`SqlSettings`]).
//! - `query.rs`: the statement each poll sends, per dialect (pure).
//! - `watermark.rs`: the row key and its atomically replaced file.
//! - `db.rs`: one connection, whichever database; rows of [`db::Cell`]s.
//! - `postgres.rs`, `mysql.rs`: each driver's session and column types.
//! - `rows.rs`: a row to readings, context and key; bad cells named (pure).
//! - `source.rs`: the poll loop, hand-over, save, reconnect.
//! - `kind.rs`: [`SqlKind`], registered as `sql`.

pub mod config;
pub mod db;
mod kind;
mod mysql;
mod postgres;
pub mod query;
pub mod rows;
mod source;
pub mod watermark;

pub use config::SqlSettings;
pub use kind::SqlKind;
