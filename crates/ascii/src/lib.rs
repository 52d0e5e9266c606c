//! Backplane's ASCII line connector: the `ascii` source kind, for devices that send (or
//! answer with) lines of text — scales, barcode readers, label printers' status — over a
//! serial port or a raw TCP connection. The user's guide is docs/connectors/ascii.md.
//!
//! Layout:
//! - [`address`]: the address syntax (`weight`, `weight:float`): a named capture group.
//! - [`config`]: the source's configuration keys ([`AsciiSettings`]).
//! - [`frame`]: bytes → frames (terminators, STX/ETX), bounded; pure and fuzzed.
//! - [`checksum`]: XOR, sum and LRC check values at the end of a frame; pure.
//! - [`decode`]: a frame → typed readings through the patterns and the quality rule; pure.
//! - [`errors`]: error classes, their counters and the log throttle.
//! - [`lines`]: framer + decoder + counted errors, as the source runs them.
//! - [`source`]: the running source: connection, poll command, reconnects.
//! - [`kind`]: [`AsciiKind`] (registered as `ascii`).

pub mod address;
pub mod checksum;
pub mod config;
pub mod decode;
pub mod errors;
pub mod frame;
pub mod kind;
pub mod lines;
pub mod source;

pub use config::AsciiSettings;
pub use kind::AsciiKind;
