//! Machine states: durations add up exactly to the wall time, downtimes open and close
//! with the states, reasons come from the machine or from people.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use backplane_model::sample::{EventKind, OeePeriod};
use backplane_model::{ContextField, Timestamp, Value};
use backplane_production::{Category, NewWorkOrder, Outcome, Production};
use common::{HOUR, MINUTE, at, context, dairy, events, filler, plan, text};
use rand::{Rng, SeedableRng};

fn ns(t: Timestamp) -> i64 {
    t.unix_nanos()
}

#[test]
fn state_durations_of_a_long_random_scenario_sum_exactly_to_its_wall_time() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(8);
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    let labels = [
        "running",
        "idle",
        "stopped",
        "fault",
        "cleaning",
        "held",
        "not-a-state",
    ];
    p.create_work_order(
        NewWorkOrder {
            id: "WO-R".into(),
            product: "milk".into(),
            asset: "packaging/line-1".into(),
            ideal_rate_per_min: Some(550.0),
            ..NewWorkOrder::default()
        },
        None,
        at(0, 0),
        &mut out,
    )
    .unwrap();
    p.release_work_order("WO-R", None, at(0, 0), &mut out).unwrap();
    // Start at an odd instant, not on any boundary.
    let start = at(5, 17).add_nanos(123_456_789);
    let mut t = start;
    let mut good = 0u64;
    p.observe(&f, "state", &text("running"), t, &mut out);
    for step in 0..5_000 {
        // Gaps from 1 ns to 40 minutes: some changes within one nanosecond, some across
        // several hours, shifts and the daily planned stop.
        let gap = match rng.random_range(0..10) {
            0 => rng.random_range(1..1_000),
            1..=6 => rng.random_range(1..5 * MINUTE),
            _ => rng.random_range(1..40 * MINUTE),
        };
        t = t.add_nanos(gap);
        match rng.random_range(0..20) {
            0..=11 => {
                let label = labels[rng.random_range(0..labels.len())];
                p.observe(&f, "state", &text(label), t, &mut out);
            }
            12..=14 => p.tick(t, &mut out),
            15..=16 => {
                good += rng.random_range(0..500);
                p.observe(&f, "good_count", &Value::UInt(good), t, &mut out);
            }
            17 => {
                let _ = match step % 2 {
                    0 => p.start_work_order("WO-R", None, t, &mut out),
                    _ => p.hold_work_order("WO-R", None, t, &mut out),
                };
            }
            18 => {
                if let Some(id) = p.state(&f).unwrap().downtime {
                    let reason = ["mechanical/changeover", "mechanical/jam"][rng.random_range(0..2)];
                    p.assign_reason(id, reason, Some("anna"), t, &mut out).unwrap();
                }
            }
            _ => p.observe(
                &f,
                "fault_code",
                &Value::UInt(rng.random_range(0..20)),
                t,
                &mut out,
            ),
        }
    }
    let end = t.add_nanos(HOUR);
    p.tick(end, &mut out);
    let wall = ns(end) - ns(start);
    assert!(wall > 3 * 24 * HOUR, "the scenario spans days: {wall}");

    // 1. The state_changed events: each previous state's exact duration (time − since),
    //    plus the current state up to the end.
    let changes = events(&out, |k| match k {
        EventKind::StateChanged(c) => Some(c),
        _ => None,
    });
    let mut by_state: BTreeMap<String, i64> = BTreeMap::new();
    for (_, time, c) in &changes[1..] {
        let since = c.since.unwrap();
        *by_state.entry(c.from.as_deref().unwrap().to_owned()).or_default() += ns(*time) - ns(since);
        assert_eq!(c.duration_ms, ((ns(*time) - ns(since)) / 1_000_000) as u64);
    }
    let view = p.state(&f).unwrap();
    let current = view.state.clone().unwrap();
    *by_state.entry(current.state.to_string()).or_default() += ns(end) - ns(current.since);
    assert_eq!(by_state.values().sum::<i64>(), wall);

    // 2. The accounting behind OEE saw the same time, state by state.
    assert_eq!(view.accounted_to, Some(end));
    assert_eq!(view.durations_ns, by_state);

    // 3. Every full hour accounts for all of its 3600 s.
    let hours = events(&out, |k| match k {
        EventKind::Oee(o) if o.period == OeePeriod::Hour => Some(o),
        _ => None,
    });
    assert!(hours.len() > 70, "{}", hours.len());
    for (_, _, h) in &hours[1..] {
        assert_eq!(h.planned_time_ms + h.planned_stop_ms, 3_600_000, "{h:?}");
        assert_eq!(h.planned_time_ms - h.run_time_ms, h.downtime_ms, "{h:?}");
    }
}

