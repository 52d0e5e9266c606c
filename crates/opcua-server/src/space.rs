//! The plant's address space, built once from the compiled topology:
//!
//! - every model an ObjectType (subtype of BaseObjectType) whose variable components are
//!   its attributes, typed, with `EngineeringUnits`, `EURange`, `EnumStrings` and
//!   descriptions;
//! - every asset an Object under `Objects` in the ISA-95 hierarchy (a folder when it has no
//!   model, an instance of its model's type otherwise), with its attributes as variables
//!   and its production context as properties;
//! - the NodeIds of [`crate::nodes`].
//!
//! What the sink needs per change is kept in [`PlantNodes`], indexed by tag and asset, so
//! a batch never looks a node up by text.

use std::sync::Arc;

use backplane_connector::Topology;
use backplane_model::{Attribute, Context, ContextField, DataType, Level, ScalarType};
use opcua::server::address_space::{
    AccessLevel, AddressSpace, EventNotifier, NodeType, ObjectBuilder, ObjectTypeBuilder, VariableBuilder,
};
use opcua::types::{
    DataTypeId, DataValue, ExtensionObject, LocalizedText, NodeId, ObjectId, ObjectTypeId, QualifiedName,
    Range, ReferenceTypeId, StatusCode, UAString, VariableTypeId, Variant,
};

use crate::nodes;
use crate::units::eu_information;
use crate::value::type_and_rank;

/// The variable of one tag.
#[derive(Debug, Clone)]
pub struct TagNode {
    pub id: NodeId,
    pub data: DataType,
    /// Allowlisted for writes (the gate still decides each one).
    pub writable: bool,
}

/// The nodes of one asset.
#[derive(Debug, Clone)]
pub struct AssetNodes {
    pub id: NodeId,
    /// One property per [`ContextField::ALL`], in that order.
    pub context: Vec<NodeId>,
}

/// What the sink and the node manager look nodes up in, by index.
#[derive(Debug, Default)]
pub struct PlantNodes {
    pub ns: u16,
    /// By tag index; `None` for a tag of an asset without a model (never happens today).
    pub tags: Vec<Option<TagNode>>,
    /// By asset index.
    pub assets: Vec<AssetNodes>,
}

/// Whether a tag's attribute may be written: its model allowlists it and its asset does
/// not narrow it away (`docs/writes.md`).
fn allowlisted(
    topology: &Topology,
    model: &str,
    attribute: &str,
    asset_writes: Option<&Vec<String>>,
) -> bool {
    topology
        .plan
        .writes
        .iter()
        .any(|r| r.model == model && r.attribute == attribute)
        && asset_writes.is_none_or(|w| w.iter().any(|a| a == attribute))
}

fn level_type(level: Level) -> NodeId {
    match level {
        // Enterprise, site, area and line carry no model of their own in most plants: a
        // folder each, so generic clients show them as such.
        Level::Enterprise | Level::Site | Level::Area | Level::WorkCenter(_) | Level::WorkUnit(_) => {
            ObjectTypeId::FolderType.into()
        }
        Level::Equipment => ObjectTypeId::BaseObjectType.into(),
    }
}

fn qualified(ns: u16, name: &str) -> QualifiedName {
    QualifiedName::new(ns, name)
}

fn text(s: &str) -> LocalizedText {
    LocalizedText::new("", s)
}

fn is_analog(attribute: &Attribute) -> bool {
    matches!(attribute.data_type, DataType::Scalar(s) if s.is_numeric())
}

/// Adds the properties of an attribute variable: `EngineeringUnits`, `EURange`,
/// `EnumStrings`.
fn add_properties(
    space: &mut AddressSpace,
    ns: u16,
    owner: &NodeId,
    owner_text: &str,
    attribute: &Attribute,
) {
    if let Some(unit) = &attribute.unit {
        VariableBuilder::new(
            &nodes::member(ns, owner_text, "EngineeringUnits"),
            "EngineeringUnits",
            "EngineeringUnits",
        )
        .data_type(DataTypeId::EUInformation)
        .value(ExtensionObject::from_message(eu_information(unit)))
        .property_of(owner.clone())
        .has_type_definition(VariableTypeId::PropertyType)
        .insert(space);
    }
    if let Some([low, high]) = attribute.range {
        VariableBuilder::new(&nodes::member(ns, owner_text, "EURange"), "EURange", "EURange")
            .data_type(DataTypeId::Range)
            .value(ExtensionObject::from_message(Range { low, high }))
            .property_of(owner.clone())
            .has_type_definition(VariableTypeId::PropertyType)
            .insert(space);
    }
    if let Some(labels) = &attribute.allowed {
        let labels: Vec<LocalizedText> = labels.iter().map(|l| text(l)).collect();
        VariableBuilder::new(
            &nodes::member(ns, owner_text, "EnumStrings"),
            "EnumStrings",
            "EnumStrings",
        )
        .data_type(DataTypeId::LocalizedText)
        .value_rank(1)
        .value(labels)
        .property_of(owner.clone())
        .has_type_definition(VariableTypeId::PropertyType)
        .insert(space);
    }
}

fn variable_type(attribute: &Attribute) -> VariableTypeId {
    if is_analog(attribute) && attribute.range.is_some() {
        VariableTypeId::AnalogItemType
    } else {
        VariableTypeId::BaseDataVariableType
    }
}

