//! Delivery confirmation: which publishes the broker acknowledged.
//!
//! rumqttc's `publish()` only queues a request; the packet id is chosen later, inside the
//! event loop. The event loop does report, in order, `Outgoing::Publish(pkid)` when it
//! writes a publish (pkid 0 for QoS 0), `Outgoing::AwaitAck(pkid)` when the next packet id
//! is still in use (a "collision": the publish is parked and written, with that id, after
//! the old one is acknowledged) and the incoming `PUBACK` / `PUBREC` / `PUBCOMP`.
//! [`DeliveryTracker`] correlates them:
//!
//! - publishes are handed to rumqttc in the order they are [`submitted`](DeliveryTracker::submitted),
//!   and rumqttc writes requests in channel order, so the n-th new `Outgoing::Publish` (or
//!   `AwaitAck`) belongs to the n-th submitted publish;
//! - QoS 1 is confirmed by `PUBACK`, QoS 2 by `PUBCOMP`; QoS 0 has no acknowledgement in
//!   MQTT and counts as confirmed once written to the connection;
//! - an MQTT 5 acknowledgement with a failure reason code is a [`Delivery::Rejected`];
//! - everything still unconfirmed when the session ends is [`Delivery::Lost`]. A
//!   [`Link`](crate::link::Link) is one session (clean start, never resumed), so nothing
//!   lost is ever sent later behind the tracker's back; the owner publishes it again.
//!
//! The tracker does no I/O; the link feeds it events. Tokens are the caller's ids.

use std::collections::{HashMap, VecDeque};

use crate::settings::Qos;

/// What became of one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The broker acknowledged it (QoS 1: PUBACK, QoS 2: PUBCOMP), or, for QoS 0, it was
    /// written to the connection.
    Confirmed(u64),
    /// The broker refused it (MQTT 5 reason code ≥ 0x80, e.g. not authorized).
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

/// Correlates publishes with acknowledgements within one MQTT session.
#[derive(Debug, Default)]
pub struct DeliveryTracker {
    /// Submitted, not yet written: in submission order.
    queued: VecDeque<(u64, Qos)>,
    /// Written with a packet id, waiting for PUBACK / PUBCOMP.
    inflight: HashMap<u16, (u64, Qos)>,
    /// Parked on a packet id still in use by an older publish.
    collided: Option<(u16, u64, Qos)>,
}

impl DeliveryTracker {
    pub fn new() -> DeliveryTracker {
        DeliveryTracker::default()
    }

    /// A publish was handed to the client. Call in the same order as the client calls.
    pub fn submitted(&mut self, token: u64, qos: Qos) {
        self.queued.push_back((token, qos));
    }

    /// The last submitted publish never reached the client (its queue was closed).
    pub fn withdraw(&mut self, token: u64) {
        if let Some(i) = self.queued.iter().rposition(|(t, _)| *t == token) {
            self.queued.remove(i);
        }
    }

    /// The event loop wrote a publish with this packet id (0 for QoS 0).
    pub fn on_outgoing_publish(&mut self, pkid: u16) -> Option<Delivery> {
        if let Some((id, token, qos)) = self.collided
            && id == pkid
            && !self.inflight.contains_key(&pkid)
        {
            // The parked publish, written now that its packet id is free.
            self.collided = None;
            self.inflight.insert(pkid, (token, qos));
            return None;
        }
        let (token, qos) = self.queued.pop_front()?;
        if pkid == 0 || qos == Qos::AtMostOnce {
            return Some(Delivery::Confirmed(token));
        }
        self.inflight.insert(pkid, (token, qos));
        None
    }

    /// The event loop parked the next publish because `pkid` is still in flight.
    pub fn on_await_ack(&mut self, pkid: u16) {
        if let Some((token, qos)) = self.queued.pop_front() {
            self.collided = Some((pkid, token, qos));
        }
    }

    /// PUBACK (QoS 1). `failure` is the reason of an MQTT 5 negative acknowledgement.
    pub fn on_puback(&mut self, pkid: u16, failure: Option<String>) -> Option<Delivery> {
        self.finish(pkid, Qos::AtLeastOnce, failure)
    }

    /// PUBREC (QoS 2): only a negative one (MQTT 5) ends the exchange.
    pub fn on_pubrec(&mut self, pkid: u16, failure: Option<String>) -> Option<Delivery> {
        failure.and_then(|reason| self.finish(pkid, Qos::ExactlyOnce, Some(reason)))
    }

    /// PUBCOMP (QoS 2).
    pub fn on_pubcomp(&mut self, pkid: u16) -> Option<Delivery> {
        self.finish(pkid, Qos::ExactlyOnce, None)
    }

    fn finish(&mut self, pkid: u16, qos: Qos, failure: Option<String>) -> Option<Delivery> {
        match self.inflight.get(&pkid) {
            Some((_, q)) if *q == qos => {}
            // Not ours, or an ack of the wrong kind: rumqttc reports the protocol error.
            _ => return None,
        }
        let (token, _) = self.inflight.remove(&pkid)?;
        Some(match failure {
            None => Delivery::Confirmed(token),
            Some(reason) => Delivery::Rejected { token, reason },
        })
    }

