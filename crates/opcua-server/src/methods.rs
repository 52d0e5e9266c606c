//! Production actions as OPC UA methods of the `Production` object (`@production`): the
//! same commands the API's production endpoints run (through the production stage's
//! handle, between two batches), for users with role operator or above, each recorded in
//! the audit trail as `opcua session N`.
//!
//! | method                  | inputs                              | output            |
//! |-------------------------|-------------------------------------|-------------------|
//! | `StartWorkOrder`        | `WorkOrder` (String)                | `Result` (JSON)   |
//! | `HoldWorkOrder`         | `WorkOrder` (String)                | `Result` (JSON)   |
//! | `CompleteWorkOrder`     | `WorkOrder` (String)                | `Result` (JSON)   |
//! | `AssignDowntimeReason`  | `Downtime` (UInt64), `Reason` (String) | `Result` (JSON) |
//!
//! Refusals: BadUserAccessDenied (anonymous, or below operator), BadNotFound (no such work
//! order or downtime), BadInvalidArgument (bad argument or invalid transition),
//! BadInvalidState (a conflict), BadResourceUnavailable (no production stage, or the
//! audit trail cannot be written).

use std::sync::Arc;

use backplane_production::{Command, CommandFailed, ErrorKind, ProductionHandle, Refusal};
use backplane_security::{AuditEvent, AuditTrail, Identity, Outcome, Role};
use opcua::server::address_space::{AddressSpace, MethodBuilder, ObjectBuilder};
use opcua::types::{
    Argument, DataTypeId, LocalizedText, NodeId, ObjectId, ObjectTypeId, StatusCode, UAString, Variant,
};

use crate::nodes;

/// The production methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    StartWorkOrder,
    HoldWorkOrder,
    CompleteWorkOrder,
    AssignDowntimeReason,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::StartWorkOrder,
        Method::HoldWorkOrder,
        Method::CompleteWorkOrder,
        Method::AssignDowntimeReason,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::StartWorkOrder => "StartWorkOrder",
            Method::HoldWorkOrder => "HoldWorkOrder",
            Method::CompleteWorkOrder => "CompleteWorkOrder",
            Method::AssignDowntimeReason => "AssignDowntimeReason",
        }
    }

    fn inputs(self) -> Vec<(&'static str, DataTypeId)> {
        match self {
            Method::AssignDowntimeReason => {
                vec![("Downtime", DataTypeId::UInt64), ("Reason", DataTypeId::String)]
            }
            _ => vec![("WorkOrder", DataTypeId::String)],
        }
    }

    /// The method a node id names.
    pub fn of(ns: u16, id: &NodeId) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| nodes::method(ns, m.name()) == *id)
    }

    /// The command of a call's arguments.
    fn command(self, args: &[Variant]) -> Result<Command, StatusCode> {
        let text = |i: usize| match args.get(i) {
            Some(Variant::String(s)) if !s.is_null() => Ok(s.as_ref().to_owned()),
            _ => Err(StatusCode::BadInvalidArgument),
        };
        Ok(match self {
            Method::StartWorkOrder => Command::StartWorkOrder { id: text(0)? },
            Method::HoldWorkOrder => Command::HoldWorkOrder { id: text(0)? },
            Method::CompleteWorkOrder => Command::CompleteWorkOrder { id: text(0)? },
            Method::AssignDowntimeReason => Command::AssignReason {
                downtime: match args.first() {
                    Some(Variant::UInt64(n)) => *n,
                    Some(Variant::UInt32(n)) => u64::from(*n),
                    _ => return Err(StatusCode::BadInvalidArgument),
                },
                reason: text(1)?,
            },
        })
    }

    fn action(self) -> &'static str {
        match self {
            Method::StartWorkOrder => "work_order.start",
            Method::HoldWorkOrder => "work_order.hold",
            Method::CompleteWorkOrder => "work_order.complete",
            Method::AssignDowntimeReason => "downtime.reason",
        }
    }
}

