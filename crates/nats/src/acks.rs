//! Which published messages still await JetStream's acknowledgement, without I/O. Each
//! message published on a connection gets the next number (the last token of its reply
//! subject); a delivery's messages have consecutive numbers. An acknowledgement marks its
//! message; a delivery whose messages are all published and acknowledged frees its log
//! record, in any order. The oldest delivery still waiting gives the ack deadline.

use std::collections::VecDeque;
use std::time::Instant;

/// What an acknowledgement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acked {
    /// Not a number awaiting its ack (never published here, or acknowledged before).
    Unknown,
    /// Counted; its delivery still waits for others.
    Message,
    /// The last one of its delivery: the record to acknowledge (`None`: no record).
    Delivery(Option<u64>),
}

#[derive(Debug)]
struct Pending {
    /// Numbers `first..end`.
    first: u64,
    end: u64,
    /// Published but not acknowledged.
    waiting: usize,
    /// All its messages are published.
    closed: bool,
    /// Taken once freed.
    record: Option<u64>,
    freed: bool,
    /// When its latest message was published.
    sent: Instant,
}

impl Pending {
    fn done(&self) -> bool {
        self.closed && self.waiting == 0
    }
}

/// The messages in flight on one connection.
#[derive(Debug, Default)]
pub struct Acks {
    /// The number of `acked[0]`.
    base: u64,
    /// From `base` on, whether each message was acknowledged.
    acked: VecDeque<bool>,
    deliveries: VecDeque<Pending>,
    /// Published, not acknowledged.
    waiting: usize,
}

impl Acks {
    pub fn new() -> Acks {
        Acks::default()
    }

    /// Messages published and not acknowledged.
    pub fn in_flight(&self) -> usize {
        self.waiting
    }

