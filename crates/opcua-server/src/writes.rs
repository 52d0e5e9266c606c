//! OPC UA Write → the write gate (docs/writes.md), the only door to a machine. The server
//! never writes its own copy of a value: an accepted write reaches the device, and the
//! value read back flows through the pipeline into the address space like any reading.
//!
//! The gate's answer as a StatusCode:
//!
//! | gate                                   | StatusCode              |
//! |----------------------------------------|-------------------------|
//! | done                                   | Good                    |
//! | `anonymous`, `role`                    | BadUserAccessDenied     |
//! | `not_allowlisted`, `no_inverse`        | BadNotWritable          |
//! | `unknown_tag`                          | BadNodeIdUnknown        |
//! | `type`                                 | BadTypeMismatch         |
//! | `range`, `max_step`                    | BadOutOfRange           |
//! | `min_interval`, `interlock`            | BadInvalidState         |
//! | `audit`                                | BadResourceUnavailable  |
//! | failed: device / timeout / read-back   | BadCommunicationError / BadTimeout / BadDeviceFailure |

use backplane_connector::gate::{Failure, Rule, Status};
use backplane_connector::{MachineWrite, WriteGate, WriteReport};
use backplane_model::Value;
use backplane_security::{AuthMethod, Identity, Role};
use opcua::types::{StatusCode, Variant};

/// The StatusCode of a gate's report.
pub fn status_of(report: &WriteReport) -> StatusCode {
    match &report.status {
        Status::Done | Status::DryRun => StatusCode::Good,
        Status::Refused { rule, .. } => match rule {
            Rule::Anonymous | Rule::Role => StatusCode::BadUserAccessDenied,
            Rule::NotAllowlisted | Rule::NoInverse => StatusCode::BadNotWritable,
            Rule::UnknownTag => StatusCode::BadNodeIdUnknown,
            Rule::Type => StatusCode::BadTypeMismatch,
            Rule::Range | Rule::MaxStep => StatusCode::BadOutOfRange,
            Rule::MinInterval | Rule::Interlock => StatusCode::BadInvalidState,
            Rule::Audit => StatusCode::BadResourceUnavailable,
        },
        Status::Failed { failure, .. } => match failure {
            Failure::Device => StatusCode::BadCommunicationError,
            Failure::Timeout => StatusCode::BadTimeout,
            Failure::ReadBack => StatusCode::BadDeviceFailure,
        },
    }
}

/// Who writes: the session's user with their role, or nobody (the gate refuses
/// anonymous writes itself, and records the attempt).
pub fn identity(user: Option<(&str, Role)>) -> Identity {
    match user {
        Some((name, role)) => Identity::new(name, role, AuthMethod::Password),
        None => Identity::new("anonymous", Role::Viewer, AuthMethod::Anonymous),
    }
}

/// Writes `variant` to the tag at `tag_path` through the gate for `who`.
pub async fn write(
    gate: &WriteGate,
    tag_path: &str,
    variant: &Variant,
    who: Identity,
    session: u32,
) -> StatusCode {
    let value: Value = match backplane_opcua::value::convert(variant, None) {
        Ok(Some(v)) => v,
        Ok(None) => return StatusCode::BadTypeMismatch,
        Err(_) => return StatusCode::BadTypeMismatch,
    };
    let report = gate
        .write(MachineWrite {
            tag: tag_path.to_owned(),
            value,
            dry_run: false,
            who,
            from: format!("opcua session {session}"),
        })
        .await;
    status_of(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Status) -> WriteReport {
        WriteReport {
            tag: "a/b".into(),
            status,
            old: None,
            new: Value::Float(1.0),
            raw: None,
            source: None,
            address: None,
            read_back: None,
            audit: None,
        }
    }

    #[test]
    fn refusals_name_why_in_the_status_code() {
        let refused = |rule| {
            status_of(&report(Status::Refused {
                rule,
                reason: String::new(),
            }))
        };
        assert_eq!(refused(Rule::Role), StatusCode::BadUserAccessDenied);
        assert_eq!(refused(Rule::Anonymous), StatusCode::BadUserAccessDenied);
        assert_eq!(refused(Rule::NotAllowlisted), StatusCode::BadNotWritable);
        assert_eq!(refused(Rule::Range), StatusCode::BadOutOfRange);
        assert_eq!(status_of(&report(Status::Done)), StatusCode::Good);
        assert_eq!(
            status_of(&report(Status::Failed {
                failure: Failure::Timeout,
                reason: String::new()
            })),
            StatusCode::BadTimeout
        );
    }
}