fn argument(name: &str, data_type: DataTypeId) -> Argument {
    Argument {
        name: UAString::from(name),
        data_type: data_type.into(),
        value_rank: -1,
        array_dimensions: None,
        description: LocalizedText::null(),
    }
}

/// Adds the `Production` object and its methods under `Objects`.
pub fn build(space: &mut AddressSpace, ns: u16) {
    let object = nodes::production(ns);
    ObjectBuilder::new(
        &object,
        opcua::types::QualifiedName::new(ns, "Production"),
        "Production",
    )
    .description(LocalizedText::new(
        "",
        "Production actions (work orders, downtime reasons)",
    ))
    .has_type_definition(ObjectTypeId::BaseObjectType)
    .organized_by(ObjectId::ObjectsFolder)
    .insert(space);
    for method in Method::ALL {
        let id = nodes::method(ns, method.name());
        let inputs: Vec<Argument> = method.inputs().into_iter().map(|(n, t)| argument(n, t)).collect();
        MethodBuilder::new(
            &id,
            opcua::types::QualifiedName::new(ns, method.name()),
            method.name(),
        )
        .component_of(object.clone())
        .executable(true)
        .user_executable(true)
        .input_args(
            space,
            &nodes::member(ns, &format!("@production#{}", method.name()), "InputArguments"),
            &inputs,
        )
        .output_args(
            space,
            &nodes::member(ns, &format!("@production#{}", method.name()), "OutputArguments"),
            &[argument("Result", DataTypeId::String)],
        )
        .insert(space);
    }
}

fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal.kind() {
        ErrorKind::NotFound => StatusCode::BadNotFound,
        ErrorKind::Conflict => StatusCode::BadInvalidState,
        ErrorKind::Invalid => StatusCode::BadInvalidArgument,
    }
}

/// What a call needs besides its arguments.
#[derive(Debug, Clone, Default)]
pub struct Production {
    pub handle: Option<Arc<ProductionHandle>>,
    pub audit: Option<AuditTrail>,
}

impl Production {
    /// Runs `method` for `who` (`None`: anonymous); the JSON of what changed.
    pub async fn call(
        &self,
        method: Method,
        args: &[Variant],
        who: Option<(&str, Role)>,
        session: u32,
    ) -> Result<Vec<Variant>, StatusCode> {
        let Some((name, role)) = who.filter(|(_, role)| role.allows(Role::Operator)) else {
            return Err(StatusCode::BadUserAccessDenied);
        };
        let command = method.command(args)?;
        let target = match &command {
            Command::StartWorkOrder { id }
            | Command::HoldWorkOrder { id }
            | Command::CompleteWorkOrder { id } => id.clone(),
            Command::AssignReason { downtime, .. } => downtime.to_string(),
            _ => String::new(),
        };
        let handle = self.handle.as_ref().ok_or(StatusCode::BadResourceUnavailable)?;
        let result = handle.execute(command, Some(name.to_owned())).await;
        let outcome = match &result {
            Ok(_) => Outcome::Done,
            Err(CommandFailed::Refused(r)) => Outcome::Refused(r.message()),
            Err(CommandFailed::Stopped) => Outcome::Failed("the engine is stopping".into()),
        };
        if let Some(audit) = &self.audit {
            let event = AuditEvent {
                who: Some(Identity::new(
                    name,
                    role,
                    backplane_security::AuthMethod::Password,
                )),
                from: format!("opcua session {session}"),
                action: method.action().to_owned(),
                target,
                old: None,
                new: Some(
                    serde_json::json!({"method": method.name(), "arguments": args.iter().map(|a| a.to_string()).collect::<Vec<_>>()}),
                ),
                outcome,
            };
            if let Err(e) = audit.0.record(event) {
                tracing::warn!("{e}");
            }
        }
        match result {
            Ok(value) => Ok(vec![Variant::String(UAString::from(value.to_string()))]),
            Err(CommandFailed::Refused(refusal)) => Err(refusal_status(&refusal)),
            Err(CommandFailed::Stopped) => Err(StatusCode::BadServerHalted),
        }
    }
}
