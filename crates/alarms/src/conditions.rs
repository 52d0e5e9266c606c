//! The state of every limit alarm (one per tag whose attribute has `limits`) and its
//! transitions. Pure logic: the stage feeds it samples and acknowledgements.
//!
//! - Only good and uncertain values move an alarm. A bad sample says the value is not
//!   known, so it neither raises nor clears (the alarm stays as it was until a usable
//!   value arrives).
//! - Entering a level (or a more severe one) makes the alarm unacknowledged; leaving one
//!   keeps the acknowledgement. An alarm is retained (shown to clients) while it is
//!   active or not yet acknowledged.

use std::sync::Arc;

use backplane_model::sample::{Alarm, EventKind};
use backplane_model::{AssetPath, LimitLevel, Limits, Sample, Timestamp};
use serde::{Deserialize, Serialize};

/// The `source` of limit alarm events.
pub const SOURCE: &str = "alarms";
/// Their `condition`.
pub const CONDITION: &str = "limit";

/// One limit alarm: a tag and its state.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The tag's index in the topology.
    pub tag: usize,
    /// `asset/attribute`.
    pub path: Arc<str>,
    pub asset: AssetPath,
    pub attribute: Arc<str>,
    pub limits: Limits,
    pub state: State,
}

/// What survives a restart, per condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The level the value is in; `None`: inactive.
    pub level: Option<LimitLevel>,
    /// Acknowledged since the alarm was last raised (true while it never was).
    pub acked: bool,
    /// When the state last changed.
    pub since: Option<Timestamp>,
    /// The last value that was evaluated.
    pub value: Option<f64>,
}

impl Condition {
    pub fn active(&self) -> bool {
        self.state.level.is_some()
    }

    /// Shown to clients: active, or inactive but not yet acknowledged.
    pub fn retained(&self) -> bool {
        self.active() || !self.state.acked
    }

    /// The OPC UA severity of the current level (of the lowest level once inactive).
    pub fn priority(&self) -> u16 {
        match self.state.level {
            Some(level) => self.limits.severity(level),
            None => 100,
        }
    }

    fn severity_name(level: Option<LimitLevel>) -> &'static str {
        match level {
            Some(l) if l.is_outer() => "fault",
            Some(_) => "warning",
            None => "normal",
        }
    }

    /// The event describing the current state; `previous` is the level before.
    pub fn event(&self, previous: Option<LimitLevel>, message: String) -> Alarm {
        let level = self.state.level;
        Alarm {
            source: SOURCE.into(),
            address: self.attribute.clone(),
            severity: Self::severity_name(level).into(),
            previous: Some(Self::severity_name(previous).into()),
            active: level.is_some(),
            code: None,
            message: Some(message.into()),
            condition: Some(CONDITION.into()),
            limit: level,
            value: self.state.value,
            threshold: level.and_then(|l| self.limits.limit(l)),
            priority: Some(self.priority()),
            acked: Some(self.state.acked),
            by: None,
            comment: None,
        }
    }

    /// The text of a transition from `previous` to the current level.
    pub fn message(&self, previous: Option<LimitLevel>) -> String {
        let value = self.state.value.map_or_else(String::new, |v| format!(" {v}"));
        match (self.state.level, previous) {
            (Some(level), _) => format!(
                "{}{value} {} {} limit {}",
                self.attribute,
                if level.is_high() { "above" } else { "below" },
                level.name(),
                self.limits.limit(level).unwrap_or(f64::NAN)
            ),
            (None, Some(was)) => format!("{}{value} back inside the {} limit", self.attribute, was.name()),
            (None, None) => format!("{}{value} inside its limits", self.attribute),
        }
    }

    /// Evaluates a sample; the event of a transition, if any.
    pub fn observe(&mut self, sample: &Sample) -> Option<Alarm> {
        if sample.quality.is_bad() {
            return None;
        }
        let value = sample.value.as_ref()?.as_f64()?;
        if !value.is_finite() {
            return None;
        }
        let previous = self.state.level;
        let next = self.limits.next_level(previous, value);
        if next == previous {
            return None;
        }
        let more_severe = match (previous, next) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(p), Some(n)) => p.is_high() != n.is_high() || (n.is_outer() && !p.is_outer()),
        };
        self.state.level = next;
        self.state.value = Some(value);
        self.state.since = Some(sample.source_time.unwrap_or(sample.gateway_time));
        if more_severe {
            self.state.acked = false;
        }
        Some(self.event(previous, self.message(previous)))
    }

    /// Records an acknowledgement by `by`; the event saying so.
    pub fn acknowledge(
        &mut self,
        by: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<Alarm, AckRefused> {
        if self.state.acked {
            return Err(AckRefused::AlreadyAcked);
        }
        self.state.acked = true;
        self.state.since = Some(now);
        let level = self.state.level;
        let mut event = self.event(level, format!("{} acknowledged by {by}", self.attribute));
        event.value = None;
        event.by = Some(by.into());
        event.comment = comment.filter(|c| !c.is_empty()).map(Into::into);
        Ok(event)
    }
}