#[test]
fn a_downtime_spans_a_whole_stop_and_closes_when_the_machine_runs() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    p.observe(&f, "state", &text("running"), at(10, 0), &mut out);
    p.observe(&f, "state", &text("idle"), at(10, 5), &mut out);
    p.observe(&f, "state", &text("fault"), at(10, 6), &mut out);
    // A label the model knows but the same state again changes nothing.
    p.observe(&f, "state", &text("fault"), at(10, 7), &mut out);
    p.observe(&f, "state", &text("running"), at(10, 9), &mut out);
    let downtimes = events(&out, |k| match k {
        EventKind::Downtime(d) => Some(d),
        _ => None,
    });
    assert_eq!(downtimes.len(), 2, "one open, one close: {downtimes:#?}");
    let (opened, closed) = (downtimes[0].2, downtimes[1].2);
    assert_eq!(opened.id, closed.id);
    assert_eq!((opened.start, opened.end), (at(10, 5), None));
    assert_eq!(&*opened.state, "idle");
    assert_eq!(closed.end, Some(at(10, 9)));
    assert_eq!(closed.duration_ms, 4 * 60_000);
    let changes = events(&out, |k| match k {
        EventKind::StateChanged(c) => Some(c),
        _ => None,
    });
    let to: Vec<&str> = changes.iter().map(|(_, _, c)| &*c.to).collect();
    assert_eq!(to, ["execute", "idle", "aborted", "execute"]);
    assert_eq!(changes[2].2.code.as_deref(), Some("fault"));
    assert_eq!(
        context(&out, &f, ContextField::MachineState),
        Some(Some("execute".into()))
    );
    let view = p.state(&f).unwrap();
    assert_eq!((view.category, view.downtime), (Some(Category::Running), None));
}

#[test]
fn a_machine_reason_code_is_assigned_and_a_person_can_correct_it() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    p.observe(&f, "state", &text("running"), at(10, 0), &mut out);
    p.observe(&f, "fault_code", &Value::UInt(17), at(10, 1), &mut out);
    p.observe(&f, "state", &text("fault"), at(10, 1), &mut out);
    let id = p.state(&f).unwrap().downtime.unwrap();
    let d = p.downtime(id).unwrap();
    assert_eq!(d.downtime.reason.as_deref(), Some("mechanical/jam"));
    assert_eq!(d.downtime.reason_description.as_deref(), Some("Bottle jam"));
    assert_eq!(d.downtime.by.as_deref(), Some("machine"));
    p.assign_reason(id, "material/shortage", Some("anna"), at(10, 3), &mut out)
        .unwrap();
    // The machine repeating its code does not undo the person's decision.
    p.observe(&f, "fault_code", &Value::UInt(0), at(10, 4), &mut out);
    p.observe(&f, "fault_code", &Value::UInt(17), at(10, 5), &mut out);
    let d = p.downtime(id).unwrap();
    assert_eq!(d.downtime.reason.as_deref(), Some("material/shortage"));
    assert_eq!(d.downtime.by.as_deref(), Some("anna"));
    let assigned = events(&out, |k| match k {
        EventKind::DowntimeReasonAssigned(a) => Some(a),
        _ => None,
    });
    assert_eq!(assigned.len(), 2);
    assert_eq!(assigned[1].2.previous.as_deref(), Some("mechanical/jam"));
}

