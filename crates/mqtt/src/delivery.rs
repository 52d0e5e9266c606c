//! Delivery confirmation: which publishes the broker acknowledged, and the packet ids in
//! use.
//!
//! The link encodes each publish as it is submitted and gives it its packet id here, so a
//! publish and its acknowledgement are matched by id alone:
//!
//! - QoS 1 is confirmed by `PUBACK`, QoS 2 by `PUBCOMP`; QoS 0 has no acknowledgement in
//!   MQTT and counts as confirmed once written to the connection;
//! - an MQTT 5 acknowledgement with a failure reason code is a [`Delivery::Rejected`];
//! - everything still unconfirmed when the session ends is [`Delivery::Lost`]. A
//!   [`Link`](crate::link::Link) is one session (clean start, or a kept one whose
//!   unacknowledged messages the owner sends again), so nothing lost is ever sent later
//!   behind the tracker's back; the owner publishes it again.
//!
//! Packet ids are given in sequence (1, 2, ... 65 535, 1, ...) and kept in a ring in that
//! order, so an id is found by its distance from the oldest one in use (no hashing per
//! message) and the next id is always free: the ring never holds more than 65 535 ids.
//! Acknowledgements may come in any order; an id is freed once everything older is.
//!
//! No I/O; tokens are the caller's ids, increasing with submission.

use std::collections::VecDeque;

use crate::settings::Qos;

/// What became of one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The broker acknowledged it (QoS 1: PUBACK, QoS 2: PUBCOMP), or, for QoS 0, it was
    /// written to the connection.
    Confirmed(u64),
    /// The broker refused it (MQTT 5 reason code ≥ 0x80, e.g. not authorized), or the link
    /// could not send it (over the packet size the broker accepts).
    Rejected { token: u64, reason: String },
    /// The session ended before the broker confirmed it; it may or may not have arrived.
    Lost(u64),
}

impl Delivery {
    pub fn token(&self) -> u64 {
        match self {
            Delivery::Confirmed(t) | Delivery::Lost(t) => *t,
            Delivery::Rejected { token, .. } => *token,
        }
    }
}

/// One entry of [`Reports`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The publishes `first..first + count` were confirmed.
    Confirmed { first: u64, count: u64 },
    /// Anything else: a refusal or a loss.
    Other(Delivery),
}

/// What became of publishes, in order, for the link's owner. Consecutive confirmations are
/// kept as one run (a write of QoS 0 publishes, acknowledgements in order), so a write of
/// a thousand messages is one entry to hand over and settle, not a thousand.
#[derive(Debug, Default)]
pub struct Reports {
    entries: Vec<Report>,
    /// Deliveries held, a run counting its length.
    len: usize,
}

impl Reports {
    pub fn push(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Confirmed(token) => self.confirmed(token, 1),
            other => {
                self.len += 1;
                self.entries.push(Report::Other(other));
            }
        }
    }

    /// The publishes `first..first + count` were confirmed: joined to the run before if
    /// they follow it.
    pub fn confirmed(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.len = self
            .len
            .saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
        if let Some(Report::Confirmed { first: f, count: n }) = self.entries.last_mut()
            && f.checked_add(*n) == Some(first)
        {
            *n += count;
            return;
        }
        self.entries.push(Report::Confirmed { first, count });
    }

    /// Deliveries held (not entries).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes every entry, in order; the room stays for the next ones.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Report> {
        self.len = 0;
        self.entries.drain(..)
    }
}

impl Extend<Delivery> for Reports {
    fn extend<I: IntoIterator<Item = Delivery>>(&mut self, deliveries: I) {
        for d in deliveries {
            self.push(d);
        }
    }
}

/// What a PUBREC means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PubRec {
    /// Received: answer PUBREL and wait for PUBCOMP.
    Release,
    Rejected(Delivery),
    /// Not one of ours: a broker bug, ignored.
    Unknown,
}

/// What holds a packet id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// A QoS 1 or 2 publish waiting for its acknowledgement.
    Publish { token: u64, qos: Qos },
    /// A SUBSCRIBE waiting for its SUBACK.
    Subscribe,
    /// Acknowledged; freed once every older id is.
    Done,
}

/// The most packet ids in use at once: every id but 0.
pub const MAX_IDS: usize = 65_535;

