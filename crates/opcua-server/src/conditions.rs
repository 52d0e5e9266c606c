//! Limit alarms as OPC UA conditions (Part 9): one `ExclusiveLimitAlarmType` instance per
//! attribute with `limits`, referenced by the attribute's variable with `HasCondition`
//! (the asset `HasEventSource` the variable). A transition of the alarms stage (an `alarm`
//! event with the limit fields) updates the instance's state variables and is reported as
//! a condition event by the asset, every ancestor asset and the Server object, each
//! subscriber getting it once (see [`crate::notifiers`]).
//!
//! Exclusive rather than non-exclusive: the stage keeps one level per attribute (a value is
//! in hihi *or* hi), which is exactly `LimitState/CurrentState`.
//!
//! Event fields: BaseEventType's, ConditionClassId/Name (ProcessConditionClassType),
//! ConditionName (`LimitAlarm`), BranchId (null), Retain, EnabledState(/Id), Quality,
//! LastSeverity, Comment, ClientUserId, AckedState(/Id), ConfirmedState is not offered,
//! ActiveState(/Id), InputNode, HighHighLimit/HighLimit/LowLimit/LowLowLimit (those set),
//! LimitState/CurrentState(/Id), SuppressedOrShelved, and the ConditionId (the select
//! clause on ConditionType with an empty path and the NodeId attribute).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use backplane_alarms::Condition;
use backplane_connector::Topology;
use backplane_model::sample::Alarm;
use backplane_model::{LimitLevel, Limits, Timestamp};
use opcua::nodes::Event;
use opcua::server::EventField;
use opcua::server::address_space::{AddressSpace, BaseEventType, NodeType, ObjectBuilder, VariableBuilder};
use opcua::sync::Mutex;
use opcua::types::{
    AttributeId, ByteString, DataTypeId, DataValue, DateTime, LocalizedText, MethodId, NodeId, NumericRange,
    ObjectId, ObjectTypeId, QualifiedName, ReferenceTypeId, StatusCode, UAString, VariableTypeId, Variant,
};

use crate::nodes;
use crate::value::date_time;

/// The browse name and ConditionName of every limit alarm instance.
pub const NAME: &str = "LimitAlarm";

/// ExclusiveLimitAlarmType and its supertypes: a select clause naming any of them reads
/// the same fields.
const TYPES: [u32; 6] = [
    ObjectTypeId::BaseEventType as u32,
    ObjectTypeId::ConditionType as u32,
    ObjectTypeId::AcknowledgeableConditionType as u32,
    ObjectTypeId::AlarmConditionType as u32,
    ObjectTypeId::LimitAlarmType as u32,
    ObjectTypeId::ExclusiveLimitAlarmType as u32,
];

/// The state variables of an instance that follow the alarm, as (browse path, value) pairs.
const STATE_VARIABLES: [&str; 10] = [
    "EnabledState",
    "EnabledState/Id",
    "ActiveState",
    "ActiveState/Id",
    "AckedState",
    "AckedState/Id",
    "Retain",
    "LastSeverity",
    "LimitState/CurrentState",
    "LimitState/CurrentState/Id",
];

/// The node of a limit level's state in ExclusiveLimitStateMachineType.
fn state_id(level: LimitLevel) -> NodeId {
    NodeId::new(
        0,
        match level {
            LimitLevel::Hihi => 9329u32,
            LimitLevel::Hi => 9331,
            LimitLevel::Lo => 9333,
            LimitLevel::Lolo => 9335,
        },
    )
}

fn state_name(level: LimitLevel) -> &'static str {
    match level {
        LimitLevel::Hihi => "HighHigh",
        LimitLevel::Hi => "High",
        LimitLevel::Lo => "Low",
        LimitLevel::Lolo => "LowLow",
    }
}

fn text(s: &str) -> Variant {
    Variant::from(LocalizedText::new("", s))
}

/// One condition instance.
#[derive(Debug, Clone)]
pub struct ConditionNode {
    /// `asset/attribute`.
    pub path: String,
    pub id: NodeId,
    /// The attribute's variable (the ConditionSource).
    pub source: NodeId,
    /// The objects that report its events: the asset, its ancestors (nearest first), the
    /// Server.
    pub emitters: Vec<NodeId>,
    pub limits: Limits,
}

impl ConditionNode {
    /// The asset's ancestors, whose subscribers get the event from [`crate::notifiers`].
    pub fn ancestors(&self) -> &[NodeId] {
        match self.emitters.len() {
            0..=2 => &[],
            n => &self.emitters[1..n - 1],
        }
    }
}

/// The member node of an instance at `path` (`ActiveState/Id`).
fn member(ns: u16, condition: &str, path: &str) -> NodeId {
    NodeId::new(ns, format!("{condition}/{path}"))
}

