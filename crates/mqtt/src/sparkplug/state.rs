//! Host application STATE messages (Sparkplug 3.0 §4.2.3, §5.3): reading them (an edge
//! node follows its primary host) and a host application's own birth and death
//! certificates on `spBv1.0/STATE/{host_id}`. No I/O.
//!
//! The payload is JSON, `{"online": true|false, "timestamp": ms}`. The death certificate
//! registered as the will carries the time of the CONNECT, and the birth that follows the
//! same time; an explicit death at an orderly stop carries the time it is sent.

use backplane_model::Timestamp;

use super::codec::{self, NAMESPACE};
use super::edge::Publish;
use crate::settings::Qos;

/// A STATE message as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateMessage {
    pub online: bool,
    /// Milliseconds since the epoch; `None` for the Sparkplug 2.2 text payloads.
    pub timestamp: Option<u64>,
}

/// Reads a STATE payload: Sparkplug 3.0 JSON (`{"online": true, "timestamp": …}`) or the 2.2
/// text `ONLINE` / `OFFLINE`. `None` if it is neither.
pub fn parse_state(payload: &[u8]) -> Option<StateMessage> {
    let text = |online| {
        Some(StateMessage {
            online,
            timestamp: None,
        })
    };
    match payload {
        b"ONLINE" => return text(true),
        b"OFFLINE" => return text(false),
        _ => {}
    }
    let json: serde_json::Value = serde_json::from_slice(payload).ok()?;
    Some(StateMessage {
        online: json.get("online")?.as_bool()?,
        timestamp: json.get("timestamp").and_then(serde_json::Value::as_u64),
    })
}

/// A STATE payload (Sparkplug 3.0).
pub fn state_payload(online: bool, time: Timestamp) -> Vec<u8> {
    serde_json::json!({"online": online, "timestamp": codec::millis(time)})
        .to_string()
        .into_bytes()
}

/// The topic of a host application's STATE.
pub fn state_topic(host_id: &str) -> String {
    format!("{NAMESPACE}/STATE/{host_id}")
}

/// A host application's own STATE for one MQTT session: its will, its birth once
/// subscribed, its death at an orderly stop, and the answer when the broker delivers an
/// `online: false` on its own topic (an older session's will arriving late, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    topic: String,
    /// The time of the session's CONNECT: the will's and the birth's timestamp.
    connected_at: Timestamp,
}

impl HostState {
    /// For a session whose CONNECT is sent at `connected_at`.
    pub fn new(host_id: &str, connected_at: Timestamp) -> HostState {
        HostState {
            topic: state_topic(host_id),
            connected_at,
        }
    }

    /// `spBv1.0/STATE/{host_id}`: subscribed (with the namespace) before the birth.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn message(&self, online: bool, time: Timestamp) -> Publish {
        Publish {
            topic: self.topic.clone(),
            payload: state_payload(online, time),
            qos: Qos::AtLeastOnce,
            retain: true,
            born: None,
        }
    }

    /// The death certificate registered as the will: offline, at the CONNECT's time.
    pub fn will(&self) -> Publish {
        self.message(false, self.connected_at)
    }

    /// The birth certificate, the first message published: online, with the will's time.
    pub fn birth(&self) -> Publish {
        self.message(true, self.connected_at)
    }

    /// The death certificate published before an orderly DISCONNECT, at `now`.
    pub fn death(&self, now: Timestamp) -> Publish {
        self.message(false, now)
    }

    /// A message delivered on the own STATE topic: an `online: false` (whoever sent it)
    /// is answered with the birth again, so the retained STATE says online while this
    /// session lives.
    pub fn on_own_state(&self, payload: &[u8]) -> Option<Publish> {
        match parse_state(payload) {
            Some(StateMessage { online: false, .. }) => Some(self.birth()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_payloads_read_back_with_their_timestamp() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123);
        assert_eq!(
            parse_state(&state_payload(true, t)),
            Some(StateMessage {
                online: true,
                timestamp: Some(1_700_000_000_123)
            })
        );
        assert_eq!(
            parse_state(b"OFFLINE"),
            Some(StateMessage {
                online: false,
                timestamp: None
            })
        );
        assert_eq!(parse_state(b"{\"online\": 1}"), None);
        assert_eq!(parse_state(b"\xff"), None);
    }
}
