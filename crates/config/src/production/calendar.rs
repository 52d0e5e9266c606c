//! `[calendar]`: shifts and daily planned stops in local wall-clock time, with their
//! times of day, days of the week and the check that shifts do not overlap.

use super::{at, check_context_value};
use crate::reader::{Item, suggest};

/// `[calendar]`: shifts and daily planned stops, in local wall-clock time.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarSpec {
    /// Local time minus UTC, in minutes (`+01:00` is 60). Fixed: daylight saving time is
    /// not followed.
    pub utc_offset_minutes: i32,
    /// Never overlapping.
    pub shifts: Vec<Window>,
    /// May overlap each other and the shifts.
    pub planned_stops: Vec<Window>,
}

/// A recurring stretch of local time: a shift or a planned stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    /// Minutes after local midnight, 0 ..= 1439.
    pub start_minute: u16,
    /// Minutes after local midnight, 0 ..= 1440. At or before `start_minute`, the window
    /// ends the next day; equal to it, the window lasts 24 hours.
    pub end_minute: u16,
    /// The days on which the window starts.
    pub days: Days,
}

impl Window {
    /// Length in minutes, 1 ..= 1440.
    pub fn length_minutes(&self) -> u32 {
        let (start, end) = (u32::from(self.start_minute), u32::from(self.end_minute));
        if end > start {
            end - start
        } else {
            end + 1440 - start
        }
    }
}

/// A set of weekdays; bit 0 is Monday, bit 6 Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub u8);

impl Days {
    pub const ALL: Days = Days(0x7f);
    pub const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    /// `weekday` counts from Monday = 0.
    pub fn contains(self, weekday: u32) -> bool {
        weekday < 7 && self.0 & (1 << weekday) != 0
    }
}

const TIME_HINT: &str = "write local wall-clock time as \"HH:MM\", e.g. \"06:00\" or \"22:30\"";

pub(super) fn read_calendar(items: Vec<Item<'_>>) -> Option<CalendarSpec> {
    let mut items = items.into_iter();
    let first = items.next()?;
    for again in items {
        again.error(
            "`calendar` is defined twice",
            Some(format!("first defined at {}; keep one", at(&first))),
        );
    }
    let mut t = first.expect_table()?;
    let offset = t.required_item("utc_offset").and_then(|item| {
        let text = item.expect_str()?;
        let parsed = parse_offset(text);
        if parsed.is_none() {
            item.error(
                format!("invalid UTC offset `{text}`"),
                Some("write the local time's offset from UTC as \"+01:00\", \"-05:00\" or \"Z\"".to_owned()),
            );
        }
        parsed
    });
    let shifts = t
        .optional_item("shifts")
        .map(|item| read_windows(&item, "shift"))
        .unwrap_or_default();
    let planned_stops = t
        .optional_item("planned_stops")
        .map(|item| read_windows(&item, "planned stop"))
        .unwrap_or_default();
    check_overlaps(&shifts);
    t.finish();
    Some(CalendarSpec {
        utc_offset_minutes: offset?,
        shifts: shifts.into_iter().map(|(w, _)| w).collect(),
        planned_stops: planned_stops.into_iter().map(|(w, _)| w).collect(),
    })
}

/// `Z`, `+HH:MM` or `-HH:MM` (at most 14 hours) to minutes.
fn parse_offset(text: &str) -> Option<i32> {
    if text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60 && h * 60 + m <= 14 * 60).then_some(sign * (h * 60 + m))
}

/// `HH:MM` to minutes after midnight; `24:00` only when `end`.
fn parse_time_of_day(text: &str, end: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn read_windows<'a>(item: &Item<'a>, what: &str) -> Vec<(Window, Item<'a>)> {
    let Some(items) = item.expect_array() else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|entry| {
            let window = read_window(&entry, what)?;
            Some((window, entry))
        })
        .collect()
}

