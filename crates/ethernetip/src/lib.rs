//! Backplane's EtherNet/IP connector: the `ethernetip` source kind (Logix symbolic tags
//! over CIP), its Multiple Service Packet planner, the write path, tag-list discovery
//! (`browse`) and a palletizer simulator. The user's guide is
//! docs/connectors/ethernetip.md.
//!
//! No maintained async Rust crate for EtherNet/IP exists that meets our rules (no panics
//! on device input, async, maintained), so the protocol is written here from the ODVA
//! specifications with the framing layer pure and fuzzed.
//!
//! Layout:
//! - [`address`]: the tag path syntax bindings use (`Palletizer.Lane[3].Cases`, `Count[0]{10}`).
//! - [`types`]: CIP / Logix data types and their values.
//! - [`frame`]: encapsulation header and Common Packet Format items (pure, fuzzed).
//! - [`cip`]: Message Router requests and replies and the services used (pure, fuzzed).
//! - [`plan`]: [`plan::plan_packets`] packs reads into the fewest packets.
//! - [`config`]: the source's configuration keys ([`EnipSettings`]).
//! - [`client`]: one session: RegisterSession, Forward Open or unconnected fallback, timeouts.
//! - [`source`]: the running source and the [`Poller`] it runs.
//! - [`browse`]: the controller's tag list for `backplane browse enip://...`.
//! - [`server`]: the simulator's request handling (pure, fuzzed).
//! - [`simulator`]: [`spawn_palletizer`], the demo's palletizer.
//! - [`kind`]: [`EnipKind`] (registered as `ethernetip`) and its hooks.

pub mod address;
pub mod browse;
pub mod cip;
pub mod client;
pub mod config;
pub mod frame;
pub mod kind;
pub mod plan;
pub mod server;
pub mod simulator;
pub mod source;
pub mod types;

pub use address::TagPath;
pub use config::{Endpoint, EnipSettings, Messaging};
pub use kind::EnipKind;
pub use simulator::{SimOptions, spawn_palletizer, spawn_with};
pub use source::Poller;
pub use types::CipType;
