//! UI sessions: made at login (`POST /api/v1/session`), held in memory, found by the
//! `backplane_session` cookie. Each has a CSRF token that a change made with the cookie
//! must repeat in `X-CSRF-Token`, an idle timeout and an absolute lifetime. The table is
//! bounded: past `MAX_SESSIONS` the oldest session is dropped (its user logs in again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use backplane_security::Identity;

use crate::users::{random_token, sha256};

/// Sessions held at once.
pub(crate) const MAX_SESSIONS: usize = 4096;
pub(crate) const COOKIE: &str = "backplane_session";

/// How long sessions last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// Without a request for this long, a session ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub lifetime: Duration,
}

impl Default for SessionSettings {
    fn default() -> SessionSettings {
        SessionSettings {
            idle: Duration::from_secs(8 * 3600),
            lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub identity: Identity,
    pub csrf: String,
    created: Instant,
    last_used: Instant,
    /// Wall-clock end of the absolute lifetime, for the client.
    pub expires: SystemTime,
}

/// A new session as the client gets it.
#[derive(Debug)]
pub(crate) struct Created {
    pub id: String,
    pub session: Session,
}

#[derive(Debug)]
pub(crate) struct Sessions {
    settings: SessionSettings,
    /// By SHA-256 of the cookie value: a lookup's timing says nothing about the ids.
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    pub fn new(settings: SessionSettings) -> Sessions {
        Sessions {
            settings,
            table: Mutex::new(HashMap::new()),
        }
    }

    pub fn create(&self, identity: Identity) -> Created {
        let id = random_token();
        let now = Instant::now();
        let session = Session {
            identity,
            csrf: random_token(),
            created: now,
            last_used: now,
            expires: SystemTime::now() + self.settings.lifetime,
        };
        if let Ok(mut table) = self.table.lock() {
            table.retain(|_, s| self.alive(s, now));
            if table.len() >= MAX_SESSIONS
                && let Some(oldest) = table.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
            table.insert(sha256(id.as_bytes()), session.clone());
        }
        Created { id, session }
    }

    /// The live session with this cookie value, marked used.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = sha256(id.as_bytes());
        let now = Instant::now();
        let mut table = self.table.lock().ok()?;
        let session = table.get_mut(&key)?;
        if !self.alive(session, now) {
            table.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&sha256(id.as_bytes()));
        }
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.created) < self.settings.lifetime
            && now.duration_since(s.last_used) < self.settings.idle
    }
}

/// The session cookie's value in a `Cookie` header, if any.
pub(crate) fn cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    use backplane_security::{AuthMethod, Role};

    use super::*;

    fn anna() -> Identity {
        Identity::new("anna", Role::Operator, AuthMethod::Session)
    }

    #[test]
    fn sessions_are_found_by_their_id_until_removed() {
        let sessions = Sessions::new(SessionSettings::default());
        let created = sessions.create(anna());
        assert_eq!(sessions.get(&created.id).unwrap().identity, anna());
        assert!(sessions.get("other").is_none());
        sessions.remove(&created.id);
        assert!(sessions.get(&created.id).is_none());
    }

    #[test]
    fn idle_and_expired_sessions_are_gone() {
        let sessions = Sessions::new(SessionSettings {
            idle: Duration::ZERO,
            lifetime: Duration::from_secs(60),
        });
        let created = sessions.create(anna());
        assert!(sessions.get(&created.id).is_none());
        let sessions = Sessions::new(SessionSettings {
            idle: Duration::from_secs(60),
            lifetime: Duration::ZERO,
        });
        let created = sessions.create(anna());
        assert!(sessions.get(&created.id).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_oldest() {
        let sessions = Sessions::new(SessionSettings::default());
        let first = sessions.create(anna());
        let mut last = None;
        for _ in 0..MAX_SESSIONS {
            last = Some(sessions.create(anna()));
        }
        assert!(sessions.get(&first.id).is_none());
        assert!(sessions.get(&last.unwrap().id).is_some());
        assert_eq!(sessions.table.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=1; backplane_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers), Some("abc"));
    }
}
