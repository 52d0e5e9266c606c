//! Backplane's store-and-forward buffer: a durable, append-only log that sits in front of
//! every network sink, so that data collected while a destination is unreachable (or the
//! gateway restarts) is delivered when it comes back, and only acknowledged data is released.
//!
//! One [`Log`] per sink (or group of sinks) in its own directory; one [`Reader`] per sink,
//! each with its own persisted position, quota and [`Overflow`] policy. The engine appends
//! batches of samples ([`Log::append`]); a sink task takes records ([`Reader::next`]), sends
//! them, and acknowledges each once the destination confirmed it ([`Reader::ack`]).
//!
//! Guarantees, in short (details and figures in `docs/reliability.md`):
//! - kill -9 loses nothing [`Log::append`] returned for; a power loss loses at most the last
//!   fsync interval ([`FsyncPolicy`]), nothing with [`FsyncPolicy::Always`].
//! - Delivery is at least once: after a crash a reader repeats at most what it had in flight
//!   plus about 100 ms of acknowledgements (one position write more if the crash tore it); it
//!   never skips unacknowledged data, except what [`Overflow::DropOldest`] drops, which is
//!   counted and logged.
//! - Damaged files are detected by CRC32C, skipped, counted in [`Recovery`] and logged; no file
//!   content makes the log panic.
//! - Memory stays flat whatever the backlog: records are read from the files on demand.
//!   A caller holding its own copy of a live record among the last 256 appended takes it
//!   by its header alone ([`Reader::next_or_take`]); positions and acks are the same.
//! - Live data is never starved behind a long backlog (live and replay lanes, see [`Reader`]).
//!
//! Layout:
//! - `record.rs`: the record format (length, CRC32C, seq, count, timestamp, payload).
//! - `segment.rs`: segment files, buffered positional reads, the recovery scan that skips
//!   damage.
//! - `position.rs`: reader positions (two alternating files with generation and CRC) and the
//!   list of known readers.
//! - `state.rs`: the in-memory segment index and reader slots behind the log's mutex:
//!   rolling, retention, overflow, a record's place (taken under the mutex, written
//!   without it, so readers never wait for an append's write).
//! - `recover.rs`: the steps of opening a log (positions, the recovery scan, the writer,
//!   reader slots) and [`Recovery`], what they found.
//! - `log.rs`: [`Log`]: open (running those steps), append, group commit (the background
//!   thread), quotas.
//! - `reader.rs`: [`Reader`] (lanes, acknowledgements, positions) and [`ReaderMonitor`].
//! - `options.rs`: [`LogOptions`], [`ReaderOptions`], [`FsyncPolicy`], [`Overflow`].
//!
//! One process opens a directory at a time (the log takes no lock on it).

mod error;
mod log;
mod options;
mod position;
mod reader;
mod record;
mod recover;
pub mod scratch;
mod segment;
mod state;

pub use error::{AppendError, BufferError};
pub use log::{Log, LogStats};
pub use options::{FsyncPolicy, LogOptions, Overflow, ReaderOptions};
pub use reader::{Next, Reader, ReaderMonitor, ReaderStats, Record};
pub use record::{HEADER_LEN, MAX_PAYLOAD};
pub use recover::Recovery;