/// Why an acknowledgement was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckRefused {
    #[error("no limit alarm of that name")]
    NotFound,
    #[error("the alarm is acknowledged already")]
    AlreadyAcked,
}

/// Every limit alarm of a topology.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions {
    pub all: Vec<Condition>,
    /// Tag index → index in `all`.
    by_tag: Vec<Option<usize>>,
}

impl Conditions {
    /// One condition per tag (`(tag, path, asset, attribute, limits)`) with limits.
    pub fn new(tags: impl IntoIterator<Item = (usize, Arc<str>, AssetPath, Arc<str>, Limits)>) -> Conditions {
        let mut c = Conditions::default();
        for (tag, path, asset, attribute, limits) in tags {
            if c.by_tag.len() <= tag {
                c.by_tag.resize(tag + 1, None);
            }
            c.by_tag[tag] = Some(c.all.len());
            c.all.push(Condition {
                tag,
                path,
                asset,
                attribute,
                limits,
                state: State {
                    acked: true,
                    ..State::default()
                },
            });
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Evaluates a batch; the events of its transitions, in order.
    pub fn observe(&mut self, samples: &[Sample], out: &mut Vec<(AssetPath, Timestamp, EventKind)>) {
        for sample in samples {
            let Some(Some(i)) = self.by_tag.get(sample.tag.index()) else {
                continue;
            };
            let Some(condition) = self.all.get_mut(*i) else {
                continue;
            };
            if let Some(alarm) = condition.observe(sample) {
                let time = sample.source_time.unwrap_or(sample.gateway_time);
                out.push((condition.asset.clone(), time, EventKind::Alarm(alarm)));
            }
        }
    }

    /// Acknowledges the alarm of tag path `path`.
    pub fn acknowledge(
        &mut self,
        path: &str,
        by: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<(AssetPath, Alarm), AckRefused> {
        let condition = self
            .all
            .iter_mut()
            .find(|c| &*c.path == path)
            .ok_or(AckRefused::NotFound)?;
        let event = condition.acknowledge(by, comment, now)?;
        Ok((condition.asset.clone(), event))
    }

    /// The states to save, by tag path.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            conditions: self
                .all
                .iter()
                .map(|c| (c.path.to_string(), c.state.clone()))
                .collect(),
        }
    }

    /// Takes the saved states of the conditions that still exist.
    pub fn restore(&mut self, snapshot: Snapshot) {
        for (path, state) in snapshot.conditions {
            if let Some(c) = self.all.iter_mut().find(|c| *c.path == *path) {
                c.state = state;
            }
        }
    }
}

/// The saved state: each condition's by its tag path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub conditions: std::collections::BTreeMap<String, State>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use backplane_model::{BadReason, Quality, TagId, Value};

    fn conditions() -> Conditions {
        Conditions::new([(
            0,
            Arc::from("acme/line/tank/temperature"),
            AssetPath::parse("acme/line/tank").unwrap(),
            Arc::from("temperature"),
            Limits {
                hihi: Some(95.0),
                hi: Some(85.0),
                lo: None,
                lolo: None,
                deadband: 0.5,
                severity: [900, 700, 700, 900],
            },
        )])
    }

