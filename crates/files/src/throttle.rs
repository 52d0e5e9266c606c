//! One log line per kind of trouble per interval: a folder filling with bad files, or a
//! disk that fails every scan, is counted in full but logged at most every [`Throttle::every`].
//! I/O-free; time is passed in.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log now; `Some(n)` with the `n` occurrences not logged since the last line.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_logged_then_one_line_per_interval_with_the_count_skipped() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.admit(t0), Some(0));
        assert_eq!(t.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.admit(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(t.admit(t0 + Duration::from_secs(30)), Some(0));
    }
}
