//! The `backplane` binary's library side: which source and sink kinds this build knows,
//! and the demo plant. `main.rs` holds the CLI.

use std::sync::Arc;

use backplane_engine::Registry;

/// The demo configuration, embedded so `backplane demo` works from any directory.
pub const DAIRY: &str = include_str!("../../../examples/dairy.toml");

/// The address examples/dairy.toml expects the vendor-A filler simulator (line 1) on;
/// `backplane demo` moves it to a free port when this one is taken.
pub const DAIRY_FILLER_URL: &str = "tcp://127.0.0.1:5020";

/// The address examples/dairy.toml expects the vendor-B OPC UA server (line 2 and the
/// pasteurizer) on; `backplane demo` moves it to a free port when this one is taken.
pub const DAIRY_OPCUA_URL: &str = "opc.tcp://127.0.0.1:4841";

/// Every kind this build registers: the engine's built-ins plus each protocol crate's.
/// Adding a protocol means one line here.
pub fn registry() -> Registry {
    kinds().registry
}

/// The registry, with a handle on the historian kind: the API queries the stores that the
/// historian sinks write.
#[derive(Debug)]
pub struct Kinds {
    pub registry: Registry,
    pub historian: Arc<backplane_historian::HistorianKind>,
}

pub fn kinds() -> Kinds {
    let mut registry = Registry::with_builtins();
    registry.add_source("modbus", Arc::new(backplane_modbus::ModbusKind));
    registry.add_source("opcua", Arc::new(backplane_opcua::OpcUaKind));
    backplane_mqtt::register(&mut registry);
    let historian = Arc::new(backplane_historian::HistorianKind::new());
    registry.add_sink("historian", historian.clone());
    Kinds { registry, historian }
}
