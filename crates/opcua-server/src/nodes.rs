//! The NodeId scheme: every node of the plant namespace has a string identifier derived
//! from names in the configuration only, so a client's configuration survives restarts,
//! reordered files and added assets. Documented in docs/connectors/opcua-server.md.
//!
//! | node                          | identifier                              |
//! |-------------------------------|-----------------------------------------|
//! | asset (folder or object)      | `acme/plant1/dairy/line1/filler`        |
//! | attribute variable            | `acme/plant1/dairy/line1/filler/speed`  |
//! | property of a variable        | `…/filler/speed#EURange`                |
//! | context property of an asset  | `…/filler#work_order`                   |
//! | method of an asset            | `…/filler#StartWorkOrder`               |
//! | model type                    | `@types/Filler`                         |
//! | a model type's component      | `@types/Filler/speed`                   |
//! | event type                    | `@events/DowntimeEventType`             |
//! | the production object         | `@production`                           |
//! | a production method           | `@production#StartWorkOrder`            |
//!
//! Asset segments are slugs (`[a-z0-9-]`) and attribute names `[a-z][a-z0-9_]*`, so `#`
//! and `@` never occur in them and the forms cannot collide.

use opcua::types::NodeId;

/// The node of an asset.
pub fn asset(ns: u16, path: &str) -> NodeId {
    NodeId::new(ns, path.to_owned())
}

/// The variable of a tag (`asset/attribute`, the tag's path).
pub fn tag(ns: u16, tag_path: &str) -> NodeId {
    NodeId::new(ns, tag_path.to_owned())
}

/// A property (`EURange`, `EngineeringUnits`, `EnumStrings`) of the node `owner`, or a
/// context property (`work_order`) or method (`StartWorkOrder`) of an asset.
pub fn member(ns: u16, owner: &str, name: &str) -> NodeId {
    NodeId::new(ns, format!("{owner}#{name}"))
}

/// The ObjectType of a model.
pub fn model_type(ns: u16, model: &str) -> NodeId {
    NodeId::new(ns, format!("@types/{model}"))
}

/// A variable component of a model's ObjectType (the instance declaration).
pub fn model_component(ns: u16, model: &str, attribute: &str) -> NodeId {
    NodeId::new(ns, format!("@types/{model}/{attribute}"))
}

/// An event type (`DowntimeEventType`, ...).
pub fn event_type(ns: u16, name: &str) -> NodeId {
    NodeId::new(ns, format!("@events/{name}"))
}

/// A field of an event type.
pub fn event_field(ns: u16, event_type: &str, field: &str) -> NodeId {
    NodeId::new(ns, format!("@events/{event_type}/{field}"))
}

/// The `Production` object, which holds the production methods.
pub fn production(ns: u16) -> NodeId {
    NodeId::new(ns, "@production".to_owned())
}

/// A production method (`StartWorkOrder`, ...).
pub fn method(ns: u16, name: &str) -> NodeId {
    member(ns, "@production", name)
}

/// The asset path a node of this namespace names: for an asset node, itself; for a
/// member (`…#name`), its owner. `None` for types.
pub fn owner_path(id: &str) -> Option<&str> {
    if id.starts_with('@') {
        return None;
    }
    Some(id.split_once('#').map_or(id, |(owner, _)| owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::Identifier;

    fn text(id: &NodeId) -> String {
        match &id.identifier {
            Identifier::String(s) => s.as_ref().to_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn identifiers_are_derived_from_names_only() {
        let p = "acme/plant1/dairy/line1/filler";
        assert_eq!(text(&asset(2, p)), p);
        assert_eq!(
            text(&tag(2, "acme/plant1/dairy/line1/filler/speed")),
            "acme/plant1/dairy/line1/filler/speed"
        );
        assert_eq!(
            text(&member(2, p, "work_order")),
            "acme/plant1/dairy/line1/filler#work_order"
        );
        assert_eq!(text(&model_type(2, "Filler")), "@types/Filler");
        assert_eq!(
            text(&model_component(2, "Filler", "speed")),
            "@types/Filler/speed"
        );
        assert_eq!(
            text(&event_type(2, "DowntimeEventType")),
            "@events/DowntimeEventType"
        );
        assert_eq!(asset(3, p).namespace, 3);
    }

    #[test]
    fn the_owner_of_a_member_is_its_asset() {
        assert_eq!(owner_path("a/b#work_order"), Some("a/b"));
        assert_eq!(owner_path("a/b"), Some("a/b"));
        assert_eq!(owner_path("@types/Filler"), None);
    }
}
