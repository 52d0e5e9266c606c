//! OEE of a scripted afternoon on filler line 1, against a table computed by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::Value;
use backplane_model::sample::{EventKind, Oee, OeePeriod};
use backplane_production::{NewWorkOrder, Outcome, Production};
use common::{assert_close, at, dairy, events, filler, text};

/// One step of the script at local time `h:m`.
enum Step {
    State(&'static str),
    /// Raw counter readings: good, reject.
    Counts(u64, u64),
    Start(&'static str),
    Complete(&'static str),
    AssignReason(&'static str),
}

/// Monday 13:00–15:00 local, on `packaging/line-1/filler` (ideal rates per minute: the
/// model says 500, WO-1 600 = 10/s, WO-2 300 = 5/s; the calendar has a planned stop
/// 13:30–14:00 and shift A until 14:00, then B):
///
/// ```text
/// 13:00  WO-1 starts, filler runs              counters read good 1000, reject 50 (baseline)
/// 13:20  fault (aborted): downtime 1           +11286 good, +114 reject
/// 13:30  cleaning (stopped): same downtime, now inside the calendar's planned stop
/// 14:00  runs: downtime 1 closes (40 min, 10 of them unplanned)
/// 14:30  WO-1 completes, WO-2 starts           +16929 good, +171 reject (WO-1)
/// 14:40  idle: downtime 2                      +2800 good, +80 reject (WO-2)
/// 14:45  runs
/// 14:50  held: downtime 3                      +1480 good, +20 reject
/// 14:55  anna gives downtime 3 the reason mechanical/changeover (planned)
/// 15:00  tick; WO-2 completes
/// ```
fn script() -> Vec<(i64, i64, Step)> {
    use Step::*;
    vec![
        (13, 0, Start("WO-1")),
        (13, 0, State("running")),
        (13, 0, Counts(1000, 50)),
        (13, 20, Counts(12_286, 164)),
        (13, 20, State("fault")),
        (13, 30, State("cleaning")),
        (14, 0, State("running")),
        (14, 30, Counts(29_215, 335)),
        (14, 30, Complete("WO-1")),
        (14, 30, Start("WO-2")),
        (14, 40, Counts(32_015, 415)),
        (14, 40, State("idle")),
        (14, 45, State("running")),
        (14, 50, Counts(33_495, 435)),
        (14, 50, State("held")),
        (14, 55, AssignReason("mechanical/changeover")),
    ]
}

/// Runs the script with a tick every minute from 13:00 to 15:00, then completes WO-2.
fn run() -> (Production, Outcome) {
    let mut p = dairy();
    let mut out = Outcome::default();
    for (id, rate) in [("WO-1", 600.0), ("WO-2", 300.0)] {
        let order = NewWorkOrder {
            id: id.into(),
            product: format!("milk-{id}"),
            asset: "packaging/line-1".into(),
            planned_quantity: Some(30_000.0),
            ideal_rate_per_min: Some(rate),
            ..NewWorkOrder::default()
        };
        p.create_work_order(order, Some("mes"), at(12, 0), &mut out)
            .unwrap();
        p.release_work_order(id, Some("mes"), at(12, 0), &mut out)
            .unwrap();
    }
    let f = filler();
    let mut steps = script().into_iter().peekable();
    for minute in 0..=120 {
        let (h, m) = (13 + minute / 60, minute % 60);
        p.tick(at(h, m), &mut out);
        while let Some((_, _, step)) = steps.next_if(|(sh, sm, _)| (*sh, *sm) == (h, m)) {
            let t = at(h, m);
            match step {
                Step::State(s) => p.observe(&f, "state", &text(s), t, &mut out),
                Step::Counts(good, reject) => {
                    p.observe(&f, "good_count", &Value::UInt(good), t, &mut out);
                    p.observe(&f, "reject_count", &Value::UInt(reject), t, &mut out);
                }
                Step::Start(id) => {
                    p.start_work_order(id, Some("mes"), t, &mut out).unwrap();
                }
                Step::Complete(id) => {
                    p.complete_work_order(id, Some("mes"), t, &mut out).unwrap();
                }
                Step::AssignReason(reason) => {
                    let open = p.state(&f).unwrap().downtime.unwrap();
                    p.assign_reason(open, reason, Some("anna"), t, &mut out).unwrap();
                }
            }
        }
    }
    assert!(steps.next().is_none(), "every step ran");
    p.complete_work_order("WO-2", Some("mes"), at(15, 0), &mut out)
        .unwrap();
    (p, out)
}

fn oee_events(out: &Outcome, period: OeePeriod) -> Vec<Oee> {
    events(out, |k| match k {
        EventKind::Oee(o) if o.period == period => Some(o),
        _ => None,
    })
    .into_iter()
    .map(|(_, _, o)| o.clone())
    .collect()
}

/// The hand-computed row of one period.
struct Row {
    availability: f64,
    performance: f64,
    quality: f64,
    oee: f64,
    planned_time_ms: u64,
    run_time_ms: u64,
    planned_stop_ms: u64,
    downtime_ms: u64,
    good: u64,
    reject: u64,
}

#[track_caller]
fn check(o: &Oee, row: &Row) {
    assert_close(o.availability, row.availability);
    assert_close(o.performance, row.performance);
    assert_close(o.quality, row.quality);
    assert_close(o.oee, row.oee);
    assert_close(
        o.oee,
        o.availability.unwrap() * o.performance.unwrap() * o.quality.unwrap(),
    );
    assert_eq!(
        (o.planned_time_ms, o.run_time_ms, o.planned_stop_ms, o.downtime_ms),
        (
            row.planned_time_ms,
            row.run_time_ms,
            row.planned_stop_ms,
            row.downtime_ms
        ),
        "times of {:?} {:?}",
        o.period,
        o.period_start
    );
    assert_eq!(
        (o.good, o.reject, o.total),
        (row.good, row.reject, row.good + row.reject)
    );
}

// 13:00–14:00: run 13:00–13:20 (20 min); downtime 1 unplanned 13:20–13:30 (10 min), then
// inside the calendar stop 13:30–14:00 (30 min, planned).
// Planned production time = 60 − 30 = 30 min = 1800 s; run time 1200 s.
// Pieces: 11286 good + 114 reject = 11400 at 10/s ideal → ideal time 1140 s.
const HOUR_13: Row = Row {
    availability: 0.666_666_666_666_666_6, // 1200 / 1800
    performance: 0.95,                     // 1140 / 1200
    quality: 0.99,                         // 11286 / 11400
    oee: 0.627,                            // 2/3 × 0.95 × 0.99
    planned_time_ms: 1_800_000,
    run_time_ms: 1_200_000,
    planned_stop_ms: 1_800_000,
    downtime_ms: 600_000,
    good: 11_286,
    reject: 114,
};

// 14:00–15:00: run 14:00–14:40 and 14:45–14:50 (45 min = 2700 s); idle 14:40–14:45
// (5 min, unplanned); held 14:50–15:00 (10 min, planned by its reason).
// Planned production time = 60 − 10 = 50 min = 3000 s.
// Pieces: WO-1 16929 + 171 = 17100 at 10/s → 1710 s; WO-2 2800 + 80 = 2880 and
// 1480 + 20 = 1500 at 5/s → 576 s + 300 s. Ideal time 2586 s.
const HOUR_14: Row = Row {
    availability: 0.9,                    // 2700 / 3000
    performance: 0.957_777_777_777_777_7, // 2586 / 2700
    quality: 0.987_383_612_662_942_3,     // 21209 / 21480
    oee: 0.851_124_674_115_456_2,         // 0.9 × 2586/2700 × 21209/21480
    planned_time_ms: 3_000_000,
    run_time_ms: 2_700_000,
    planned_stop_ms: 600_000,
    downtime_ms: 300_000,
    good: 21_209,
    reject: 271,
};

// WO-1, 13:00–14:30: run 20 + 30 = 50 min = 3000 s; unplanned 10 min; calendar stop
// 30 min. Planned production time = 90 − 30 = 60 min = 3600 s.
// Pieces: 11400 + 17100 = 28500 at 10/s → 2850 s; good 11286 + 16929 = 28215.
const WO_1: Row = Row {
    availability: 0.833_333_333_333_333_4, // 3000 / 3600
    performance: 0.95,                     // 2850 / 3000
    quality: 0.99,                         // 28215 / 28500
    oee: 0.783_75,                         // 5/6 × 0.95 × 0.99
    planned_time_ms: 3_600_000,
    run_time_ms: 3_000_000,
    planned_stop_ms: 1_800_000,
    downtime_ms: 600_000,
    good: 28_215,
    reject: 285,
};

// WO-2, 14:30–15:00: run 10 + 5 = 15 min = 900 s; idle 5 min unplanned; held 10 min
// planned. Planned production time = 30 − 10 = 20 min = 1200 s.
// Pieces: 2880 + 1500 = 4380 at 5/s → 876 s; good 2800 + 1480 = 4280.
const WO_2: Row = Row {
    availability: 0.75,                   // 900 / 1200
    performance: 0.973_333_333_333_333_3, // 876 / 900
    quality: 0.977_168_949_771_689_5,     // 4280 / 4380
    oee: 0.713_333_333_333_333_3,         // 4280 good × 0.2 s / 1200 s
    planned_time_ms: 1_200_000,
    run_time_ms: 900_000,
    planned_stop_ms: 600_000,
    downtime_ms: 300_000,
    good: 4_280,
    reject: 100,
};

#[test]
fn oee_per_hour_matches_the_hand_computed_table() {
    let (_, out) = run();
    let hours = oee_events(&out, OeePeriod::Hour);
    assert_eq!(hours.len(), 2, "{hours:#?}");
    assert_eq!(
        (hours[0].period_start, hours[0].period_end),
        (at(13, 0), at(14, 0))
    );
    assert_eq!(
        (hours[1].period_start, hours[1].period_end),
        (at(14, 0), at(15, 0))
    );
    check(&hours[0], &HOUR_13);
    check(&hours[1], &HOUR_14);
    assert_eq!(hours[0].shift.as_deref(), Some("A"));
    assert_eq!(hours[1].shift.as_deref(), Some("B"));
    assert_eq!(hours[1].ideal_rate_per_min, Some(300.0));
}

#[test]
fn oee_per_shift_matches_the_hand_computed_table() {
    let (p, out) = run();
    // Shift A closes at 14:00; only 13:00–14:00 of it was observed, so it equals hour 13.
    let shifts = oee_events(&out, OeePeriod::Shift);
    assert_eq!(shifts.len(), 1, "{shifts:#?}");
    assert_eq!(shifts[0].shift.as_deref(), Some("A"));
    assert_eq!(
        (shifts[0].period_start, shifts[0].period_end),
        (at(6, 0), at(14, 0))
    );
    check(&shifts[0], &HOUR_13);
    // Shift B runs until 22:00: its figures so far equal hour 14.
    let report = p.oee(&filler(), OeePeriod::Shift).unwrap();
    assert_eq!(report.current.len(), 1);
    let b = &report.current[0];
    assert_eq!(b.shift.as_deref(), Some("B"));
    check(b, &HOUR_14);
    assert_eq!(report.recent.len(), 1);
    check(&report.recent[0], &HOUR_13);
}

#[test]
fn oee_per_work_order_matches_the_hand_computed_table() {
    let (p, out) = run();
    let orders = oee_events(&out, OeePeriod::WorkOrder);
    assert_eq!(orders.len(), 2, "{orders:#?}");
    assert_eq!(orders[0].work_order.as_deref(), Some("WO-1"));
    assert_eq!(
        (orders[0].period_start, orders[0].period_end),
        (at(13, 0), at(14, 30))
    );
    check(&orders[0], &WO_1);
    assert_eq!(orders[1].work_order.as_deref(), Some("WO-2"));
    assert_eq!(
        (orders[1].period_start, orders[1].period_end),
        (at(14, 30), at(15, 0))
    );
    check(&orders[1], &WO_2);
    let per_asset = p.work_order_oee("WO-1");
    assert_eq!(per_asset.len(), 1);
    assert_eq!(per_asset[0].0, filler());
    check(&per_asset[0].1, &WO_1);
}

#[test]
fn counts_are_attributed_to_the_work_order_and_shift_they_happened_in() {
    let (_, out) = run();
    let counts = events(&out, |k| match k {
        EventKind::Counts(c) => Some(c),
        _ => None,
    });
    /// Minutes after 13:00, delta, work order, shift, work order count so far.
    type Row<'a> = (i64, u64, Option<&'a str>, Option<&'a str>, Option<u64>);
    let good: Vec<Row<'_>> = counts
        .iter()
        .filter(|(_, _, c)| c.attribute.as_ref() == "good_count")
        .map(|(_, t, c)| {
            (
                (t.unix_nanos() - at(13, 0).unix_nanos()) / common::MINUTE,
                c.delta,
                c.work_order.as_deref(),
                c.shift.as_deref(),
                c.work_order_count,
            )
        })
        .collect();
    assert_eq!(
        good,
        [
            (20, 11_286, Some("WO-1"), Some("A"), Some(11_286)),
            (90, 16_929, Some("WO-1"), Some("B"), Some(28_215)),
            (100, 2_800, Some("WO-2"), Some("B"), Some(2_800)),
            (110, 1_480, Some("WO-2"), Some("B"), Some(4_280)),
        ]
    );
}

#[test]
fn downtimes_of_the_script_are_recorded_with_reasons_and_planning() {
    let (p, out) = run();
    let f = filler();
    let downtimes = p.downtimes(Some(&f), None, None);
    let summary: Vec<(u64, Option<&str>, bool, &str)> = downtimes
        .iter()
        .map(|d| {
            (
                d.downtime.duration_ms / 60_000,
                d.downtime.reason.as_deref(),
                d.downtime.planned,
                &*d.downtime.state,
            )
        })
        .collect();
    // The held downtime is still open at 15:00 (duration 0 until it closes).
    assert_eq!(
        summary,
        [
            (40, None, false, "aborted"),
            (5, None, false, "idle"),
            (0, Some("mechanical/changeover"), true, "held"),
        ]
    );
    let assigned = events(&out, |k| match k {
        EventKind::DowntimeReasonAssigned(a) => Some(a),
        _ => None,
    });
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].1, at(14, 55));
    assert_eq!(assigned[0].2.by.as_deref(), Some("anna"));
}

#[test]
fn a_reason_corrected_after_the_hour_closed_revises_that_hour() {
    let (mut p, _) = run();
    let f = filler();
    // The idle stop at 14:40 was a planned changeover after all.
    let idle = p.downtimes(Some(&f), Some(at(14, 40)), Some(at(14, 41)))[0]
        .downtime
        .id;
    let mut out = Outcome::default();
    p.assign_reason(idle, "mechanical/changeover", Some("anna"), at(15, 10), &mut out)
        .unwrap();
    let revised: Vec<Oee> = oee_events(&out, OeePeriod::Hour);
    assert_eq!(revised.len(), 1);
    assert!(revised[0].revised);
    // Hour 14 without the 5 idle minutes: planned time 2700 s = run time.
    assert_close(revised[0].availability, 1.0);
    assert_eq!(revised[0].planned_stop_ms, 900_000);
    // WO-2 is revised too; shift B is still open and changes in place.
    let orders = oee_events(&out, OeePeriod::WorkOrder);
    assert_eq!(orders.len(), 1);
    assert_close(orders[0].availability, 1.0);
    let b = &p.oee(&f, OeePeriod::Shift).unwrap().current[0];
    assert_close(b.availability, 1.0);
}
