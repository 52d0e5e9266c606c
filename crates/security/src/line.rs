//! One line of the audit trail on disk, and the hash chain through the lines.
//!
//! A line is a JSON object with the event, its sequence number, time, the hash of the line
//! before it (`prev`) and, last, its own hash:
//!
//! ```text
//! {"seq":7,"at":"…","who":{…},"from":"…","action":"write",…,"prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! `hash` is the SHA-256 of the line's bytes before `,"hash":"` (so it covers `prev`, and
//! each line vouches for the whole trail before it). Changing, removing or inserting any
//! byte breaks either a line's own hash or the next line's `prev`. Someone who can write
//! the file can recompute the whole chain: the chain proves integrity against accidents and
//! casual edits; exporting it elsewhere (or recording the latest hash outside) is what
//! makes a rewrite detectable (`docs/security.md`).

use backplane_model::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditEvent;

/// `prev` of the first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// Longest line read back; longer ones are damage (writing keeps lines far below it).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Old and new values larger than this (as JSON) are recorded by size only.
const MAX_VALUE_BYTES: usize = 16 * 1024;

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    at: Timestamp,
    #[serde(flatten)]
    event: &'a AuditEvent,
    prev: &'a str,
}

/// Encodes one line (without the newline) and returns it with its hash.
pub fn encode(seq: u64, at: Timestamp, event: &AuditEvent, prev: &str) -> Result<(Vec<u8>, String), String> {
    let event = bounded(event);
    let mut line = serde_json::to_vec(&Body {
        seq,
        at,
        event: &event,
        prev,
    })
    .map_err(|e| format!("cannot encode the audit event: {e}"))?;
    // Drop the closing brace, hash what is left, append the hash and close again.
    line.pop();
    let hash = hex(&Sha256::digest(&line));
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}");
    Ok((line, hash))
}

fn bounded(event: &AuditEvent) -> AuditEvent {
    let mut event = event.clone();
    for v in [&mut event.old, &mut event.new].into_iter().flatten() {
        let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
        if size > MAX_VALUE_BYTES {
            *v = serde_json::json!({ "truncated_bytes": size });
        }
    }
    event
}

/// What verification reads of a line.
#[derive(Debug, Deserialize)]
pub struct Stored {
    pub seq: u64,
    pub at: Timestamp,
    pub who: Option<StoredWho>,
    pub action: String,
    pub target: String,
    pub prev: String,
    pub hash: String,
}

#[derive(Debug, Deserialize)]
pub struct StoredWho {
    pub name: String,
}

/// Checks one line (without its newline) against the hash of the line before it.
pub fn check(line: &[u8], prev: &str) -> Result<Stored, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("the line is {} bytes, over {MAX_LINE_BYTES}", line.len()));
    }
    let stored: Stored = serde_json::from_slice(line).map_err(|e| format!("not an audit record: {e}"))?;
    let Some(body_len) = line.len().checked_sub(HASH_SUFFIX_LEN) else {
        return Err("the line is too short to carry a hash".into());
    };
    let (body, suffix) = line.split_at(body_len);
    if !suffix.starts_with(b",\"hash\":\"") {
        return Err("the hash is not the last field".into());
    }
    let computed = hex(&Sha256::digest(body));
    if computed != stored.hash {
        return Err(format!(
            "record {} was changed: its content hashes to {computed}, not the {} it carries",
            stored.seq, stored.hash
        ));
    }
    if stored.prev != prev {
        return Err(format!(
            "record {} does not follow the record before it: prev {} but the record before hashes to {prev}",
            stored.seq, stored.prev
        ));
    }
    Ok(stored)
}

/// Lower-case hexadecimal, as hashes and tokens are written.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthMethod, Identity, Outcome, Role};

    fn event() -> AuditEvent {
        AuditEvent {
            who: Some(Identity::new("anna", Role::Operator, AuthMethod::Password)),
            from: "http 127.0.0.1:5000".into(),
            action: "write".into(),
            target: "acme/plant/line-1/filler/speed_setpoint".into(),
            old: Some(serde_json::json!(120.0)),
            new: Some(serde_json::json!(150.0)),
            outcome: Outcome::Done,
        }
    }

    #[test]
    fn an_encoded_line_checks_against_its_predecessor() {
        let (line, hash) = encode(1, Timestamp::from_unix_millis(1000), &event(), GENESIS).unwrap();
        let stored = check(&line, GENESIS).unwrap();
        assert_eq!((stored.seq, stored.hash), (1, hash.clone()));
        let (next, _) = encode(2, Timestamp::from_unix_millis(2000), &event(), &hash).unwrap();
        assert_eq!(check(&next, &hash).unwrap().seq, 2);
        assert!(check(&next, GENESIS).unwrap_err().contains("does not follow"));
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let (line, _) = encode(1, Timestamp::from_unix_millis(1000), &event(), GENESIS).unwrap();
        for i in 0..line.len() {
            for bit in [0x01u8, 0x20] {
                let mut bad = line.clone();
                bad[i] ^= bit;
                assert!(
                    check(&bad, GENESIS).is_err(),
                    "flipping bit {bit:#x} of byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn huge_values_are_recorded_by_size() {
        let mut e = event();
        e.new = Some(serde_json::json!("x".repeat(100_000)));
        let (line, _) = encode(1, Timestamp::from_unix_millis(0), &e, GENESIS).unwrap();
        assert!(line.len() < 2000);
        assert!(
            String::from_utf8(line)
                .unwrap()
                .contains("\"truncated_bytes\":100002")
        );
    }
}
