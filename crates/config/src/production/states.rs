//! A model's `state`: the state set (PackML or reduced), raw values mapped to states,
//! and which states are planned stops.

use std::fmt;

use backplane_model::{DataType, ScalarType};
use serde::Serialize;

use super::model::{Attributes, RawKey, raw_key};
use crate::reader::{Item, suggest};

/// The state sets a model's states come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateModel {
    /// The 17 states of PackML (ISA-TR88.00.02); `execute` is running.
    Packml,
    /// A short set for machines without a PackML state machine; `running` is running.
    Reduced,
}

const PACKML_STATES: [&str; 17] = [
    "stopped",
    "starting",
    "idle",
    "suspended",
    "execute",
    "stopping",
    "aborting",
    "aborted",
    "holding",
    "held",
    "unholding",
    "suspending",
    "unsuspending",
    "resetting",
    "completing",
    "complete",
    "clearing",
];

const REDUCED_STATES: [&str; 7] = [
    "running",
    "idle",
    "starved",
    "blocked",
    "setup",
    "down",
    "planned_stop",
];

impl StateModel {
    pub fn name(self) -> &'static str {
        match self {
            StateModel::Packml => "packml",
            StateModel::Reduced => "reduced",
        }
    }

    pub fn parse(text: &str) -> Option<StateModel> {
        [StateModel::Packml, StateModel::Reduced]
            .into_iter()
            .find(|m| m.name() == text)
    }

    /// Every state of the set.
    pub fn states(self) -> &'static [&'static str] {
        match self {
            StateModel::Packml => &PACKML_STATES,
            StateModel::Reduced => &REDUCED_STATES,
        }
    }

    /// The one state in which the machine produces (OEE run time).
    pub fn running(self) -> &'static str {
        match self {
            StateModel::Packml => "execute",
            StateModel::Reduced => "running",
        }
    }

    /// The states counted as planned stops unless `planned` says otherwise.
    pub fn default_planned(self) -> &'static [&'static str] {
        match self {
            StateModel::Packml => &[],
            StateModel::Reduced => &["planned_stop"],
        }
    }
}

impl fmt::Display for StateModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `state = { attribute, model, map, default, planned }`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSpec {
    pub attribute: String,
    pub model: StateModel,
    /// Raw value → state. Empty for a string attribute whose values are state names.
    pub map: Vec<(RawKey, String)>,
    /// The state of any value not in `map`; without it such values leave the state as it is.
    pub default: Option<String>,
    /// States counted as planned stops.
    pub planned: Vec<String>,
}

fn is_code_type(t: DataType) -> bool {
    matches!(
        t,
        DataType::Scalar(ScalarType::String | ScalarType::Int | ScalarType::UInt | ScalarType::Bool)
    )
}

fn state_name(item: &Item<'_>, model: StateModel) -> Option<String> {
    let text = item.expect_str()?;
    if model.states().contains(&text) {
        return Some(text.to_owned());
    }
    let other = match model {
        StateModel::Packml => StateModel::Reduced,
        StateModel::Reduced => StateModel::Packml,
    };
    let hint = if other.states().contains(&text) {
        Some(format!(
            "`{text}` is a state of the {other} model; set `model = \"{other}\"` or use a {model} state"
        ))
    } else {
        suggest(text, model.states().iter().copied(), &format!("{model} states"))
    };
    item.error(format!("unknown {model} state `{text}`"), hint);
    None
}

pub(super) fn read_state(item: &Item<'_>, attribute: Attributes<'_>) -> Option<StateSpec> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let attr = t
        .required_item("attribute")
        .and_then(|item| attribute.get(&item, "a state", is_code_type, "a string, int, uint or bool"));
    let model = match t.optional_item("model") {
        None => StateModel::Packml,
        Some(item) => match item.expect_str() {
            Some(text) => StateModel::parse(text).unwrap_or_else(|| {
                item.error(
                    format!("unknown state model `{text}`"),
                    Some("state models: packml (the default), reduced".to_owned()),
                );
                ok = false;
                StateModel::Packml
            }),
            None => {
                ok = false;
                StateModel::Packml
            }
        },
    };
    let mut map = Vec::new();
    let map_item = t.optional_item("map");
    if let Some(item) = &map_item
        && let Some(mut m) = item.expect_table()
    {
        for (key, value) in m.take_remaining() {
            let state = state_name(&value, model);
            let raw = attr.and_then(|a| raw_key(&key, a));
            match (raw, state) {
                (Some(raw), Some(state)) => map.push((raw, state)),
                (None, _) if attr.is_none() => {}
                _ => ok = false,
            }
        }
        m.finish();
    } else if map_item.is_some() {
        ok = false;
    }
    let default = t.optional_item("default").and_then(|item| {
        let state = state_name(&item, model);
        ok &= state.is_some();
        state
    });
    let planned = match t.optional_item("planned") {
        None => model.default_planned().iter().map(|s| (*s).to_owned()).collect(),
        Some(item) => {
            let mut planned = Vec::new();
            for entry in item.expect_array().unwrap_or_default() {
                match state_name(&entry, model) {
                    Some(state) if state == model.running() => {
                        entry.error(
                            format!("`{state}` is the running state; it cannot be a planned stop"),
                            None,
                        );
                        ok = false;
                    }
                    Some(state) => planned.push(state),
                    None => ok = false,
                }
            }
            planned
        }
    };
    // A value with no state would leave the state stale: every known label must map.
    if let Some(attr) = attr {
        let is_string = attr.data_type == DataType::Scalar(ScalarType::String);
        if map_item.is_none() && !is_string {
            t.error(
                "map",
                format!(
                    "attribute `{}` is {}: `map` must say which code is which state",
                    attr.name, attr.data_type
                ),
                Some(format!(
                    "e.g. `map = {{ 0 = \"stopped\", 1 = \"idle\", 2 = \"{}\" }}`",
                    model.running()
                )),
            );
            ok = false;
        }
        if let (Some(labels), None, true) = (&attr.allowed, &default, ok) {
            let unmapped: Vec<&str> = labels
                .iter()
                .map(String::as_str)
                .filter(|label| {
                    if map_item.is_some() {
                        !map.iter().any(|(k, _)| *k == RawKey::Text((*label).to_owned()))
                    } else {
                        !model.states().contains(label)
                    }
                })
                .collect();
            if !unmapped.is_empty() {
                let message = if map_item.is_some() {
                    format!(
                        "labels of attribute `{}` with no state: {}",
                        attr.name,
                        unmapped.join(", ")
                    )
                } else {
                    format!(
                        "labels of attribute `{}` that are not {model} states: {}",
                        attr.name,
                        unmapped.join(", ")
                    )
                };
                t.error(
                    "map",
                    message,
                    Some("map every label to a state, or set `default` for the rest".to_owned()),
                );
                ok = false;
            }
        }
    }
    t.finish();
    let attr = attr?;
    ok.then(|| StateSpec {
        attribute: attr.name.clone(),
        model,
        map,
        default,
        planned,
    })
}