fn add_model_types(space: &mut AddressSpace, ns: u16, topology: &Topology) {
    for model in &topology.plan.models {
        let type_id = nodes::model_type(ns, &model.name);
        let mut builder = ObjectTypeBuilder::new(&type_id, qualified(ns, &model.name), model.name.as_str())
            .subtype_of(ObjectTypeId::BaseObjectType);
        if let Some(d) = &model.description {
            builder = builder.description(text(d));
        }
        builder.insert(space);
        for attribute in &model.attributes {
            let id = nodes::model_component(ns, &model.name, &attribute.name);
            let (data_type, rank) = type_and_rank(attribute.data_type);
            let mut builder =
                VariableBuilder::new(&id, qualified(ns, &attribute.name), attribute.name.as_str())
                    .data_type(data_type)
                    .value_rank(rank)
                    .component_of(type_id.clone())
                    .has_type_definition(variable_type(attribute))
                    .has_modelling_rule(ObjectId::ModellingRule_Mandatory);
            if let Some(d) = &attribute.description {
                builder = builder.description(text(d));
            }
            builder.insert(space);
            let id_text = format!("@types/{}/{}", model.name, attribute.name);
            add_properties(space, ns, &id, &id_text, attribute);
        }
    }
}

fn context_variant(context: &Context, field: ContextField) -> Variant {
    match context.get(field) {
        Some(v) => Variant::String(UAString::from(&**v)),
        None => Variant::String(UAString::null()),
    }
}

/// Builds the plant into `space` (namespace `ns`); `history`: a historian answers
/// HistoryRead for the variables.
pub fn build(space: &mut AddressSpace, ns: u16, topology: &Topology, history: bool) -> PlantNodes {
    add_model_types(space, ns, topology);
    let mut plant = PlantNodes {
        ns,
        tags: vec![None; topology.tags.len()],
        assets: Vec::with_capacity(topology.assets.len()),
    };
    for asset in &topology.assets {
        let path = asset.path.as_str();
        let id = nodes::asset(ns, path);
        let name = asset.path.segments().last().unwrap_or(path);
        let type_id = match &asset.model {
            Some(model) => nodes::model_type(ns, &model.name),
            None => level_type(asset.level),
        };
        let parent: NodeId = match asset.parent.and_then(|p| topology.assets.get(p)) {
            Some(p) => nodes::asset(ns, p.path.as_str()),
            None => ObjectId::ObjectsFolder.into(),
        };
        let mut builder = ObjectBuilder::new(&id, qualified(ns, name), name)
            .has_type_definition(type_id)
            .event_notifier(EventNotifier::SUBSCRIBE_TO_EVENTS)
            .organized_by(parent.clone());
        if asset.parent.is_some() {
            // The event hierarchy: an asset's events reach its ancestors' subscribers.
            builder = builder.reference(
                parent,
                ReferenceTypeId::HasNotifier,
                opcua::server::address_space::ReferenceDirection::Inverse,
            );
        }
        if let Some(d) = &asset.description {
            builder = builder.description(text(d));
        }
        builder.insert(space);
        if asset.parent.is_none() {
            space.insert_reference(&ObjectId::Server.into(), &id, ReferenceTypeId::HasNotifier);
        }

        let context: Vec<NodeId> = ContextField::ALL
            .iter()
            .map(|field| {
                let prop = nodes::member(ns, path, field.name());
                VariableBuilder::new(&prop, qualified(ns, field.name()), field.name())
                    .data_type(DataTypeId::String)
                    .value(context_variant(&asset.initial_context, *field))
                    .property_of(id.clone())
                    .has_type_definition(VariableTypeId::PropertyType)
                    .insert(space);
                prop
            })
            .collect();

        for tag in asset.tags.iter().filter_map(|t| topology.tag(*t)) {
            let attribute: &Arc<Attribute> = &tag.attribute;
            let path = topology.path(tag).to_string();
            let tag_id = nodes::tag(ns, &path);
            let (data_type, rank) = type_and_rank(attribute.data_type);
            let writable = allowlisted(
                topology,
                asset.model_name(),
                &attribute.name,
                asset.writes.as_ref(),
            ) && !matches!(
                attribute.data_type,
                DataType::Array(_) | DataType::Scalar(ScalarType::Timestamp)
            );
            let mut access = AccessLevel::CURRENT_READ;
            if history {
                access |= AccessLevel::HISTORY_READ;
            }
            if writable {
                access |= AccessLevel::CURRENT_WRITE;
            }
            let mut builder =
                VariableBuilder::new(&tag_id, qualified(ns, &attribute.name), attribute.name.as_str())
                    .data_type(data_type)
                    .value_rank(rank)
                    .access_level(access)
                    .user_access_level(access)
                    .historizing(history)
                    .component_of(id.clone())
                    .has_type_definition(variable_type(attribute));
            if let Some(d) = &attribute.description {
                builder = builder.description(text(d));
            }
            builder.insert(space);
            // Reads of the value come from `crate::live`; the node says the same for any
            // path that reads the address space itself: no value yet, never Good.
            if let Some(NodeType::Variable(v)) = space.find_mut(&tag_id) {
                v.set_data_value(DataValue {
                    // Empty, not None: see `value::reading`.
                    value: Some(Variant::Empty),
                    status: Some(StatusCode::BadWaitingForInitialData),
                    ..Default::default()
                });
            }
            add_properties(space, ns, &tag_id, &path, attribute);
            if let Some(slot) = plant.tags.get_mut(tag.id.index()) {
                *slot = Some(TagNode {
                    id: tag_id,
                    data: attribute.data_type,
                    writable,
                });
            }
        }
        plant.assets.push(AssetNodes { id, context });
    }
    plant
}

/// The values of an asset's context properties.
pub fn context_values(context: &Context) -> impl Iterator<Item = Variant> + '_ {
    ContextField::ALL.into_iter().map(|f| context_variant(context, f))
}
