//! Backplane's MTConnect connector: the `mtconnect` source kind (an MTConnect agent's
//! REST interface: `probe`, `current`, `sample` with sequence tracking, and multipart
//! streaming where the agent offers it), conditions as alarm events, the derived machine
//! state for OEE, `backplane browse http://agent:5000` and the demo's CNC simulator. The
//! user's guide is docs/connectors/mtconnect.md.
//!
//! Layout:
//! - [`config`]: the source's configuration keys ([`MtConnectSettings`]).
//! - [`document`]: XML response documents (1.x, 2.x) → plain data; the fuzzed part.
//! - [`sequence`]: the I/O-free [`Tracker`]: which request next, what is new, gaps.
//! - [`multipart`]: the framing of a stream, split without I/O.
//! - [`client`]: HTTP GETs with bounded bodies, and streams of parts.
//! - [`observe`]: observations → readings, machine state and alarms.
//! - [`state`]: execution, mode, conditions → a reduced machine state.
//! - [`alarms`]: condition observations → alarm events.
//! - [`throttle`]: rate-limited warnings.
//! - [`source`]: the running source.
//! - [`kind`]: [`MtConnectKind`] (registered as `mtconnect`) and its hooks.
//! - [`browse`]: `backplane browse http://...`: the device model as bindings.
//! - [`simulator`]: [`spawn_cnc_simulator`], the demo's machining cell.

pub mod alarms;
pub mod browse;
pub mod client;
pub mod config;
pub mod document;
pub mod kind;
pub mod multipart;
pub mod observe;
pub mod sequence;
pub mod simulator;
pub mod source;
pub mod state;
pub mod throttle;

pub use config::MtConnectSettings;
pub use document::{Document, parse};
pub use kind::MtConnectKind;
pub use sequence::{Cursor, Request, Tracker};
pub use simulator::spawn_cnc_simulator;
