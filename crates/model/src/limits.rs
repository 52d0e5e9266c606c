//! Alarm limits of a numeric attribute (`limits = { hi = 85.0, ... }`): the levels a value
//! may cross, the deadband that keeps an alarm from chattering, and the severity of each
//! level. The alarms stage (crates/alarms) evaluates them.

use serde::{Deserialize, Serialize};

/// A limit level, from the most severe low to the most severe high.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitLevel {
    Lolo,
    Lo,
    Hi,
    Hihi,
}

impl LimitLevel {
    pub const ALL: [LimitLevel; 4] = [LimitLevel::Lolo, LimitLevel::Lo, LimitLevel::Hi, LimitLevel::Hihi];

    /// The configuration key and the name in events: `lolo`, `lo`, `hi`, `hihi`.
    pub fn name(self) -> &'static str {
        match self {
            LimitLevel::Lolo => "lolo",
            LimitLevel::Lo => "lo",
            LimitLevel::Hi => "hi",
            LimitLevel::Hihi => "hihi",
        }
    }

    pub fn parse(name: &str) -> Option<LimitLevel> {
        LimitLevel::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Above the high limits (`hi`, `hihi`) rather than below the low ones.
    pub fn is_high(self) -> bool {
        matches!(self, LimitLevel::Hi | LimitLevel::Hihi)
    }

    /// `hihi` and `lolo` are more severe than `hi` and `lo`.
    pub fn is_outer(self) -> bool {
        matches!(self, LimitLevel::Hihi | LimitLevel::Lolo)
    }

    /// The default OPC UA severity (1..=1000) of the level.
    pub fn default_severity(self) -> u16 {
        if self.is_outer() { 900 } else { 700 }
    }
}

/// The limits of one attribute. At least one level is set; set levels are ordered
/// `lolo < lo < hi < hihi`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hihi: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hi: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lo: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lolo: Option<f64>,
    /// An alarm clears only when the value is back inside its limit by this much (≥ 0).
    pub deadband: f64,
    /// OPC UA severity (1..=1000) per level, in the order lolo, lo, hi, hihi.
    pub severity: [u16; 4],
}

impl Limits {
    pub fn limit(&self, level: LimitLevel) -> Option<f64> {
        match level {
            LimitLevel::Lolo => self.lolo,
            LimitLevel::Lo => self.lo,
            LimitLevel::Hi => self.hi,
            LimitLevel::Hihi => self.hihi,
        }
    }

    pub fn severity(&self, level: LimitLevel) -> u16 {
        self.severity[level as usize]
    }

    /// The level `value` is in without hysteresis: the most severe limit it reached
    /// (a value equal to a limit has reached it).
    pub fn raw_level(&self, value: f64) -> Option<LimitLevel> {
        let reached = |level: LimitLevel| {
            self.limit(level)
                .is_some_and(|l| if level.is_high() { value >= l } else { value <= l })
        };
        [LimitLevel::Hihi, LimitLevel::Lolo, LimitLevel::Hi, LimitLevel::Lo]
            .into_iter()
            .find(|l| reached(*l))
    }

    /// The level after `value` when the alarm was at `current`: a more severe level is
    /// entered as soon as its limit is reached; a level is left only once the value is
    /// back past its limit by the deadband (then the next level it is still in holds).
    pub fn next_level(&self, current: Option<LimitLevel>, value: f64) -> Option<LimitLevel> {
        let raw = self.raw_level(value);
        let holds = |level: LimitLevel| {
            self.limit(level).is_some_and(|l| {
                if level.is_high() {
                    value > l - self.deadband
                } else {
                    value < l + self.deadband
                }
            })
        };
        let held = match current {
            Some(LimitLevel::Hihi) => [LimitLevel::Hihi, LimitLevel::Hi].into_iter().find(|l| holds(*l)),
            Some(LimitLevel::Lolo) => [LimitLevel::Lolo, LimitLevel::Lo].into_iter().find(|l| holds(*l)),
            Some(l) => holds(l).then_some(l),
            None => None,
        };
        match (raw, held) {
            (Some(r), Some(h)) if r.is_high() == h.is_high() => Some(if r.is_outer() { r } else { h }),
            (Some(r), _) => Some(r),
            (None, h) => h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            hihi: Some(95.0),
            hi: Some(85.0),
            lo: Some(2.0),
            lolo: Some(1.0),
            deadband: 0.5,
            severity: [900, 700, 700, 900],
        }
    }

    #[test]
    fn a_level_is_entered_at_its_limit_and_left_only_past_the_deadband() {
        let l = limits();
        let mut at = None;
        let mut seen = Vec::new();
        for v in [
            50.0, 85.0, 84.8, 84.6, 84.4, 96.0, 94.7, 94.4, 84.0, 1.5, 0.9, 1.4, 1.6, 2.6,
        ] {
            at = l.next_level(at, v);
            seen.push(at.map(LimitLevel::name));
        }
        assert_eq!(
            seen,
            [
                None,
                Some("hi"),
                Some("hi"),
                Some("hi"),
                None,
                Some("hihi"),
                Some("hihi"),
                Some("hi"),
                None,
                Some("lo"),
                Some("lolo"),
                Some("lolo"),
                Some("lo"),
                None
            ]
        );
    }

    #[test]
    fn a_jump_across_both_sides_takes_the_new_side() {
        let l = limits();
        assert_eq!(l.next_level(Some(LimitLevel::Hihi), 0.0), Some(LimitLevel::Lolo));
        assert_eq!(l.next_level(Some(LimitLevel::Lo), 90.0), Some(LimitLevel::Hi));
    }
}
