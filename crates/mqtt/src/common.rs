//! What the kinds of this crate share beyond the broker connection ([`crate::settings`]):
//! the configuration keys they read alike (`qos`, `max_inflight`), [`Groups`] (when a log
//! record may be acknowledged, for both sinks), and the pieces of the sinks' drivers that
//! wait on a link or a timer that may not exist.

use std::collections::{BTreeSet, VecDeque};
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
/// acknowledgement group. Tokens increase, a sink hands out runs of consecutive tokens of
/// one group (a delivery's messages), and the broker confirms mostly in order: so this is
/// a queue of such runs in token order, emptied from the front, with the few tokens
/// confirmed out of order kept aside. No hashing per message, and a run of QoS 0
/// confirmations is settled run by run rather than token by token. No I/O.
#[derive(Debug, Default)]
pub struct Unconfirmed {
    /// Runs of consecutive tokens of one group, tokens increasing; the first token of the
    /// first run is never in `early`.
    runs: VecDeque<Run>,
    /// Tokens settled while an older one was still waiting. A set, not a sorted vector:
    /// a broker that confirms out of order across a window of thousands would make each
    /// insertion a shift of them all.
    early: BTreeSet<u64>,
    waiting: usize,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    len: u64,
    group: Option<u64>,
}

impl Run {
    fn end(&self) -> u64 {
        self.first + self.len
    }
}

impl Unconfirmed {
    /// A publish was handed out; `token` is larger than every one before.
    pub fn push(&mut self, token: u64, group: Option<u64>) {
        self.waiting += 1;
        if let Some(last) = self.runs.back_mut()
            && last.end() == token
            && last.group == group
        {
            last.len += 1;
            return;
        }
        self.runs.push_back(Run {
            first: token,
            len: 1,
            group,
        });
    }

    /// The publish `token` is settled: its group, or `None` if the token is unknown (or
    /// settled before).
    pub fn settle(&mut self, token: u64) -> Option<Option<u64>> {
        let front = self.runs.front()?;
        // Mostly the oldest (confirmations come in order): taken off the front at once.
        if front.first == token {
            let group = front.group;
            self.take_front(1);
            return Some(group);
        }
        // Else the run holding it, unless settled before.
        let i = self.runs.partition_point(|r| r.end() <= token);
        let run = self.runs.get(i).filter(|r| r.first <= token)?;
        let group = run.group;
        if !self.early.insert(token) {
            return None;
        }
        self.waiting -= 1;
        Some(group)
    }

    /// Takes `n` tokens off the front of the first run (at most its length; none of them
    /// in `early`), then every token settled early that is now at the front.
    fn take_front(&mut self, n: u64) {
        let Some(front) = self.runs.front_mut() else {
            return;
        };
        let n = n.min(front.len);
        front.first += n;
        front.len -= n;
        self.waiting -= n as usize;
        loop {
            match self.runs.front_mut() {
                Some(r) if r.len == 0 => {
                    self.runs.pop_front();
                }
                Some(r) if self.early.first() == Some(&r.first) => {
                    self.early.pop_first();
                    r.first += 1;
                    r.len -= 1;
                }
                // Every token settled early lies after the front: each is taken here
                // when the front reaches it.
                Some(_) => return,
                None => {
                    self.early.clear();
                    return;
                }
            }
        }
    }

    /// Settles the publishes `first..first + count` (one write confirms a run of
    /// consecutive QoS 0 tokens), calling `settled(group, n)` for each stretch of `n`
    /// tokens of one group known and not settled before, in token order. The usual case,
    /// runs at the front of the queue and nothing settled early, is taken a run at a time.
    pub fn settle_run(&mut self, first: u64, count: u64, mut settled: impl FnMut(Option<u64>, u64)) {
        let end = first.saturating_add(count);
        let mut token = first;
        while token < end {
            let Some(&front) = self.runs.front() else {
                return;
            };
            if front.first > token {
                // Tokens before the oldest unsettled one are unknown or settled already.
                token = front.first;
            } else if front.first == token && self.early.is_empty() {
                let n = front.len.min(end - token);
                self.take_front(n);
                settled(front.group, n);
                token += n;
            } else {
                // The oldest unsettled publish is older than the run, or tokens were
                // settled out of order: one by one.
                for t in token..end {
                    if let Some(group) = self.settle(t) {
                        settled(group, 1);
                    }
                }
                return;
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
        self.runs.clear();
        self.early.clear();
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
            by_run.settle_run(first, count, |g, n| settled.extend((0..n).map(|_| g)));
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
        u.settle_run(3, 2, |g, n| settled.extend((0..n).map(|_| g)));
        assert_eq!(settled, [Some(3), Some(4)]);
        assert_eq!(u.len(), 3);
        assert_eq!(u.settle(1), Some(Some(1)));
        assert_eq!(u.settle(3), None, "settled by the run");
    }

    /// What the queue of runs must answer, kept the plain way: every unsettled token.
    #[derive(Default)]
    struct Model(std::collections::BTreeMap<u64, Option<u64>>);

    impl Model {
        fn settle_run(&mut self, first: u64, count: u64) -> Vec<Option<u64>> {
            (first..first.saturating_add(count))
                .filter_map(|t| self.0.remove(&t))
                .collect()
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// A publish handed out: the token after a gap of this many, a new group or not.
        Push { gap: u64, new_group: bool },
        /// Settles the token this far from the oldest unsettled one (or past the last).
        Settle(u64),
        /// Settles a run from this far before the oldest unsettled token, this long.
        Run { back: u64, count: u64 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (prop::sample::select(vec![0u64, 0, 0, 1, 3]), prop::bool::weighted(0.2))
                .prop_map(|(gap, new_group)| Op::Push { gap, new_group }),
            2 => prop::sample::select(vec![0u64, 0, 1, 2, 5, 40]).prop_map(Op::Settle),
            1 => (0u64..3, 0u64..12).prop_map(|(back, count)| Op::Run { back, count }),
        ]
    }

    proptest::proptest! {
        /// Runs, gaps between them (another publisher's tokens), confirmations in order,
        /// out of order and twice, and runs of confirmations over all of those.
        #[test]
        fn the_queue_of_runs_settles_as_a_set_of_tokens_would(ops in proptest::collection::vec(op(), 0..200)) {
            let mut u = Unconfirmed::default();
            let mut model = Model::default();
            let (mut next, mut group) = (1u64, 0u64);
            for op in ops {
                let oldest = model.0.keys().next().copied().unwrap_or(next);
                match op {
                    Op::Push { gap, new_group } => {
                        next += gap;
                        group += u64::from(new_group);
                        // Some messages belong to no group (status, snapshots).
                        let g = (group % 5 != 4).then_some(group);
                        u.push(next, g);
                        model.0.insert(next, g);
                        next += 1;
                    }
                    Op::Settle(ahead) => {
                        let t = oldest + ahead;
                        proptest::prop_assert_eq!(u.settle(t), model.0.remove(&t), "settle {}", t);
                    }
                    Op::Run { back, count } => {
                        let first = oldest.saturating_sub(back);
                        let mut settled = Vec::new();
                        u.settle_run(first, count, |g, n| settled.extend((0..n).map(|_| g)));
                        proptest::prop_assert_eq!(settled, model.settle_run(first, count), "run {}+{}", first, count);
                    }
                }
                proptest::prop_assert_eq!(u.len(), model.0.len());
            }
        }
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
