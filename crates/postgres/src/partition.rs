//! Partitions of `samples` and `events` by time, without I/O: which partition holds a
//! timestamp, its bounds and name, and which partitions retention may drop. Days, weeks
//! (Monday to Monday) and months are UTC.

use std::time::Duration;

use backplane_model::Timestamp;
use time::{Date, Month, OffsetDateTime};

/// How wide one partition is (`partition = "day" | "week" | "month"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartitionBy {
    Day,
    Week,
    Month,
}

impl PartitionBy {
    pub fn parse(text: &str) -> Option<PartitionBy> {
        match text {
            "day" => Some(PartitionBy::Day),
            "week" => Some(PartitionBy::Week),
            "month" => Some(PartitionBy::Month),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PartitionBy::Day => "day",
            PartitionBy::Week => "week",
            PartitionBy::Month => "month",
        }
    }

    /// The width as a PostgreSQL interval (TimescaleDB chunk interval).
    pub fn interval(self) -> &'static str {
        match self {
            PartitionBy::Day => "1 day",
            PartitionBy::Week => "7 days",
            PartitionBy::Month => "1 month",
        }
    }

    fn letter(self) -> char {
        match self {
            PartitionBy::Day => 'd',
            PartitionBy::Week => 'w',
            PartitionBy::Month => 'm',
        }
    }

    /// The partition holding `time`.
    pub fn of(self, time: Timestamp) -> Partition {
        let date = utc_date(time);
        let start = match self {
            PartitionBy::Day => date,
            PartitionBy::Week => {
                let back = i64::from(date.weekday().number_days_from_monday());
                date.checked_sub(time::Duration::days(back)).unwrap_or(date)
            }
            PartitionBy::Month => date.replace_day(1).unwrap_or(date),
        };
        Partition { by: self, start }
    }
}

/// One partition: `[start, end)` at midnight UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub by: PartitionBy,
    pub start: Date,
}

impl Partition {
    pub fn end(&self) -> Date {
        let next = match self.by {
            PartitionBy::Day => self.start.next_day(),
            PartitionBy::Week => self.start.checked_add(time::Duration::days(7)),
            PartitionBy::Month => {
                let (y, m) = match self.start.month() {
                    Month::December => (self.start.year() + 1, Month::January),
                    m => (self.start.year(), m.next()),
                };
                Date::from_calendar_date(y, m, 1).ok()
            }
        };
        next.unwrap_or(Date::MAX)
    }

    /// The child table's name, e.g. `samples_d20261127`, `samples_w20261123`,
    /// `samples_m202611`.
    pub fn table_name(&self, parent: &str) -> String {
        let (y, m, d) = (self.start.year(), self.start.month() as u8, self.start.day());
        match self.by {
            PartitionBy::Month => format!("{parent}_{}{y:04}{m:02}", self.by.letter()),
            _ => format!("{parent}_{}{y:04}{m:02}{d:02}", self.by.letter()),
        }
    }

    /// Reads a name made by [`table_name`](Self::table_name) back; `None` for any other
    /// table (those are never dropped by retention).
    pub fn from_table_name(parent: &str, name: &str) -> Option<Partition> {
        let rest = name.strip_prefix(parent)?.strip_prefix('_')?;
        let mut chars = rest.chars();
        let by = match chars.next()? {
            'd' => PartitionBy::Day,
            'w' => PartitionBy::Week,
            'm' => PartitionBy::Month,
            _ => return None,
        };
        let digits = chars.as_str();
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let number = |r: std::ops::Range<usize>| digits.get(r)?.parse::<u32>().ok();
        let (y, m, d) = match (by, digits.len()) {
            (PartitionBy::Month, 6) => (number(0..4)?, number(4..6)?, 1),
            (PartitionBy::Day | PartitionBy::Week, 8) => (number(0..4)?, number(4..6)?, number(6..8)?),
            _ => return None,
        };
        let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
        let start = Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()?;
        let p = Partition { by, start };
        (by.of(midnight(start)) == p).then_some(p)
    }

    /// `FROM` bound as a timestamptz literal.
    pub fn from_literal(&self) -> String {
        literal(self.start)
    }

    /// `TO` bound as a timestamptz literal.
    pub fn to_literal(&self) -> String {
        literal(self.end())
    }

    /// Whether every row the partition can hold is older than `retention` at `now`.
    pub fn expired(&self, now: Timestamp, retention: Duration) -> bool {
        let cutoff = now.add_nanos(-i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX));
        midnight(self.end()) <= cutoff
    }
}

fn literal(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02} 00:00:00+00",
        date.year(),
        date.month() as u8,
        date.day()
    )
}

fn utc_date(time: Timestamp) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(time.unix_nanos()))
        .map(|t| t.date())
        .unwrap_or(Date::MIN)
}

fn midnight(date: Date) -> Timestamp {
    let secs = date.midnight().assume_utc().unix_timestamp();
    Timestamp::from_unix_nanos(secs.saturating_mul(1_000_000_000))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_day_partition_runs_from_midnight_to_midnight_utc() {
        let p = PartitionBy::Day.of(at("2026-11-27T23:59:59.999Z"));
        assert_eq!(p.table_name("samples"), "samples_d20261127");
        assert_eq!(p.from_literal(), "2026-11-27 00:00:00+00");
        assert_eq!(p.to_literal(), "2026-11-28 00:00:00+00");
        assert_eq!(
            PartitionBy::Day.of(at("2026-11-28T00:00:00Z")).table_name("s"),
            "s_d20261128"
        );
    }

    #[test]
    fn a_week_starts_on_monday_and_a_month_on_the_first() {
        // 2026-11-27 is a Friday.
        let w = PartitionBy::Week.of(at("2026-11-27T10:00:00Z"));
        assert_eq!(w.table_name("samples"), "samples_w20261123");
        assert_eq!(w.to_literal(), "2026-11-30 00:00:00+00");
        let m = PartitionBy::Month.of(at("2026-12-31T10:00:00Z"));
        assert_eq!(m.table_name("events"), "events_m202612");
        assert_eq!(m.to_literal(), "2027-01-01 00:00:00+00");
    }

    #[test]
    fn names_read_back_and_foreign_tables_are_ignored() {
        for by in [PartitionBy::Day, PartitionBy::Week, PartitionBy::Month] {
            let p = by.of(at("2026-02-11T10:00:00Z"));
            assert_eq!(
                Partition::from_table_name("samples", &p.table_name("samples")),
                Some(p)
            );
        }
        for name in [
            "samples_default",
            "samples_d2026112",
            "samples_w20261124", // not a Monday
            "samples_m20261",
            "samples_d20261341",
            "events_d20261127",
            "samples_x20261127",
        ] {
            assert_eq!(Partition::from_table_name("samples", name), None, "{name}");
        }
    }

    #[test]
    fn a_partition_expires_once_its_end_is_older_than_the_retention() {
        let day = Duration::from_secs(86_400);
        let p = PartitionBy::Day.of(at("2026-01-01T12:00:00Z"));
        assert!(!p.expired(at("2026-01-31T23:59:59Z"), 30 * day));
        assert!(p.expired(at("2026-02-01T00:00:00Z"), 30 * day));
    }
}