#[test]
fn assigning_an_unknown_reason_or_downtime_is_refused_with_the_field() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    p.observe(&f, "state", &text("fault"), at(10, 0), &mut out);
    let id = p.state(&f).unwrap().downtime.unwrap();
    let e = p
        .assign_reason(id, "mechanical/jamm", None, at(10, 1), &mut out)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("reason"));
    assert_eq!(
        e.message,
        "unknown reason `mechanical/jamm`; did you mean `mechanical/jam`?"
    );
    let e = p
        .assign_reason(id + 100, "mechanical/jam", None, at(10, 1), &mut out)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("id"));
    assert_eq!(e.kind, backplane_production::ErrorKind::NotFound);
}

const REDUCED: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[downtime_reasons]
cleaning = { description = "Cleaning", planned = true }

[models.Press.attributes]
status = { type = "uint" }

[models.Press.production]
state = { attribute = "status", model = "reduced", map = { 1 = "running", 2 = "down", 3 = "planned_stop" }, default = "down" }

[[assets]]
path = "press"
model = "Press"
"#;

#[test]
fn a_stop_that_turns_planned_splits_its_downtime_unless_a_reason_decided() {
    let mut p = Production::new(&plan(REDUCED));
    let mut out = Outcome::default();
    let press = common::asset_in("acme/plant/press");
    let code = |c: u64| Value::UInt(c);
    p.observe(&press, "status", &code(1), at(8, 0), &mut out);
    p.observe(&press, "status", &code(2), at(8, 10), &mut out);
    p.observe(&press, "status", &code(3), at(8, 20), &mut out);
    // An unmapped code is `down` (the default).
    p.observe(&press, "status", &code(99), at(8, 30), &mut out);
    let id = p.state(&press).unwrap().downtime.unwrap();
    p.assign_reason(id, "cleaning", None, at(8, 35), &mut out)
        .unwrap();
    // Decided by its reason: going to planned_stop no longer splits it.
    p.observe(&press, "status", &code(3), at(8, 40), &mut out);
    p.observe(&press, "status", &code(1), at(8, 50), &mut out);
    p.tick(at(9, 0), &mut out);
    let records: Vec<(i64, u64, bool)> = p
        .downtimes(None, None, None)
        .iter()
        .map(|d| {
            (
                (ns(d.downtime.start) - ns(at(8, 0))) / MINUTE,
                d.downtime.duration_ms / 60_000,
                d.downtime.planned,
            )
        })
        .collect();
    assert_eq!(records, [(10, 10, false), (20, 10, true), (30, 20, true)]);
    let hour = events(&out, |k| match k {
        EventKind::Oee(o) => Some(o),
        _ => None,
    })[0]
        .2;
    // Run 08:00–08:10 and 08:50–09:00 = 20 min; down 08:10–08:20 unplanned = 10 min;
    // planned 08:20–08:50 = 30 min. Availability = 20 / 30.
    assert_eq!(
        (hour.run_time_ms, hour.downtime_ms, hour.planned_stop_ms),
        (1_200_000, 600_000, 1_800_000)
    );
    common::assert_close(hour.availability, 2.0 / 3.0);
    // No counts configured: no performance, quality or OEE... but OEE is 0, nothing made.
    assert_eq!((hour.performance, hour.quality), (Some(0.0), None));
}

#[test]
fn absurd_times_neither_hang_nor_panic() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    let (min, max) = (
        Timestamp::from_unix_nanos(i64::MIN),
        Timestamp::from_unix_nanos(i64::MAX),
    );
    p.observe(&f, "state", &text("running"), min, &mut out);
    p.observe(&f, "good_count", &Value::UInt(u64::MAX), min, &mut out);
    p.tick(max, &mut out);
    p.observe(&f, "state", &text("fault"), max, &mut out);
    p.observe(&f, "good_count", &Value::UInt(0), max, &mut out);
    p.tick(min, &mut out);
    // A jump of centuries accounts only the last week, hour by hour.
    let hours = events(&out, |k| match k {
        EventKind::Oee(o) if o.period == OeePeriod::Hour => Some(o),
        _ => None,
    });
    assert!(hours.len() < 200, "{}", hours.len());
    assert_eq!(p.state(&f).unwrap().state.unwrap().state.as_ref(), "aborted");
}
