//! OEE accumulators: the time and counts of one period (an hour, a shift, a work order) of
//! one asset, and the figures computed from them.
//!
//! Time is split exactly (integer nanoseconds) into:
//! - **run time**: the asset was in its running state;
//! - **calendar planned stop**: not running inside a planned stop of the calendar;
//! - **downtime shares**: not running outside calendar stops, per downtime record, each
//!   planned or not (a reason marked `planned`, or a state listed as planned). Keeping the
//!   share per downtime lets a reason assigned later move it between planned and
//!   unplanned.
//!
//! Then, with *observed time* the sum of all three (time before the first state reading is
//! not observed):
//!
//! ```text
//! planned stop time        = calendar planned stop + planned downtime shares
//! planned production time  = observed time − planned stop time  (= run + unplanned downtime)
//! availability             = run time / planned production time
//! performance              = ideal time of the counted pieces / run time
//!                          = (ideal cycle time × total count) / run time
//! quality                  = good count / total count
//! OEE                      = availability × performance × quality
//!                          = ideal time of the counted pieces × quality / planned production time
//! ```
//!
//! With one ideal rate in the period the last line is the familiar
//! `good count × ideal cycle time / planned production time`.
//!
//! The ideal time of a piece is `1 / ideal rate` at the moment it was counted (the running
//! work order's rate, else the model's `ideal_rate`), so a period in which two work orders
//! with different rates ran is weighed correctly. Performance is **not capped** at 1: a
//! figure above 1 means the ideal rate is set too low, and hiding it would hide that.
//! Times are published in whole milliseconds, rounded so that the parts add up:
//! `planned_time_ms + planned_stop_ms` is the observed time and
//! `run_time_ms + downtime_ms` is the planned production time.
//!
//! A figure is `None` where it is undefined: availability and OEE with no planned
//! production time, performance with no run time or when pieces were counted with no ideal
//! rate known, quality with nothing counted. OEE is 0 (not undefined) when planned
//! production time passed and nothing was counted.

use std::sync::Arc;

use backplane_config::production::CountsSpec;
use backplane_model::Timestamp;
use backplane_model::sample::{CountRole, Oee, OeePeriod};
use serde::{Deserialize, Serialize};

/// Which counters a model has, and so how good, reject and total derive from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// total = good + reject
    GoodReject,
    /// good = total − reject
    TotalReject,
    /// reject = total − good
    TotalGood,
    /// reject = 0
    GoodOnly,
    /// good = total, reject = 0
    TotalOnly,
}

impl Scheme {
    pub fn of(spec: &CountsSpec) -> Scheme {
        match (spec.good.is_some(), spec.reject.is_some(), spec.total.is_some()) {
            (true, true, _) => Scheme::GoodReject,
            (false, true, true) => Scheme::TotalReject,
            (true, false, true) => Scheme::TotalGood,
            (true, false, false) => Scheme::GoodOnly,
            _ => Scheme::TotalOnly,
        }
    }

    /// True if increments of `role` are pieces made (they add to the total and carry
    /// ideal time).
    pub fn feeds_total(self, role: CountRole) -> bool {
        match self {
            Scheme::GoodReject => matches!(role, CountRole::Good | CountRole::Reject),
            Scheme::GoodOnly => role == CountRole::Good,
            Scheme::TotalReject | Scheme::TotalGood | Scheme::TotalOnly => role == CountRole::Total,
        }
    }

    /// `(good, reject, total)` from the raw increments of each role.
    pub fn derive(self, good: u64, reject: u64, total: u64) -> (u64, u64, u64) {
        match self {
            Scheme::GoodReject => (good, reject, good.saturating_add(reject)),
            Scheme::TotalReject => (total.saturating_sub(reject), reject.min(total), total),
            Scheme::TotalGood => (good.min(total), total.saturating_sub(good), total),
            Scheme::GoodOnly => (good, 0, good),
            Scheme::TotalOnly => (total, 0, total),
        }
    }
}

/// Where a piece of time goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKind {
    Run,
    CalendarPlanned,
    Downtime { id: u64, planned: bool },
}

/// Time of one downtime inside one period (outside calendar planned stops).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub id: u64,
    pub ns: i64,
    pub planned: bool,
}