/// Correlates publishes with acknowledgements within one MQTT session.
#[derive(Debug)]
pub struct DeliveryTracker {
    /// QoS 0 publishes encoded but not yet written, in submission order, as runs of
    /// consecutive tokens (first, count).
    unwritten: VecDeque<(u64, u64)>,
    /// Publishes in `unwritten`.
    unwritten_len: usize,
    /// Packet ids in use, oldest first: `ring[i]` holds id `front + i` (wrapping past 0).
    ring: VecDeque<Slot>,
    front: u16,
    /// QoS 1 and 2 publishes in the ring, not yet done.
    waiting: usize,
}

impl Default for DeliveryTracker {
    fn default() -> DeliveryTracker {
        DeliveryTracker {
            unwritten: VecDeque::new(),
            unwritten_len: 0,
            ring: VecDeque::new(),
            front: 1,
            waiting: 0,
        }
    }
}

/// The id `n` places after `id`, skipping 0.
fn advance(id: u16, n: usize) -> u16 {
    let zero_based = (usize::from(id) - 1 + n) % MAX_IDS;
    (zero_based + 1) as u16
}

impl DeliveryTracker {
    pub fn new() -> DeliveryTracker {
        DeliveryTracker::default()
    }

    /// Whether another id can be given.
    pub fn has_free_id(&self) -> bool {
        self.ring.len() < MAX_IDS
    }

    fn take_id(&mut self, slot: Slot) -> Option<u16> {
        if !self.has_free_id() {
            return None;
        }
        let id = advance(self.front, self.ring.len());
        self.ring.push_back(slot);
        Some(id)
    }

    /// A publish is being encoded: its packet id (0 for QoS 0), or `None` if every id is in
    /// use (the caller waits for an acknowledgement).
    pub fn submitted(&mut self, token: u64, qos: Qos) -> Option<u16> {
        if qos == Qos::AtMostOnce {
            self.unwritten_len += 1;
            match self.unwritten.back_mut() {
                Some((first, count)) if first.checked_add(*count) == Some(token) => *count += 1,
                _ => self.unwritten.push_back((token, 1)),
            }
            return Some(0);
        }
        let id = self.take_id(Slot::Publish { token, qos })?;
        self.waiting += 1;
        Some(id)
    }

    /// A SUBSCRIBE's packet id.
    pub fn subscribing(&mut self) -> Option<u16> {
        self.take_id(Slot::Subscribe)
    }

    /// QoS 0 publishes submitted and not yet [`written`](Self::written).
    pub fn unwritten(&self) -> usize {
        self.unwritten_len
    }

    /// The oldest `n` QoS 0 publishes were written to the connection.
    pub fn written(&mut self, n: usize, out: &mut Reports) {
        let mut n = n as u64;
        while n > 0 {
            let Some((first, count)) = self.unwritten.front_mut() else {
                return;
            };
            let take = (*count).min(n);
            out.confirmed(*first, take);
            *first += take;
            *count -= take;
            n -= take;
            self.unwritten_len -= take as usize;
            if *count == 0 {
                self.unwritten.pop_front();
            }
        }
    }

    fn slot(&mut self, id: u16) -> Option<&mut Slot> {
        if id == 0 {
            return None;
        }
        let distance = (usize::from(id) + MAX_IDS - usize::from(self.front)) % MAX_IDS;
        self.ring.get_mut(distance)
    }

    fn free_done(&mut self) {
        while self.ring.front() == Some(&Slot::Done) {
            self.ring.pop_front();
            self.front = advance(self.front, 1);
        }
    }

    fn finish(&mut self, id: u16, qos: Qos, failure: Option<String>) -> Option<Delivery> {
        let slot = self.slot(id)?;
        let token = match *slot {
            Slot::Publish { token, qos: q } if q == qos => token,
            // Not ours, or an ack of the wrong kind: a broker bug, ignored.
            _ => return None,
        };
        *slot = Slot::Done;
        self.waiting -= 1;
        self.free_done();
        Some(match failure {
            None => Delivery::Confirmed(token),
            Some(reason) => Delivery::Rejected { token, reason },
        })
    }

    /// PUBACK (QoS 1). `failure` is the reason of an MQTT 5 negative acknowledgement.
    pub fn on_puback(&mut self, id: u16, failure: Option<String>) -> Option<Delivery> {
        self.finish(id, Qos::AtLeastOnce, failure)
    }

