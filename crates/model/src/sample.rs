//! Samples and events: what the pipeline hands to sinks.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::{AssetPath, Context, ContextField, Quality, Timestamp, Value};

/// Interned id of one attribute of one asset (a "tag"). Ids are dense, assigned at
/// configuration time, and index the tables of the running plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TagId(pub u32);

impl TagId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One normalized value of one tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub tag: TagId,
    /// `None` only when the quality is bad and no value has been read yet (JSON `null`).
    pub value: Option<Value>,
    pub quality: Quality,
    /// When the device says the value was measured, if it says.
    pub source_time: Option<Timestamp>,
    /// When Backplane read it.
    pub gateway_time: Timestamp,
    /// The effective context of the tag's asset at `gateway_time`.
    pub context: Arc<Context>,
}

/// A first-class record of something that happened on an asset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub asset: AssetPath,
    pub time: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
    /// The effective context of the asset after the event.
    pub context: Arc<Context>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A field of the asset's own context was set or cleared.
    ContextChanged {
        field: ContextField,
        old: Option<Arc<str>>,
        new: Option<Arc<str>>,
        /// Who made the change (API user, rule name), when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<Arc<str>>,
    },
}

/// Interns tag paths (`asset/attribute`) into dense [`TagId`]s.
#[derive(Clone, Debug, Default)]
pub struct TagTable {
    paths: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, TagId>,
}

impl TagTable {
    /// Returns the id of `asset/attribute`, assigning the next one if new.
    pub fn intern(&mut self, asset: &AssetPath, attribute: &str) -> TagId {
        let path: Arc<str> = format!("{asset}/{attribute}").into();
        if let Some(id) = self.ids.get(&path) {
            return *id;
        }
        let id = TagId(u32::try_from(self.paths.len()).unwrap_or(u32::MAX));
        self.paths.push(path.clone());
        self.ids.insert(path, id);
        id
    }

    pub fn get(&self, path: &str) -> Option<TagId> {
        self.ids.get(path).copied()
    }

    pub fn path(&self, id: TagId) -> Option<&Arc<str>> {
        self.paths.get(id.index())
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_dense() {
        let mut t = TagTable::default();
        let asset = AssetPath::parse("acme/plant-a/line-1").unwrap();
        let a = t.intern(&asset, "speed");
        let b = t.intern(&asset, "state");
        assert_eq!((a, b), (TagId(0), TagId(1)));
        assert_eq!(t.intern(&asset, "speed"), a);
        assert_eq!(t.get("acme/plant-a/line-1/state"), Some(b));
        assert_eq!(t.path(a).map(|p| &**p), Some("acme/plant-a/line-1/speed"));
    }

    #[test]
    fn events_serialize_flat_with_their_kind() {
        let e = Event {
            asset: AssetPath::parse("acme/plant-a").unwrap(),
            time: Timestamp::from_unix_nanos(0),
            kind: EventKind::ContextChanged {
                field: ContextField::Batch,
                old: None,
                new: Some("B-1".into()),
                by: None,
            },
            context: Arc::new(Context::default()),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "context_changed");
        assert_eq!(json["field"], "batch");
        assert_eq!(json["new"], "B-1");
    }
}