/// One period of one asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    pub period: OeePeriod,
    /// The nominal start: the hour, the shift's start, the work order's first accounted
    /// instant.
    pub start: Timestamp,
    /// The nominal end (hour and shift); `None` for a work order until it ends.
    pub end: Option<Timestamp>,
    pub shift: Option<Arc<str>>,
    pub work_order: Option<Arc<str>>,
    run_ns: i64,
    calendar_planned_ns: i64,
    downtime: Vec<Share>,
    /// Raw increments per role (good, reject, total).
    counts: [u64; 3],
    /// Ideal time of the pieces counted, in seconds.
    ideal_s: f64,
    /// Pieces counted with no ideal rate known.
    unrated: u64,
    ideal_rate_per_min: Option<f64>,
}

fn role_index(role: CountRole) -> usize {
    match role {
        CountRole::Good => 0,
        CountRole::Reject => 1,
        CountRole::Total => 2,
    }
}

fn ms(ns: i64) -> u64 {
    u64::try_from(ns / 1_000_000).unwrap_or(0)
}

impl Accumulator {
    pub fn new(period: OeePeriod, start: Timestamp, end: Option<Timestamp>) -> Accumulator {
        Accumulator {
            period,
            start,
            end,
            shift: None,
            work_order: None,
            run_ns: 0,
            calendar_planned_ns: 0,
            downtime: Vec::new(),
            counts: [0; 3],
            ideal_s: 0.0,
            unrated: 0,
            ideal_rate_per_min: None,
        }
    }

    pub fn add_time(&mut self, kind: TimeKind, ns: i64) {
        match kind {
            TimeKind::Run => self.run_ns = self.run_ns.saturating_add(ns),
            TimeKind::CalendarPlanned => {
                self.calendar_planned_ns = self.calendar_planned_ns.saturating_add(ns)
            }
            TimeKind::Downtime { id, planned } => match self.downtime.iter_mut().find(|s| s.id == id) {
                Some(share) => share.ns = share.ns.saturating_add(ns),
                None => self.downtime.push(Share { id, ns, planned }),
            },
        }
    }

    /// Adds `delta` pieces of `role`. `ideal_rate_per_min` is the ideal rate in effect,
    /// used only when the role's pieces feed the total.
    pub fn add_count(
        &mut self,
        role: CountRole,
        delta: u64,
        scheme: Scheme,
        ideal_rate_per_min: Option<f64>,
    ) {
        let slot = &mut self.counts[role_index(role)];
        *slot = slot.saturating_add(delta);
        if scheme.feeds_total(role) {
            match ideal_rate_per_min {
                Some(rate) if rate > 0.0 => self.ideal_s += delta as f64 * 60.0 / rate,
                _ => self.unrated = self.unrated.saturating_add(delta),
            }
        }
        if ideal_rate_per_min.is_some() {
            self.ideal_rate_per_min = ideal_rate_per_min;
        }
    }

    /// Raw increments of `role` so far.
    pub fn count(&self, role: CountRole) -> u64 {
        self.counts[role_index(role)]
    }

    pub fn has_downtime(&self, id: u64) -> bool {
        self.downtime.iter().any(|s| s.id == id)
    }

    /// Marks downtime `id` planned or not; true if that changed anything.
    pub fn reclassify(&mut self, id: u64, planned: bool) -> bool {
        let mut changed = false;
        for share in self.downtime.iter_mut().filter(|s| s.id == id) {
            changed |= share.planned != planned;
            share.planned = planned;
        }
        changed
    }

    /// Every nanosecond accounted: run, calendar planned stop and downtime.
    pub fn observed_ns(&self) -> i64 {
        self.run_ns
            .saturating_add(self.calendar_planned_ns)
            .saturating_add(self.downtime.iter().map(|s| s.ns).sum::<i64>())
    }

