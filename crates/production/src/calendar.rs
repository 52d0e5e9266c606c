//! The shift calendar: which shift is on at an instant, whether a planned stop is, and
//! where the next hour, shift or stop boundary lies.
//!
//! Times in the configuration are local wall-clock times at a fixed UTC offset; instants
//! are UTC [`Timestamp`]s. A window (shift or planned stop) belongs to the day it starts
//! on, so a night shift `22:00`–`06:00` on Monday ends on Tuesday morning.

use std::sync::Arc;

use backplane_config::production::{CalendarSpec, Days, Window};
use backplane_model::Timestamp;

pub(crate) const MINUTE_NS: i64 = 60_000_000_000;
pub(crate) const HOUR_NS: i64 = 60 * MINUTE_NS;
pub(crate) const DAY_NS: i64 = 24 * HOUR_NS;

/// One occurrence of a shift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShiftInstance {
    pub name: Arc<str>,
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Clone, Debug)]
struct Slot {
    name: Arc<str>,
    start_ns: i64,
    length_ns: i64,
    days: Days,
}

impl Slot {
    fn new(w: &Window) -> Slot {
        Slot {
            name: w.name.as_str().into(),
            start_ns: i64::from(w.start_minute) * MINUTE_NS,
            length_ns: i64::from(w.length_minutes()) * MINUTE_NS,
            days: w.days,
        }
    }
}

/// A compiled `[calendar]`.
#[derive(Clone, Debug)]
pub struct Calendar {
    offset_ns: i64,
    shifts: Vec<Slot>,
    stops: Vec<Slot>,
}

/// Monday = 0 for a count of days since 1970-01-01 (a Thursday).
fn weekday(day: i64) -> u32 {
    (day + 3).rem_euclid(7) as u32
}

impl Calendar {
    pub fn new(spec: &CalendarSpec) -> Calendar {
        Calendar {
            offset_ns: i64::from(spec.utc_offset_minutes) * MINUTE_NS,
            shifts: spec.shifts.iter().map(Slot::new).collect(),
            stops: spec.planned_stops.iter().map(Slot::new).collect(),
        }
    }

    /// A calendar with no shifts or stops at UTC: only hours.
    pub fn hours_only() -> Calendar {
        Calendar {
            offset_ns: 0,
            shifts: Vec::new(),
            stops: Vec::new(),
        }
    }

    fn local(&self, t: Timestamp) -> i64 {
        t.unix_nanos().saturating_add(self.offset_ns)
    }

    fn utc(&self, local: i64) -> Timestamp {
        Timestamp::from_unix_nanos(local.saturating_sub(self.offset_ns))
    }

