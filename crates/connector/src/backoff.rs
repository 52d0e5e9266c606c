//! The one backoff policy of every retry loop: the supervisor restarting a failed
//! component and connectors reconnecting to their peers.
//!
//! The n-th consecutive failure waits `min(cap, base · 2ⁿ)` scaled by a random factor in
//! [0.5, 1.0] (jitter, so a fleet of gateways never retries a restarted peer in step).

use std::time::Duration;

use rand::Rng;

/// Delays between attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for BackoffPolicy {
    /// 500 ms growing to 60 s: the supervisor's restart policy.
    fn default() -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

impl BackoffPolicy {
    /// The delay before attempt number `attempt` (0-based), with jitter from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.base.saturating_mul(2u32.saturating_pow(attempt.min(31)));
        let capped = exp.min(self.cap.max(self.base));
        capped.mul_f64(rng.random_range(0.5..=1.0))
    }
}

/// A policy and the count of consecutive failures, for a reconnect loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// Waits from `min` growing to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            policy: BackoffPolicy { base: min, cap: max },
            attempt: 0,
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.policy.delay(self.attempt, &mut rand::rng());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a session that came up: the next failure waits the minimum again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(1));
        }
        assert!(b.next_delay() >= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn a_cap_below_the_base_waits_the_base() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(1),
        };
        let d = policy.delay(5, &mut rand::rng());
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
    }
}
