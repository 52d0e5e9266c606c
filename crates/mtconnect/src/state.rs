//! A machine's state for OEE, derived from what an agent reports: availability, the
//! controller mode, execution, emergency stop and the active fault conditions. The label
//! is a state of the reduced state model (docs/context.md, "Machine states"), so a model
//! attribute bound to the address `machine_state` feeds `[models.X.production] state =
//! { attribute = "...", model = "reduced" }` with no map.
//!
//! | what the agent says | state |
//! |---|---|
//! | `AVAILABILITY` UNAVAILABLE (or nothing yet) | none: the value turns bad |
//! | a `FAULT` condition active, or `EMERGENCY_STOP` TRIGGERED | `down` |
//! | mode `MANUAL`, `MANUAL_DATA_INPUT` or `EDIT` | `setup` |
//! | execution `ACTIVE` | `running` |
//! | execution `INTERRUPTED` or `FEED_HOLD` | `down` |
//! | execution `WAIT` | `starved` |
//! | execution `READY`, `STOPPED`, `OPTIONAL_STOP`, `PROGRAM_STOPPED`, `PROGRAM_COMPLETED` | `idle` |
//! | execution UNAVAILABLE or unknown | none |

use std::collections::HashSet;

use crate::document::{Category, Level, Observation};

/// The address that reads the derived state.
pub const MACHINE_STATE: &str = "machine_state";

/// What the state is derived from, as last reported.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub available: Option<bool>,
    pub execution: Option<String>,
    pub mode: Option<String>,
    pub emergency_stop: bool,
    /// Condition data items (with native code) now at `FAULT`.
    pub faults: HashSet<(String, String)>,
}

impl Inputs {
    /// Takes one observation into account; `true` if it was one of the inputs.
    pub fn observe(&mut self, o: &Observation) -> bool {
        match (o.category, o.element.as_str()) {
            (Category::Event, "Availability") => {
                self.available = o.value.as_deref().map(|v| v == "AVAILABLE");
            }
            (Category::Event, "Execution") => self.execution = o.value.clone(),
            (Category::Event, "ControllerMode") => self.mode = o.value.clone(),
            (Category::Event, "EmergencyStop") => {
                self.emergency_stop = o.value.as_deref() == Some("TRIGGERED");
            }
            (Category::Condition, _) => {
                let code = o
                    .condition
                    .as_ref()
                    .and_then(|c| c.native_code.clone())
                    .unwrap_or_default();
                match o.level {
                    Some(Level::Fault) => {
                        self.faults.insert((o.data_item_id.clone(), code));
                    }
                    // Normal without a code clears every alarm of the item.
                    Some(Level::Normal | Level::Unavailable) if code.is_empty() => {
                        self.faults.retain(|(id, _)| *id != o.data_item_id);
                    }
                    _ => {
                        self.faults.remove(&(o.data_item_id.clone(), code));
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// The state, or `None` when the agent does not know enough.
    pub fn state(&self) -> Option<&'static str> {
        if self.available != Some(true) {
            return None;
        }
        if !self.faults.is_empty() || self.emergency_stop {
            return Some("down");
        }
        if matches!(
            self.mode.as_deref(),
            Some("MANUAL" | "MANUAL_DATA_INPUT" | "EDIT")
        ) {
            return Some("setup");
        }
        Some(match self.execution.as_deref()? {
            "ACTIVE" => "running",
            "INTERRUPTED" | "FEED_HOLD" => "down",
            "WAIT" => "starved",
            "READY" | "STOPPED" | "OPTIONAL_STOP" | "PROGRAM_STOPPED" | "PROGRAM_COMPLETED" => "idle",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Condition;

    fn event(element: &str, value: Option<&str>) -> Observation {
        Observation {
            data_item_id: element.to_lowercase(),
            name: None,
            sequence: 1,
            timestamp: None,
            category: Category::Event,
            element: element.into(),
            value: value.map(Into::into),
            level: None,
            condition: None,
            device: "d".into(),
        }
    }

    fn condition(level: Level, code: &str) -> Observation {
        Observation {
            category: Category::Condition,
            element: "Fault".into(),
            level: Some(level),
            condition: Some(Condition {
                kind: "SYSTEM".into(),
                native_code: (!code.is_empty()).then(|| code.into()),
                ..Condition::default()
            }),
            ..event("system", Some("x"))
        }
    }

    #[test]
    fn execution_mode_and_faults_map_to_reduced_states() {
        let mut i = Inputs::default();
        i.observe(&event("Execution", Some("ACTIVE")));
        assert_eq!(i.state(), None, "availability unknown");
        i.observe(&event("Availability", Some("AVAILABLE")));
        i.observe(&event("ControllerMode", Some("AUTOMATIC")));
        assert_eq!(i.state(), Some("running"));
        i.observe(&condition(Level::Fault, "E1"));
        i.observe(&condition(Level::Fault, "E2"));
        assert_eq!(i.state(), Some("down"));
        i.observe(&condition(Level::Normal, "E1"));
        assert_eq!(i.state(), Some("down"), "E2 still stands");
        i.observe(&condition(Level::Normal, ""));
        assert_eq!(i.state(), Some("running"));
        i.observe(&event("ControllerMode", Some("MANUAL")));
        assert_eq!(i.state(), Some("setup"));
        i.observe(&event("ControllerMode", Some("AUTOMATIC")));
        for (execution, state) in [("READY", "idle"), ("FEED_HOLD", "down"), ("WAIT", "starved")] {
            i.observe(&event("Execution", Some(execution)));
            assert_eq!(i.state(), Some(state));
        }
        i.observe(&event("Availability", None));
        assert_eq!(i.state(), None, "UNAVAILABLE is never a state");
    }
}
