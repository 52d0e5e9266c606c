//! Rate-limited warnings: a misbehaving agent that answers garbage ten times a second
//! gets one log line per kind of problem per period, saying how many were suppressed.
//! Every occurrence is still counted (the source's counters in metrics).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// One warning per `what` per period.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last: HashMap<&'static str, (Instant, u64)>,
}

impl Throttle {
    pub fn new(period: Duration) -> Throttle {
        Throttle {
            period,
            last: HashMap::new(),
        }
    }

    /// Whether to log this occurrence of `what` now, and how many were suppressed before it.
    pub fn admit(&mut self, what: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(what) {
            Some((at, suppressed)) if now.duration_since(*at) < self.period => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                self.last.insert(what, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_suppressed_count() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.admit("malformed", t0), Some(0));
        assert_eq!(t.admit("malformed", t0 + Duration::from_secs(1)), None);
        assert_eq!(t.admit("too_large", t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(t.admit("malformed", t0 + Duration::from_secs(2)), None);
        assert_eq!(t.admit("malformed", t0 + Duration::from_secs(11)), Some(2));
    }
}
