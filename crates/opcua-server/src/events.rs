//! Backplane events as OPC UA events: five subtypes of BaseEventType in the plant
//! namespace (`@events/NAME`), each with its own fields as properties. An event is
//! reported by its asset's object, by every ancestor asset and by the Server object, so a
//! client subscribed to a line, the site or the Server sees it once ([`crate::notifiers`]).
//!
//! | event type                  | from Backplane event              | own fields                         | severity |
//! |-----------------------------|-----------------------------------|------------------------------------|----------|
//! | `DowntimeEventType`         | `downtime` (opened and closed)    | DowntimeId, State, Reason, Planned, Open, DurationMs | 600 open, 300 closed |
//! | `StateChangedEventType`     | `state_changed`                   | FromState, ToState, DurationMs     | 200 |
//! | `WorkOrderEventType`        | `work_order`                      | WorkOrder, Status, PreviousStatus, Product | 300 |
//! | `QualityRejectEventType`    | `counts` of a reject counter      | Attribute, Rejects, WorkOrder      | 400 |
//! | `ContextChangedEventType`   | `context_changed`                 | Field, OldValue, NewValue          | 100 |
//!
//! Every event also carries BaseEventType's fields: `SourceNode` (the asset's object),
//! `SourceName` (the asset path), `Time` (when it happened), `Message`, `Severity`.
//! Other Backplane events (OEE, lots, genealogy, forms) are not reported over OPC UA.

use backplane_model::sample::{CountRole, EventKind};
use backplane_model::{Event as PlantEvent, Timestamp};
use opcua::nodes::Event;
use opcua::server::EventField;
use opcua::server::address_space::{AddressSpace, BaseEventType, ObjectTypeBuilder, VariableBuilder};
use opcua::types::{
    AttributeId, ByteString, DataTypeId, DateTime, LocalizedText, NodeId, NumericRange, ObjectId,
    ObjectTypeId, QualifiedName, UAString, VariableTypeId, Variant,
};

use crate::nodes;
use crate::value::date_time;

/// The event types and their own fields.
pub const TYPES: [(&str, &[(&str, DataTypeId)]); 5] = [
    (
        "DowntimeEventType",
        &[
            ("DowntimeId", DataTypeId::UInt64),
            ("State", DataTypeId::String),
            ("Reason", DataTypeId::String),
            ("Planned", DataTypeId::Boolean),
            ("Open", DataTypeId::Boolean),
            ("DurationMs", DataTypeId::UInt64),
        ],
    ),
    (
        "StateChangedEventType",
        &[
            ("FromState", DataTypeId::String),
            ("ToState", DataTypeId::String),
            ("DurationMs", DataTypeId::UInt64),
        ],
    ),
    (
        "WorkOrderEventType",
        &[
            ("WorkOrder", DataTypeId::String),
            ("Status", DataTypeId::String),
            ("PreviousStatus", DataTypeId::String),
            ("Product", DataTypeId::String),
        ],
    ),
    (
        "QualityRejectEventType",
        &[
            ("Attribute", DataTypeId::String),
            ("Rejects", DataTypeId::UInt64),
            ("WorkOrder", DataTypeId::String),
        ],
    ),
    (
        "ContextChangedEventType",
        &[
            ("Field", DataTypeId::String),
            ("OldValue", DataTypeId::String),
            ("NewValue", DataTypeId::String),
        ],
    ),
];

/// Adds the event types under BaseEventType.
pub fn build(space: &mut AddressSpace, ns: u16) {
    for (name, fields) in TYPES {
        let id = nodes::event_type(ns, name);
        ObjectTypeBuilder::new(&id, QualifiedName::new(ns, name), name)
            .subtype_of(ObjectTypeId::BaseEventType)
            .insert(space);
        for (field, data_type) in fields {
            VariableBuilder::new(
                &nodes::event_field(ns, name, field),
                QualifiedName::new(ns, *field),
                *field,
            )
            .data_type(*data_type)
            .property_of(id.clone())
            .has_type_definition(VariableTypeId::PropertyType)
            .has_modelling_rule(ObjectId::ModellingRule_Mandatory)
            .insert(space);
        }
        // Generic clients find which objects report which events.
        space.insert_reference(
            &ObjectId::Server.into(),
            &id,
            opcua::types::ReferenceTypeId::GeneratesEvent,
        );
    }
}