/// The state an event or a variable shows.
#[derive(Debug, Clone)]
pub struct Shown {
    pub level: Option<LimitLevel>,
    pub acked: bool,
    pub priority: u16,
    pub message: String,
    pub time: Timestamp,
    pub comment: Option<String>,
    pub by: Option<String>,
}

impl Shown {
    pub fn of_event(alarm: &Alarm, time: Timestamp) -> Shown {
        Shown {
            level: alarm.limit,
            acked: alarm.acked.unwrap_or(true),
            priority: alarm.priority.unwrap_or(100),
            message: alarm.message.as_deref().unwrap_or_default().to_owned(),
            time,
            comment: alarm.comment.as_deref().map(str::to_owned),
            by: alarm.by.as_deref().map(str::to_owned),
        }
    }

    pub fn of_condition(c: &Condition, now: Timestamp) -> Shown {
        Shown {
            level: c.state.level,
            acked: c.state.acked,
            priority: c.priority(),
            message: c.message(None),
            time: c.state.since.unwrap_or(now),
            comment: None,
            by: None,
        }
    }

    fn retain(&self) -> bool {
        self.level.is_some() || !self.acked
    }

    /// The value of a state variable (one of [`STATE_VARIABLES`]).
    fn variable(&self, path: &str) -> Variant {
        match path {
            "EnabledState" => text("Enabled"),
            "EnabledState/Id" => Variant::Boolean(true),
            "ActiveState" => text(if self.level.is_some() {
                "Active"
            } else {
                "Inactive"
            }),
            "ActiveState/Id" => Variant::Boolean(self.level.is_some()),
            "AckedState" => text(if self.acked {
                "Acknowledged"
            } else {
                "Unacknowledged"
            }),
            "AckedState/Id" => Variant::Boolean(self.acked),
            "Retain" => Variant::Boolean(self.retain()),
            "LastSeverity" => Variant::UInt16(self.priority),
            "LimitState/CurrentState" => self.level.map_or_else(|| text(""), |l| text(state_name(l))),
            "LimitState/CurrentState/Id" => self
                .level
                .map_or_else(|| Variant::from(NodeId::null()), |l| Variant::from(state_id(l))),
            _ => Variant::Empty,
        }
    }
}

/// Every condition instance of the plant, the last EventId of each (Acknowledge names
/// it), and the EventId sequence.
#[derive(Debug, Default)]
pub struct ConditionIndex {
    pub ns: u16,
    pub all: Vec<ConditionNode>,
    by_id: HashMap<NodeId, usize>,
    by_path: HashMap<String, usize>,
    last_event: Mutex<Vec<Option<ByteString>>>,
    sequence: AtomicU64,
}

impl ConditionIndex {
    pub fn by_id(&self, id: &NodeId) -> Option<(usize, &ConditionNode)> {
        let i = *self.by_id.get(id)?;
        self.all.get(i).map(|c| (i, c))
    }

    pub fn by_path(&self, path: &str) -> Option<(usize, &ConditionNode)> {
        let i = *self.by_path.get(path)?;
        self.all.get(i).map(|c| (i, c))
    }

    /// Whether `id` is the EventId of the condition's latest event.
    pub fn is_latest(&self, index: usize, id: &ByteString) -> bool {
        self.last_event
            .lock()
            .get(index)
            .is_some_and(|last| last.as_ref() == Some(id))
    }

