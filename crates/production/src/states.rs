//! Machine states: the state sets (PackML by default, or the reduced set), the mapping
//! from raw values to states, each state's OEE category, and a per-asset tracker that
//! turns a stream of states into state changes with exact durations.
//!
//! The state sets themselves are configuration vocabulary and live in
//! [`backplane_config::production::StateModel`].

use std::collections::HashMap;
use std::sync::Arc;

use backplane_config::production::{RawKey, StateModel, StateSpec};
use backplane_model::sample::StateChange;
use backplane_model::{Timestamp, Value};
use serde::{Deserialize, Serialize};

/// How a state counts for OEE and downtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Producing: run time.
    Running,
    /// Stopped, but meant to produce: downtime that costs availability.
    Unplanned,
    /// A planned stop: excluded from planned production time.
    Planned,
}

/// The raw value of a state or reason-code attribute as a map key: strings as labels,
/// whole numbers (of any numeric type) as codes, booleans as booleans.
pub fn raw_key(value: &Value) -> Option<RawKey> {
    match value {
        Value::String(s) => Some(RawKey::Text(s.to_string())),
        Value::Bool(b) => Some(RawKey::Bool(*b)),
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => value.as_i64().map(RawKey::Int),
        Value::Timestamp(_) | Value::Array(_) => None,
    }
}

/// A raw value as text for events: `3`, `fault`, `true`.
pub fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => {
            Some(format!("{}", *f as i64))
        }
        Value::Float(f) if f.is_finite() => Some(f.to_string()),
        Value::Timestamp(t) => Some(t.to_rfc3339()),
        Value::Float(_) | Value::Array(_) => None,
    }
}

/// A compiled `state = { ... }`: raw values to states of one state set.
#[derive(Clone, Debug)]
pub struct StateMachine {
    model: StateModel,
    map: HashMap<RawKey, &'static str>,
    default: Option<&'static str>,
    planned: Vec<&'static str>,
}

impl StateMachine {
    pub fn new(spec: &StateSpec) -> StateMachine {
        let model = spec.model;
        let find = |name: &str| model.states().iter().copied().find(|s| *s == name);
        StateMachine {
            model,
            map: spec
                .map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), find(v)?)))
                .collect(),
            default: spec.default.as_deref().and_then(find),
            planned: spec.planned.iter().filter_map(|p| find(p)).collect(),
        }
    }

    pub fn model(&self) -> StateModel {
        self.model
    }

    /// The state a raw value means, or `None` for a value that maps to nothing (the state
    /// then stays as it is).
    pub fn state_of(&self, value: &Value) -> Option<&'static str> {
        let key = raw_key(value)?;
        if self.map.is_empty()
            && let RawKey::Text(label) = &key
            && let Some(state) = self.model.states().iter().find(|s| **s == label.as_str())
        {
            return Some(state);
        }
        self.map.get(&key).copied().or(self.default)
    }

    /// The state named `name` in this machine's set (for restoring a snapshot).
    pub fn known(&self, name: &str) -> Option<&'static str> {
        self.model.states().iter().copied().find(|s| *s == name)
    }

    pub fn category(&self, state: &str) -> Category {
        if state == self.model.running() {
            Category::Running
        } else if self.planned.contains(&state) {
            Category::Planned
        } else {
            Category::Unplanned
        }
    }
}

/// The state an asset is in and since when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrentState {
    pub state: Arc<str>,
    pub since: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Arc<str>>,
}

/// Turns states into state changes. Durations are exact integer nanoseconds: the time of
/// each change is the end of one state and the start of the next, so the durations of a
/// scenario add up to its wall time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateTracker {
    current: Option<CurrentState>,
}

impl StateTracker {
    pub fn current(&self) -> Option<&CurrentState> {
        self.current.as_ref()
    }

    pub(crate) fn clear(&mut self) {
        self.current = None;
    }

    /// Enters `state` at `time` (not before the current state began: an earlier time is
    /// taken as that instant). Returns the change, or `None` when the state is the same.
    pub fn enter(&mut self, state: &str, code: Option<&str>, time: Timestamp) -> Option<StateChange> {
        let (from, since) = match &self.current {
            Some(c) if &*c.state == state => return None,
            Some(c) => (Some(c.state.clone()), Some(c.since)),
            None => (None, None),
        };
        let time = since.map_or(time, |s| time.max(s));
        let duration_ns = since.map_or(0, |s| time.unix_nanos().saturating_sub(s.unix_nanos()));
        let to: Arc<str> = state.into();
        self.current = Some(CurrentState {
            state: to.clone(),
            since: time,
            code: code.map(Into::into),
        });
        Some(StateChange {
            from,
            to,
            since,
            duration_ms: u64::try_from(duration_ns / 1_000_000).unwrap_or(0),
            code: code.map(Into::into),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: StateModel, map: &[(RawKey, &str)], default: Option<&str>) -> StateSpec {
        StateSpec {
            attribute: "state".into(),
            model,
            map: map.iter().map(|(k, v)| (k.clone(), (*v).to_owned())).collect(),
            default: default.map(Into::into),
            planned: model.default_planned().iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn codes_of_any_numeric_type_map_to_states() {
        let m = StateMachine::new(&spec(
            StateModel::Packml,
            &[(RawKey::Int(2), "execute"), (RawKey::Int(3), "aborted")],
            None,
        ));
        assert_eq!(m.state_of(&Value::UInt(2)), Some("execute"));
        assert_eq!(m.state_of(&Value::Int(3)), Some("aborted"));
        assert_eq!(m.state_of(&Value::Float(3.0)), Some("aborted"));
        assert_eq!(m.state_of(&Value::Float(3.5)), None);
        assert_eq!(m.state_of(&Value::Int(9)), None);
        assert_eq!(m.category("execute"), Category::Running);
        assert_eq!(m.category("aborted"), Category::Unplanned);
    }

    #[test]
    fn unmapped_values_take_the_default_and_labels_map_to_themselves() {
        let m = StateMachine::new(&spec(StateModel::Reduced, &[], Some("down")));
        assert_eq!(m.state_of(&Value::String("running".into())), Some("running"));
        assert_eq!(m.state_of(&Value::String("smoke".into())), Some("down"));
        assert_eq!(m.category("planned_stop"), Category::Planned);
    }

    #[test]
    fn the_tracker_reports_changes_with_their_durations() {
        let mut t = StateTracker::default();
        let t0 = Timestamp::from_unix_nanos(1_000);
        let first = t.enter("idle", None, t0).unwrap();
        assert_eq!((first.from, first.since, first.duration_ms), (None, None, 0));
        assert_eq!(t.enter("idle", None, t0.add_nanos(5)), None);
        let second = t.enter("execute", Some("2"), t0.add_nanos(2_500_000)).unwrap();
        assert_eq!(second.from.as_deref(), Some("idle"));
        assert_eq!(second.since, Some(t0));
        assert_eq!(second.duration_ms, 2);
        // A time before the current state began is taken as that instant.
        let third = t.enter("aborted", None, t0).unwrap();
        assert_eq!(third.duration_ms, 0);
        assert_eq!(t.current().unwrap().since, t0.add_nanos(2_500_000));
    }
}
