//! Column codecs: how one column of a chunk (times, values, qualities, context ids) becomes
//! bytes and back.
//!
//! - [`ints`]: integer sequences. Each column tries delta orders 0, 1 and 2 (plain values,
//!   deltas, delta-of-delta) with two back ends, run-length and bit-packing in blocks of
//!   128 with a frame of reference, and keeps the smallest. Regular timestamps become one
//!   run; a random walk becomes a few bits per point; a state column becomes a few runs.
//! - [`floats`]: decimal floats (values that are exact decimals, e.g. 72.37, stored as
//!   scaled integers through [`ints`], with exceptions kept bit for bit), a sorted
//!   dictionary for few distinct values (converted registers), or Gorilla XOR for
//!   everything else; the smallest wins.
//! - [`chunk`]: a whole chunk of one series: the columns above in a fixed order.
//!
//! Varints, the read [`Cursor`](backplane_model::wire::Cursor) and the tagged encoding of
//! any [`Value`](backplane_model::Value) (for the WAL, string dictionaries and columns of
//! mixed types) are [`backplane_model::wire`]'s, shared with the engine's buffer.
//!
//! Every decoder works on untrusted bytes: it returns a [`wire::Error`] rather than
//! panicking, and bounds every allocation by the input size.

use backplane_model::wire;

pub mod chunk;
pub mod floats;
pub mod ints;

pub type Result<T> = std::result::Result<T, wire::Error>;
