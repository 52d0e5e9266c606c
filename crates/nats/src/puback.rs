//! JetStream's answer to one publish, read from the reply message: stored, a duplicate of
//! a message id it remembers, or refused (no stream holds the subject, a stream limit,
//! anything not a publish ack). No I/O.

use std::borrow::Cow;

use async_nats::{Message, StatusCode};
use serde::Deserialize;

#[derive(Debug, PartialEq, Eq)]
pub enum PubAck {
    Stored,
    /// Dropped by the stream's duplicate window: stored before.
    Duplicate,
    /// Not stored; why, for the log.
    Refused(String),
}

/// `{"stream":..,"seq":..[,"duplicate":true]}` or `{"error":{..}}`.
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(borrow, default)]
    error: Option<ApiError<'a>>,
}

#[derive(Deserialize)]
struct ApiError<'a> {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
}

impl PubAck {
    pub fn read(message: &Message) -> PubAck {
        match message.status {
            None => {}
            Some(StatusCode::NO_RESPONDERS) => {
                return PubAck::Refused("no stream holds the subject (no responders)".into());
            }
            Some(status) => {
                return PubAck::Refused(format!(
                    "status {status}{}",
                    message
                        .description
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ));
            }
        }
        PubAck::parse(&message.payload)
    }

    pub fn parse(payload: &[u8]) -> PubAck {
        if let Some(ack) = PubAck::common(payload) {
            return ack;
        }
        match serde_json::from_slice::<Reply<'_>>(payload) {
            Ok(Reply { error: Some(e), .. }) => PubAck::Refused(format!(
                "{} (code {}, err_code {})",
                e.description.as_deref().unwrap_or("no description"),
                e.code,
                e.err_code
            )),
            Ok(Reply {
                seq: Some(_),
                duplicate: true,
                ..
            }) => PubAck::Duplicate,
            Ok(Reply { seq: Some(_), .. }) => PubAck::Stored,
            Ok(Reply { seq: None, .. }) => PubAck::Refused("the reply is not a publish ack".into()),
            Err(e) => PubAck::Refused(format!("the reply is not a publish ack: {e}")),
        }
    }
}

impl PubAck {
    /// The two shapes nearly every answer has, read without a JSON parser:
    /// `{"stream":"<name>", "seq":<n>}` and the same with `,"duplicate": true` before the
    /// brace (spaces as nats-server writes them, or none). `None` for anything else
    /// (escapes, a domain, errors), which goes to serde.
    fn common(payload: &[u8]) -> Option<PubAck> {
        let rest = payload.strip_prefix(b"{\"stream\":\"")?;
        let quote = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
        let rest = token(rest.get(quote..)?, b"\",")?;
        let rest = token(rest, b"\"seq\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        // As serde reads it: a u64 (too many digits go to serde, which refuses them).
        std::str::from_utf8(rest.get(..digits)?)
            .ok()?
            .parse::<u64>()
            .ok()?;
        let rest = rest.get(digits..)?;
        if token(rest, b"}").is_some_and(<[u8]>::is_empty) {
            return Some(PubAck::Stored);
        }
        let rest = token(rest, b",")?;
        let rest = token(rest, b"\"duplicate\":")?;
        let rest = token(rest, b"true")?;
        token(rest, b"}")?.is_empty().then_some(PubAck::Duplicate)
    }
}

/// `text` after optional spaces and `expected`.
fn token<'a>(text: &'a [u8], expected: &[u8]) -> Option<&'a [u8]> {
    let spaces = text.iter().take_while(|b| **b == b' ').count();
    text.get(spaces..)?.strip_prefix(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_duplicates_and_errors_are_told_apart() {
        assert_eq!(PubAck::parse(br#"{"stream":"UNS","seq":12}"#), PubAck::Stored);
        assert_eq!(
            PubAck::parse(br#"{"stream":"UNS","domain":"hub","seq":12,"duplicate":false}"#),
            PubAck::Stored
        );
        assert_eq!(
            PubAck::parse(br#"{"stream":"UNS","seq":3,"duplicate":true}"#),
            PubAck::Duplicate
        );
        let PubAck::Refused(why) = PubAck::parse(
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        ) else {
            panic!("an error is a refusal");
        };
        assert!(
            why.contains("maximum messages exceeded") && why.contains("10077"),
            "{why}"
        );
        // The shapes read without serde, and near misses that go to it.
        assert_eq!(
            PubAck::common(br#"{"stream":"UNS","seq":12}"#),
            Some(PubAck::Stored)
        );
        assert_eq!(
            PubAck::common(br#"{"stream":"UNS","seq":12,"duplicate":true}"#),
            Some(PubAck::Duplicate)
        );
        // nats-server 2.9's own spelling.
        assert_eq!(
            PubAck::common(br#"{"stream":"UNS", "seq":1}"#),
            Some(PubAck::Stored)
        );
        assert_eq!(
            PubAck::common(br#"{"stream":"UNS", "seq":2,"duplicate": true}"#),
            Some(PubAck::Duplicate)
        );
        for other in [
            &br#"{"stream":"UNS","seq":12,"duplicate":false}"#[..],
            br#"{"stream":"UNS","domain":"hub","seq":12}"#,
            br#"{"stream":"U\"NS","seq":12}"#,
            br#"{"stream":"UNS","seq":}"#,
            br#"{"stream":"UNS","seq":12} "#,
            br#"{"stream":"UNS""#,
        ] {
            assert_eq!(PubAck::common(other), None, "{}", String::from_utf8_lossy(other));
        }
        assert_eq!(PubAck::parse(br#"{"stream":"U\"NS","seq":12}"#), PubAck::Stored);
        for garbage in [&b""[..], b"{}", b"[]", b"\xff", br#"{"seq":"x"}"#] {
            assert!(matches!(PubAck::parse(garbage), PubAck::Refused(_)));
        }
    }
}
