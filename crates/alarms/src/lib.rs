//! Limit alarms: where a model attribute declares `limits`, the `alarms` derive stage
//! watches its values per asset and raises, moves and clears an alarm (an `alarm` event
//! with the limit fields) with hysteresis, and records acknowledgements. The OPC UA server
//! serves each as a condition (docs/connectors/opcua-server.md).
//!
//! - [`conditions`]: the alarm state of every limited tag and its transitions (pure).
//! - [`persist`]: the state between runs (`DATA_DIR/alarms/state.json`).
//! - [`stage`]: [`AlarmsStageKind`] (registered as `alarms`) and [`AlarmsHandle`], the
//!   service through which sinks acknowledge alarms and read their state.

pub mod conditions;
pub mod persist;
pub mod stage;

pub use conditions::{AckRefused, Condition, Conditions};
pub use stage::{AckFailed, AlarmsHandle, AlarmsStageKind};