    /// The session ended: every unconfirmed publish is lost, oldest first.
    pub fn on_session_end(&mut self) -> Vec<Delivery> {
        let mut inflight: Vec<u64> = self.inflight.drain().map(|(_, (t, _))| t).collect();
        inflight.extend(self.collided.take().map(|(_, t, _)| t));
        inflight.extend(self.queued.drain(..).map(|(t, _)| t));
        // Tokens increase with submission, so sorting restores the order they were sent in.
        inflight.sort_unstable();
        inflight.into_iter().map(Delivery::Lost).collect()
    }

    /// Publishes submitted and not yet confirmed, rejected or lost.
    pub fn outstanding(&self) -> usize {
        self.queued.len() + self.inflight.len() + usize::from(self.collided.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos1_is_confirmed_by_its_own_puback_in_any_order() {
        let mut t = DeliveryTracker::new();
        for token in 1..=3 {
            t.submitted(token, Qos::AtLeastOnce);
        }
        for pkid in 1..=3 {
            assert_eq!(t.on_outgoing_publish(pkid), None);
        }
        assert_eq!(t.on_puback(2, None), Some(Delivery::Confirmed(2)));
        assert_eq!(t.on_puback(3, None), Some(Delivery::Confirmed(3)));
        assert_eq!(t.outstanding(), 1);
        assert_eq!(t.on_session_end(), vec![Delivery::Lost(1)]);
    }

    #[test]
    fn qos0_is_confirmed_when_written_and_keeps_the_order_with_qos1() {
        let mut t = DeliveryTracker::new();
        t.submitted(10, Qos::AtMostOnce);
        t.submitted(11, Qos::AtLeastOnce);
        assert_eq!(t.on_outgoing_publish(0), Some(Delivery::Confirmed(10)));
        assert_eq!(t.on_outgoing_publish(1), None);
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(11)));
    }

    #[test]
    fn qos2_waits_for_pubcomp_not_pubrec() {
        let mut t = DeliveryTracker::new();
        t.submitted(5, Qos::ExactlyOnce);
        t.on_outgoing_publish(7);
        assert_eq!(t.on_pubrec(7, None), None);
        // A PUBACK for a QoS 2 packet id is a broker bug, not a confirmation.
        assert_eq!(t.on_puback(7, None), None);
        assert_eq!(t.on_pubcomp(7), Some(Delivery::Confirmed(5)));
    }

    #[test]
    fn negative_acks_are_rejections() {
        let mut t = DeliveryTracker::new();
        t.submitted(1, Qos::AtLeastOnce);
        t.submitted(2, Qos::ExactlyOnce);
        t.on_outgoing_publish(1);
        t.on_outgoing_publish(2);
        assert_eq!(
            t.on_puback(1, Some("NotAuthorized".into())),
            Some(Delivery::Rejected {
                token: 1,
                reason: "NotAuthorized".into()
            })
        );
        assert!(matches!(
            t.on_pubrec(2, Some("QuotaExceeded".into())),
            Some(Delivery::Rejected { token: 2, .. })
        ));
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn a_collided_publish_takes_over_its_packet_id_after_the_old_ack() {
        let mut t = DeliveryTracker::new();
        t.submitted(1, Qos::AtLeastOnce);
        t.submitted(2, Qos::AtLeastOnce);
        t.on_outgoing_publish(1);
        // Packet id 1 is reused while still unacknowledged: token 2 is parked on it.
        t.on_await_ack(1);
        t.submitted(3, Qos::AtLeastOnce);
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(1)));
        // rumqttc now writes the parked publish with packet id 1 ...
        assert_eq!(t.on_outgoing_publish(1), None);
        // ... and the next new publish gets its own id.
        assert_eq!(t.on_outgoing_publish(2), None);
        assert_eq!(t.on_puback(1, None), Some(Delivery::Confirmed(2)));
        assert_eq!(t.on_puback(2, None), Some(Delivery::Confirmed(3)));
    }

    #[test]
    fn unknown_acks_and_unmatched_writes_change_nothing() {
        let mut t = DeliveryTracker::new();
        assert_eq!(t.on_puback(9, None), None);
        assert_eq!(t.on_outgoing_publish(3), None);
        t.submitted(1, Qos::AtLeastOnce);
        t.withdraw(1);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn session_end_loses_everything_unconfirmed_in_submission_order() {
        let mut t = DeliveryTracker::new();
        for token in 1..=4 {
            t.submitted(token, Qos::AtLeastOnce);
        }
        t.on_outgoing_publish(2);
        t.on_outgoing_publish(1);
        assert_eq!(t.on_puback(2, None), Some(Delivery::Confirmed(1)));
        assert_eq!(
            t.on_session_end(),
            vec![Delivery::Lost(2), Delivery::Lost(3), Delivery::Lost(4)]
        );
        assert_eq!(t.outstanding(), 0);
    }
}
