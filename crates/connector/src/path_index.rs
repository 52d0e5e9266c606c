//! Tags found by their path (`asset/attribute`) without a copy of any path: a hash table
//! of tag ids, hashed and compared by their asset's path and attribute's name. Four bytes
//! a tag (and the table's room) instead of a map from a path to an id, 24, plus the paths.

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hasher};

use backplane_model::TagId;

use crate::tag_path::TagPath;
use crate::topology::{AssetNode, TagInfo, tag_path as path};

#[derive(Debug, Default)]
pub(crate) struct PathIndex {
    ids: HashTable<TagId>,
    /// foldhash, seeded per process: fast on paths, and not predictable from outside
    /// (lookups also come from API requests).
    hasher: foldhash::fast::RandomState,
}

impl PathIndex {
    /// Indexes `tags` (each at its own position); of two tags with one path, the first.
    pub(crate) fn new(assets: &[AssetNode], tags: &[TagInfo]) -> PathIndex {
        let hasher = foldhash::fast::RandomState::default();
        let mut index = PathIndex {
            ids: HashTable::with_capacity(tags.len()),
            hasher,
        };
        for (i, tag) in tags.iter().enumerate() {
            let p = path(assets, tag);
            let hash = index.hash(p);
            let found = index
                .ids
                .find(hash, |id: &TagId| path(assets, &tags[id.index()]) == p);
            if found.is_none() {
                let hasher = &index.hasher;
                index.ids.insert_unique(hash, TagId(i as u32), |id| {
                    hash_with(hasher, path(assets, &tags[id.index()]))
                });
            }
        }
        index
    }

    /// The tag at `path`, looked up in the `assets` and `tags` this index was built from.
    pub(crate) fn get(&self, assets: &[AssetNode], tags: &[TagInfo], wanted: TagPath<'_>) -> Option<TagId> {
        self.ids
            .find(self.hash(wanted), |id| {
                tags.get(id.index()).is_some_and(|t| path(assets, t) == wanted)
            })
            .copied()
    }

    fn hash(&self, p: TagPath<'_>) -> u64 {
        hash_with(&self.hasher, p)
    }
}

/// The two parts hashed apart: the same for a path built from a tag and one split from text.
fn hash_with(hasher: &foldhash::fast::RandomState, p: TagPath<'_>) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(p.asset.as_bytes());
    h.write_u8(0xff);
    h.write(p.attribute.as_bytes());
    h.finish()
}