    /// Nothing published awaits its ack, and no delivery is open.
    pub fn is_idle(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// Starts a delivery; its messages follow with [`publish`](Self::publish), then
    /// [`close`](Self::close).
    pub fn open(&mut self, record: Option<u64>, now: Instant) {
        let next = self.next_number();
        self.deliveries.push_back(Pending {
            first: next,
            end: next,
            waiting: 0,
            closed: false,
            record,
            freed: false,
            sent: now,
        });
    }

    /// The number of the next message of the open delivery, counted as published.
    /// `None` without an open delivery.
    pub fn publish(&mut self, now: Instant) -> Option<u64> {
        let pending = self.deliveries.back_mut().filter(|p| !p.closed)?;
        let n = pending.end;
        pending.end += 1;
        pending.waiting += 1;
        pending.sent = now;
        self.acked.push_back(false);
        self.waiting += 1;
        Some(n)
    }

    /// Every message of the open delivery is published: its record if they are all
    /// acknowledged already (or it had none), to be acknowledged now.
    pub fn close(&mut self) -> Option<Option<u64>> {
        let pending = self.deliveries.back_mut().filter(|p| !p.closed)?;
        pending.closed = true;
        let freed = pending.done().then(|| {
            pending.freed = true;
            pending.record.take()
        });
        self.trim();
        freed
    }

    /// JetStream acknowledged message `n`.
    pub fn ack(&mut self, n: u64) -> Acked {
        let Some(index) = n.checked_sub(self.base).and_then(|i| usize::try_from(i).ok()) else {
            return Acked::Unknown;
        };
        match self.acked.get_mut(index) {
            Some(flag) if !*flag => *flag = true,
            _ => return Acked::Unknown,
        }
        self.waiting -= 1;
        let at = self.deliveries.partition_point(|p| p.end <= n);
        let Some(pending) = self.deliveries.get_mut(at) else {
            return Acked::Message;
        };
        pending.waiting -= 1;
        let result = if pending.done() && !pending.freed {
            pending.freed = true;
            Acked::Delivery(pending.record.take())
        } else {
            Acked::Message
        };
        self.trim();
        result
    }

    /// When the oldest delivery still waiting for acks published its latest message.
    pub fn oldest_sent(&self) -> Option<Instant> {
        self.deliveries.iter().find(|p| p.waiting > 0).map(|p| p.sent)
    }

    fn next_number(&self) -> u64 {
        self.base + self.acked.len() as u64
    }

    /// Forgets the leading deliveries that are done, and their messages' flags.
    fn trim(&mut self) {
        while self.deliveries.front().is_some_and(Pending::done) {
            self.deliveries.pop_front();
        }
        let keep_from = self
            .deliveries
            .front()
            .map_or_else(|| self.next_number(), |p| p.first);
        let drop = usize::try_from(keep_from - self.base).unwrap_or(usize::MAX);
        self.acked.drain(..drop.min(self.acked.len()));
        self.base = keep_from;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_freed_only_once_every_message_of_it_is_acknowledged() {
        let now = Instant::now();
        let mut acks = Acks::new();
        acks.open(Some(7), now);
        let a = acks.publish(now).unwrap();
        let b = acks.publish(now).unwrap();
        assert_eq!(acks.close(), None);
        assert_eq!(acks.in_flight(), 2);
        assert_eq!(acks.ack(b), Acked::Message);
        assert_eq!(acks.ack(b), Acked::Unknown, "a repeated ack counts once");
        assert_eq!(acks.ack(a), Acked::Delivery(Some(7)));
        assert_eq!(acks.in_flight(), 0);
        assert!(acks.is_idle());
        assert_eq!(acks.ack(a), Acked::Unknown);
    }

    #[test]
    fn later_deliveries_may_be_freed_before_earlier_ones() {
        let now = Instant::now();
        let mut acks = Acks::new();
        acks.open(Some(1), now);
        let first = acks.publish(now).unwrap();
        acks.close();
        acks.open(Some(2), now);
        let second = acks.publish(now).unwrap();
        acks.close();
        assert_eq!(acks.ack(second), Acked::Delivery(Some(2)));
        assert_eq!(acks.oldest_sent(), Some(now), "the first still waits");
        assert_eq!(acks.ack(first), Acked::Delivery(Some(1)));
        assert!(acks.is_idle());
        assert_eq!(acks.oldest_sent(), None);
    }

    #[test]
    fn acks_before_the_delivery_is_closed_free_it_at_close() {
        let now = Instant::now();
        let mut acks = Acks::new();
        acks.open(Some(3), now);
        let a = acks.publish(now).unwrap();
        assert_eq!(acks.ack(a), Acked::Message, "more may follow");
        assert_eq!(acks.close(), Some(Some(3)));
        assert!(acks.is_idle());
    }

    #[test]
    fn an_empty_delivery_is_freed_at_once() {
        let now = Instant::now();
        let mut acks = Acks::new();
        acks.open(Some(1), now);
        let a = acks.publish(now).unwrap();
        acks.close();
        acks.open(Some(2), now);
        assert_eq!(acks.close(), Some(Some(2)));
        assert_eq!(acks.ack(a), Acked::Delivery(Some(1)));
        assert!(acks.is_idle());
    }

    #[test]
    fn unknown_numbers_are_ignored() {
        let now = Instant::now();
        let mut acks = Acks::new();
        assert_eq!(acks.publish(now), None, "no open delivery");
        assert_eq!(acks.ack(0), Acked::Unknown);
        acks.open(None, now);
        let a = acks.publish(now).unwrap();
        acks.close();
        assert_eq!(acks.ack(a + 1), Acked::Unknown);
        assert_eq!(acks.ack(u64::MAX), Acked::Unknown);
        assert_eq!(acks.ack(a), Acked::Delivery(None));
    }

    #[test]
    fn numbers_keep_rising_across_deliveries() {
        let now = Instant::now();
        let mut acks = Acks::new();
        let mut seen = Vec::new();
        for r in 0..100u64 {
            acks.open(Some(r), now);
            for _ in 0..3 {
                seen.push(acks.publish(now).unwrap());
            }
            acks.close();
            if r % 2 == 0 {
                for n in seen.drain(..) {
                    acks.ack(n);
                }
            }
        }
        assert!(acks.in_flight() <= 3);
        for n in seen.drain(..) {
            acks.ack(n);
        }
        assert!(acks.is_idle());
        assert_eq!(acks.acked.len(), 0, "flags are forgotten");
    }
}
