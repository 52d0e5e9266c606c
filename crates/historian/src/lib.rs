//! Backplane's embedded historian: every sample and event, compressed, on the gateway's
//! own disk, queryable by tag, asset, model attribute and production context, and
//! exportable as a wide, AI-ready table.
//!
//! Layout:
//! - [`codec`]: column codecs (delta-of-delta and bit-packed integers, decimal and
//!   Gorilla-XOR floats, run-length states, dictionaries) and the chunk format.
//! - `frame.rs`: checksummed records for the append-only files, the versioned magic that
//!   opens every file, atomic replacement.
//! - `catalog.rs`: series and context ids.
//! - `wal.rs`: the write-ahead log and its fsync policy ([`Fsync`]).
//! - `segment.rs`: immutable partition files of chunks with an index.
//! - [`store`]: [`Store`]: open and recover, append, flush, merge, retention.
//! - [`query`]: selectors, raw, latest, aggregates, events.
//! - [`sink`]: the `historian` sink kind ([`HistorianKind`]).
//! - [`export`]: the wide-table export behind `backplane export` ([`ExportOptions`]).
//!
//! Storage format, guarantees and figures: `docs/historian.md`.

mod catalog;
pub mod codec;
mod error;
pub mod export;
mod frame;
mod point;
pub mod query;
mod segment;
pub mod sink;
pub mod store;
mod wal;

pub use error::StoreError;
pub use export::{ExportError, ExportFormat, ExportOptions, ExportSummary};
pub use point::{ContextId, Point, SeriesId, SeriesInfo, SeriesSpec, StoredEvent};
pub use query::{
    AggregateQuery, Bucket, ContextFilter, EventQuery, Function, Selector, SeriesBuckets, SeriesPoints,
    SeriesSummary,
};
pub use sink::{HistorianKind, HistorianSettings, historian_stores};
pub use store::{Maintenance, Store, StoreOptions, StoreStats};
pub use wal::Fsync;
