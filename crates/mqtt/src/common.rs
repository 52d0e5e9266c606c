//! What the kinds of this crate share beyond the broker connection ([`crate::settings`]):
//! the configuration keys they read alike (`qos`, `max_inflight`), [`Groups`] (when a log
//! record may be acknowledged, for both sinks), and the pieces of the sinks' drivers that
//! wait on a link or a timer that may not exist.

use std::collections::VecDeque;
use std::time::Duration;

use backplane_config::Table;

use crate::link::{Link, LinkEvent};
use crate::settings::Qos;

/// Reads a QoS level (0, 1 or 2) at `key`.
pub(crate) fn parse_qos(table: &mut Table<'_>, key: &str, default: Qos) -> Qos {
    match table.optional_u64(key) {
        None => default,
        Some(level) => Qos::from_level(level).unwrap_or_else(|| {
            table.error(key, format!("`{key}` must be 0, 1 or 2"), None);
            default
        }),
    }
}

/// Reads `max_inflight`: most publishes waiting for the broker's acknowledgement at once.
pub(crate) fn parse_inflight(table: &mut Table<'_>) -> u16 {
    match table.optional_u64("max_inflight") {
        None => 256,
        Some(n) if (1..=65535).contains(&n) => n as u16,
        Some(_) => {
            table.error("max_inflight", "`max_inflight` must be between 1 and 65535", None);
            256
        }
    }
}

