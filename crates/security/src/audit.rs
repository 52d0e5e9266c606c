//! One audit event and the door every change writes it through.

use std::fmt;

use serde::Serialize;

use crate::Identity;

/// What came of an attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// Done (for a machine write: written and read back as asked).
    Done,
    /// Refused before anything changed, with the reason (a gate rule, a role, a login).
    Refused(String),
    /// Tried and failed (device error, read-back mismatch, timeout).
    Failed(String),
    /// A dry run: would have been done.
    DryRun,
}

/// One attempt to change something: who, from where, what, old and new value, outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEvent {
    /// None when nobody could be identified (a failed login names the claimed user in `target`).
    pub who: Option<Identity>,
    /// Where it came from: `http 10.0.0.7:51234`, `mqtt sink uns`, `cli`.
    pub from: String,
    /// What was attempted: `write`, `login`, `logout`, `context.set`, `work_order.start`, ...
    pub action: String,
    /// What it was attempted on: a tag path, an asset path, a work order id, a user name.
    pub target: String,
    pub old: Option<serde_json::Value>,
    pub new: Option<serde_json::Value>,
    pub outcome: Outcome,
}

/// Where audit events go. Recording is synchronous and durable when it returns `Ok`: a
/// change whose record cannot be written should not be made.
pub trait AuditRecorder: Send + Sync + fmt::Debug {
    /// Appends one event; returns its sequence number.
    fn record(&self, event: AuditEvent) -> Result<u64, AuditUnavailable>;
}

/// The audit trail could not be written.
#[derive(Debug, thiserror::Error)]
#[error("the audit trail cannot be written: {0}")]
pub struct AuditUnavailable(pub String);

/// Keeps events in memory: for tests, and for a gateway run with no data directory.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    events: std::sync::Mutex<Vec<AuditEvent>>,
}

impl MemoryRecorder {
    /// Every event recorded so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl AuditRecorder for MemoryRecorder {
    fn record(&self, event: AuditEvent) -> Result<u64, AuditUnavailable> {
        let mut events = self
            .events
            .lock()
            .map_err(|_| AuditUnavailable("the in-memory trail was poisoned".into()))?;
        events.push(event);
        Ok(events.len() as u64)
    }
}

/// The gateway's audit trail as an engine service (`Services`, named [`AuditTrail::SERVICE`]),
/// so the API, the write gate and sinks that take commands all write to the same one.
#[derive(Clone, Debug)]
pub struct AuditTrail(pub std::sync::Arc<dyn AuditRecorder>);

impl AuditTrail {
    /// The name it is registered under.
    pub const SERVICE: &'static str = "audit";
}
