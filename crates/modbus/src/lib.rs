//! Backplane's Modbus connector: the `modbus` source kind (Modbus TCP, RTU over a serial
//! line, RTU over TCP), its request planner, the write path, device discovery (`browse`)
//! and a filler-line simulator. The user's guide is docs/connectors/modbus.md.
//!
//! Layout:
//! - [`address`]: the address syntax bindings use (`hr:102:u32:CDAB`, `coil:5`, ...).
//! - [`config`]: the source's configuration keys ([`ModbusSettings`], [`Endpoint`]).
//! - [`plan`]: [`plan_reads`] coalesces tags into the fewest reads; [`poll_summary`] says
//!   how many requests a poll cycle takes, [`plan_summary`] for a source of a plan.
//! - [`frame`]: request encoding and response decoding, checked against the request; the
//!   fuzzed part.
//! - [`client`]: one connection: framing, timeouts, retries, RTU inter-frame delay.
//! - [`window`]: several Modbus TCP requests outstanding on one connection (`in_flight`).
//! - [`kind`]: [`ModbusKind`] (registered as `modbus`) and its hooks: the request plan for
//!   `backplane check`, the register scan for `backplane browse`, the filler simulator.
//! - [`source`]: the running source and the [`Poller`] it runs.
//! - [`browse`]: [`browse()`], [`BrowseArgs`] and its command-line [`browse::OPTIONS`].
//! - [`simulator`]: [`spawn_filler_simulator`], the demo's vendor-A filler.

pub mod address;
pub mod browse;
pub mod client;
pub mod config;
pub mod frame;
pub mod kind;
pub mod plan;
pub mod simulator;
pub mod source;
pub mod window;

pub use address::{Address, Area, StringOrder, ValueKind};
pub use browse::{BrowseArgs, BrowseError, BrowseOptions, BrowseReport, browse};
pub use config::{Endpoint, ModbusSettings};
pub use kind::ModbusKind;
pub use plan::{Limits, PlanError, PollSummary, ReadBlock, Span, plan_reads, plan_summary, poll_summary};
pub use simulator::spawn_filler_simulator;
pub use source::Poller;