    /// Occurrences `(slot, local start, local end)` of `slots` starting on the day before
    /// `local`'s day through the day after.
    fn around<'a>(
        &'a self,
        slots: &'a [Slot],
        local: i64,
    ) -> impl Iterator<Item = (&'a Slot, i64, i64)> + 'a {
        let day = local.div_euclid(DAY_NS);
        (day - 1..=day + 1).flat_map(move |d| {
            slots
                .iter()
                .filter(move |s| s.days.contains(weekday(d)))
                .map(move |s| {
                    let start = d.saturating_mul(DAY_NS).saturating_add(s.start_ns);
                    (s, start, start.saturating_add(s.length_ns))
                })
        })
    }

    /// The shift on at `t`, if any.
    pub fn shift_at(&self, t: Timestamp) -> Option<ShiftInstance> {
        let local = self.local(t);
        self.around(&self.shifts, local)
            .find(|(_, start, end)| *start <= local && local < *end)
            .map(|(slot, start, end)| ShiftInstance {
                name: slot.name.clone(),
                start: self.utc(start),
                end: self.utc(end),
            })
    }

    /// True while a planned stop of the calendar is on.
    pub fn in_planned_stop(&self, t: Timestamp) -> bool {
        let local = self.local(t);
        self.around(&self.stops, local)
            .any(|(_, start, end)| start <= local && local < end)
    }

    /// The start of the local hour containing `t`.
    pub fn hour_start(&self, t: Timestamp) -> Timestamp {
        let local = self.local(t);
        self.utc(local - local.rem_euclid(HOUR_NS))
    }

    /// The first shift or planned-stop boundary after `t`, or the next local hour,
    /// whichever comes first: between two such instants nothing the calendar decides
    /// changes.
    pub fn next_boundary(&self, t: Timestamp) -> Timestamp {
        let local = self.local(t);
        let mut next = (local - local.rem_euclid(HOUR_NS)).saturating_add(HOUR_NS);
        for (_, start, end) in self
            .around(&self.shifts, local)
            .chain(self.around(&self.stops, local))
        {
            for edge in [start, end] {
                if edge > local && edge < next {
                    next = edge;
                }
            }
        }
        self.utc(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(name: &str, start: u16, end: u16, days: Days) -> Window {
        Window {
            name: name.into(),
            start_minute: start,
            end_minute: end,
            days,
        }
    }

    /// Monday 2026-11-23 at `h:m` local (+01:00).
    fn at(h: i64, m: i64) -> Timestamp {
        let monday = Timestamp::parse_rfc3339("2026-11-23T00:00:00+01:00").unwrap();
        monday.add_nanos(h * HOUR_NS + m * MINUTE_NS)
    }

    fn calendar() -> Calendar {
        Calendar::new(&CalendarSpec {
            utc_offset_minutes: 60,
            shifts: vec![
                window("A", 360, 840, Days::ALL),
                window("B", 840, 1320, Days::ALL),
                // Night shift only from Monday to Friday evening.
                window("C", 1320, 360, Days(0b001_1111)),
            ],
            planned_stops: vec![window("cleaning", 330, 360, Days::ALL)],
        })
    }

    #[test]
    fn shifts_are_found_in_local_time_across_midnight() {
        let c = calendar();
        assert_eq!(c.shift_at(at(6, 0)).unwrap().name.as_ref(), "A");
        assert_eq!(c.shift_at(at(13, 59)).unwrap().name.as_ref(), "A");
        assert_eq!(c.shift_at(at(14, 0)).unwrap().name.as_ref(), "B");
        let night = c.shift_at(at(23, 0)).unwrap();
        assert_eq!(night.name.as_ref(), "C");
        assert_eq!(night.start, at(22, 0));
        assert_eq!(night.end, at(30, 0));
        // Monday 03:00 is Sunday's night shift, which does not exist.
        assert_eq!(c.shift_at(at(3, 0)), None);
        // Tuesday 03:00 is Monday's night shift.
        assert_eq!(c.shift_at(at(27, 0)).unwrap().start, at(22, 0));
    }

    #[test]
    fn planned_stops_and_boundaries_split_time_where_the_calendar_changes() {
        let c = calendar();
        assert!(c.in_planned_stop(at(5, 30)));
        assert!(!c.in_planned_stop(at(6, 0)));
        assert_eq!(c.next_boundary(at(5, 10)), at(5, 30));
        assert_eq!(c.next_boundary(at(5, 30)), at(6, 0));
        assert_eq!(c.next_boundary(at(13, 15)), at(14, 0));
        assert_eq!(c.next_boundary(at(13, 15).add_nanos(1)), at(14, 0));
        assert_eq!(c.hour_start(at(13, 15)), at(13, 0));
    }

    #[test]
    fn half_hour_offsets_keep_local_hours() {
        let c = Calendar::new(&CalendarSpec {
            utc_offset_minutes: 330,
            shifts: vec![],
            planned_stops: vec![],
        });
        let t = Timestamp::parse_rfc3339("2026-11-23T10:20:00+05:30").unwrap();
        let start = Timestamp::parse_rfc3339("2026-11-23T10:00:00+05:30").unwrap();
        assert_eq!(c.hour_start(t), start);
        assert_eq!(c.next_boundary(t), start.add_nanos(HOUR_NS));
    }
}
