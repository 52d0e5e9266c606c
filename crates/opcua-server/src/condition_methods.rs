//! The condition methods of Part 9, which clients call with the standard NodeIds:
//! `Acknowledge` (i=9111, ObjectId the condition) and `ConditionRefresh` (i=3875) /
//! `ConditionRefresh2` (i=12912) on ConditionType.
//!
//! async-opcua 0.19 routes a Call by the owner of the *method's* NodeId, and its core node
//! manager answers every namespace-0 method but two with BadNotSupported. This node
//! manager, placed before the core one, owns exactly these three method nodes: it answers
//! their calls and hands every other service on them (Read of their attributes) to the
//! core node manager.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use backplane_alarms::{AckFailed, AckRefused, AlarmsHandle};
use backplane_model::Timestamp;
use backplane_security::{AuditEvent, AuditTrail, Identity, Outcome, Role};
use opcua::nodes::Event;
use opcua::server::address_space::BaseEventType;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::CoreNodeManager;
use opcua::server::node_manager::{
    BrowseNode, BrowsePathItem, MethodCall, NodeManager, NodeManagersRef, ReadNode, RequestContext,
    ServerContext,
};
use opcua::types::{
    AttributeId, ByteString, DateTime, LocalizedText, MethodId, NodeId, ObjectId, ObjectTypeId, StatusCode,
    TimestampsToReturn, Variant,
};

use crate::auth::Accounts;
use crate::conditions::{ConditionIndex, Shown};

/// What the methods act on.
#[derive(Debug, Clone)]
pub struct AlarmDoor {
    pub handle: Option<Arc<AlarmsHandle>>,
    pub audit: Option<AuditTrail>,
    pub accounts: Arc<Accounts>,
    /// Filled when the plant's address space is built.
    pub index: Arc<OnceLock<Arc<ConditionIndex>>>,
}

/// The node manager of the three methods.
pub struct ConditionMethods {
    door: AlarmDoor,
    node_managers: NodeManagersRef,
}

impl std::fmt::Debug for ConditionMethods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionMethods").finish_non_exhaustive()
    }
}

fn acknowledge_id() -> NodeId {
    MethodId::AcknowledgeableConditionType_Acknowledge.into()
}

fn refresh_id() -> NodeId {
    MethodId::ConditionType_ConditionRefresh.into()
}

fn refresh2_id() -> NodeId {
    MethodId::ConditionType_ConditionRefresh2.into()
}

impl ConditionMethods {
    pub fn new(door: AlarmDoor, context: &ServerContext) -> ConditionMethods {
        ConditionMethods {
            door,
            node_managers: context.node_managers.clone(),
        }
    }

    fn index(&self) -> Result<&Arc<ConditionIndex>, StatusCode> {
        self.door.index.get().ok_or(StatusCode::BadInternalError)
    }

    async fn acknowledge(&self, context: &RequestContext, call: &MethodCall) -> Result<(), StatusCode> {
        let index = self.index()?;
        let (i, condition) = index
            .by_id(call.object_id())
            .ok_or(StatusCode::BadNodeIdUnknown)?;
        let (event_id, comment) = match call.arguments() {
            [Variant::ByteString(id), Variant::LocalizedText(comment)] => {
                (id.clone(), comment.text.as_ref().to_owned())
            }
            [Variant::ByteString(id)] => (id.clone(), String::new()),
            [_, _] | [_] => return Err(StatusCode::BadTypeMismatch),
            _ => return Err(StatusCode::BadArgumentsMissing),
        };
        let Some((name, role)) = self
            .door
            .accounts
            .role(&context.token)
            .map(|r| (context.token.0.as_str(), r))
            .filter(|(_, role)| role.allows(Role::Operator))
        else {
            return Err(StatusCode::BadUserAccessDenied);
        };
        if !index.is_latest(i, &event_id) {
            return Err(StatusCode::BadEventIdUnknown);
        }
        let handle = self
            .door
            .handle
            .as_ref()
            .ok_or(StatusCode::BadResourceUnavailable)?;
        let result = handle
            .acknowledge(
                &condition.path,
                name,
                Some(comment.as_str()).filter(|c| !c.is_empty()),
            )
            .await;
        if let Some(audit) = &self.door.audit {
            let event = AuditEvent {
                who: Some(Identity::new(
                    name,
                    role,
                    backplane_security::AuthMethod::Password,
                )),
                from: format!("opcua session {}", context.session_id),
                action: "alarm.acknowledge".to_owned(),
                target: condition.path.clone(),
                old: None,
                new: Some(serde_json::json!({"comment": comment})),
                outcome: match &result {
                    Ok(()) => Outcome::Done,
                    Err(e) => Outcome::Refused(e.to_string()),
                },
            };
            if let Err(e) = audit.0.record(event) {
                tracing::warn!("{e}");
            }
        }
        result.map_err(|e| match e {
            AckFailed::Refused(AckRefused::AlreadyAcked) => StatusCode::BadConditionBranchAlreadyAcked,
            AckFailed::Refused(AckRefused::NotFound) => StatusCode::BadNodeIdUnknown,
            AckFailed::Stopped => StatusCode::BadServerHalted,
        })
    }

