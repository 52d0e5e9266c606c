//! Who may do what, and the record of what was done.
//!
//! - `role.rs`: the four roles, ordered: viewer < operator < engineer < admin.
//! - `identity.rs`: an authenticated identity (name, role, how it was proven). Whoever
//!   acts is always one of these, never a name the client sent.
//! - `audit.rs`: one audit event (who, from where, what, old and new value, outcome) and
//!   the [`AuditRecorder`] every door that changes something writes to.
//! - `line.rs`: one record on disk and the hash chain through the records.
//! - `trail.rs`: [`AuditLog`], the trail in a directory: append, sync, rotate, query.
//! - `verify.rs`: [`verify`], the check behind `backplane audit verify`.
//! - `private.rs`: owner-only directories and files (the trail, private keys).
//! - [`users`]: the users file (Argon2id passwords, hashed machine tokens), read by the
//!   API and the OPC UA server and written by `backplane users`.

mod audit;
mod identity;
mod line;
mod private;
mod role;
mod trail;
pub mod users;
mod verify;

pub use audit::{AuditEvent, AuditRecorder, AuditTrail, AuditUnavailable, MemoryRecorder, Outcome};
pub use identity::{AuthMethod, Identity};
pub use line::hex;
pub use private::{create_private_dir, open_private, write_private};
pub use role::{Role, UnknownRole};
pub use trail::{AuditLog, MAX_QUERY_RECORDS, Page, Query, ROTATE_BYTES, trail_files};
pub use verify::{Verification, verify};
