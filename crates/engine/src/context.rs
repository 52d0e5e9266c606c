//! The contextualize stage's state: each asset's own context and its effective context
//! (inherited down the tree). Writers (API, later MES messages and rules) are rare and
//! serialize on a mutex; the pipeline reads effective contexts lock-free on every batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use backplane_model::{Context, ContextPatch, Event, EventKind, Timestamp};
use parking_lot::Mutex;

use backplane_connector::Topology;

#[derive(Debug)]
pub struct ContextStore {
    own: Mutex<Vec<Context>>,
    effective: Vec<ArcSwap<Context>>,
    /// Raised after every change of effective contexts (from 1), so a [`ContextCache`]
    /// knows when its copies may be old.
    version: AtomicU64,
}

impl ContextStore {
    pub fn new(topology: &Topology) -> ContextStore {
        let own: Vec<Context> = topology
            .assets
            .iter()
            .map(|a| a.initial_context.clone())
            .collect();
        let mut effective: Vec<Arc<Context>> = Vec::with_capacity(own.len());
        // Parents come before children in the topology.
        for (i, asset) in topology.assets.iter().enumerate() {
            let inherited = match asset.parent {
                Some(p) => Context::inherit(&effective[p], &own[i]),
                None => own[i].clone(),
            };
            effective.push(Arc::new(inherited));
        }
        ContextStore {
            own: Mutex::new(own),
            effective: effective.into_iter().map(ArcSwap::new).collect(),
            version: AtomicU64::new(1),
        }
    }

    /// Changes with every change of an effective context; read it before the contexts.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The context every sample of `asset` is stamped with right now.
    pub fn effective(&self, asset: usize) -> Arc<Context> {
        self.effective
            .get(asset)
            .map(ArcSwap::load_full)
            .unwrap_or_default()
    }

    /// The fields set on `asset` itself.
    pub fn own(&self, asset: usize) -> Context {
        self.own.lock().get(asset).cloned().unwrap_or_default()
    }

    /// Applies a patch to `asset`'s own context, recomputes the effective context of the
    /// asset and everything below it, and returns one event per field that changed.
    pub fn apply(
        &self,
        topology: &Topology,
        asset: usize,
        patch: &ContextPatch,
        by: Option<&str>,
    ) -> Vec<Event> {
        let mut own = self.own.lock();
        let Some(slot) = own.get_mut(asset) else {
            return Vec::new();
        };
        let changed = patch.apply(slot);
        if changed.is_empty() {
            return Vec::new();
        }
        // Depth-first over the subtree; the lock keeps concurrent patches ordered.
        let mut stack = vec![asset];
        while let Some(i) = stack.pop() {
            let parent = topology.assets[i].parent.map(|p| self.effective[p].load_full());
            let next = match parent {
                Some(p) => Context::inherit(&p, &own[i]),
                None => own[i].clone(),
            };
            self.effective[i].store(Arc::new(next));
            stack.extend(topology.assets[i].children.iter().copied());
        }
        // After the stores: a reader that sees the new version sees the new contexts.
        self.version.fetch_add(1, Ordering::Release);
        let context = self.effective[asset].load_full();
        let time = Timestamp::now();
        let by: Option<Arc<str>> = by.map(Into::into);
        changed
            .into_iter()
            .map(|(field, old, new)| Event {
                asset: topology.assets[asset].path.clone(),
                time,
                kind: EventKind::ContextChanged {
                    field,
                    old,
                    new,
                    by: by.clone(),
                },
                context: context.clone(),
            })
            .collect()
    }
}

/// One reader's copies of the effective contexts, each taken again once the store has
/// changed: loading from the store (`ArcSwap::load_full`) costs several times cloning the
/// copy, and the pipeline stamps every sample.
#[derive(Debug, Default)]
pub struct ContextCache {
    /// Per asset: the store's version when the copy was taken (0: none yet), the copy.
    slots: Vec<(u64, Option<Arc<Context>>)>,
}

impl ContextCache {
    /// `asset`'s effective context as of `version` ([`ContextStore::version`], read
    /// before).
    #[inline]
    pub fn get(&mut self, store: &ContextStore, version: u64, asset: usize) -> Arc<Context> {
        match self.slots.get(asset) {
            Some((taken, Some(context))) if *taken == version => context.clone(),
            _ => self.take(store, version, asset),
        }
    }

    /// Copies `asset`'s context from the store (first use, or the store changed).
    #[cold]
    fn take(&mut self, store: &ContextStore, version: u64, asset: usize) -> Arc<Context> {
        if asset >= store.effective.len() {
            return Arc::default();
        }
        if self.slots.len() < store.effective.len() {
            self.slots.resize(store.effective.len(), (0, None));
        }
        let context = store.effective(asset);
        self.slots[asset] = (version, Some(context.clone()));
        context
    }
}
