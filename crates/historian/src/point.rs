//! What the store keeps: points of series, events, and the catalog entries they refer to.

use std::sync::Arc;

use backplane_model::{Quality, Timestamp, Value};
use serde::Serialize;

/// Dense id of a stored series, assigned in the catalog in order of first appearance.
pub type SeriesId = u32;

/// Dense id of an interned context. Id 0 is the empty context.
pub type ContextId = u32;

/// One stored value of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Gateway time: the store's time axis (always present, monotonic per gateway clock).
    pub time: Timestamp,
    /// The device's time, when it gave one.
    pub source_time: Option<Timestamp>,
    /// `None` when the sample had no value (bad and never read).
    pub value: Option<Value>,
    pub quality: Quality,
    /// The asset's effective context when the value was read.
    pub context: ContextId,
}

impl Point {
    /// A value that counts for aggregates: present and not of bad quality.
    pub fn usable(&self) -> Option<&Value> {
        if self.quality.is_bad() {
            None
        } else {
            self.value.as_ref()
        }
    }
}

/// What a series is: one tag (asset + attribute) of one model, with one type and unit.
/// A tag whose model, type or unit changes in the configuration starts a new series, so
/// values of different meaning never share one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SeriesInfo {
    #[serde(skip)]
    pub id: SeriesId,
    /// `asset/attribute`.
    pub path: Arc<str>,
    pub asset: Arc<str>,
    pub attribute: Arc<str>,
    pub model: Arc<str>,
    /// `float`, `int`, `uint`, `bool`, `string`, `timestamp`, or `T[]`.
    #[serde(rename = "type")]
    pub data_type: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
}

/// What identifies a series when it is registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesSpec<'a> {
    pub asset: &'a str,
    pub attribute: &'a str,
    pub model: &'a str,
    pub data_type: &'a str,
    pub unit: Option<&'a str>,
}

/// A stored event. `body` is the event's own fields as a JSON object, including
/// `"event": "<kind>"` (e.g. `{"event":"context_changed","field":"batch",...}`), so new
/// kinds of events need no change to the storage format.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub time: Timestamp,
    pub asset: Arc<str>,
    pub kind: Arc<str>,
    pub body: Arc<str>,
    /// The asset's effective context after the event.
    pub context: ContextId,
}
