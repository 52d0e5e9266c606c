//! Conditions → alarm events. An agent reports a condition data item's state as
//! `Normal`, `Warning`, `Fault` or `Unavailable`, with the machine's own `nativeCode`
//! when it has one; several codes can stand at once on one item. One alarm is one
//! (data item, native code) pair:
//! - `Warning`/`Fault` raises it, or changes its severity (an `alarm` event, active);
//! - `Normal` with a code clears that alarm; `Normal` without a code clears every alarm
//!   of the item (events with severity `normal`, not active);
//! - `Unavailable` ends every alarm of the item as `unavailable` (not active): the agent
//!   no longer knows, which is not the same as cleared.
//!
//! A `Normal` for an alarm that does not stand says nothing, so the first snapshot of a
//! healthy machine makes no events.

use std::collections::HashMap;
use std::sync::Arc;

use backplane_model::sample::Alarm;

use crate::document::{Level, Observation};

/// The alarms standing, by data item and native code.
#[derive(Debug, Default)]
pub struct Alarms {
    active: HashMap<(String, String), Level>,
}

impl Alarms {
    /// The alarm events one condition observation makes.
    pub fn observe(&mut self, source: &Arc<str>, o: &Observation) -> Vec<Alarm> {
        let Some(level) = o.level else {
            return Vec::new();
        };
        let condition = o.condition.clone().unwrap_or_default();
        let code = condition.native_code.clone().unwrap_or_default();
        let item = o.data_item_id.clone();
        let alarm = |severity: Level, previous: Option<Level>, code: &str, message: Option<&str>| Alarm {
            source: source.clone(),
            address: item.as_str().into(),
            severity: severity.name().into(),
            previous: previous.map(|p| p.name().into()),
            active: matches!(severity, Level::Fault | Level::Warning),
            code: (!code.is_empty()).then(|| code.into()),
            message: message.filter(|m| !m.is_empty()).map(Into::into),
            condition: (!condition.kind.is_empty()).then(|| condition.kind.as_str().into()),
            ..Alarm::default()
        };
        match level {
            Level::Fault | Level::Warning => {
                let previous = self.active.insert((item.clone(), code.clone()), level);
                if previous == Some(level) {
                    return Vec::new();
                }
                vec![alarm(level, previous, &code, o.value.as_deref())]
            }
            Level::Normal if !code.is_empty() => match self.active.remove(&(item.clone(), code.clone())) {
                Some(previous) => vec![alarm(Level::Normal, Some(previous), &code, None)],
                None => Vec::new(),
            },
            Level::Normal | Level::Unavailable => {
                let mut ended: Vec<((String, String), Level)> = Vec::new();
                self.active.retain(|k, v| {
                    if k.0 == item {
                        ended.push((k.clone(), *v));
                        false
                    } else {
                        true
                    }
                });
                ended.sort_by(|a, b| a.0.cmp(&b.0));
                ended
                    .into_iter()
                    .map(|((_, code), previous)| alarm(level, Some(previous), &code, None))
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::document::{Category, Condition};

    fn cond(level: Level, code: &str, text: &str) -> Observation {
        Observation {
            data_item_id: "system".into(),
            name: None,
            sequence: 1,
            timestamp: None,
            category: Category::Condition,
            element: format!("{level:?}"),
            value: Some(text.into()),
            level: Some(level),
            condition: Some(Condition {
                kind: "SYSTEM".into(),
                native_code: (!code.is_empty()).then(|| code.into()),
                ..Condition::default()
            }),
            device: "d".into(),
        }
    }

    #[test]
    fn faults_raise_change_and_clear_alarms_by_native_code() {
        let source: Arc<str> = "cnc".into();
        let mut a = Alarms::default();
        assert!(a.observe(&source, &cond(Level::Normal, "", "")).is_empty());
        let raised = a.observe(&source, &cond(Level::Warning, "E1", "Coolant low"));
        assert_eq!(raised.len(), 1);
        assert!(raised[0].active);
        assert_eq!(raised[0].message.as_deref(), Some("Coolant low"));
        assert!(
            a.observe(&source, &cond(Level::Warning, "E1", "Coolant low"))
                .is_empty(),
            "no change"
        );
        let worse = a.observe(&source, &cond(Level::Fault, "E1", "Coolant empty"));
        assert_eq!(worse[0].previous.as_deref(), Some("warning"));
        a.observe(&source, &cond(Level::Fault, "E2", "Door"));
        let cleared = a.observe(&source, &cond(Level::Normal, "E2", ""));
        assert_eq!((cleared.len(), cleared[0].active), (1, false));
        a.observe(&source, &cond(Level::Fault, "E3", "Spindle"));
        let all = a.observe(&source, &cond(Level::Unavailable, "", ""));
        let codes: Vec<_> = all.iter().map(|x| x.code.as_deref().unwrap()).collect();
        assert_eq!(codes, ["E1", "E3"]);
        assert!(all.iter().all(|x| &*x.severity == "unavailable" && !x.active));
    }
}
