//! Tags found by their path (`asset/attribute`) without a second copy of every path: a hash
//! table of tag ids whose keys are the tags' own paths in the topology. Four bytes a tag
//! (and the table's room) instead of a map from a path pointer to an id, 24, plus the
//! interner's own list of paths, 16.

use hashbrown::HashTable;
use std::hash::BuildHasher;

use backplane_model::TagId;

use crate::topology::TagInfo;

#[derive(Debug, Default)]
pub(crate) struct PathIndex {
    ids: HashTable<TagId>,
    /// foldhash, seeded per process: fast on paths, and not predictable from outside
    /// (lookups also come from API requests).
    hasher: foldhash::fast::RandomState,
}

impl PathIndex {
    /// Indexes `tags` (each at its own position); of two tags with one path, the first.
    pub(crate) fn new(tags: &[TagInfo]) -> PathIndex {
        let hasher = foldhash::fast::RandomState::default();
        let mut ids = HashTable::with_capacity(tags.len());
        for (i, tag) in tags.iter().enumerate() {
            let hash = hasher.hash_one(&*tag.path);
            let found = ids.find(hash, |id: &TagId| tags[id.index()].path == tag.path);
            if found.is_none() {
                ids.insert_unique(hash, TagId(i as u32), |id| {
                    hasher.hash_one(&*tags[id.index()].path)
                });
            }
        }
        PathIndex { ids, hasher }
    }

    /// The tag at `path`, looked up in the `tags` this index was built from.
    pub(crate) fn get(&self, tags: &[TagInfo], path: &str) -> Option<TagId> {
        let hash = self.hasher.hash_one(path);
        self.ids
            .find(hash, |id| tags.get(id.index()).is_some_and(|t| &*t.path == path))
            .copied()
    }
}
