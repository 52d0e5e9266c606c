//! The data items on the tag variables, by tag index, and the handing of a batch's values to
//! them: the node manager records each Value item it creates on a tag variable and forgets
//! it when async-opcua deletes it (by the client, or with its expired subscription); the sink
//! hands each stored value straight to its items' subscriptions, one lock per run of items
//! of one session.
//!
//! async-opcua's `SubscriptionDataNotifier` would look each value's NodeId up in its table of
//! items (hashing the string NodeId) and queue a copy per item before handing it over: about
//! half of the server's work per change (docs/connectors/opcua-server.md, "Performance").
//! The subscription's own `notify_data_value` is the same either way (monitoring mode,
//! IndexRange, filter, sampling interval, queue).
//!
//! A subscription transferred to another session (TransferSubscriptions; node managers are
//! not told) is no longer in the session recorded here: its values then go through the
//! notifier, which knows the new owner.

use std::sync::Arc;

use opcua::server::{MonitoredItemHandle, SessionSubscriptions, SubscriptionCache};
use opcua::sync::Mutex;
use opcua::types::{DataValue, DateTime};
use parking_lot::{MutexGuard, RwLock};

/// One data item on a tag variable: the session that created it and its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub session: u32,
    pub handle: MonitoredItemHandle,
}

/// The data items on each tag variable. Bounded by async-opcua's limits on sessions,
/// subscriptions and monitored items: only items it accepted are recorded.
#[derive(Debug)]
pub struct Watchers {
    by_tag: RwLock<Vec<Vec<Watch>>>,
}

impl Watchers {
    pub fn new(tags: usize) -> Watchers {
        Watchers {
            by_tag: RwLock::new(vec![Vec::new(); tags]),
        }
    }

    /// Records an item on a tag (out of range: ignored).
    pub fn add(&self, tag: usize, session: u32, handle: MonitoredItemHandle) {
        let mut all = self.by_tag.write();
        if let Some(on) = all.get_mut(tag) {
            let watch = Watch { session, handle };
            if !on.contains(&watch) {
                on.push(watch);
            }
        }
    }

    /// Forgets an item on a tag.
    pub fn remove(&self, tag: usize, handle: MonitoredItemHandle) {
        if let Some(on) = self.by_tag.write().get_mut(tag) {
            on.retain(|w| w.handle != handle);
        }
    }

    /// How many items are recorded (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.by_tag.read().iter().map(Vec::len).sum()
    }

    /// Whether no item is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands each value to the data items on its tag, straight to their subscriptions: one
    /// lock per run of items of one session. Returns the values whose subscription is no
    /// longer in the recorded session (transferred, or deleted and not yet forgotten) with
    /// their handles, for the caller to hand over by NodeId.
    pub fn deliver(
        &self,
        values: Vec<(usize, DataValue)>,
        subscriptions: &SubscriptionCache,
        now: &DateTime,
    ) -> Vec<(MonitoredItemHandle, usize, DataValue)> {
        let all = self.by_tag.read();
        let on = |tag: usize| all.get(tag).map_or(&[][..], Vec::as_slice);
        // The sessions' subscriptions, looked up once per batch.
        let mut sessions: Vec<(u32, Option<Arc<Mutex<SessionSubscriptions>>>)> = Vec::new();
        let mut last = None;
        for w in values.iter().flat_map(|(tag, _)| on(*tag)) {
            if last != Some(w.session) {
                last = Some(w.session);
                if !sessions.iter().any(|(s, _)| *s == w.session) {
                    sessions.push((w.session, subscriptions.get_session_subscriptions(w.session)));
                }
            }
        }
        let mut elsewhere = Vec::new();
        let mut locked: Option<(u32, Option<MutexGuard<'_, SessionSubscriptions>>)> = None;
        for (tag, value) in values {
            let watches = on(tag);
            let mut value = Some(value);
            for (i, w) in watches.iter().enumerate() {
                // A copy for each item but the last, which takes the value.
                let Some(v) = (if i + 1 == watches.len() {
                    value.take()
                } else {
                    value.clone()
                }) else {
                    continue;
                };
                if locked.as_ref().map(|(s, _)| *s) != Some(w.session) {
                    // The previous session's lock is released before the next is taken.
                    drop(locked.take());
                    let lock = sessions
                        .iter()
                        .find(|(s, _)| *s == w.session)
                        .and_then(|(_, subs)| subs.as_ref())
                        .map(|subs| subs.lock());
                    locked = Some((w.session, lock));
                }
                let subscription = locked
                    .as_mut()
                    .and_then(|(_, lock)| lock.as_mut())
                    .and_then(|subs| subs.get_mut(w.handle.subscription_id));
                match subscription {
                    Some(s) => s.notify_data_value(&w.handle.monitored_item_id, v, now),
                    None => elsewhere.push((w.handle, tag, v)),
                }
            }
        }
        elsewhere
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_recorded_once_on_its_tag_and_forgotten_on_delete() {
        let watchers = Watchers::new(3);
        let handle = MonitoredItemHandle {
            subscription_id: 1,
            monitored_item_id: 7,
        };
        watchers.add(2, 5, handle);
        watchers.add(2, 5, handle);
        watchers.add(3, 5, handle);
        assert_eq!(watchers.len(), 1, "once, and never outside the tags");
        watchers.remove(1, handle);
        assert_eq!(watchers.len(), 1, "only the item on its own tag is deleted");
        watchers.remove(2, handle);
        assert!(watchers.is_empty());
    }
}
