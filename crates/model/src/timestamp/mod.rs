//! UTC timestamps with nanosecond resolution.

mod rfc3339;

use std::fmt;
use std::num::NonZeroU64;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339 as Rfc3339Format;

pub use rfc3339::Rfc3339;

/// Nanoseconds since the Unix epoch, UTC. Covers the years 1678 to 2262, less the range's
/// very first nanosecond (`i64::MIN`), which reads as the next one: that one value is what
/// lets `Option<Timestamp>` (a sample's source time) fit in 8 bytes instead of 16, in every
/// sample and every tag's cached latest sample.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(NonZeroU64);

/// The nanoseconds with their sign bit flipped: the order stays (`i64::MIN` is the least,
/// `0`), so comparisons need no unpacking.
const SIGN: u64 = 1 << 63;

impl Timestamp {
    pub const fn from_unix_nanos(nanos: i64) -> Timestamp {
        match NonZeroU64::new((nanos as u64) ^ SIGN) {
            Some(packed) => Timestamp(packed),
            // i64::MIN: the next nanosecond.
            None => Timestamp(NonZeroU64::MIN),
        }
    }

    pub const fn unix_nanos(self) -> i64 {
        (self.0.get() ^ SIGN) as i64
    }

    pub fn from_unix_millis(millis: i64) -> Timestamp {
        Timestamp::from_unix_nanos(millis.saturating_mul(1_000_000))
    }

    pub fn now() -> Timestamp {
        let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            // A clock set before 1970 is a misconfigured box, not a reason to stop.
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        };
        Timestamp::from_unix_nanos(nanos)
    }

    /// Adds a (possibly negative) number of nanoseconds, saturating at the ends of the range.
    pub fn add_nanos(self, nanos: i64) -> Timestamp {
        Timestamp::from_unix_nanos(self.unix_nanos().saturating_add(nanos))
    }

    /// Parses an RFC 3339 timestamp with any offset; the result is UTC.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let dt = OffsetDateTime::parse(text, &Rfc3339Format).ok()?;
        i64::try_from(dt.unix_timestamp_nanos())
            .ok()
            .map(Timestamp::from_unix_nanos)
    }

    /// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-27T10:00:00.123456789Z` (trailing
    /// zeros of the fraction left out); see [`rfc3339`](Self::rfc3339) to write it without
    /// allocating.
    pub fn to_rfc3339(self) -> String {
        self.rfc3339().as_str().to_owned()
    }
}

impl Default for Timestamp {
    /// The Unix epoch.
    fn default() -> Timestamp {
        Timestamp::from_unix_nanos(0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Timestamp").field(&self.unix_nanos()).finish()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.rfc3339().as_str())
    }
}

/// Reads what [`Serialize`] writes: RFC 3339 (any offset, normalized to UTC), or the
/// `@{nanos}ns` form used for instants outside the years RFC 3339 can spell.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp such as \"2026-11-27T10:00:00Z\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                if let Some(nanos) = text.strip_prefix('@').and_then(|t| t.strip_suffix("ns"))
                    && let Ok(nanos) = nanos.parse::<i64>()
                {
                    return Ok(Timestamp::from_unix_nanos(nanos));
                }
                Timestamp::parse_rfc3339(text)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_rejects_garbage() {
        let t = Timestamp::from_unix_nanos(1_795_000_000_123_456_789);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        let far = Timestamp::from_unix_nanos(i64::MIN);
        let json = serde_json::to_string(&far).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), far);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }

    #[test]
    fn nanoseconds_round_trip_in_order_and_an_optional_timestamp_takes_eight_bytes() {
        let all = [
            i64::MIN + 1,
            -1_000_000_000,
            -1,
            0,
            1,
            1_795_000_000_123_456_789,
            i64::MAX,
        ];
        for w in all.windows(2) {
            let (a, b) = (Timestamp::from_unix_nanos(w[0]), Timestamp::from_unix_nanos(w[1]));
            assert_eq!((a.unix_nanos(), b.unix_nanos()), (w[0], w[1]));
            assert!(a < b, "{} < {}", w[0], w[1]);
        }
        assert_eq!(Timestamp::from_unix_nanos(i64::MIN).unix_nanos(), i64::MIN + 1);
        assert_eq!(Timestamp::default().unix_nanos(), 0);
        assert_eq!(
            Timestamp::from_unix_nanos(i64::MAX).add_nanos(1).unix_nanos(),
            i64::MAX
        );
        assert_eq!(
            Timestamp::from_unix_nanos(i64::MIN + 1)
                .add_nanos(-1)
                .unix_nanos(),
            i64::MIN + 1
        );
        assert_eq!(format!("{:?}", Timestamp::from_unix_nanos(-5)), "Timestamp(-5)");
        assert_eq!(std::mem::size_of::<Option<Timestamp>>(), 8);
    }

    #[test]
    fn rfc3339_round_trips_with_nanoseconds() {
        let t = Timestamp::from_unix_nanos(1_795_000_000_123_456_789);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert!(t.to_rfc3339().ends_with('Z'));
    }

    #[test]
    fn offsets_are_normalized_to_utc() {
        let a = Timestamp::parse_rfc3339("2026-01-01T01:00:00+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(a, b);
    }
}
