//! Backplane's drop-folder connector: the `files` source kind. Instruments (a CMM writing
//! its report, a lab analyser) drop CSV or JSON files into a folder; each complete file is
//! mapped to the bound assets' attributes, time from a column, and moved to `done/` once
//! its data has left the process's memory, or to `quarantine/` with a `.reason` file naming
//! the line and field that failed, nothing of it ingested. The user's guide, with the exact
//! guarantees, is docs/connectors/files.md.
//!
//! Layout:
//! - [`address`]: the address syntax (`fat_pct:float[silo=silo-1]`).
//! - [`config`]: the source's configuration keys ([`FilesSettings`], [`Limits`]).
//! - [`time`]: record times (RFC 3339, unix, strftime patterns, IANA zones).
//! - [`map`]: [`map_file`], one file's bytes to readings or a [`Rejection`]; pure, fuzzed.
//! - [`settle`]: which files are complete (partial names, size and time unchanged).
//! - [`folder`]: the inbox, `done/`, `quarantine/` on disk; synced moves.
//! - [`ledger`]: digests of ingested files, so a crash before the move never doubles a file.
//! - [`throttle`]: one log line per kind of trouble per interval.
//! - [`source`]: the running source and a file's lifecycle.
//! - [`kind`]: [`FilesKind`] (registered as `files`) and its hooks.
//! - [`simulator`]: the dairy's lab analyser dropping CSV files.

pub mod address;
pub mod config;
pub mod folder;
pub mod kind;
pub mod ledger;
pub mod map;
pub mod settle;
pub mod simulator;
pub mod source;
pub mod throttle;
pub mod time;

pub use address::Address;
pub use config::{FilesSettings, Format, Layout, Limits};
pub use kind::FilesKind;
pub use map::{Mapped, Rejection, map_file};
pub use simulator::spawn_lab_analyser;
