//! Slowing down password guessing: after `MAX_FAILURES` failed logins (session or HTTP
//! Basic) within `WINDOW` from one client IP, or for one user name, further attempts from
//! that IP or for that user get `429` with `Retry-After` until the window ends, right or
//! wrong password. Bounded: past `MAX_KEYS` entries the oldest window is forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const MAX_FAILURES: u32 = 5;
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_KEYS: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
}

#[derive(Debug)]
struct Failures {
    count: u32,
    since: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    failures: Mutex<HashMap<Key, Failures>>,
}

impl LoginThrottle {
    /// `Err(wait)` when the client or the user has failed too often lately.
    pub fn check(&self, ip: IpAddr, user: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        let wait = [Key::Ip(ip), Key::User(user.to_owned())]
            .iter()
            .filter_map(|k| failures.get(k))
            .filter(|f| f.count >= MAX_FAILURES)
            .filter_map(|f| WINDOW.checked_sub(now.duration_since(f.since)))
            .max();
        match wait {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, ip: IpAddr, user: &str) {
        let now = Instant::now();
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        failures.retain(|_, f| now.duration_since(f.since) < WINDOW);
        if failures.len() + 2 > MAX_KEYS {
            let mut oldest: Vec<(Key, Instant)> =
                failures.iter().map(|(k, f)| (k.clone(), f.since)).collect();
            oldest.sort_by_key(|(_, since)| *since);
            for (key, _) in oldest.into_iter().take(2) {
                failures.remove(&key);
            }
        }
        for key in [Key::Ip(ip), Key::User(user.to_owned())] {
            let entry = failures.entry(key).or_insert(Failures { count: 0, since: now });
            entry.count = entry.count.saturating_add(1);
        }
    }

    /// A good login clears the user's count (not the IP's: one right password must not
    /// reset an address guessing at others).
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&Key::User(user.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn after_five_failures_the_ip_and_the_user_are_held_off() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(A, "anna").is_ok());
            throttle.failed(A, "anna");
        }
        assert!(throttle.check(A, "bob").is_err(), "the address");
        assert!(throttle.check(B, "anna").is_err(), "the user, from elsewhere");
        assert!(throttle.check(B, "bob").is_ok());
    }

    #[test]
    fn the_table_is_bounded() {
        let throttle = LoginThrottle::default();
        for n in 0..(MAX_KEYS as u32) {
            throttle.failed(IpAddr::from(n.to_be_bytes()), "x");
        }
        assert!(throttle.failures.lock().unwrap().len() <= MAX_KEYS);
    }
}
