//! The latest-value cache: the last reported sample of every tag, with the raw reading it
//! came from (for lineage) and the last transform error, if any. The pipeline is the only
//! writer and takes the lock once per batch; API readers copy out what they need.

use std::sync::Arc;

use backplane_connector::Derivation;
use backplane_model::{Sample, TagId, Value};
use parking_lot::RwLock;

/// What the cache holds for one tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Latest {
    pub sample: Sample,
    /// The raw reading behind `sample`, before any transform.
    pub raw: Option<Value>,
    /// Why the last reading could not be normalized, if it could not.
    pub error: Option<String>,
    /// For a value a stage computed (a derived attribute): the formula and its inputs.
    pub derivation: Option<Arc<Derivation>>,
}

#[derive(Debug)]
pub struct LatestValues {
    slots: RwLock<Vec<Option<Latest>>>,
}

impl LatestValues {
    pub fn new(tags: usize) -> LatestValues {
        LatestValues {
            slots: RwLock::new(vec![None; tags]),
        }
    }

    pub fn get(&self, tag: TagId) -> Option<Latest> {
        self.slots.read().get(tag.index()).cloned().flatten()
    }

    /// Copies out several tags. The read lock is taken per chunk of tags, so a large API
    /// read never holds the pipeline's once-per-batch write up for long.
    pub fn get_many(&self, tags: &[TagId]) -> Vec<Option<Latest>> {
        const CHUNK: usize = 256;
        let mut out = Vec::with_capacity(tags.len());
        for chunk in tags.chunks(CHUNK) {
            let slots = self.slots.read();
            out.extend(chunk.iter().map(|t| slots.get(t.index()).cloned().flatten()));
        }
        out
    }

    /// Runs `update` with write access to all slots (one lock per batch).
    pub(crate) fn read_all<R>(&self, read: impl FnOnce(&[Option<Latest>]) -> R) -> R {
        read(&self.slots.read())
    }

    pub(crate) fn update(&self, update: impl FnOnce(&mut [Option<Latest>])) {
        update(&mut self.slots.write())
    }
}

impl backplane_connector::LatestReadings for LatestValues {
    fn latest(&self, tag: TagId) -> Option<(backplane_model::Sample, Option<Value>)> {
        self.get(tag).map(|l| (l.sample, l.raw))
    }
}
