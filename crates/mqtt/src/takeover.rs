//! Noticing two clients that share a client id. A broker keeps one connection per client
//! id: when a second client connects with it, the first is dropped. Two gateways with the
//! same name (so the same default ids) on one broker therefore drop each other in turn,
//! each reconnecting after its backoff, and neither says why.
//!
//! MQTT 5 brokers say it (DISCONNECT with reason Session Taken Over). MQTT 3.1.1 brokers
//! just close the connection, so a client id whose sessions end that way several times in
//! a row, each soon after the broker accepted it, is reported as probably shared. The
//! count is kept per client id for the whole process, because a source is rebuilt after
//! each lost connection. No I/O but the warning.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How one session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// MQTT 5: the broker said another connection took the session over.
    TakenOver,
    /// The broker closed the connection, `after` the CONNACK, without a reason.
    ClosedByBroker { after: Duration },
    /// Anything else: never connected, closed by the gateway, a timeout, a refused login.
    Other,
}

/// Broker-closed sessions in a row from which a shared client id is suspected.
pub const SUSPECT_AFTER: u32 = 3;

/// A session the broker closed later than this after accepting it does not count: a
/// fight between two clients ends each session within the other's reconnect backoff.
pub const SHORT_SESSION: Duration = Duration::from_secs(120);

/// Client ids tracked at most (a process has a few; this only bounds a misuse).
const MAX_TRACKED: usize = 1024;

/// Counts the broker-closed sessions in a row for each client id.
#[derive(Debug, Default)]
pub struct Streaks {
    by_client: HashMap<String, u32>,
}

impl Streaks {
    /// Records how a session of `client_id` ended. Returns a sentence for the log and the
    /// component's error when the client id looks shared, else `None`.
    pub fn session_ended(&mut self, client_id: &str, end: SessionEnd) -> Option<String> {
        let counts = match end {
            SessionEnd::TakenOver => true,
            SessionEnd::ClosedByBroker { after } => after <= SHORT_SESSION,
            SessionEnd::Other => false,
        };
        if !counts {
            self.by_client.remove(client_id);
            return None;
        }
        if self.by_client.len() >= MAX_TRACKED && !self.by_client.contains_key(client_id) {
            self.by_client.clear();
        }
        let streak = self.by_client.entry(client_id.to_owned()).or_insert(0);
        *streak = streak.saturating_add(1);
        let streak = *streak;
        let advice = "give every gateway its own `[gateway] name` (default client ids derive from it), \
                      or every component its own `client_id`";
        match end {
            SessionEnd::TakenOver => Some(format!(
                "the broker handed this session to another connection with client id `{client_id}` \
                 (Session Taken Over, {streak} time(s) in a row): another client uses the same id; {advice}"
            )),
            _ if streak >= SUSPECT_AFTER => Some(format!(
                "the broker closed this connection {streak} times in a row soon after accepting it; \
                 the usual cause is another client connecting with the same client id `{client_id}` \
                 (the broker drops the older connection): {advice}"
            )),
            _ => None,
        }
    }

    /// Whether a warning goes to the log (the error always says it): the first time, then
    /// every tenth, so a lasting fight does not flood the log.
    fn worth_logging(end: SessionEnd, streak: u32) -> bool {
        (end == SessionEnd::TakenOver && streak == 1) || streak == SUSPECT_AFTER || streak.is_multiple_of(10)
    }

    /// Broker-closed sessions in a row of `client_id`.
    pub fn streak(&self, client_id: &str) -> u32 {
        self.by_client.get(client_id).copied().unwrap_or(0)
    }
}

/// The process's streaks, shared by every link.
fn shared() -> &'static Mutex<Streaks> {
    static STREAKS: OnceLock<Mutex<Streaks>> = OnceLock::new();
    STREAKS.get_or_init(|| Mutex::new(Streaks::default()))
}

/// Records a session end in the process's streaks; logs a warning when the client id
/// looks shared (first time, then every tenth) and returns the sentence for the error.
pub fn session_ended(client_id: &str, end: SessionEnd) -> Option<String> {
    let mut streaks = shared().lock().unwrap_or_else(|p| p.into_inner());
    let text = streaks.session_ended(client_id, end)?;
    let streak = streaks.streak(client_id);
    if Streaks::worth_logging(end, streak) {
        tracing::warn!(client_id, streak, "mqtt: {text}");
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: SessionEnd = SessionEnd::ClosedByBroker {
        after: Duration::from_secs(2),
    };

    #[test]
    fn three_short_broker_closed_sessions_in_a_row_suspect_a_shared_client_id() {
        let mut s = Streaks::default();
        assert_eq!(s.session_ended("gw-src-abc123", SOON), None);
        assert_eq!(s.session_ended("gw-src-abc123", SOON), None);
        let text = s.session_ended("gw-src-abc123", SOON).unwrap();
        assert!(text.contains("3 times in a row"), "{text}");
        assert!(text.contains("`gw-src-abc123`"), "{text}");
        assert!(text.contains("[gateway] name"), "{text}");
        // Other client ids have their own count.
        assert_eq!(s.session_ended("other", SOON), None);
    }

    #[test]
    fn a_failed_connect_or_a_long_session_starts_the_count_again() {
        let mut s = Streaks::default();
        s.session_ended("c", SOON);
        s.session_ended("c", SOON);
        // The broker went away (restart): the next connect fails.
        s.session_ended("c", SessionEnd::Other);
        assert_eq!(s.session_ended("c", SOON), None);
        s.session_ended("c", SOON);
        let long = SessionEnd::ClosedByBroker {
            after: SHORT_SESSION + Duration::from_secs(1),
        };
        assert_eq!(s.session_ended("c", long), None);
        assert_eq!(s.streak("c"), 0);
    }

    #[test]
    fn an_mqtt_5_takeover_is_reported_the_first_time() {
        let mut s = Streaks::default();
        let text = s.session_ended("c", SessionEnd::TakenOver).unwrap();
        assert!(text.contains("Session Taken Over"), "{text}");
    }
}
