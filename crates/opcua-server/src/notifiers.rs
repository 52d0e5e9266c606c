//! The notifier hierarchy (Part 3 HasNotifier, Part 5 Server object): an event of an
//! asset reaches the event subscribers of the asset, of every ancestor asset and of the
//! Server object, each exactly once.
//!
//! async-opcua 0.19's `notify_events(event, node)` hands the event to the items on `node`
//! *and* to every item on the Server object, so notifying the asset and each ancestor
//! would give the Server's subscribers one copy per level. The event is therefore notified
//! once, on its asset (the asset's and the Server's items), and handed directly to the
//! event items on the ancestors, which this registry tracks: the node manager records
//! each event item created on an asset and forgets it when it is deleted.

use std::collections::{HashMap, HashSet};

use opcua::nodes::{Event, TypeTree};
use opcua::server::{MonitoredItemHandle, SubscriptionCache};
use opcua::sync::{Mutex, RwLock};
use opcua::types::NodeId;

/// One event item: the session that created it (where async-opcua keeps its subscription)
/// and its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Item {
    session: u32,
    handle: MonitoredItemHandle,
}

/// The event items on the plant's asset objects. Bounded by async-opcua's limits on
/// sessions, subscriptions and monitored items: only the items it accepted are recorded.
#[derive(Debug, Default)]
pub struct Notifiers {
    items: Mutex<HashMap<NodeId, Vec<Item>>>,
}

impl Notifiers {
    /// Records an event item created on `node`.
    pub fn add(&self, node: &NodeId, session: u32, handle: MonitoredItemHandle) {
        let mut items = self.items.lock();
        let on = items.entry(node.clone()).or_default();
        let item = Item { session, handle };
        if !on.contains(&item) {
            on.push(item);
        }
    }

    /// Forgets an event item on `node`.
    pub fn remove(&self, node: &NodeId, handle: MonitoredItemHandle) {
        let mut items = self.items.lock();
        if let Some(on) = items.get_mut(node) {
            on.retain(|i| i.handle != handle);
            if on.is_empty() {
                items.remove(node);
            }
        }
    }

    /// How many event items are recorded (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.items.lock().values().map(Vec::len).sum()
    }

    /// Whether no event item is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands each event to the items on its notifiers (`ancestors`: the asset's ancestors,
    /// never the asset or the Server, which async-opcua's own notification reaches).
    /// An item whose subscription is gone from its session (deleted without the node
    /// manager hearing of it, or transferred to another session, which async-opcua does
    /// not tell node managers) is forgotten.
    pub fn deliver<'a>(
        &self,
        subscriptions: &SubscriptionCache,
        type_tree: &RwLock<impl TypeTree>,
        events: impl Iterator<Item = (&'a dyn Event, &'a [NodeId])>,
    ) {
        let mut by_session: HashMap<u32, Vec<(MonitoredItemHandle, &'a dyn Event)>> = HashMap::new();
        {
            let items = self.items.lock();
            if items.is_empty() {
                return;
            }
            for (event, ancestors) in events {
                for item in ancestors.iter().filter_map(|a| items.get(a)).flatten() {
                    by_session
                        .entry(item.session)
                        .or_default()
                        .push((item.handle, event));
                }
            }
        }
        let mut gone = HashSet::new();
        for (session, events) in by_session {
            let Some(subs) = subscriptions.get_session_subscriptions(session) else {
                gone.extend(events.iter().map(|(h, _)| Item { session, handle: *h }));
                continue;
            };
            // The session's lock before the type tree's, the order async-opcua takes them in.
            let mut subs = subs.lock();
            let type_tree = type_tree.read();
            for (handle, event) in events {
                // An item the subscription does not hold yet is being created (the node
                // manager hears of it first): it stays recorded.
                match subs.get_mut(handle.subscription_id) {
                    Some(sub) => sub.notify_event(&handle.monitored_item_id, event, &*type_tree),
                    None => {
                        gone.insert(Item { session, handle });
                    }
                }
            }
        }
        if !gone.is_empty() {
            let mut items = self.items.lock();
            items.retain(|_, on| {
                on.retain(|i| !gone.contains(i));
                !on.is_empty()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_recorded_once_and_forgotten_on_delete() {
        let notifiers = Notifiers::default();
        let area = NodeId::new(2, "acme/plant/cooling");
        let handle = MonitoredItemHandle {
            subscription_id: 1,
            monitored_item_id: 7,
        };
        notifiers.add(&area, 3, handle);
        notifiers.add(&area, 3, handle);
        assert_eq!(notifiers.len(), 1);
        notifiers.remove(&NodeId::new(2, "acme/plant"), handle);
        assert_eq!(notifiers.len(), 1, "only the item on its own node is deleted");
        notifiers.remove(&area, handle);
        assert!(notifiers.is_empty());
    }
}
