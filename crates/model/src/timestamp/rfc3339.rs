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
    // In [0, 146096]: the rest fits in u32, which is cheaper to divide.
    let doe = z.rem_euclid(146_097) as u32;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = i64::from(yoe) + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// "00" to "99": two digits per lookup.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `value` (< 100) as two digits at `buf[at..at + 2]`.
fn pair(buf: &mut [u8; MAX_LEN], at: usize, value: u32) {
    let i = value as usize * 2;
    buf[at] = PAIRS[i];
    buf[at + 1] = PAIRS[i + 1];
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
        let year = year as u32;
        pair(buf, 0, year / 100);
        pair(buf, 2, year % 100);
        buf[4] = b'-';
        pair(buf, 5, month);
        buf[7] = b'-';
        pair(buf, 8, day);
        buf[10] = b'T';
        pair(buf, 11, of_day / 3600);
        buf[13] = b':';
        pair(buf, 14, of_day / 60 % 60);
        buf[16] = b':';
        pair(buf, 17, of_day % 60);
        let mut len = 19;
        if fraction != 0 {
            buf[19] = b'.';
            buf[20] = b'0' + (fraction / 100_000_000) as u8;
            let rest = fraction % 100_000_000;
            let (high, low) = (rest / 10_000, rest % 10_000);
            pair(buf, 21, high / 100);
            pair(buf, 23, high % 100);
            pair(buf, 25, low / 100);
            pair(buf, 27, low % 100);
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
