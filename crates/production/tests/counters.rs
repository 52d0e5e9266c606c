//! Raw counters: the first reading is a baseline, rollovers at 16 and 32 bits continue
//! the count, a power cycle to 0 is a reset that counts what was made since.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_model::Value;
use backplane_model::sample::{CounterChange, EventKind};
use backplane_production::Outcome;
use backplane_production::counters::{Counter, Increment};
use common::{at, dairy, events, filler};

const U32: Option<u64> = Some(4_294_967_296);
const U16: Option<u64> = Some(65_536);

fn inc(delta: u64, change: CounterChange) -> Option<Increment> {
    Some(Increment { delta, change })
}

#[test]
fn first_reading_is_a_baseline_that_counts_nothing() {
    let mut c = Counter::default();
    assert_eq!(c.observe(123_456, U32), None);
    assert_eq!(c.observe(123_460, U32), inc(4, CounterChange::Increment));
}

#[test]
fn a_32_bit_counter_rolls_over_at_2_pow_32() {
    let mut c = Counter::default();
    c.observe(4_294_967_290, U32);
    // 4294967290 → 4294967295 is 5, → 0 is 1 more, → 3 is 3 more.
    assert_eq!(c.observe(3, U32), inc(9, CounterChange::Rollover));
    assert_eq!(c.observe(10, U32), inc(7, CounterChange::Increment));
}

#[test]
fn a_16_bit_counter_rolls_over_at_65536() {
    let mut c = Counter::default();
    c.observe(65_530, U16);
    assert_eq!(c.observe(4, U16), inc(10, CounterChange::Rollover));
    // Exactly at the wrap: 65535 → 0 is one piece.
    c.observe(65_535, U16);
    assert_eq!(c.observe(0, U16), inc(1, CounterChange::Rollover));
}

#[test]
fn a_power_cycle_to_zero_is_a_reset_that_counts_what_was_made_since() {
    let mut c = Counter::default();
    c.observe(40_000, U16);
    // A rollover would mean 25536 pieces in one reading: implausible, so a reset.
    assert_eq!(c.observe(0, U16), inc(0, CounterChange::Reset));
    assert_eq!(c.observe(12, U16), inc(12, CounterChange::Increment));
    // Reset and 7 pieces made before the next reading.
    c.observe(30_000, U16);
    assert_eq!(c.observe(7, U16), inc(7, CounterChange::Reset));
    // Without a modulus, any decrease is a reset.
    let mut plain = Counter::default();
    plain.observe(4_294_967_290, None);
    assert_eq!(plain.observe(3, None), inc(3, CounterChange::Reset));
}

#[test]
fn rollover_plausibility_ends_below_a_sixteenth_of_the_range() {
    // 65536 / 16 = 4096: a wrapped difference of 4095 is a rollover, 4096 a reset.
    let mut c = Counter::default();
    c.observe(65_536 - 4_000, U16);
    assert_eq!(c.observe(95, U16), inc(4_095, CounterChange::Rollover));
    c.observe(65_536 - 4_000, U16);
    assert_eq!(c.observe(96, U16), inc(96, CounterChange::Reset));
}

#[test]
fn the_filler_publishes_counts_through_rollover_and_reset() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    let readings: [(&str, u64); 7] = [
        ("good_count", 4_294_967_000), // baseline
        ("reject_count", 65_500),      // baseline
        ("good_count", 4_294_967_295), // +295
        ("good_count", 204),           // +1 +204 rollover at 2^32
        ("reject_count", 10),          // +36 +10 rollover at 2^16
        ("good_count", 0),             // reset (power cycle)
        ("good_count", 50),            // +50
    ];
    for (i, (attribute, raw)) in readings.into_iter().enumerate() {
        let t = at(10, 0).add_nanos(i as i64 * 1_000_000_000);
        p.observe(&f, attribute, &Value::UInt(raw), t, &mut out);
    }
    let counts: Vec<(&str, u64, CounterChange)> = events(&out, |k| match k {
        EventKind::Counts(c) => Some(c),
        _ => None,
    })
    .into_iter()
    .map(|(_, _, c)| (&*c.attribute, c.delta, c.change))
    .collect();
    assert_eq!(
        counts,
        [
            ("good_count", 295, CounterChange::Increment),
            ("good_count", 205, CounterChange::Rollover),
            ("reject_count", 46, CounterChange::Rollover),
            ("good_count", 0, CounterChange::Reset),
            ("good_count", 50, CounterChange::Increment),
        ]
    );
    // Shift A of the hour so far: 295 + 205 + 50 good, 46 reject.
    let hour = &p
        .oee(&f, backplane_model::sample::OeePeriod::Hour)
        .unwrap()
        .current[0];
    assert_eq!((hour.good, hour.reject, hour.total), (550, 46, 596));
}

#[test]
fn readings_that_are_not_whole_non_negative_numbers_are_ignored() {
    let mut p = dairy();
    let mut out = Outcome::default();
    let f = filler();
    p.observe(&f, "good_count", &Value::UInt(10), at(10, 0), &mut out);
    p.observe(&f, "good_count", &Value::Float(12.5), at(10, 1), &mut out);
    p.observe(&f, "good_count", &Value::Int(-3), at(10, 2), &mut out);
    p.observe(&f, "good_count", &Value::String("x".into()), at(10, 3), &mut out);
    p.observe(&f, "good_count", &Value::Float(15.0), at(10, 4), &mut out);
    let deltas: Vec<u64> = events(&out, |k| match k {
        EventKind::Counts(c) => Some(c),
        _ => None,
    })
    .into_iter()
    .map(|(_, _, c)| c.delta)
    .collect();
    assert_eq!(deltas, [5]);
}
