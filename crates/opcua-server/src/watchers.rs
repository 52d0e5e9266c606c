//! The data items on the tag variables, by tag index, and the handing of a batch's values to
//! them: the node manager records each Value item it creates on a tag variable and forgets
//! it when async-opcua deletes it (by the client, or with its expired subscription); the sink
//! hands each value straight to its items' subscriptions, one lock per session.
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

use opcua::server::{MonitoredItemHandle, SubscriptionCache};
use opcua::types::{DataValue, DateTime};
use parking_lot::RwLock;

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

    /// Queues each value for the items on its tag (a copy per item).
    pub fn queue<'a>(&self, values: impl Iterator<Item = (usize, &'a DataValue)>, into: &mut Deliveries) {
        let all = self.by_tag.read();
        for (tag, value) in values {
            for watch in all.get(tag).into_iter().flatten() {
                into.push(*watch, tag, value.clone());
            }
        }
    }
}

/// One queued value: the item's id in its subscription, its tag, the value.
type Item = (u32, usize, DataValue);

/// The values of one batch for one subscription.
#[derive(Debug)]
struct ForSubscription {
    id: u32,
    items: Vec<Item>,
    /// Whether this batch queued anything here.
    used: bool,
}

/// The values of one batch for one session, by subscription.
#[derive(Debug)]
struct ForSession {
    id: u32,
    subscriptions: Vec<ForSubscription>,
}

/// A batch's values by session and subscription. Kept by the sink between batches so the
/// queues keep their capacity (a session's are dropped after a batch without values for it).
#[derive(Debug, Default)]
pub struct Deliveries {
    sessions: Vec<ForSession>,
    /// Where the last value went: consecutive tags mostly share their session and
    /// subscription (items are created in blocks).
    last: (usize, usize),
}

impl Deliveries {
    fn push(&mut self, watch: Watch, tag: usize, value: DataValue) {
        let (session, subscription) = (watch.session, watch.handle.subscription_id);
        let (s, u) = self.last;
        let slot = match self
            .sessions
            .get(s)
            .and_then(|x| x.subscriptions.get(u).map(|y| (x, y)))
        {
            Some((x, y)) if x.id == session && y.id == subscription => (s, u),
            _ => self.find(session, subscription),
        };
        self.last = slot;
        if let Some(queue) = self
            .sessions
            .get_mut(slot.0)
            .and_then(|x| x.subscriptions.get_mut(slot.1))
        {
            queue.items.push((watch.handle.monitored_item_id, tag, value));
            queue.used = true;
        }
    }

    /// The queue of a session's subscription, made if new.
    fn find(&mut self, session: u32, subscription: u32) -> (usize, usize) {
        let s = match self.sessions.iter().position(|x| x.id == session) {
            Some(s) => s,
            None => {
                self.sessions.push(ForSession {
                    id: session,
                    subscriptions: Vec::new(),
                });
                self.sessions.len() - 1
            }
        };
        let subscriptions = match self.sessions.get_mut(s) {
            Some(x) => &mut x.subscriptions,
            None => return (s, 0),
        };
        let u = match subscriptions.iter().position(|y| y.id == subscription) {
            Some(u) => u,
            None => {
                subscriptions.push(ForSubscription {
                    id: subscription,
                    items: Vec::new(),
                    used: false,
                });
                subscriptions.len() - 1
            }
        };
        (s, u)
    }

    /// Hands the queued values to their subscriptions (one lock per session) and returns
    /// those whose subscription is no longer in the recorded session (transferred, or
    /// deleted and not yet forgotten) with their handles, for the caller to hand over by
    /// NodeId. Queues left empty by this batch are dropped.
    pub fn deliver(
        &mut self,
        subscriptions: &SubscriptionCache,
        now: &DateTime,
    ) -> Vec<(MonitoredItemHandle, usize, DataValue)> {
        let mut elsewhere = Vec::new();
        for session in &mut self.sessions {
            let cache = subscriptions.get_session_subscriptions(session.id);
            let mut cache = cache.as_ref().map(|c| c.lock());
            for queue in &mut session.subscriptions {
                match cache.as_mut().and_then(|c| c.get_mut(queue.id)) {
                    Some(subscription) => {
                        for (item, _, value) in queue.items.drain(..) {
                            subscription.notify_data_value(&item, value, now);
                        }
                    }
                    None => elsewhere.extend(queue.items.drain(..).map(|(item, tag, value)| {
                        let handle = MonitoredItemHandle {
                            subscription_id: queue.id,
                            monitored_item_id: item,
                        };
                        (handle, tag, value)
                    })),
                }
            }
        }
        self.forget_idle();
        elsewhere
    }

    /// Drops the queues that had nothing this batch (their session or subscription may be
    /// gone); the others are empty again, with their capacity.
    fn forget_idle(&mut self) {
        for session in &mut self.sessions {
            session
                .subscriptions
                .retain_mut(|q| std::mem::replace(&mut q.used, false));
        }
        self.sessions.retain(|s| !s.subscriptions.is_empty());
        self.last = (usize::MAX, usize::MAX);
    }
}
