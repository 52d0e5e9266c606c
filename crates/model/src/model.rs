//! Models (typed templates of a kind of equipment) and instances (a model bound to the
//! addresses of one asset's sources).

use std::sync::Arc;

use serde::Serialize;

use crate::{AssetPath, DataType, Deadband, Transform, Unit};

/// A typed template for a kind of equipment, e.g. `Filler`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Model {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Shared with every tag of every instance (one copy per model, not per tag).
    pub attributes: Vec<Arc<Attribute>>,
}

/// One typed attribute of a model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type", serialize_with = "serialize_display")]
    pub data_type: DataType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Engineering range `[min, max]`; the base of percent deadbands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    /// For string attributes that name states: the allowed labels.
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// For float attributes: the decimals a bound value is rounded to (0..=9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
    /// A derived attribute's expression (`expr`): computed by the derive stage from other
    /// attributes of the asset or its children, never bound to a source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expr: Option<Arc<str>>,
    /// For numeric attributes: alarm limits (the alarms stage raises and clears alarms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::Limits>,
}

fn serialize_display<S: serde::Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

impl Model {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name).map(|a| &**a)
    }
}

/// A model bound to one asset: where each attribute's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub asset: AssetPath,
    pub model: Arc<Model>,
    pub bindings: Vec<Binding>,
}

/// One attribute of an instance bound to one address of one source.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// Names shared by every binding of the attribute, resp. source: one copy each.
    pub attribute: Arc<str>,
    pub source: Arc<str>,
    /// Shared with the compiled topology's address list.
    pub address: Arc<str>,
    /// Applied in order to the raw reading; ends with a cast to the attribute type. Shared:
    /// the bindings of a configuration with the same chain hold one copy.
    pub transforms: Arc<[Transform]>,
    pub deadband: Option<Deadband>,
    /// A value not read again within this time turns uncertain (`last_usable_value`);
    /// `None`: no age limit (the source reports on change, or nobody set one).
    pub stale_after: Option<std::time::Duration>,
}