    /// The figures, as the `oee` event publishes them; `end` is the period end to report.
    pub fn figures(&self, scheme: Option<Scheme>, end: Timestamp) -> Oee {
        let planned_downtime: i64 = self.downtime.iter().filter(|s| s.planned).map(|s| s.ns).sum();
        let unplanned_downtime: i64 = self.downtime.iter().filter(|s| !s.planned).map(|s| s.ns).sum();
        let planned_stop = self.calendar_planned_ns.saturating_add(planned_downtime);
        let planned_time = self.run_ns.saturating_add(unplanned_downtime);
        let observed = planned_time.saturating_add(planned_stop);
        // Whole milliseconds, rounded so that the parts add up: planned time + planned
        // stops = observed time, run time + downtime = planned time.
        let (planned_time_ms, run_time_ms) = (ms(planned_time), ms(self.run_ns));
        let [g, r, t] = self.counts;
        let (good, reject, total) = scheme.map_or((0, 0, 0), |s| s.derive(g, r, t));
        let run_s = self.run_ns as f64 / 1e9;
        let planned_s = planned_time as f64 / 1e9;
        let availability = (planned_time > 0).then(|| run_s / planned_s);
        let performance = (self.run_ns > 0 && self.unrated == 0).then(|| self.ideal_s / run_s);
        let quality = (total > 0).then(|| good as f64 / total as f64);
        let oee = if planned_time <= 0 || self.unrated > 0 {
            None
        } else if total == 0 {
            Some(0.0)
        } else {
            Some(self.ideal_s * (good as f64 / total as f64) / planned_s)
        };
        Oee {
            period: self.period,
            period_start: self.start,
            period_end: end,
            shift: self.shift.clone(),
            work_order: self.work_order.clone(),
            availability,
            performance,
            quality,
            oee,
            planned_time_ms,
            run_time_ms,
            planned_stop_ms: ms(observed).saturating_sub(planned_time_ms),
            downtime_ms: planned_time_ms.saturating_sub(run_time_ms),
            good,
            reject,
            total,
            ideal_rate_per_min: self.ideal_rate_per_min,
            revised: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn oee_is_the_product_of_its_factors() {
        let mut a = Accumulator::new(OeePeriod::Hour, Timestamp::default(), None);
        a.add_time(TimeKind::Run, 40 * MIN);
        a.add_time(
            TimeKind::Downtime {
                id: 1,
                planned: false,
            },
            10 * MIN,
        );
        a.add_time(TimeKind::CalendarPlanned, 10 * MIN);
        // 40 min at 10/s ideal would be 24000; 21600 counted, 216 rejected.
        a.add_count(CountRole::Good, 21_384, Scheme::GoodReject, Some(600.0));
        a.add_count(CountRole::Reject, 216, Scheme::GoodReject, Some(600.0));
        let f = a.figures(Some(Scheme::GoodReject), Timestamp::default());
        let (av, p, q, oee) = (
            f.availability.unwrap(),
            f.performance.unwrap(),
            f.quality.unwrap(),
            f.oee.unwrap(),
        );
        assert!((av - 0.8).abs() < 1e-12);
        assert!((p - 0.9).abs() < 1e-12);
        assert!((q - 0.99).abs() < 1e-12);
        assert!((oee - av * p * q).abs() < 1e-12);
        assert_eq!(
            (f.planned_time_ms, f.planned_stop_ms, f.downtime_ms),
            (3_000_000, 600_000, 600_000)
        );
    }

    #[test]
    fn a_later_planned_reason_moves_downtime_out_of_planned_time() {
        let mut a = Accumulator::new(OeePeriod::Hour, Timestamp::default(), None);
        a.add_time(TimeKind::Run, 45 * MIN);
        a.add_time(
            TimeKind::Downtime {
                id: 9,
                planned: false,
            },
            15 * MIN,
        );
        assert_eq!(a.figures(None, Timestamp::default()).availability, Some(0.75));
        assert!(a.reclassify(9, true));
        assert!(!a.reclassify(9, true));
        assert_eq!(a.figures(None, Timestamp::default()).availability, Some(1.0));
    }

    #[test]
    fn undefined_figures_are_none_and_nothing_made_is_zero_oee() {
        let mut a = Accumulator::new(OeePeriod::Hour, Timestamp::default(), None);
        let f = a.figures(Some(Scheme::GoodOnly), Timestamp::default());
        assert_eq!(
            (f.availability, f.performance, f.quality, f.oee),
            (None, None, None, None)
        );
        a.add_time(TimeKind::Run, MIN);
        let f = a.figures(Some(Scheme::GoodOnly), Timestamp::default());
        assert_eq!(
            (f.availability, f.performance, f.quality, f.oee),
            (Some(1.0), Some(0.0), None, Some(0.0))
        );
        // Pieces without an ideal rate leave performance (and OEE) undefined.
        a.add_count(CountRole::Good, 5, Scheme::GoodOnly, None);
        let f = a.figures(Some(Scheme::GoodOnly), Timestamp::default());
        assert_eq!((f.performance, f.oee, f.quality), (None, None, Some(1.0)));
    }

    #[test]
    fn schemes_derive_the_missing_count() {
        assert_eq!(Scheme::TotalReject.derive(0, 3, 10), (7, 3, 10));
        assert_eq!(Scheme::TotalGood.derive(8, 0, 10), (8, 2, 10));
        assert_eq!(Scheme::TotalReject.derive(0, 12, 10), (0, 10, 10));
        assert!(!Scheme::TotalReject.feeds_total(CountRole::Reject));
        assert!(Scheme::GoodReject.feeds_total(CountRole::Reject));
    }
}
