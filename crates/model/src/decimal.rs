//! Decimal rounding of floats, as people read numbers: on the shortest decimal text that
//! reads back as the same float (`404.20000000000005`, `2.675`), half away from zero.
//!
//! `(x * 10^n).round() / 10^n` is not used: the multiplication is itself inexact
//! (`1.005 * 100` is `100.49999999999999`), and for large `x` or `n` it can overflow or
//! lose the very digits it means to keep. Working on the text has neither problem, and
//! the result is the float nearest to the rounded decimal.

use std::fmt::{self, Write};

/// The most decimals a rounding may keep.
pub const MAX_DECIMALS: u8 = 9;

/// `x` rounded to `decimals` places of its decimal text, half away from zero. Values with
/// no more decimals than that (every integer, and every float of 2^53 or more) and
/// non-finite values are returned unchanged; a finite input always gives a finite output.
/// A result of zero is `0.0`, never `-0.0`.
pub fn round(x: f64, decimals: u8) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let mut text = Text::default();
    // Display never uses an exponent: the longest text (5e-324) is under 330 bytes.
    if write!(text, "{}", x.abs()).is_err() {
        return x;
    }
    let digits = text.as_str();
    let Some(point) = digits.find('.') else {
        return x;
    };
    let keep = point + 1 + usize::from(decimals);
    if digits.len() <= keep {
        return x;
    }
    let up = digits.as_bytes()[keep] >= b'5';
    let mut kept = Text::default();
    if kept.write_str(&digits[..keep]).is_err() {
        return x;
    }
    if up {
        kept.increment();
    }
    let rounded = kept
        .as_str()
        .trim_end_matches('.')
        .parse::<f64>()
        .unwrap_or(x.abs());
    let out = if x < 0.0 { -rounded } else { rounded };
    if !out.is_finite() {
        x
    } else if out == 0.0 {
        0.0
    } else {
        out
    }
}

/// How many decimals the shortest decimal text of `x` has, when it has at most `max`:
/// `0.1` → 1, `0.25` → 2, `2.5` → 1, `4` → 0, `0.003616898148148148` → `None`.
pub fn places(x: f64, max: u8) -> Option<u8> {
    if !x.is_finite() {
        return None;
    }
    let mut text = Text::default();
    write!(text, "{}", x.abs()).ok()?;
    let n = text.as_str().find('.').map_or(0, |p| text.len - p - 1);
    u8::try_from(n).ok().filter(|n| *n <= max)
}

/// A fixed buffer for a float's decimal text: no allocation on the hot path.
struct Text {
    bytes: [u8; 400],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Text {
            bytes: [0; 400],
            len: 0,
        }
    }
}

impl Text {
    fn as_str(&self) -> &str {
        // Only ASCII from `write_str` of valid text ever lands here.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    /// Adds one unit in the last place, carrying through nines (`9.99` → `10.00`).
    fn increment(&mut self) {
        for i in (0..self.len).rev() {
            match self.bytes[i] {
                b'.' => {}
                b'9' => self.bytes[i] = b'0',
                d => {
                    self.bytes[i] = d + 1;
                    return;
                }
            }
        }
        // All nines: a leading 1 (the buffer has room, the text is far shorter).
        if self.len < self.bytes.len() {
            self.bytes.copy_within(0..self.len, 1);
            self.bytes[0] = b'1';
            self.len += 1;
        }
    }
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_noise_of_a_decimal_product_is_rounded_away() {
        assert_eq!(0.1 * 4042.0, 404.20000000000005);
        assert_eq!(round(0.1 * 4042.0, 1), 404.2);
        assert_eq!(round(0.01 * 7.0 + 0.3, 2), 0.37);
    }

    #[test]
    fn halves_round_away_from_zero_on_the_decimal_text() {
        assert_eq!(round(2.675, 2), 2.68);
        assert_eq!(round(1.005, 2), 1.01);
        assert_eq!(round(-1.005, 2), -1.01);
        assert_eq!(round(-0.25, 1), -0.3);
        assert_eq!(round(0.5, 0), 1.0);
        assert_eq!(round(-2.5, 0), -3.0);
        assert_eq!(round(2.4999, 0), 2.0);
    }

    #[test]
    fn carries_run_through_nines_and_the_point() {
        assert_eq!(round(9.96, 1), 10.0);
        assert_eq!(round(99.999, 2), 100.0);
        assert_eq!(round(-0.96, 0), -1.0);
    }

    #[test]
    fn large_small_and_non_finite_values_stay_finite_and_exact() {
        assert_eq!(round(123_456_789_012.345_67, 1), 123_456_789_012.3);
        assert_eq!(round(9_007_199_254_740_993.0, 3), 9_007_199_254_740_993.0);
        assert_eq!(round(f64::MAX, 9), f64::MAX);
        assert_eq!(round(-f64::MAX, 0), -f64::MAX);
        assert_eq!(round(5e-324, 9), 0.0);
        assert_eq!(round(1e-300, 2), 0.0);
        assert!(round(f64::NAN, 2).is_nan());
        assert_eq!(round(f64::INFINITY, 2), f64::INFINITY);
        assert_eq!(round(404.2, 3), 404.2);
    }

    #[test]
    fn a_rounding_to_zero_is_positive_zero() {
        let z = round(-0.04, 1);
        assert_eq!(z, 0.0);
        assert!(z.is_sign_positive());
    }

    #[test]
    fn places_count_the_decimals_of_short_decimals_only() {
        assert_eq!(places(0.1, 6), Some(1));
        assert_eq!(places(0.25, 6), Some(2));
        assert_eq!(places(-2.5, 6), Some(1));
        assert_eq!(places(4.0, 6), Some(0));
        assert_eq!(places(0.3333333, 6), None);
        assert_eq!(places(100.0 / 27648.0, 6), None);
        assert_eq!(places(f64::NAN, 6), None);
    }
}
