//! Backplane's Siemens S7 connector: the `s7` source kind (S7comm over ISO-on-TCP, RFC
//! 1006, the PUT/GET protocol of S7-300/400/1200/1500 CPUs), its PDU-sized request
//! planner, the write path, DB browsing and the dairy's silo PLC simulator. The user's
//! guide is docs/connectors/s7.md.
//!
//! Layout:
//! - [`address`]: the address syntax (`DB10.DBD4:real`, `DB10.DBX2.3`, `MW20`, `T5`, ...).
//! - [`codec`]: bytes ⇄ values for every S7 type, dates and times included.
//! - [`config`]: the source's configuration keys ([`S7Settings`]).
//! - [`frame`]: TPKT/COTP/S7comm encoding and decoding, both directions; the fuzzed part.
//! - [`plan`]: [`plan_reads`] packs tags into the fewest reads that fit the PDU.
//! - [`client`]: one connection: COTP connect, PDU negotiation, timeouts, references.
//! - [`source`]: the running source and the [`Poller`] it runs.
//! - [`kind`]: [`S7Kind`] (registered as `s7`) and its hooks.
//! - [`browse`]: `backplane browse s7://...`.
//! - [`simulator`]: [`spawn_silo_simulator`], the demo's reception PLC.

pub mod address;
pub mod browse;
pub mod client;
pub mod codec;
pub mod config;
pub mod frame;
pub mod kind;
pub mod plan;
pub mod simulator;
pub mod source;

pub use address::{Address, Area, Type};
pub use config::{Endpoint, S7Settings};
pub use kind::S7Kind;
pub use plan::{Limits, Plan, plan_reads};
pub use simulator::spawn_silo_simulator;
pub use source::Poller;