    /// PUBREC (QoS 2): a negative one (MQTT 5) ends the exchange with a rejection;
    /// otherwise [`PubRec::Release`] if the id is one of our QoS 2 publishes, which the
    /// caller answers with PUBREL.
    pub fn on_pubrec(&mut self, id: u16, failure: Option<String>) -> PubRec {
        match failure {
            Some(reason) => match self.finish(id, Qos::ExactlyOnce, Some(reason)) {
                Some(d) => PubRec::Rejected(d),
                None => PubRec::Unknown,
            },
            None if matches!(
                self.slot(id),
                Some(Slot::Publish {
                    qos: Qos::ExactlyOnce,
                    ..
                })
            ) =>
            {
                PubRec::Release
            }
            None => PubRec::Unknown,
        }
    }

    /// PUBCOMP (QoS 2).
    pub fn on_pubcomp(&mut self, id: u16) -> Option<Delivery> {
        self.finish(id, Qos::ExactlyOnce, None)
    }

    /// SUBACK: the subscribe's id is free again.
    pub fn on_suback(&mut self, id: u16) {
        if let Some(slot) = self.slot(id)
            && *slot == Slot::Subscribe
        {
            *slot = Slot::Done;
            self.free_done();
        }
    }

    /// The session ended: every unconfirmed publish is lost, oldest first.
    pub fn on_session_end(&mut self) -> Vec<Delivery> {
        let mut lost: Vec<u64> = self
            .ring
            .drain(..)
            .filter_map(|s| match s {
                Slot::Publish { token, .. } => Some(token),
                _ => None,
            })
            .collect();
        lost.extend(
            self.unwritten
                .drain(..)
                .flat_map(|(first, count)| first..first + count),
        );
        self.unwritten_len = 0;
        self.waiting = 0;
        // Tokens increase with submission, so sorting restores the order they were sent in.
        lost.sort_unstable();
        lost.into_iter().map(Delivery::Lost).collect()
    }

    /// Publishes submitted and not yet confirmed, rejected or lost.
    pub fn outstanding(&self) -> usize {
        self.unwritten_len + self.waiting
    }