    /// Sends the subscription's event items a RefreshStartEvent, the event of every
    /// retained condition they watch (by their notifier), and a RefreshEndEvent.
    /// `only`: ConditionRefresh2's one monitored item.
    fn refresh(
        &self,
        context: &RequestContext,
        call: &MethodCall,
        only: Option<u32>,
    ) -> Result<(), StatusCode> {
        let subscription = match call.arguments().first() {
            Some(Variant::UInt32(id)) => *id,
            Some(_) => return Err(StatusCode::BadTypeMismatch),
            None => return Err(StatusCode::BadArgumentsMissing),
        };
        let index = self.index()?;
        let sessions = context
            .subscriptions
            .get_session_subscriptions(context.session_id)
            .ok_or(StatusCode::BadSubscriptionIdInvalid)?;
        let mut sessions = sessions.lock();
        let sub = sessions
            .get_mut(subscription)
            .ok_or(StatusCode::BadSubscriptionIdInvalid)?;
        let items: Vec<(u32, NodeId)> = sub
            .items()
            .filter(|item| item.item_to_monitor().attribute_id == AttributeId::EventNotifier)
            .map(|item| (item.id(), item.item_to_monitor().node_id.clone()))
            .filter(|(id, _)| only.is_none_or(|o| o == *id))
            .collect();
        if only.is_some() && items.is_empty() {
            return Err(StatusCode::BadMonitoredItemIdInvalid);
        }
        let now = Timestamp::now();
        let conditions = self.door.handle.as_ref().map(|h| h.view()).unwrap_or_default();
        let type_tree = context.type_tree.read();
        let marker = |type_id: ObjectTypeId, text: &str| {
            BaseEventType::new(
                type_id,
                ByteString::from(now.unix_nanos().to_be_bytes().to_vec()),
                LocalizedText::new("", text),
                DateTime::now(),
            )
            .set_source_node(ObjectId::Server.into())
            .set_source_name("Server".into())
            .set_receive_time(DateTime::now())
            .set_severity(1)
        };
        let start = marker(ObjectTypeId::RefreshStartEventType, "ConditionRefresh started");
        for (id, _) in &items {
            sub.notify_event(id, &start, &*type_tree);
        }
        for condition in conditions.iter().filter(|c| c.retained()) {
            let Some((i, node)) = index.by_path(&condition.path) else {
                continue;
            };
            let Some(event) = index.event(i, &Shown::of_condition(condition, now), true) else {
                continue;
            };
            for (id, notifier) in &items {
                if node.emitters.contains(notifier) {
                    sub.notify_event(id, &event as &dyn Event, &*type_tree);
                }
            }
        }
        let end = marker(ObjectTypeId::RefreshEndEventType, "ConditionRefresh ended");
        for (id, _) in &items {
            sub.notify_event(id, &end, &*type_tree);
        }
        Ok(())
    }
}

#[async_trait]
impl NodeManager for ConditionMethods {
    fn owns_node(&self, id: &NodeId) -> bool {
        *id == acknowledge_id() || *id == refresh_id() || *id == refresh2_id()
    }

    fn name(&self) -> &str {
        "backplane-condition-methods"
    }

    fn namespaces_for_user(&self, _context: &RequestContext) -> Vec<NamespaceMetadata> {
        Vec::new()
    }

    async fn init(&self, type_tree: &mut opcua::nodes::DefaultTypeTree, _context: ServerContext) {
        // The ConditionId select clause (ConditionType, empty browse path, NodeId
        // attribute, Part 9) names the condition itself, which async-opcua's type tree has
        // no entry for: without one the clause is refused and a client's event fields come
        // one short. The type's own NodeId stands for the instance.
        let condition: NodeId = ObjectTypeId::ConditionType.into();
        type_tree.add_type_property(&condition, &condition, &[], opcua::types::NodeClass::Object);
    }

    async fn read(
        &self,
        context: &RequestContext,
        max_age: f64,
        timestamps_to_return: TimestampsToReturn,
        nodes_to_read: &mut [&mut ReadNode],
    ) -> Result<(), StatusCode> {
        let core = self
            .node_managers
            .get_of_type::<CoreNodeManager>()
            .ok_or(StatusCode::BadInternalError)?;
        core.read(context, max_age, timestamps_to_return, nodes_to_read)
            .await
    }

    async fn browse(&self, _context: &RequestContext, _nodes: &mut [BrowseNode]) -> Result<(), StatusCode> {
        // The core node manager browses these nodes (it is called for every node too).
        Ok(())
    }

    async fn translate_browse_paths_to_node_ids(
        &self,
        _context: &RequestContext,
        _nodes: &mut [&mut BrowsePathItem],
    ) -> Result<(), StatusCode> {
        Ok(())
    }

    async fn call(
        &self,
        context: &RequestContext,
        methods_to_call: &mut [&mut MethodCall],
    ) -> Result<(), StatusCode> {
        for call in methods_to_call.iter_mut() {
            let method = call.method_id().clone();
            let result = if method == acknowledge_id() {
                self.acknowledge(context, call).await
            } else if method == refresh_id() {
                self.refresh(context, call, None)
            } else if method == refresh2_id() {
                match call.arguments().get(1) {
                    Some(Variant::UInt32(item)) => self.refresh(context, call, Some(*item)),
                    Some(_) => Err(StatusCode::BadTypeMismatch),
                    None => Err(StatusCode::BadArgumentsMissing),
                }
            } else {
                Err(StatusCode::BadMethodInvalid)
            };
            match result {
                Ok(()) => {
                    call.set_outputs(Vec::new());
                    call.set_status(StatusCode::Good);
                }
                Err(status) => call.set_status(status),
            }
        }
        Ok(())
    }
}
