//! The `backplane` binary's library side: which source, sink and stage kinds this build
//! knows ([`kinds`]), and the demo plant. `main.rs` holds the CLI.

pub mod kinds;

pub use kinds::registry;

/// The demo configuration, embedded so `backplane demo` works from any directory.
pub const DAIRY: &str = include_str!("../../../examples/dairy.toml");

/// The address examples/dairy.toml expects the vendor-A filler simulator (line 1) on;
/// `backplane demo` moves it to a free port when this one is taken.
pub const DAIRY_FILLER_URL: &str = "tcp://127.0.0.1:5020";

/// The address examples/dairy.toml expects the EtherNet/IP palletizer simulator on;
/// `backplane demo` moves it to a free port when this one is taken.
pub const DAIRY_PALLETIZER_URL: &str = "enip://127.0.0.1:44818";

/// The address examples/dairy.toml expects the vendor-B OPC UA server (line 2 and the
/// pasteurizer) on; `backplane demo` moves it to a free port when this one is taken.
pub const DAIRY_OPCUA_URL: &str = "opc.tcp://127.0.0.1:4841";

/// The address examples/dairy.toml expects the reception silos' S7 PLC simulator on;
/// `backplane demo` moves it to a free port when this one is taken.
pub const DAIRY_S7_URL: &str = "s7://127.0.0.1:1102";

/// The address examples/dairy.toml expects the maintenance shop's MTConnect agent (the
/// CNC simulator) on; `backplane demo` moves it to a free port when this one is taken.
pub const DAIRY_CNC_URL: &str = "http://127.0.0.1:5000";

/// The drop folder examples/dairy.toml's lab analyser source reads (relative to the data
/// directory); the `files-lab` simulator writes its CSV files there.
pub const DAIRY_LAB_INBOX: &str = "lab-inbox";
