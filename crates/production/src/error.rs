//! Why a command was refused.

use serde::Serialize;

/// What kind of refusal, so the HTTP API can choose a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is wrong: a bad value, an invalid transition (400).
    Invalid,
    /// The object named does not exist (404).
    NotFound,
    /// It clashes with the current state: a duplicate id, a line already running (409).
    Conflict,
}

/// A refused command: nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub kind: ErrorKind,
    /// The request field at fault (`id`, `asset`, `consumed[1].lot`, ...), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A sentence for the person who sent the command.
    pub message: String,
}

impl CommandError {
    pub fn invalid(field: &str, message: impl Into<String>) -> CommandError {
        CommandError {
            kind: ErrorKind::Invalid,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn not_found(field: &str, message: impl Into<String>) -> CommandError {
        CommandError {
            kind: ErrorKind::NotFound,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn conflict(field: &str, message: impl Into<String>) -> CommandError {
        CommandError {
            kind: ErrorKind::Conflict,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// A snapshot that cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("production snapshot version {found} is not supported (this build reads version {supported})")]
    Version { found: u32, supported: u32 },
}