    fn sample(value: f64, quality: Quality, t: i64) -> Sample {
        Sample {
            tag: TagId(0),
            value: Some(Value::Float(value)),
            quality,
            source_time: None,
            gateway_time: Timestamp::from_unix_millis(t),
            context: Arc::default(),
        }
    }

    fn alarms(c: &mut Conditions, samples: &[Sample]) -> Vec<Alarm> {
        let mut out = Vec::new();
        c.observe(samples, &mut out);
        out.into_iter()
            .map(|(_, _, k)| match k {
                EventKind::Alarm(a) => a,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_alarm_is_raised_at_its_limit_and_cleared_only_past_the_deadband() {
        let mut c = conditions();
        let good = Quality::Good;
        let raised = alarms(&mut c, &[sample(80.0, good, 1), sample(86.0, good, 2)]);
        assert_eq!(raised.len(), 1);
        assert!(raised[0].active);
        assert_eq!(raised[0].limit, Some(LimitLevel::Hi));
        assert_eq!(raised[0].priority, Some(700));
        assert_eq!(raised[0].acked, Some(false));
        assert_eq!(raised[0].threshold, Some(85.0));
        // Inside the limit but within the deadband: still active, no event.
        assert!(alarms(&mut c, &[sample(84.8, good, 3), sample(84.6, good, 4)]).is_empty());
        let cleared = alarms(&mut c, &[sample(84.4, good, 5)]);
        assert_eq!(cleared.len(), 1);
        assert!(!cleared[0].active);
        assert_eq!(cleared[0].limit, None);
        assert_eq!(cleared[0].previous.as_deref(), Some("warning"));
        assert!(c.all[0].retained(), "cleared but not acknowledged");
    }

    #[test]
    fn a_bad_value_neither_raises_nor_clears() {
        let mut c = conditions();
        let bad = Quality::Bad(BadReason::CommFailure);
        assert!(alarms(&mut c, &[sample(99.0, bad, 1)]).is_empty());
        assert!(!c.all[0].active());
        assert_eq!(alarms(&mut c, &[sample(90.0, Quality::Good, 2)]).len(), 1);
        assert!(alarms(&mut c, &[sample(10.0, bad, 3)]).is_empty());
        assert!(c.all[0].active(), "a bad value does not clear");
    }

    #[test]
    fn an_acknowledgement_is_recorded_once_and_a_more_severe_level_needs_another() {
        let mut c = conditions();
        alarms(&mut c, &[sample(90.0, Quality::Good, 1)]);
        let path = "acme/line/tank/temperature";
        let (_, ack) = c
            .acknowledge(path, "anna", Some("checked"), Timestamp::from_unix_millis(2))
            .unwrap();
        assert_eq!(
            (ack.acked, ack.by.as_deref(), ack.comment.as_deref()),
            (Some(true), Some("anna"), Some("checked"))
        );
        assert_eq!(
            c.acknowledge(path, "anna", None, Timestamp::from_unix_millis(3)),
            Err(AckRefused::AlreadyAcked)
        );
        assert_eq!(
            c.acknowledge("acme/x", "anna", None, Timestamp::from_unix_millis(3)),
            Err(AckRefused::NotFound)
        );
        let worse = alarms(&mut c, &[sample(96.0, Quality::Good, 4)]);
        assert_eq!(
            (worse[0].limit, worse[0].acked),
            (Some(LimitLevel::Hihi), Some(false))
        );
        let back = alarms(&mut c, &[sample(90.0, Quality::Good, 5)]);
        assert_eq!(back[0].limit, Some(LimitLevel::Hi));
        assert_eq!(
            back[0].acked,
            Some(false),
            "going back to hi keeps the state unacknowledged"
        );
    }

    #[test]
    fn the_state_survives_a_snapshot_round_trip() {
        let mut c = conditions();
        alarms(&mut c, &[sample(90.0, Quality::Good, 1)]);
        let json = serde_json::to_string(&c.snapshot()).unwrap();
        let mut fresh = conditions();
        fresh.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(fresh, c);
    }
}
