//! `Timestamp`'s own RFC 3339 writer is byte for byte what the `time` crate's `Rfc3339`
//! format wrote before it (the reference below), over the whole `i64` range of
//! nanoseconds, and so are `to_rfc3339`, `Display` and the JSON form.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use backplane_model::Timestamp;
use proptest::prelude::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What `Timestamp::to_rfc3339` was before it had its own writer.
fn reference(t: Timestamp) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.unix_nanos()))
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
    {
        Some(text) => text,
        None => format!("@{}ns", t.unix_nanos()),
    }
}

fn check(nanos: i64) {
    let t = Timestamp::from_unix_nanos(nanos);
    let want = reference(t);
    assert_eq!(t.rfc3339().as_str(), want, "{nanos}");
    assert_eq!(t.rfc3339().as_bytes(), want.as_bytes(), "{nanos}");
    assert_eq!(t.to_rfc3339(), want, "{nanos}");
    assert_eq!(t.to_string(), want, "{nanos}");
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        format!("\"{want}\""),
        "{nanos}"
    );
}

const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;

#[test]
fn the_ends_of_the_range_and_the_epoch_match_time() {
    for nanos in [
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
        i64::MAX - 1,
        0,
        1,
        -1,
        SECOND - 1,
        -SECOND + 1,
        SECOND,
        -SECOND,
        -SECOND - 1,
        DAY - 1,
        -DAY,
        -DAY + 1,
        100,
        -100,
        10,
        123_456_780,
        500_000_000,
        -500_000_000,
    ] {
        check(nanos);
    }
}

#[test]
fn leap_days_century_years_and_year_ends_match_time() {
    // (year, month, day) around the rules: every 4th year, not every 100th, every 400th.
    for text in [
        "1680-02-29T00:00:00Z",
        "1700-02-28T23:59:59Z",
        "1700-03-01T00:00:00Z",
        "1800-03-01T00:00:00Z",
        "1899-12-31T23:59:59Z",
        "1900-02-28T12:00:00Z",
        "1900-03-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1972-02-29T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2000-03-01T00:00:00Z",
        "2024-02-29T23:59:59Z",
        "2100-02-28T23:59:59Z",
        "2100-03-01T00:00:00Z",
        "2200-03-01T00:00:00Z",
        "2262-04-11T23:47:16Z",
    ] {
        let t = Timestamp::parse_rfc3339(text).unwrap();
        for offset in [-SECOND, -1, 0, 1, SECOND / 2, SECOND - 1, DAY - 1] {
            if let Some(n) = t.unix_nanos().checked_add(offset) {
                check(n);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn any_instant_matches_time(nanos in any::<i64>()) {
        check(nanos);
    }

    #[test]
    fn fractions_with_trailing_zeros_match_time(
        seconds in (i64::MIN / SECOND)..(i64::MAX / SECOND),
        fraction in 0i64..SECOND,
        zeros in 0u32..10,
    ) {
        // Fractions of 0 to 9 digits, from either side of the epoch.
        let fraction = fraction / 10i64.pow(zeros) * 10i64.pow(zeros);
        if let Some(n) = seconds.checked_mul(SECOND).and_then(|s| s.checked_add(fraction)) {
            check(n);
        }
    }
}
