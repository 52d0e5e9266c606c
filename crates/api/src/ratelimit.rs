//! Per-client request rate limit: a token bucket per client IP address
//! (`[api] rate_limit`), so one busy or hostile client cannot starve the others. Over the
//! limit a request gets `429 rate_limited` with `Retry-After`; refusals are counted in
//! `/metrics`. The table of clients is bounded: when full, idle clients (full buckets) are
//! dropped first, then the longest unseen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Clients tracked at once.
pub(crate) const MAX_CLIENTS: usize = 8192;

/// Requests per second and burst per client IP; `requests_per_second = 0` disables it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            requests_per_second: 50,
            burst: 200,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    seen: Instant,
    /// A change was refused since the last request let through: further refused changes
    /// are the same episode.
    reported: bool,
}

/// A refused request: how long to wait, and whether it is the first refused change of an
/// episode (the one worth auditing; a flood's every request is not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Refusal {
    pub wait: Duration,
    pub first: bool,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    limit: RateLimit,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
    refused: AtomicU64,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter {
            limit,
            clients: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        }
    }

    /// Takes one token for `client`; refused when it has none left. `change`: the request
    /// would change something (refusals of those are reported once per episode).
    pub fn take(&self, client: IpAddr, change: bool) -> Result<(), Refusal> {
        if self.limit.requests_per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.limit.requests_per_second);
        let burst = f64::from(self.limit.burst.max(1));
        let now = Instant::now();
        let Ok(mut clients) = self.clients.lock() else {
            return Ok(());
        };
        if !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            evict(&mut clients, now, rate, burst);
        }
        let bucket = clients.entry(client).or_insert(Bucket {
            tokens: burst,
            seen: now,
            reported: false,
        });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.seen).as_secs_f64() * rate).min(burst);
        bucket.seen = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.reported = false;
            Ok(())
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let first = change && !bucket.reported;
            bucket.reported |= change;
            Err(Refusal {
                wait: Duration::from_secs_f64((1.0 - bucket.tokens) / rate),
                first,
            })
        }
    }

    /// Requests refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Drops every client whose bucket has refilled (idle); if none has, the longest unseen.
fn evict(clients: &mut HashMap<IpAddr, Bucket>, now: Instant, rate: f64, burst: f64) {
    clients.retain(|_, b| b.tokens + now.duration_since(b.seen).as_secs_f64() * rate < burst);
    if clients.len() >= MAX_CLIENTS
        && let Some(oldest) = clients.iter().min_by_key(|(_, b)| b.seen).map(|(ip, _)| *ip)
    {
        clients.remove(&oldest);
    }
}

/// Whole seconds for `Retry-After`, at least 1.
pub(crate) fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_are_served() {
        let limiter = Limiter::new(RateLimit {
            requests_per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(limiter.take(ip(1), true).is_ok());
        }
        let refusal = limiter.take(ip(1), true).unwrap_err();
        assert!(refusal.wait > Duration::ZERO && refusal.wait <= Duration::from_secs(1));
        assert!(refusal.first);
        assert!(!limiter.take(ip(1), true).unwrap_err().first, "the same episode");
        assert_eq!(limiter.refused(), 2);
        assert!(limiter.take(ip(2), true).is_ok());
    }

    #[test]
    fn zero_requests_per_second_disables_the_limit() {
        let limiter = Limiter::new(RateLimit {
            requests_per_second: 0,
            burst: 0,
        });
        for _ in 0..1000 {
            assert!(limiter.take(ip(1), true).is_ok());
        }
    }

    #[test]
    fn the_client_table_is_bounded() {
        let limiter = Limiter::new(RateLimit {
            requests_per_second: 1,
            burst: 10,
        });
        for n in 0..(MAX_CLIENTS as u32 + 100) {
            assert!(limiter.take(ip(n), false).is_ok());
        }
        assert!(limiter.clients.lock().unwrap().len() <= MAX_CLIENTS);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after(Duration::from_millis(20)), 1);
        assert_eq!(retry_after(Duration::from_secs(2)), 2);
    }
}