fn read_window(item: &Item<'_>, what: &str) -> Option<Window> {
    let mut t = item.expect_table()?;
    let name = t.required_item("name").and_then(|item| {
        let text = item.expect_str()?;
        check_context_value(&item, text, &format!("a {what} name")).then(|| text.to_owned())
    });
    let mut time = |key: &str, end: bool| {
        let item = t.required_item(key)?;
        let text = item.expect_str()?;
        let parsed = parse_time_of_day(text, end);
        if parsed.is_none() {
            let hint = if text == "24:00" {
                "24:00 is only allowed as an end; a window starting at midnight starts at \"00:00\""
            } else {
                TIME_HINT
            };
            item.error(format!("invalid time of day `{text}`"), Some(hint.to_owned()));
        }
        parsed
    };
    let start = time("start", false);
    let end = time("end", true);
    let days = match t.optional_item("days") {
        None => Some(Days::ALL),
        Some(item) => read_days(&item),
    };
    t.finish();
    Some(Window {
        name: name?,
        start_minute: start?,
        end_minute: end?,
        days: days?,
    })
}

fn read_days(item: &Item<'_>) -> Option<Days> {
    let entries = item.expect_array()?;
    if entries.is_empty() {
        item.error(
            "`days` is empty",
            Some(
                "list the days it starts on, e.g. [\"mon\", \"tue\"], or leave `days` out for every day"
                    .to_owned(),
            ),
        );
        return None;
    }
    let mut days = 0u8;
    let mut ok = true;
    for entry in entries {
        let Some(text) = entry.expect_str() else {
            ok = false;
            continue;
        };
        match Days::NAMES.iter().position(|d| *d == text) {
            Some(i) if days & (1 << i) != 0 => {
                entry.error(format!("day `{text}` is listed twice"), None);
                ok = false;
            }
            Some(i) => days |= 1 << i,
            None => {
                entry.error(
                    format!("unknown day `{text}`"),
                    suggest(text, Days::NAMES, "days"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(Days(days))
}

const WEEK_MINUTES: usize = 7 * 1440;

/// Shifts must not overlap: each minute of the week belongs to at most one shift.
fn check_overlaps(shifts: &[(Window, Item<'_>)]) {
    let mut owner: Vec<Option<usize>> = vec![None; WEEK_MINUTES];
    for (i, (shift, item)) in shifts.iter().enumerate() {
        let mut clash: Option<(usize, usize)> = None;
        for day in 0..7usize {
            if !shift.days.contains(day as u32) {
                continue;
            }
            for m in 0..shift.length_minutes() as usize {
                let slot = (day * 1440 + usize::from(shift.start_minute) + m) % WEEK_MINUTES;
                match owner[slot] {
                    Some(j) if clash.is_none() => clash = Some((j, slot)),
                    Some(_) => {}
                    None => owner[slot] = Some(i),
                }
            }
        }
        if let Some((j, slot)) = clash {
            let other = &shifts[j].0;
            item.error(
                format!(
                    "shift `{}` overlaps shift `{}` (both on {} at {:02}:{:02})",
                    shift.name,
                    other.name,
                    Days::NAMES[slot / 1440],
                    (slot % 1440) / 60,
                    slot % 60
                ),
                Some(
                    "shifts must not overlap: end one where the next starts, or give them different `days`"
                        .to_owned(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_times_of_day_parse_strictly() {
        assert_eq!(parse_offset("+01:00"), Some(60));
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("+1"), None);
        assert_eq!(parse_offset("+15:00"), None);
        assert_eq!(parse_time_of_day("06:00", false), Some(360));
        assert_eq!(parse_time_of_day("24:00", true), Some(1440));
        assert_eq!(parse_time_of_day("24:00", false), None);
        assert_eq!(parse_time_of_day("6:00", false), None);
        assert_eq!(parse_time_of_day("06:60", false), None);
    }

    #[test]
    fn windows_crossing_midnight_and_whole_days_have_their_length() {
        let w = |start, end| Window {
            name: "x".into(),
            start_minute: start,
            end_minute: end,
            days: Days::ALL,
        };
        assert_eq!(w(360, 840).length_minutes(), 480);
        assert_eq!(w(1320, 360).length_minutes(), 480);
        assert_eq!(w(360, 360).length_minutes(), 1440);
        assert_eq!(w(0, 1440).length_minutes(), 1440);
    }
}
