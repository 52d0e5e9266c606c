//! Raw production counters to increments: rollover at a configured modulus, reset
//! detection, and a baseline from the first reading.
//!
//! A PLC counter counts up from some value nobody knows at start, wraps to 0 at its
//! modulus (65536 for a 16-bit register) and goes back to 0 when the PLC restarts or
//! someone presses reset. The rules:
//!
//! - The first reading is the baseline: it counts nothing (production before Backplane
//!   watched is not known).
//! - A reading above the last one counts the difference.
//! - A reading below the last one is a **rollover** when a modulus is configured and the
//!   wrapped difference `modulus - last + reading` is below `modulus / 16`: no machine
//!   counts a sixteenth of its counter's range between two readings, and a power cycle
//!   near the top of the range is far less likely than one anywhere else. Otherwise it is
//!   a **reset**: the counter restarted from 0, and the reading is what was produced since.
//!   When in doubt a reset is the safer guess: it loses at most what was counted between
//!   the last reading and the reset, where a wrong rollover would invent up to a
//!   sixteenth of the range.

use backplane_model::sample::CounterChange;
use serde::{Deserialize, Serialize};

/// What one reading added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Increment {
    pub delta: u64,
    pub change: CounterChange,
}

/// One raw counter's last reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    last: Option<u64>,
}

impl Counter {
    /// The last reading, the baseline for the next.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Takes a reading. `None` when nothing happened: the first reading (the baseline),
    /// or the same reading again. A reset to 0 is reported with `delta` 0, so that it is
    /// visible.
    pub fn observe(&mut self, raw: u64, rollover: Option<u64>) -> Option<Increment> {
        let last = self.last.replace(raw)?;
        if raw == last {
            return None;
        }
        if raw > last {
            return Some(Increment {
                delta: raw - last,
                change: CounterChange::Increment,
            });
        }
        if let Some(modulus) = rollover
            && last < modulus
        {
            let wrapped = (modulus - last).saturating_add(raw);
            if wrapped < modulus / 16 {
                return Some(Increment {
                    delta: wrapped,
                    change: CounterChange::Rollover,
                });
            }
        }
        Some(Increment {
            delta: raw,
            change: CounterChange::Reset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_readings_count_nothing() {
        let mut c = Counter::default();
        assert_eq!(c.observe(10, None), None);
        assert_eq!(c.observe(10, None), None);
        assert_eq!(c.last(), Some(10));
    }

    #[test]
    fn a_reading_above_the_modulus_is_a_plain_increment_then_a_reset() {
        // A misconfigured modulus must not make a decrease look like a huge rollover.
        let mut c = Counter::default();
        c.observe(70_000, Some(65_536));
        let inc = c.observe(3, Some(65_536)).unwrap();
        assert_eq!(inc.change, CounterChange::Reset);
        assert_eq!(inc.delta, 3);
    }
}