/// How long a sink's orderly stop waits for the last messages to be acknowledged.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The link's next event; never, while there is no link (between sessions).
pub(crate) async fn next_event(link: &mut Option<Link>) -> LinkEvent {
    match link.as_mut() {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never, without a deadline.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Publishes handed to the link and not yet confirmed, by token, each with its
/// acknowledgement group. Tokens increase, and the broker confirms mostly in order, so
/// this is a queue in token order, found by binary search, emptied from the front: no
/// hashing per message. No I/O.
#[derive(Debug, Default)]
pub struct Unconfirmed {
    /// (token, group, confirmed), tokens increasing.
    queue: VecDeque<(u64, Option<u64>, bool)>,
    waiting: usize,
}

impl Unconfirmed {
    /// A publish was handed out; `token` is larger than every one before.
    pub fn push(&mut self, token: u64, group: Option<u64>) {
        self.queue.push_back((token, group, false));
        self.waiting += 1;
    }

    /// The publish `token` is settled: its group, or `None` if the token is unknown (or
    /// settled before).
    pub fn settle(&mut self, token: u64) -> Option<Option<u64>> {
        // Mostly the oldest (confirmations come in order): taken off the front at once.
        if let Some(&(t, group, false)) = self.queue.front()
            && t == token
        {
            self.queue.pop_front();
            self.waiting -= 1;
            while self.queue.front().is_some_and(|e| e.2) {
                self.queue.pop_front();
            }
            return Some(group);
        }
        // Else tokens are mostly consecutive: try the place the token would have then.
        let guess = self
            .queue
            .front()
            .and_then(|f| usize::try_from(token.checked_sub(f.0)?).ok())
            .filter(|&i| self.queue.get(i).is_some_and(|e| e.0 == token));
        let i = match guess {
            Some(i) => i,
            None => self.queue.binary_search_by_key(&token, |e| e.0).ok()?,
        };
        let entry = &mut self.queue[i];
        if entry.2 {
            return None;
        }
        entry.2 = true;
        let group = entry.1;
        self.waiting -= 1;
        while self.queue.front().is_some_and(|e| e.2) {
            self.queue.pop_front();
        }
        Some(group)
    }

    /// Settles the publishes `first..first + count` (one write confirms a run of
    /// consecutive QoS 0 tokens), calling `settled` with the group of each one known and
    /// not settled before, in token order. The usual case, the run at the front of the
    /// queue, is taken off it without a search per token.
    pub fn settle_run(&mut self, first: u64, count: u64, mut settled: impl FnMut(Option<u64>)) {
        let end = first.saturating_add(count);
        let mut token = first;
        while token < end {
            match self.queue.front() {
                Some(&(t, group, false)) if t == token => {
                    self.queue.pop_front();
                    self.waiting -= 1;
                    settled(group);
                    token += 1;
                    while self.queue.front().is_some_and(|e| e.2) {
                        self.queue.pop_front();
                    }
                }
                // Tokens before the oldest unsettled one are unknown or settled already.
                Some(&(t, _, false)) if t > token => token = t,
                None => return,
                // The oldest unsettled publish is older than the run: one by one.
                Some(_) => {
                    for t in token..end {
                        if let Some(group) = self.settle(t) {
                            settled(group);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Publishes not settled.
    pub fn len(&self) -> usize {
        self.waiting
    }

    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    pub fn clear(&mut self) {
        self.queue.clear();
        self.waiting = 0;
    }
}

/// Which log records a set of messages came from, and how many of those messages the
/// broker has yet to acknowledge. A record is acknowledged to the log once every message
/// made from it is confirmed; with batching, one flush covers many records. No I/O.
#[derive(Debug, Default)]
pub struct Groups {
    next: u64,
    /// The group receiving records and messages now, until it is closed.
    open: Option<u64>,
    /// Groups by id, from `first` on (ids are given in sequence); `None` once settled.
    groups: VecDeque<Option<Group>>,
    first: u64,
}

#[derive(Debug, Default)]
struct Group {
    records: Vec<u64>,
    outstanding: usize,
    closed: bool,
}

impl Groups {
    /// The open group, opened if needed.
    pub fn current(&mut self) -> u64 {
        if let Some(g) = self.open {
            return g;
        }
        let g = self.next;
        self.next += 1;
        if self.groups.is_empty() {
            self.first = g;
        }
        self.groups.push_back(Some(Group::default()));
        self.open = Some(g);
        g
    }

    fn get_mut(&mut self, group: u64) -> Option<&mut Group> {
        let i = usize::try_from(group.checked_sub(self.first)?).ok()?;
        self.groups.get_mut(i)?.as_mut()
    }

    /// The open group, if any (without opening one).
    pub fn open(&self) -> Option<u64> {
        self.open
    }

    pub fn add_record(&mut self, group: u64, record: u64) {
        if let Some(g) = self.get_mut(group) {
            g.records.push(record);
        }
    }

    pub fn add_messages(&mut self, group: u64, n: usize) {
        if let Some(g) = self.get_mut(group) {
            g.outstanding += n;
        }
    }

    /// No more messages join the open group. Returns its records if all are confirmed.
    pub fn close(&mut self) -> Vec<u64> {
        let Some(g) = self.open.take() else {
            return Vec::new();
        };
        if let Some(group) = self.get_mut(g) {
            group.closed = true;
        }
        self.settle(g)
    }

    /// One message of `group` was confirmed (or refused for good). Returns the group's
    /// records once it is closed and complete.
    pub fn done(&mut self, group: u64) -> Vec<u64> {
        self.done_many(group, 1)
    }

    /// [`done`](Self::done) for `n` messages of `group` at once.
    pub fn done_many(&mut self, group: u64, n: usize) -> Vec<u64> {
        if let Some(g) = self.get_mut(group) {
            g.outstanding = g.outstanding.saturating_sub(n);
        }
        self.settle(group)
    }

    fn settle(&mut self, group: u64) -> Vec<u64> {
        let Some(g) = self.get_mut(group) else {
            return Vec::new();
        };
        if !g.closed || g.outstanding > 0 {
            return Vec::new();
        }
        let records = std::mem::take(&mut g.records);
        let i = (group - self.first) as usize;
        self.groups[i] = None;
        while self.groups.front().is_some_and(Option::is_none) {
            self.groups.pop_front();
            self.first += 1;
        }
        records
    }

    /// The connection was lost: nothing outstanding will be confirmed now.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.first = self.next;
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfirmed_publishes_settle_in_any_order_once_each() {
        let mut u = Unconfirmed::default();
        u.push(3, Some(1));
        u.push(5, None);
        u.push(9, Some(2));
        assert_eq!(u.settle(9), Some(Some(2)));
        assert_eq!(u.settle(9), None, "settled twice");
        assert_eq!(u.settle(4), None, "never handed out");
        assert_eq!(u.len(), 2);
        assert_eq!(u.settle(3), Some(Some(1)));
        assert_eq!(u.settle(5), Some(None));
        assert!(u.is_empty());
        u.push(10, None);
        assert_eq!(u.len(), 1);
        // In order, each from the front.
        u.push(11, Some(3));
        u.push(12, Some(4));
        assert_eq!(u.settle(10), Some(None));
        assert_eq!(u.settle(10), None, "settled twice");
        assert_eq!(u.settle(11), Some(Some(3)));
        assert_eq!(u.len(), 1);
        assert_eq!(u.settle(12), Some(Some(4)));
        assert!(u.is_empty());
    }

    #[test]
    fn a_run_of_tokens_settles_as_each_token_alone_would() {
        // Tokens 1..=12 handed out but 4 and 9 (another publisher's), 6 settled before;
        // the runs: one at the front, one reaching past the known tokens, one older.
        let fill = |u: &mut Unconfirmed| {
            for t in (1..=12).filter(|t| ![4, 9].contains(t)) {
                u.push(t, Some(t / 3));
            }
            assert_eq!(u.settle(6), Some(Some(2)));
        };
        let runs: [(u64, u64); 4] = [(1, 3), (3, 6), (9, 20), (30, 2)];
        let mut by_run = Unconfirmed::default();
        let mut alone = Unconfirmed::default();
        fill(&mut by_run);
        fill(&mut alone);
        for (first, count) in runs {
            let mut settled = Vec::new();
            by_run.settle_run(first, count, |g| settled.push(g));
            let expected: Vec<Option<u64>> = (first..first + count).filter_map(|t| alone.settle(t)).collect();
            assert_eq!(settled, expected, "run {first}+{count}");
            assert_eq!(by_run.len(), alone.len());
        }
        assert!(by_run.is_empty());
        // A run behind an older publish still waiting settles the run only.
        let mut u = Unconfirmed::default();
        for t in 1..=5 {
            u.push(t, Some(t));
        }
        let mut settled = Vec::new();
        u.settle_run(3, 2, |g| settled.push(g));
        assert_eq!(settled, [Some(3), Some(4)]);
        assert_eq!(u.len(), 3);
        assert_eq!(u.settle(1), Some(Some(1)));
        assert_eq!(u.settle(3), None, "settled by the run");
    }

    #[test]
    fn a_record_is_acknowledged_once_every_message_made_from_it_is_confirmed() {
        let mut groups = Groups::default();
        let g = groups.current();
        groups.add_record(g, 100);
        groups.add_record(g, 105);
        groups.add_messages(g, 2);
        assert!(groups.close().is_empty());
        assert!(groups.done(g).is_empty());
        assert_eq!(groups.done(g), [100, 105]);
        // A group that made no message is done when closed.
        let g = groups.current();
        groups.add_record(g, 110);
        assert_eq!(groups.close(), [110]);
        // After a disconnect nothing outstanding is acknowledged.
        let g = groups.current();
        groups.add_record(g, 120);
        groups.add_messages(g, 1);
        groups.close();
        groups.clear();
        assert!(groups.done(g).is_empty());
    }
}
