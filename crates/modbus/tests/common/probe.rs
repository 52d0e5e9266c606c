//! The lab probe (`backplane_testkit::fixtures::LabProbe`) on an engine with the `modbus`
//! kind: starting it, reading its values, writing through the gate. Shared by the tests
//! against pymodbus over TCP and over a serial line.

use std::path::Path;
use std::time::Duration;

use backplane_engine::{Engine, EngineHandle, Latest, MachineWrite, WriteStatus};
use backplane_modbus::ModbusKind;
use backplane_model::Value;
use backplane_security::{AuthMethod, Identity, Role};
use backplane_testkit::engine as support;

/// Restarts after 100–500 ms: the peers need a moment to come back.
pub fn start_engine(config: &str, dir: &Path) -> Engine {
    let mut registry = backplane_engine::builtins();
    registry.add_source("modbus", ModbusKind);
    let options = support::backoff(Duration::from_millis(100), Duration::from_millis(500));
    support::start_with(config, dir, &registry, options)
}

pub fn latest(handle: &EngineHandle, attribute: &str) -> Option<Latest> {
    support::latest(handle, &format!("acme/lab/area/line/probe/{attribute}"))
}

/// The value, when it is good.
pub fn good(handle: &EngineHandle, attribute: &str) -> Option<Value> {
    latest(handle, attribute)
        .filter(|l| l.sample.quality.is_good())
        .and_then(|l| l.sample.value)
}

/// Polls every 20 ms for up to 30 s; the bound is a safety net, not a timing assertion.
pub async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::eventually_every(what, Duration::from_secs(30), Duration::from_millis(20), check).await
}

/// Writes through the engine's write gate as an engineer; the read-back, or why not.
pub async fn write(handle: &EngineHandle, attribute: &str, value: Value) -> Result<Option<Value>, String> {
    let report = handle
        .write(MachineWrite {
            tag: format!("acme/lab/area/line/probe/{attribute}"),
            value,
            dry_run: false,
            who: Identity::new("test", Role::Engineer, AuthMethod::Password),
            from: "test".into(),
        })
        .await;
    match report.status {
        WriteStatus::Done => Ok(report.read_back),
        WriteStatus::Refused { rule, reason } => Err(format!("{rule}: {reason}")),
        WriteStatus::Failed { reason, .. } => Err(reason),
        WriteStatus::DryRun => Err("dry run".into()),
    }
}
