//! Kinds built into the engine: the `simulator` source and the `jsonl` sink. Protocol
//! sources and network sinks live in crates of their own.

pub mod jsonl;
pub mod simulator;
