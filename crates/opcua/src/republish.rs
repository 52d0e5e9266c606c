//! Notifications lost in transit, and getting them back (Republish).
//!
//! A server numbers the notification messages of a subscription 1, 2, 3, … and keeps each
//! until the client acknowledges it. When a connection breaks, the responses it was carrying
//! are lost, but the server still holds them: a gap in the sequence numbers the client sees
//! names exactly the messages to ask for again. async-opcua does not do this itself, so the
//! source tracks the numbers per subscription ([`Sequence`]) and calls Republish for each
//! missing one. What the server no longer has is counted as lost and logged.

use std::ops::Range;

use opcua::types::{DataChangeNotification, DataValue, NotificationMessage};

/// Most messages asked for again after one gap; a longer gap (a server that renumbered, or
/// an outage far beyond the server's retransmission queue) is counted as lost instead.
pub const MAX_REPUBLISH: u32 = 256;

/// The sequence numbers seen on one subscription.
#[derive(Debug, Default)]
pub struct Sequence {
    /// The highest number known to be delivered (or, after a keep-alive, not yet used).
    last: Option<u32>,
}

impl Sequence {
    /// Notes a message and returns the numbers missing before it. A data message carries
    /// the next number; a keep-alive carries the next number not yet used, without using it.
    /// A number that goes back (the server restarted the count) starts afresh.
    pub fn observe(&mut self, number: u32, has_data: bool) -> Range<u32> {
        let through = if has_data {
            number
        } else {
            number.saturating_sub(1)
        };
        let missing = match self.last {
            Some(last) if number > last.saturating_add(1) => last + 1..number,
            _ => number..number,
        };
        self.last = Some(through);
        missing
    }
}

/// The data changes in a notification message: client handle and value.
pub fn data_changes(message: NotificationMessage) -> impl Iterator<Item = (u32, DataValue)> {
    message
        .notification_data
        .into_iter()
        .flatten()
        .filter_map(|object| object.into_inner_as::<DataChangeNotification>())
        .flat_map(|changes| {
            let DataChangeNotification { monitored_items, .. } = *changes;
            monitored_items
                .into_iter()
                .flatten()
                .map(|item| (item.client_handle, item.value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_messages_and_keep_alives_have_no_gap() {
        let mut s = Sequence::default();
        assert!(s.observe(1, false).is_empty()); // keep-alive: 1 is next
        assert!(s.observe(1, true).is_empty());
        assert!(s.observe(2, true).is_empty());
        assert!(s.observe(3, false).is_empty()); // keep-alive: 3 is next, none missing
        assert!(s.observe(3, true).is_empty());
    }

    #[test]
    fn a_gap_names_the_messages_lost_in_transit() {
        let mut s = Sequence::default();
        s.observe(4, true);
        assert_eq!(s.observe(7, true), 5..7);
        assert!(s.observe(8, true).is_empty());
        // A keep-alive saying 11 is next: 9 and 10 were sent and lost.
        assert_eq!(s.observe(11, false), 9..11);
        assert!(s.observe(11, true).is_empty());
    }

    #[test]
    fn a_count_that_goes_back_starts_afresh() {
        let mut s = Sequence::default();
        s.observe(100, true);
        assert!(s.observe(1, true).is_empty());
        assert_eq!(s.observe(3, true), 2..3);
    }
}