    /// Packets the broker is still to acknowledge (QoS 1 and 2 publishes, SUBSCRIBEs).
    pub fn awaiting_broker(&self) -> usize {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos1_is_confirmed_by_its_own_puback_in_any_order() {
        let mut t = DeliveryTracker::new();
        let ids: Vec<u16> = (1..=3)
            .map(|token| t.submitted(token, Qos::AtLeastOnce).unwrap())
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(t.on_puback(2, None), Some(Delivery::Confirmed(2)));
        assert_eq!(t.on_puback(3, None), Some(Delivery::Confirmed(3)));
        assert_eq!(t.outstanding(), 1);
        assert_eq!(t.on_session_end(), vec![Delivery::Lost(1)]);
    }

    #[test]
    fn qos0_is_confirmed_when_written_and_keeps_the_order_with_qos1() {
        let mut t = DeliveryTracker::new();
        assert_eq!(t.submitted(10, Qos::AtMostOnce), Some(0));
        assert_eq!(t.submitted(11, Qos::AtLeastOnce), Some(1));
        assert_eq!(t.submitted(12, Qos::AtMostOnce), Some(0));
        let mut out = Reports::default();
        t.written(1, &mut out);
        assert_eq!(
            out.drain().collect::<Vec<_>>(),
            [Report::Confirmed { first: 10, count: 1 }]
        );
        assert_eq!(t.outstanding(), 2);
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(11)));
        assert_eq!(t.on_session_end(), vec![Delivery::Lost(12)]);
    }

    #[test]
    fn qos0_publishes_written_are_reported_as_runs_of_consecutive_tokens() {
        let mut t = DeliveryTracker::new();
        for token in 1..=6 {
            let qos = if token == 3 {
                Qos::AtLeastOnce
            } else {
                Qos::AtMostOnce
            };
            assert!(t.submitted(token, qos).is_some());
        }
        assert_eq!(t.unwritten(), 5);
        let mut out = Reports::default();
        // Three written: tokens 1, 2 and 4 (3 is QoS 1, awaiting its PUBACK).
        t.written(3, &mut out);
        assert_eq!(t.unwritten(), 2);
        assert_eq!(t.outstanding(), 3);
        assert_eq!(out.len(), 3);
        let entries: Vec<Report> = out.drain().collect();
        assert_eq!(
            entries,
            [
                Report::Confirmed { first: 1, count: 2 },
                Report::Confirmed { first: 4, count: 1 }
            ]
        );
        // A later run joins the one before when it follows it; a refusal stands apart.
        t.written(2, &mut out);
        out.push(Delivery::Rejected {
            token: 7,
            reason: "x".into(),
        });
        out.push(Delivery::Confirmed(8));
        out.push(Delivery::Confirmed(9));
        assert_eq!(out.len(), 5);
        let entries: Vec<Report> = out.drain().collect();
        assert_eq!(
            entries,
            [
                Report::Confirmed { first: 5, count: 2 },
                Report::Other(Delivery::Rejected {
                    token: 7,
                    reason: "x".into()
                }),
                Report::Confirmed { first: 8, count: 2 }
            ]
        );
        assert!(out.is_empty());
        assert_eq!(t.unwritten(), 0);
        assert_eq!(t.on_session_end(), vec![Delivery::Lost(3)]);
    }

    #[test]
    fn qos2_waits_for_pubcomp_not_pubrec() {
        let mut t = DeliveryTracker::new();
        let id = t.submitted(5, Qos::ExactlyOnce).unwrap();
        assert_eq!(t.on_pubrec(id, None), PubRec::Release);
        // A PUBACK for a QoS 2 packet id is a broker bug, not a confirmation.
        assert_eq!(t.on_puback(id, None), None);
        assert_eq!(t.on_pubcomp(id), Some(Delivery::Confirmed(5)));
        assert_eq!(t.on_pubrec(id, None), PubRec::Unknown);
    }

    #[test]
    fn negative_acks_are_rejections() {
        let mut t = DeliveryTracker::new();
        let a = t.submitted(1, Qos::AtLeastOnce).unwrap();
        let b = t.submitted(2, Qos::ExactlyOnce).unwrap();
        assert_eq!(
            t.on_puback(a, Some("NotAuthorized".into())),
            Some(Delivery::Rejected {
                token: 1,
                reason: "NotAuthorized".into()
            })
        );
        assert!(matches!(
            t.on_pubrec(b, Some("QuotaExceeded".into())),
            PubRec::Rejected(Delivery::Rejected { token: 2, .. })
        ));
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn an_id_is_reused_only_after_every_older_one_is_acknowledged() {
        let mut t = DeliveryTracker::new();
        // Fill every id; the oldest stays unacknowledged.
        for token in 0..MAX_IDS as u64 {
            assert!(t.submitted(token, Qos::AtLeastOnce).is_some());
        }
        assert_eq!(t.submitted(99_999, Qos::AtLeastOnce), None);
        for id in 2..=MAX_IDS as u16 {
            assert!(t.on_puback(id, None).is_some());
        }
        // Id 1 still in flight: nothing is free, although 65 534 ids were acknowledged.
        assert!(!t.has_free_id());
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(0)));
        // The sequence goes on past 65 535 and wraps to 1, skipping 0.
        assert_eq!(t.submitted(70_000, Qos::AtLeastOnce), Some(1));
        assert_eq!(t.submitted(70_001, Qos::AtLeastOnce), Some(2));
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(70_000)));
        assert_eq!(t.outstanding(), 1);
    }

    #[test]
    fn ids_wrap_past_65535_and_acks_still_find_their_publish() {
        let mut t = DeliveryTracker::new();
        for token in 0..65_534u64 {
            let id = t.submitted(token, Qos::AtLeastOnce).unwrap();
            assert_eq!(t.on_puback(id, None), Some(Delivery::Confirmed(token)));
        }
        assert_eq!(t.submitted(1, Qos::AtLeastOnce), Some(65_535));
        assert_eq!(t.submitted(2, Qos::AtLeastOnce), Some(1));
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(2)));
        assert_eq!(t.on_puback(65_535, None), Some(Delivery::Confirmed(1)));
    }

    #[test]
    fn unknown_acks_change_nothing() {
        let mut t = DeliveryTracker::new();
        assert_eq!(t.on_puback(9, None), None);
        assert_eq!(t.on_puback(0, None), None);
        let id = t.subscribing().unwrap();
        assert_eq!(t.on_puback(id, None), None);
        t.on_suback(id);
        assert_eq!(t.outstanding(), 0);
        assert_eq!(t.submitted(1, Qos::AtLeastOnce), Some(2));
    }

    #[test]
    fn session_end_loses_everything_unconfirmed_in_submission_order() {
        let mut t = DeliveryTracker::new();
        t.submitted(1, Qos::AtLeastOnce);
        t.submitted(2, Qos::AtMostOnce);
        t.submitted(3, Qos::AtLeastOnce);
        t.submitted(4, Qos::ExactlyOnce);
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(1)));
        assert_eq!(
            t.on_session_end(),
            vec![Delivery::Lost(2), Delivery::Lost(3), Delivery::Lost(4)]
        );
        assert_eq!(t.outstanding(), 0);
    }
}
