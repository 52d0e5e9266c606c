//! Commands as messages: the one JSON vocabulary an MES, an ERP or a person uses to drive
//! production, whether it arrives on the MQTT command topic or through the HTTP API.
//!
//! A command is a JSON object whose `command` field names it; the other fields are its
//! arguments (`docs/context.md`, "Commands"):
//!
//! ```json
//! {"command": "start_work_order", "id": "WO-1001"}
//! ```
//!
//! [`Production::execute`] runs one and answers with the object it created or changed, or
//! with why it was refused, naming the field at fault. Unknown commands and unknown fields
//! are refused, so a typo never passes silently.

use backplane_model::Timestamp;
use backplane_model::sample::{ConsumedLot, LotStatus, WorkOrderStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CommandError, ErrorKind};
use crate::forms::FieldError;
use crate::orders::{NewLot, NewWorkOrder};
use crate::{Outcome, Production, Submission};

/// One production command.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    CreateWorkOrder(NewWorkOrder),
    ReleaseWorkOrder {
        id: String,
    },
    StartWorkOrder {
        id: String,
    },
    HoldWorkOrder {
        id: String,
    },
    CompleteWorkOrder {
        id: String,
    },
    CancelWorkOrder {
        id: String,
    },
    SetWorkOrderStatus {
        id: String,
        status: WorkOrderStatus,
    },
    CreateLot(NewLot),
    SetLotStatus {
        id: String,
        status: LotStatus,
    },
    RecordGenealogy {
        consumed: Vec<ConsumedLot>,
        produced: String,
    },
    AssignReason {
        downtime: u64,
        reason: String,
    },
    SignIn {
        operator: String,
        #[serde(default)]
        name: Option<String>,
        asset: String,
    },
    SignOut {
        operator: String,
    },
    /// An operator entry; `id` (the client's, recognised on a retry) and `time` (RFC 3339,
    /// when it was made) are optional.
    SubmitForm {
        form: String,
        asset: String,
        values: Map<String, Value>,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        time: Option<String>,
    },
}

/// Why a command was not carried out. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Refusal {
    /// The command itself was refused (not found, invalid, conflict).
    Command(CommandError),
    /// An operator entry with bad fields: every one is named.
    Fields { errors: Vec<FieldError> },
}

impl Refusal {
    /// `invalid`, `not_found` or `conflict`, so an HTTP API can pick its status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Refusal::Command(e) => e.kind,
            Refusal::Fields { .. } => ErrorKind::Invalid,
        }
    }

    /// One line for logs and replies.
    pub fn message(&self) -> String {
        match self {
            Refusal::Command(e) => match &e.field {
                Some(field) => format!("{field}: {}", e.message),
                None => e.message.clone(),
            },
            Refusal::Fields { errors } => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

impl From<CommandError> for Refusal {
    fn from(e: CommandError) -> Refusal {
        Refusal::Command(e)
    }
}

impl Command {
    /// Reads a command from JSON, naming what is wrong with it.
    pub fn parse(json: &[u8]) -> Result<Command, Refusal> {
        serde_json::from_slice(json).map_err(|e| {
            let field = if e.to_string().contains("`command`") {
                "command"
            } else {
                "body"
            };
            Refusal::Command(CommandError::invalid(field, format!("not a valid command: {e}")))
        })
    }

    /// The command's name, as in its `command` field.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateWorkOrder(_) => "create_work_order",
            Command::ReleaseWorkOrder { .. } => "release_work_order",
            Command::StartWorkOrder { .. } => "start_work_order",
            Command::HoldWorkOrder { .. } => "hold_work_order",
            Command::CompleteWorkOrder { .. } => "complete_work_order",
            Command::CancelWorkOrder { .. } => "cancel_work_order",
            Command::SetWorkOrderStatus { .. } => "set_work_order_status",
            Command::CreateLot(_) => "create_lot",
            Command::SetLotStatus { .. } => "set_lot_status",
            Command::RecordGenealogy { .. } => "record_genealogy",
            Command::AssignReason { .. } => "assign_reason",
            Command::SignIn { .. } => "sign_in",
            Command::SignOut { .. } => "sign_out",
            Command::SubmitForm { .. } => "submit_form",
        }
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Production {
    /// Carries out a command for `by` (the user or client that sent it) at `time` and
    /// returns the object it created or changed, as JSON.
    pub fn execute(
        &mut self,
        command: Command,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<Value, Refusal> {
        Ok(match command {
            Command::CreateWorkOrder(new) => json(&self.create_work_order(new, by, time, out)?),
            Command::ReleaseWorkOrder { id } => json(&self.release_work_order(&id, by, time, out)?),
            Command::StartWorkOrder { id } => json(&self.start_work_order(&id, by, time, out)?),
            Command::HoldWorkOrder { id } => json(&self.hold_work_order(&id, by, time, out)?),
            Command::CompleteWorkOrder { id } => json(&self.complete_work_order(&id, by, time, out)?),
            Command::CancelWorkOrder { id } => json(&self.cancel_work_order(&id, by, time, out)?),
            Command::SetWorkOrderStatus { id, status } => {
                json(&self.set_work_order_status(&id, status, by, time, out)?)
            }
            Command::CreateLot(new) => json(&self.create_lot(new, by, time, out)?),
            Command::SetLotStatus { id, status } => json(&self.set_lot_status(&id, status, by, time, out)?),
            Command::RecordGenealogy { consumed, produced } => {
                self.record_genealogy(&consumed, &produced, by, time, out)?;
                serde_json::json!({"produced": produced, "consumed": consumed})
            }
            Command::AssignReason { downtime, reason } => {
                json(&self.assign_reason(downtime, &reason, by, time, out)?)
            }
            Command::SignIn {
                operator,
                name,
                asset,
            } => json(&self.sign_in(&operator, name.as_deref(), &asset, time, out)?),
            Command::SignOut { operator } => json(&self.sign_out(&operator, time, out)?),
            Command::SubmitForm {
                form,
                asset,
                values,
                id,
                time: made,
            } => {
                let submission = Submission {
                    form: &form,
                    asset: &asset,
                    user: by.unwrap_or("anonymous"),
                    values: &values,
                    id: id.as_deref(),
                    time: made.as_deref(),
                };
                let done = self.submit_entry(&submission, time, out)?;
                let mut answer = json(&done.record);
                // A retry of an id recorded before: the first record, marked.
                if done.duplicate
                    && let Value::Object(fields) = &mut answer
                {
                    fields.insert("duplicate".into(), Value::Bool(true));
                }
                answer
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn commands_read_from_json_by_name() {
        let c = Command::parse(br#"{"command": "start_work_order", "id": "WO-1"}"#).unwrap();
        assert_eq!(c, Command::StartWorkOrder { id: "WO-1".into() });
        assert_eq!(c.name(), "start_work_order");
        let c = Command::parse(
            br#"{"command": "record_genealogy", "produced": "F-1", "consumed": [{"lot": "B-1", "quantity": 10}]}"#,
        )
        .unwrap();
        assert!(matches!(c, Command::RecordGenealogy { ref produced, .. } if produced == "F-1"));
    }

    #[test]
    fn unknown_commands_and_fields_are_refused_by_name() {
        let e = Command::parse(br#"{"command": "launch_rocket"}"#).unwrap_err();
        assert!(e.message().contains("launch_rocket"), "{}", e.message());
        let e =
            Command::parse(br#"{"command": "start_work_order", "id": "WO-1", "colour": "red"}"#).unwrap_err();
        assert!(e.message().contains("colour"), "{}", e.message());
        let e = Command::parse(b"not json").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
}
