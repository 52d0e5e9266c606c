//! The lab probe (`backplane_testkit::fixtures::LabProbe`) on an engine with the `modbus`
//! kind, through `backplane_testkit::probe`. Shared by the tests against pymodbus over TCP
//! and over a serial line.

use std::path::Path;

use backplane_engine::Engine;
use backplane_modbus::ModbusKind;
#[allow(unused_imports)] // not every test binary uses every helper
pub use backplane_testkit::probe::{eventually, good, latest, write};

/// Restarts after 100–500 ms: the peers need a moment to come back.
pub fn start_engine(config: &str, dir: &Path) -> Engine {
    let mut registry = backplane_engine::builtins();
    registry.add_source("modbus", ModbusKind);
    backplane_testkit::probe::start_engine(config, dir, &registry)
}