    /// A condition event of `index` showing `shown`; its EventId is remembered as the
    /// latest (Acknowledge must name it).
    /// `refresh`: the event repeats the condition's state for ConditionRefresh and keeps
    /// its latest EventId, so a refresh by one client never makes another client's
    /// Acknowledge of the event it saw fail.
    pub fn event(&self, index: usize, shown: &Shown, refresh: bool) -> Option<ConditionEvent> {
        let node = self.all.get(index)?;
        let event_id = {
            let mut last = self.last_event.lock();
            let slot = last.get_mut(index)?;
            match slot {
                Some(id) if refresh => id.clone(),
                _ => {
                    let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
                    let mut bytes = b"alarm".to_vec();
                    bytes.extend_from_slice(&(index as u64).to_be_bytes());
                    bytes.extend_from_slice(&shown.time.unix_nanos().to_be_bytes());
                    bytes.extend_from_slice(&sequence.to_be_bytes());
                    let id = ByteString::from(bytes);
                    *slot = Some(id.clone());
                    id
                }
            }
        };
        let base = BaseEventType::new(
            ObjectTypeId::ExclusiveLimitAlarmType,
            event_id,
            LocalizedText::new("", &shown.message),
            date_time(shown.time),
        )
        .set_source_node(node.source.clone())
        .set_source_name(UAString::from(node.path.as_str()))
        .set_receive_time(DateTime::now())
        .set_severity(shown.priority);
        let mut fields: Vec<(String, Variant)> = STATE_VARIABLES
            .iter()
            .map(|p| ((*p).to_owned(), shown.variable(p)))
            .collect();
        let fixed = [
            (
                "ConditionClassId",
                Variant::from(NodeId::from(ObjectTypeId::ProcessConditionClassType)),
            ),
            ("ConditionClassName", text("Process")),
            ("ConditionName", Variant::String(NAME.into())),
            ("BranchId", Variant::from(NodeId::null())),
            ("Quality", Variant::StatusCode(StatusCode::Good)),
            ("Comment", text(shown.comment.as_deref().unwrap_or_default())),
            (
                "ClientUserId",
                Variant::String(shown.by.as_deref().map_or_else(UAString::null, UAString::from)),
            ),
            ("InputNode", Variant::from(node.source.clone())),
            ("SuppressedOrShelved", Variant::Boolean(false)),
            ("EnabledState/EffectiveDisplayName", text("Enabled")),
        ];
        fields.extend(fixed.into_iter().map(|(k, v)| (k.to_owned(), v)));
        for (name, level) in LIMIT_PROPERTIES {
            if let Some(limit) = node.limits.limit(level) {
                fields.push((name.to_owned(), Variant::Double(limit)));
            }
        }
        Some(ConditionEvent {
            base,
            condition: node.id.clone(),
            fields,
        })
    }

    /// Sets the instance's state variables to `shown`.
    pub fn show(&self, space: &mut AddressSpace, index: usize, shown: &Shown) {
        let Some(node) = self.all.get(index) else {
            return;
        };
        let time = date_time(shown.time);
        for path in STATE_VARIABLES {
            let id = member(self.ns, id_text(&node.id), path);
            if let Some(NodeType::Variable(v)) = space.find_mut(&id) {
                v.set_data_value(DataValue::new_at(shown.variable(path), time));
            }
        }
    }
}

fn id_text(id: &NodeId) -> &str {
    match &id.identifier {
        opcua::types::Identifier::String(s) => s.as_ref(),
        _ => "",
    }
}

const LIMIT_PROPERTIES: [(&str, LimitLevel); 4] = [
    ("HighHighLimit", LimitLevel::Hihi),
    ("HighLimit", LimitLevel::Hi),
    ("LowLimit", LimitLevel::Lo),
    ("LowLowLimit", LimitLevel::Lolo),
];

