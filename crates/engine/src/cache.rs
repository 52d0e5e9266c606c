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

/// What the cache keeps of one tag: a [`Latest`] with its rare parts (a transform error, a
/// derivation) behind one pointer, 24 bytes a tag less than the whole of it.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub(crate) sample: Sample,
    pub(crate) raw: Option<Value>,
    rare: Option<Box<Rare>>,
}

#[derive(Clone, Debug)]
struct Rare {
    error: Option<String>,
    derivation: Option<Arc<Derivation>>,
}

impl Slot {
    pub(crate) fn new(
        sample: Sample,
        raw: Option<Value>,
        error: Option<String>,
        derivation: Option<Arc<Derivation>>,
    ) -> Slot {
        let mut slot = Slot {
            sample,
            raw,
            rare: None,
        };
        slot.set_rare(error, derivation);
        slot
    }

    /// Sets the error and derivation; the common case, neither, allocates nothing.
    #[inline]
    pub(crate) fn set_rare(&mut self, error: Option<String>, derivation: Option<Arc<Derivation>>) {
        if error.is_none() && derivation.is_none() {
            self.rare = None;
        } else {
            self.rare = Some(Box::new(Rare { error, derivation }));
        }
    }

    /// Whether the slot has an error or a derivation.
    pub(crate) fn has_rare(&self) -> bool {
        self.rare.is_some()
    }

    fn latest(&self) -> Latest {
        let (error, derivation) = match &self.rare {
            Some(rare) => (rare.error.clone(), rare.derivation.clone()),
            None => (None, None),
        };
        Latest {
            sample: self.sample.clone(),
            raw: self.raw.clone(),
            error,
            derivation,
        }
    }
}

#[derive(Debug)]
pub struct LatestValues {
    slots: RwLock<Vec<Option<Slot>>>,
}

impl LatestValues {
    pub fn new(tags: usize) -> LatestValues {
        LatestValues {
            slots: RwLock::new(vec![None; tags]),
        }
    }

    pub fn get(&self, tag: TagId) -> Option<Latest> {
        self.slots.read().get(tag.index())?.as_ref().map(Slot::latest)
    }

    /// Copies out several tags. The read lock is taken per chunk of tags, so a large API
    /// read never holds the pipeline's once-per-batch write up for long.
    pub fn get_many(&self, tags: &[TagId]) -> Vec<Option<Latest>> {
        const CHUNK: usize = 256;
        let mut out = Vec::with_capacity(tags.len());
        for chunk in tags.chunks(CHUNK) {
            let slots = self.slots.read();
            out.extend(
                chunk
                    .iter()
                    .map(|t| slots.get(t.index()).and_then(Option::as_ref).map(Slot::latest)),
            );
        }
        out
    }

    /// Runs `update` with write access to all slots (one lock per batch).
    pub(crate) fn read_all<R>(&self, read: impl FnOnce(&[Option<Slot>]) -> R) -> R {
        read(&self.slots.read())
    }

    pub(crate) fn update(&self, update: impl FnOnce(&mut [Option<Slot>])) {
        update(&mut self.slots.write())
    }
}

impl backplane_connector::LatestReadings for LatestValues {
    fn latest(&self, tag: TagId) -> Option<(backplane_model::Sample, Option<Value>)> {
        let slots = self.slots.read();
        let slot = slots.get(tag.index())?.as_ref()?;
        Some((slot.sample.clone(), slot.raw.clone()))
    }
}