/// One event ready to be reported.
#[derive(Debug)]
pub struct OpcEvent {
    base: BaseEventType,
    ns: u16,
    fields: Vec<(&'static str, Variant)>,
}

fn text(s: Option<&str>) -> Variant {
    Variant::String(s.map_or_else(UAString::null, UAString::from))
}

fn event_id(time: Timestamp, sequence: u64) -> ByteString {
    let mut bytes = time.unix_nanos().to_be_bytes().to_vec();
    bytes.extend_from_slice(&sequence.to_be_bytes());
    ByteString::from(bytes)
}

/// The OPC UA event of a Backplane event, if it is one of the five reported kinds;
/// `source` is the asset's object. `sequence` makes EventIds unique.
pub fn convert(event: &PlantEvent, ns: u16, source: &NodeId, sequence: u64) -> Option<OpcEvent> {
    let (name, severity, message, fields): (&str, u16, String, Vec<(&'static str, Variant)>) =
        match &event.kind {
            EventKind::Downtime(d) => {
                let open = d.end.is_none();
                (
                    "DowntimeEventType",
                    if open { 600 } else { 300 },
                    if open {
                        format!("Downtime started ({})", d.state)
                    } else {
                        format!("Downtime ended after {} ms", d.duration_ms)
                    },
                    vec![
                        ("DowntimeId", Variant::UInt64(d.id)),
                        ("State", text(Some(&d.state))),
                        ("Reason", text(d.reason.as_deref())),
                        ("Planned", Variant::Boolean(d.planned)),
                        ("Open", Variant::Boolean(open)),
                        ("DurationMs", Variant::UInt64(d.duration_ms)),
                    ],
                )
            }
            EventKind::StateChanged(s) => (
                "StateChangedEventType",
                200,
                format!("State {} → {}", s.from.as_deref().unwrap_or("(none)"), s.to),
                vec![
                    ("FromState", text(s.from.as_deref())),
                    ("ToState", text(Some(&s.to))),
                    ("DurationMs", Variant::UInt64(s.duration_ms)),
                ],
            ),
            EventKind::WorkOrder(w) => (
                "WorkOrderEventType",
                300,
                format!("Work order {} {}", w.id, w.status.name()),
                vec![
                    ("WorkOrder", text(Some(&w.id))),
                    ("Status", text(Some(w.status.name()))),
                    ("PreviousStatus", text(w.previous.map(|p| p.name()))),
                    ("Product", text(Some(&w.product))),
                ],
            ),
            EventKind::Counts(c) if c.role == CountRole::Reject && c.delta > 0 => (
                "QualityRejectEventType",
                400,
                format!("{} reject(s) on {}", c.delta, c.attribute),
                vec![
                    ("Attribute", text(Some(&c.attribute))),
                    ("Rejects", Variant::UInt64(c.delta)),
                    ("WorkOrder", text(c.work_order.as_deref())),
                ],
            ),
            EventKind::ContextChanged { field, old, new, .. } => (
                "ContextChangedEventType",
                100,
                format!("{} = {}", field.name(), new.as_deref().unwrap_or("(cleared)")),
                vec![
                    ("Field", text(Some(field.name()))),
                    ("OldValue", text(old.as_deref())),
                    ("NewValue", text(new.as_deref())),
                ],
            ),
            _ => return None,
        };
    let time = date_time(event.time);
    let base = BaseEventType::new(
        nodes::event_type(ns, name),
        event_id(event.time, sequence),
        LocalizedText::new("", &message),
        time,
    )
    .set_source_node(source.clone())
    .set_source_name(UAString::from(event.asset.as_str()))
    .set_receive_time(DateTime::now())
    .set_severity(severity);
    Some(OpcEvent { base, ns, fields })
}

impl OpcEvent {
    fn own(&self, attribute_id: AttributeId, path: &[QualifiedName]) -> Option<Variant> {
        let [field] = path else {
            return None;
        };
        if attribute_id != AttributeId::Value || field.namespace_index != self.ns {
            return None;
        }
        self.fields
            .iter()
            .find(|(name, _)| *name == field.name.as_ref())
            .map(|(_, v)| v.clone())
    }
}

impl EventField for OpcEvent {
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

impl Event for OpcEvent {
    fn get_field(
        &self,
        type_definition_id: &NodeId,
        attribute_id: AttributeId,
        index_range: &NumericRange,
        browse_path: &[QualifiedName],
    ) -> Variant {
        // Part 4: a select clause on BaseEventType names a field by its browse path alone,
        // whatever type declares it (generic clients select every field that way).
        let base: NodeId = ObjectTypeId::BaseEventType.into();
        if (type_definition_id == &self.base.event_type || *type_definition_id == base)
            && let Some(v) = self.own(attribute_id, browse_path)
        {
            return v;
        }
        self.base.get_field(&base, attribute_id, index_range, browse_path)
    }

    fn time(&self) -> &DateTime {
        &self.base.time
    }

    fn event_type_id(&self) -> &NodeId {
        &self.base.event_type
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use backplane_model::AssetPath;
    use backplane_model::sample::Downtime;

    #[test]
    fn a_downtime_start_carries_its_fields_and_base_fields() {
        let event = PlantEvent {
            asset: AssetPath::parse("acme/plant/line").unwrap(),
            time: Timestamp::from_unix_millis(1_000),
            kind: EventKind::Downtime(Downtime {
                id: 7,
                start: Timestamp::from_unix_millis(1_000),
                end: None,
                duration_ms: 0,
                state: "fault".into(),
                reason: None,
                reason_description: None,
                planned: false,
                by: None,
            }),
            context: Arc::default(),
        };
        let source = nodes::asset(2, "acme/plant/line");
        let e = convert(&event, 2, &source, 1).unwrap();
        let own_type = nodes::event_type(2, "DowntimeEventType");
        let field = |ty: &NodeId, ns: u16, name: &str| {
            e.get_field(
                ty,
                AttributeId::Value,
                &NumericRange::None,
                &[QualifiedName::new(ns, name)],
            )
        };
        assert_eq!(field(&own_type, 2, "DowntimeId"), Variant::UInt64(7));
        assert_eq!(field(&own_type, 2, "Open"), Variant::Boolean(true));
        let base: NodeId = ObjectTypeId::BaseEventType.into();
        assert_eq!(field(&base, 0, "SourceNode"), Variant::from(source));
        assert_eq!(field(&base, 0, "Severity"), Variant::UInt16(600));
        assert_eq!(field(&base, 0, "SourceName"), Variant::from("acme/plant/line"));
        assert_eq!(e.event_type_id(), &own_type);
    }
}