/// Adds a condition instance for every tag whose attribute has limits, in the inactive
/// state (the sink shows the alarms stage's state once it runs).
pub fn build(space: &mut AddressSpace, ns: u16, topology: &Topology) -> ConditionIndex {
    let mut index = ConditionIndex {
        ns,
        ..ConditionIndex::default()
    };
    for tag in &topology.tags {
        let Some(limits) = tag.attribute.limits.clone() else {
            continue;
        };
        let path = topology.path(tag).to_string();
        let source = nodes::tag(ns, &path);
        let id = nodes::member(ns, &path, NAME);
        let condition = id_text(&id).to_owned();
        ObjectBuilder::new(
            &id,
            QualifiedName::new(ns, NAME),
            format!("{} limit alarm", tag.attribute.name),
        )
        .has_type_definition(ObjectTypeId::ExclusiveLimitAlarmType)
        .insert(space);
        space.insert_reference(&source, &id, ReferenceTypeId::HasCondition);
        // Acknowledge is the type's method, called on the instance (Part 9).
        let acknowledge: NodeId = MethodId::AcknowledgeableConditionType_Acknowledge.into();
        space.insert_reference(&id, &acknowledge, ReferenceTypeId::HasComponent);
        let mut emitters = Vec::new();
        if let Some(asset) = topology.assets.get(tag.asset) {
            let id = nodes::asset(ns, asset.path.as_str());
            space.insert_reference(&id, &source, ReferenceTypeId::HasEventSource);
            emitters.push(id);
            let mut at = asset.parent;
            while let Some(parent) = at.and_then(|p| topology.assets.get(p)) {
                emitters.push(nodes::asset(ns, parent.path.as_str()));
                at = parent.parent;
            }
        }
        emitters.push(ObjectId::Server.into());
        let inactive = Shown {
            level: None,
            acked: true,
            priority: 100,
            message: String::new(),
            time: Timestamp::from_unix_millis(0),
            comment: None,
            by: None,
        };
        // The state variables, as components (two-state and finite-state variables with
        // their Id property); LimitState is an object.
        let limit_state = member(ns, &condition, "LimitState");
        ObjectBuilder::new(&limit_state, QualifiedName::new(0, "LimitState"), "LimitState")
            .has_type_definition(ObjectTypeId::ExclusiveLimitStateMachineType)
            .component_of(id.clone())
            .insert(space);
        for path in STATE_VARIABLES {
            let (parent, name) = match path.rsplit_once('/') {
                Some((parent, name)) => (member(ns, &condition, parent), name),
                None => (id.clone(), path),
            };
            let (data_type, type_def, property) = match (path, name) {
                ("Retain", _) => (DataTypeId::Boolean, VariableTypeId::PropertyType, true),
                ("LastSeverity", _) => (DataTypeId::UInt16, VariableTypeId::ConditionVariableType, false),
                (_, "Id") if path.starts_with("LimitState") => {
                    (DataTypeId::NodeId, VariableTypeId::PropertyType, true)
                }
                (_, "Id") => (DataTypeId::Boolean, VariableTypeId::PropertyType, true),
                ("LimitState/CurrentState", _) => (
                    DataTypeId::LocalizedText,
                    VariableTypeId::FiniteStateVariableType,
                    false,
                ),
                _ => (
                    DataTypeId::LocalizedText,
                    VariableTypeId::TwoStateVariableType,
                    false,
                ),
            };
            let builder =
                VariableBuilder::new(&member(ns, &condition, path), QualifiedName::new(0, name), name)
                    .data_type(data_type)
                    .value(inactive.variable(path))
                    .has_type_definition(type_def);
            let builder = if property {
                builder.property_of(parent)
            } else {
                builder.component_of(parent)
            };
            builder.insert(space);
        }
        for (name, level) in LIMIT_PROPERTIES {
            if let Some(limit) = limits.limit(level) {
                VariableBuilder::new(&member(ns, &condition, name), QualifiedName::new(0, name), name)
                    .data_type(DataTypeId::Double)
                    .value(limit)
                    .property_of(id.clone())
                    .has_type_definition(VariableTypeId::PropertyType)
                    .insert(space);
            }
        }
        for (name, value, data_type) in [
            ("ConditionName", Variant::String(NAME.into()), DataTypeId::String),
            ("InputNode", Variant::from(source.clone()), DataTypeId::NodeId),
        ] {
            VariableBuilder::new(&member(ns, &condition, name), QualifiedName::new(0, name), name)
                .data_type(data_type)
                .value(value)
                .property_of(id.clone())
                .has_type_definition(VariableTypeId::PropertyType)
                .insert(space);
        }
        let i = index.all.len();
        index.by_id.insert(id.clone(), i);
        index.by_path.insert(path.clone(), i);
        index.all.push(ConditionNode {
            path,
            id,
            source,
            emitters,
            limits,
        });
    }
    index.last_event = Mutex::new(vec![None; index.all.len()]);
    index
}

/// A condition event ready to be reported.
#[derive(Debug)]
pub struct ConditionEvent {
    base: BaseEventType,
    condition: NodeId,
    /// By browse path, names joined with `/` (all in namespace 0).
    fields: Vec<(String, Variant)>,
}

impl ConditionEvent {
    fn own(&self, attribute_id: AttributeId, path: &[QualifiedName]) -> Option<Variant> {
        if path.is_empty() {
            // The ConditionId: the instance's NodeId.
            return (attribute_id == AttributeId::NodeId).then(|| Variant::from(self.condition.clone()));
        }
        if attribute_id != AttributeId::Value || path.iter().any(|q| q.namespace_index != 0) {
            return None;
        }
        let joined = path.iter().map(|q| q.name.as_ref()).collect::<Vec<_>>().join("/");
        self.fields
            .iter()
            .find(|(k, _)| *k == joined)
            .map(|(_, v)| v.clone())
    }
}

impl EventField for ConditionEvent {
    fn get_value(
        &self,
        attribute_id: AttributeId,
        index_range: &NumericRange,
        path: &[QualifiedName],
    ) -> Variant {
        self.own(attribute_id, path)
            .unwrap_or_else(|| self.base.get_value(attribute_id, index_range, path))
    }
}

impl Event for ConditionEvent {
    fn get_field(
        &self,
        type_definition_id: &NodeId,
        attribute_id: AttributeId,
        index_range: &NumericRange,
        browse_path: &[QualifiedName],
    ) -> Variant {
        if !TYPES.iter().any(|t| *type_definition_id == NodeId::new(0, *t)) {
            return Variant::Empty;
        }
        if let Some(v) = self.own(attribute_id, browse_path) {
            return v;
        }
        let base: NodeId = ObjectTypeId::BaseEventType.into();
        self.base.get_field(&base, attribute_id, index_range, browse_path)
    }

    fn time(&self) -> &DateTime {
        &self.base.time
    }

    fn event_type_id(&self) -> &NodeId {
        &self.base.event_type
    }
}
