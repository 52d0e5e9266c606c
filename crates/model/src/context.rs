//! Production context: what is happening on an asset.
//!
//! Context is set on an asset (by the API, later by MES messages, operators or tag rules)
//! and inherited by every asset below it, field by field: a work order set on a line applies
//! to its filler unless the filler has its own. Every sample and event carries the effective
//! context of its asset at the time it was measured.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The fields of a context. Values are free text identifiers (ids of the MES/ERP objects).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_order: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_state: Option<Arc<str>>,
}

/// Names one field of a [`Context`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextField {
    WorkOrder,
    Product,
    Batch,
    Lot,
    Shift,
    Operator,
    MachineState,
}

impl ContextField {
    pub const ALL: [ContextField; 7] = [
        ContextField::WorkOrder,
        ContextField::Product,
        ContextField::Batch,
        ContextField::Lot,
        ContextField::Shift,
        ContextField::Operator,
        ContextField::MachineState,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ContextField::WorkOrder => "work_order",
            ContextField::Product => "product",
            ContextField::Batch => "batch",
            ContextField::Lot => "lot",
            ContextField::Shift => "shift",
            ContextField::Operator => "operator",
            ContextField::MachineState => "machine_state",
        }
    }

    pub fn parse(name: &str) -> Option<ContextField> {
        ContextField::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for ContextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest context value accepted; ids longer than this are a mistake, not an id.
pub const MAX_CONTEXT_VALUE_LEN: usize = 256;

impl Context {
    pub fn get(&self, field: ContextField) -> Option<&Arc<str>> {
        self.slot(field).as_ref()
    }

    pub fn set(&mut self, field: ContextField, value: Option<Arc<str>>) {
        *self.slot_mut(field) = value;
    }

    pub fn is_empty(&self) -> bool {
        ContextField::ALL.iter().all(|f| self.get(*f).is_none())
    }

    /// The effective context of an asset: its own fields, and its parent's effective
    /// fields where it has none.
    pub fn inherit(parent: &Context, own: &Context) -> Context {
        let mut out = parent.clone();
        for field in ContextField::ALL {
            if let Some(v) = own.get(field) {
                out.set(field, Some(v.clone()));
            }
        }
        out
    }

    fn slot(&self, field: ContextField) -> &Option<Arc<str>> {
        match field {
            ContextField::WorkOrder => &self.work_order,
            ContextField::Product => &self.product,
            ContextField::Batch => &self.batch,
            ContextField::Lot => &self.lot,
            ContextField::Shift => &self.shift,
            ContextField::Operator => &self.operator,
            ContextField::MachineState => &self.machine_state,
        }
    }

    fn slot_mut(&mut self, field: ContextField) -> &mut Option<Arc<str>> {
        match field {
            ContextField::WorkOrder => &mut self.work_order,
            ContextField::Product => &mut self.product,
            ContextField::Batch => &mut self.batch,
            ContextField::Lot => &mut self.lot,
            ContextField::Shift => &mut self.shift,
            ContextField::Operator => &mut self.operator,
            ContextField::MachineState => &mut self.machine_state,
        }
    }
}

/// One field that changed: the field, its old and its new value.
pub type FieldChange = (ContextField, Option<Arc<str>>, Option<Arc<str>>);

/// A change to an asset's own context: each listed field is set (`Some`) or cleared (`None`);
/// fields not listed are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextPatch {
    pub changes: Vec<(ContextField, Option<Arc<str>>)>,
}

impl ContextPatch {
    pub fn set(mut self, field: ContextField, value: &str) -> ContextPatch {
        self.changes.push((field, Some(value.into())));
        self
    }

    pub fn clear(mut self, field: ContextField) -> ContextPatch {
        self.changes.push((field, None));
        self
    }

    /// Applies the patch, returning the fields that actually changed with old and new value.
    pub fn apply(&self, own: &mut Context) -> Vec<FieldChange> {
        let mut changed = Vec::new();
        for (field, value) in &self.changes {
            let old = own.get(*field).cloned();
            if old != *value {
                own.set(*field, value.clone());
                changed.push((*field, old, value.clone()));
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_fields_override_parent_fields_one_by_one() {
        let line = Context {
            work_order: Some("WO-1".into()),
            shift: Some("A".into()),
            ..Context::default()
        };
        let filler = Context {
            work_order: Some("WO-2".into()),
            ..Context::default()
        };
        let effective = Context::inherit(&line, &filler);
        assert_eq!(effective.work_order.as_deref(), Some("WO-2"));
        assert_eq!(effective.shift.as_deref(), Some("A"));
    }

    #[test]
    fn patches_report_only_real_changes() {
        let mut own = Context::default();
        let patch = ContextPatch::default()
            .set(ContextField::Batch, "B-77")
            .clear(ContextField::Lot);
        let changed = patch.apply(&mut own);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, ContextField::Batch);
        assert!(patch.apply(&mut own).is_empty());
    }

    #[test]
    fn field_names_round_trip() {
        for f in ContextField::ALL {
            assert_eq!(ContextField::parse(f.name()), Some(f));
        }
    }
}
