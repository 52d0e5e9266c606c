//! RFC 3339 text of a [`Timestamp`] without allocating or going through `time`'s
//! formatter: every sample payload carries one or two, so this is on the per-sample path.
//! Byte for byte what `time`'s `Rfc3339` writes for the UTC instant (fraction digits with
//! trailing zeros trimmed, none when whole seconds, `Z`), and `@{nanos}ns` for instants
//! whose year has no four digits (which an `i64` of nanoseconds cannot reach: 1677–2262).

use super::Timestamp;

/// The longest text: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (30) or `@-9223372036854775808ns` (23).
const MAX_LEN: usize = 30;

/// A timestamp's RFC 3339 text, on the stack.
#[derive(Clone, Copy)]
pub struct Rfc3339 {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl Rfc3339 {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written; the check is a few instructions on 30 bytes.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl std::fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// The proleptic Gregorian (year, month, day) of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`, exact for every `i64` day the caller can give).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // In range by construction: day in [1, 31], month in [1, 12].
    (year, month as u32, day as u32)
}

/// Writes `value` (< 10^N) as N decimal digits at `buf[at..at + N]`.
fn digits<const N: usize>(buf: &mut [u8; MAX_LEN], at: usize, mut value: u32) {
    for i in (at..at + N).rev() {
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl Timestamp {
    /// RFC 3339 in UTC with up to nanoseconds, e.g. `2026-11-27T10:00:00.5Z`; what
    /// [`to_rfc3339`](Self::to_rfc3339), [`Display`](std::fmt::Display) and `Serialize`
    /// write, without allocating.
    pub fn rfc3339(self) -> Rfc3339 {
        let nanos = self.unix_nanos();
        let seconds = nanos.div_euclid(NANOS_PER_SECOND);
        let fraction = nanos.rem_euclid(NANOS_PER_SECOND) as u32;
        let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
        let of_day = seconds.rem_euclid(SECONDS_PER_DAY) as u32;
        let mut out = Rfc3339 {
            buf: [0; MAX_LEN],
            len: 0,
        };
        if !(0..10_000).contains(&year) {
            // Unreachable from an i64 of nanoseconds; kept so the text always matches
            // `to_rfc3339`'s documented fallback.
            let text = format!("{nanos}ns");
            out.buf[0] = b'@';
            out.buf[1..=text.len()].copy_from_slice(text.as_bytes());
            out.len = (text.len() + 1) as u8;
            return out;
        }
        let buf = &mut out.buf;
        digits::<4>(buf, 0, year as u32);
        buf[4] = b'-';
        digits::<2>(buf, 5, month);
        buf[7] = b'-';
        digits::<2>(buf, 8, day);
        buf[10] = b'T';
        digits::<2>(buf, 11, of_day / 3600);
        buf[13] = b':';
        digits::<2>(buf, 14, of_day / 60 % 60);
        buf[16] = b':';
        digits::<2>(buf, 17, of_day % 60);
        let mut len = 19;
        if fraction != 0 {
            buf[19] = b'.';
            digits::<9>(buf, 20, fraction);
            len = 29;
            // At least one digit is not zero.
            while buf[len - 1] == b'0' {
                len -= 1;
            }
        }
        buf[len] = b'Z';
        out.len = (len + 1) as u8;
        out
    }
}
