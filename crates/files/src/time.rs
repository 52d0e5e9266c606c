//! Record times: how the text of a file's time column becomes a timestamp.
//!
//! Formats: `rfc3339` (an offset in the text wins; without one, e.g. `2026-12-05 10:15:00`,
//! the text is a local time in the configured zone), `unix` (seconds, decimals allowed),
//! `unix_ms`, or a strftime pattern such as `%d.%m.%Y %H:%M:%S` (an instrument's own
//! format; `%z` in it gives the offset, else the configured zone applies). Local times
//! that a DST change makes ambiguous or skips are resolved as jiff's `compatible` does:
//! the earlier of two, the later side of a gap.

use backplane_model::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// How a time column is written.
#[derive(Clone, Debug, PartialEq)]
pub enum TimeFormat {
    Rfc3339,
    Unix,
    UnixMs,
    /// A strftime pattern (jiff's `strtime`).
    Pattern(String),
}

impl TimeFormat {
    /// Reads the configuration's spelling; anything that is not a keyword is a pattern,
    /// which must hold at least one `%` directive.
    pub fn parse(text: &str) -> Result<TimeFormat, String> {
        Ok(match text {
            "rfc3339" => TimeFormat::Rfc3339,
            "unix" => TimeFormat::Unix,
            "unix_ms" => TimeFormat::UnixMs,
            pattern if pattern.contains('%') => TimeFormat::Pattern(pattern.to_owned()),
            other => {
                return Err(format!(
                    "`{other}` is neither rfc3339, unix, unix_ms nor a strftime pattern"
                ));
            }
        })
    }
}

impl std::fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeFormat::Rfc3339 => f.write_str("rfc3339"),
            TimeFormat::Unix => f.write_str("unix"),
            TimeFormat::UnixMs => f.write_str("unix_ms"),
            TimeFormat::Pattern(p) => f.write_str(p),
        }
    }
}

/// A time format with the zone local times are in.
#[derive(Clone, Debug)]
pub struct TimeParser {
    pub format: TimeFormat,
    pub zone: TimeZone,
}

impl TimeParser {
    /// The timestamp `text` is, or why not (for the quarantine reason).
    pub fn parse(&self, text: &str) -> Result<Timestamp, String> {
        let text = text.trim();
        let bad = |why: String| format!("time {text:?} is not {}: {why}", self.describe());
        let at = match &self.format {
            TimeFormat::Rfc3339 => match text.parse::<jiff::Timestamp>() {
                Ok(t) => t,
                Err(with_offset) => text
                    .parse::<DateTime>()
                    .map_err(|_| bad(with_offset.to_string()))
                    .and_then(|dt| self.local(dt).map_err(bad))?,
            },
            TimeFormat::Unix => {
                let seconds: f64 = text.parse().map_err(|_| bad("not a number".into()))?;
                return from_nanos(seconds * 1e9).ok_or_else(|| bad("out of range".into()));
            }
            TimeFormat::UnixMs => {
                let millis: f64 = text.parse().map_err(|_| bad("not a number".into()))?;
                return from_nanos(millis * 1e6).ok_or_else(|| bad("out of range".into()));
            }
            TimeFormat::Pattern(pattern) => {
                let parts = jiff::fmt::strtime::parse(pattern, text).map_err(|e| bad(e.to_string()))?;
                match parts.to_timestamp() {
                    Ok(t) => t,
                    Err(_) => {
                        let dt = parts.to_datetime().map_err(|e| bad(e.to_string()))?;
                        self.local(dt).map_err(bad)?
                    }
                }
            }
        };
        i64::try_from(at.as_nanosecond())
            .map(Timestamp::from_unix_nanos)
            .map_err(|_| bad("out of range".into()))
    }

    fn local(&self, dt: DateTime) -> Result<jiff::Timestamp, String> {
        self.zone
            .to_ambiguous_zoned(dt)
            .compatible()
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        match &self.format {
            TimeFormat::Rfc3339 => "RFC 3339".to_owned(),
            TimeFormat::Unix => "unix seconds".to_owned(),
            TimeFormat::UnixMs => "unix milliseconds".to_owned(),
            TimeFormat::Pattern(p) => format!("`{p}`"),
        }
    }
}

fn from_nanos(nanos: f64) -> Option<Timestamp> {
    // Years 1677..2262: what i64 nanoseconds hold.
    (nanos.is_finite() && nanos.abs() < 9.2e18).then(|| Timestamp::from_unix_nanos(nanos as i64))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parser(format: &str, zone: &str) -> TimeParser {
        TimeParser {
            format: TimeFormat::parse(format).unwrap(),
            zone: TimeZone::get(zone).unwrap(),
        }
    }

    fn nanos(p: &TimeParser, text: &str) -> i64 {
        p.parse(text).unwrap().unix_nanos()
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn rfc3339_with_offset_ignores_the_zone_and_without_takes_it() {
        let p = parser("rfc3339", "Europe/Berlin");
        assert_eq!(nanos(&p, "1970-01-01T01:00:00Z"), 3600 * S);
        assert_eq!(nanos(&p, "1970-01-01T01:00:00+01:00"), 0);
        // Berlin is UTC+1 in winter, UTC+2 in summer.
        assert_eq!(
            nanos(&p, "2026-01-15 13:00:00"),
            nanos(&p, "2026-01-15T12:00:00Z")
        );
        assert_eq!(
            nanos(&p, "2026-07-15T13:00:00"),
            nanos(&p, "2026-07-15T11:00:00Z")
        );
    }

    #[test]
    fn instrument_patterns_and_unix_times_parse() {
        let p = parser("%d.%m.%Y %H:%M:%S", "UTC");
        assert_eq!(nanos(&p, "01.01.1970 00:01:05"), 65 * S);
        let p = parser("%m/%d/%Y %I:%M %p", "America/New_York");
        assert_eq!(nanos(&p, "01/01/1970 12:00 AM"), 5 * 3600 * S);
        assert_eq!(nanos(&parser("unix", "UTC"), "1.5"), 1_500_000_000);
        assert_eq!(nanos(&parser("unix_ms", "UTC"), "2500"), 2_500_000_000);
    }

    #[test]
    fn unparsable_times_say_which_text_and_format() {
        let e = parser("%d.%m.%Y %H:%M:%S", "UTC")
            .parse("2026-12-05")
            .unwrap_err();
        assert!(e.contains("\"2026-12-05\"") && e.contains("%d.%m.%Y"), "{e}");
        let e = parser("rfc3339", "UTC").parse("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
        assert!(parser("unix", "UTC").parse("1e300").is_err());
        assert!(TimeFormat::parse("dd.mm.yyyy").is_err());
    }
}
