//! What the gate answers: the outcome of one write attempt, the rule that refused it, and
//! what was (or would be) written where.

use std::fmt;

use backplane_model::Value;
use backplane_security::Outcome;
use serde::Serialize;

/// The check that refused a write, in the order the gate applies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// No tag at that path.
    UnknownTag,
    /// Machine writes need an authenticated identity.
    Anonymous,
    /// The attribute has no `[models.NAME.writes.ATTRIBUTE]` rule.
    NotAllowlisted,
    /// The identity's role is below the rule's `role`.
    Role,
    /// The value is not of the attribute's type.
    Type,
    /// Outside the attribute's `range` (or not one of its `enum` labels).
    Range,
    /// Too far from the latest value (`max_step`).
    MaxStep,
    /// Too soon after the last accepted write (`min_interval`).
    MinInterval,
    /// An interlock is false or unknown.
    Interlock,
    /// The attribute is not bound, or its binding's transforms cannot be inverted.
    NoInverse,
    /// The audit trail cannot be written, so nothing is.
    Audit,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::UnknownTag => "unknown_tag",
            Rule::Anonymous => "anonymous",
            Rule::NotAllowlisted => "not_allowlisted",
            Rule::Role => "role",
            Rule::Type => "type",
            Rule::Range => "range",
            Rule::MaxStep => "max_step",
            Rule::MinInterval => "min_interval",
            Rule::Interlock => "interlock",
            Rule::NoInverse => "no_inverse",
            Rule::Audit => "audit",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a write that passed the checks did not complete as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The source is disabled, stopped, busy, or refused or failed the write.
    Device,
    /// No answer in time.
    Timeout,
    /// Written, but the value read back is not the one asked for (or none was read back).
    ReadBack,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Status {
    Done,
    DryRun,
    Refused { rule: Rule, reason: String },
    Failed { failure: Failure, reason: String },
}

impl Status {
    /// The audit outcome; refusals and failures say the rule or kind first.
    pub fn outcome(&self) -> Outcome {
        match self {
            Status::Done => Outcome::Done,
            Status::DryRun => Outcome::DryRun,
            Status::Refused { rule, reason } => Outcome::Refused(format!("{rule}: {reason}")),
            Status::Failed { reason, .. } => Outcome::Failed(reason.clone()),
        }
    }
}

/// The answer to one write attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WriteReport {
    /// The tag path asked for.
    pub tag: String,
    #[serde(flatten)]
    pub status: Status,
    /// The latest engineering value before the write.
    pub old: Option<Value>,
    /// The engineering value asked for (as the attribute's type once the type check passed).
    pub new: Value,
    /// The raw value written (or, for a dry run, that would be), after the inverse transforms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The engineering value read back after the write (its raw reading transformed forward).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_back: Option<Value>,
    /// The audit record's sequence number, when a trail is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<u64>,
}

impl WriteReport {
    pub fn is_done(&self) -> bool {
        self.status == Status::Done
    }

    /// The refusing rule, if refused.
    pub fn refused_by(&self) -> Option<Rule> {
        match self.status {
            Status::Refused { rule, .. } => Some(rule),
            _ => None,
        }
    }
}
