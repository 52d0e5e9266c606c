//! What the kinds of this crate share beyond the broker connection ([`crate::settings`]):
//! the configuration keys they read alike (`qos`, `max_inflight`), [`Groups`] (when a log
//! record may be acknowledged, for both sinks), and the pieces of the sinks' drivers that
//! wait on a link or a timer that may not exist.

use std::collections::HashMap;
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

/// Which log records a set of messages came from, and how many of those messages the
/// broker has yet to acknowledge. A record is acknowledged to the log once every message
/// made from it is confirmed; with batching, one flush covers many records. No I/O.
#[derive(Debug, Default)]
pub struct Groups {
    next: u64,
    /// The group receiving records and messages now, until it is closed.
    open: Option<u64>,
    groups: HashMap<u64, Group>,
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
        self.groups.insert(g, Group::default());
        self.open = Some(g);
        g
    }

    /// The open group, if any (without opening one).
    pub fn open(&self) -> Option<u64> {
        self.open
    }

    pub fn add_record(&mut self, group: u64, record: u64) {
        if let Some(g) = self.groups.get_mut(&group) {
            g.records.push(record);
        }
    }

    pub fn add_messages(&mut self, group: u64, n: usize) {
        if let Some(g) = self.groups.get_mut(&group) {
            g.outstanding += n;
        }
    }

    /// No more messages join the open group. Returns its records if all are confirmed.
    pub fn close(&mut self) -> Vec<u64> {
        let Some(g) = self.open.take() else {
            return Vec::new();
        };
        if let Some(group) = self.groups.get_mut(&g) {
            group.closed = true;
        }
        self.settle(g)
    }

    /// One message of `group` was confirmed (or refused for good). Returns the group's
    /// records once it is closed and complete.
    pub fn done(&mut self, group: u64) -> Vec<u64> {
        if let Some(g) = self.groups.get_mut(&group) {
            g.outstanding = g.outstanding.saturating_sub(1);
        }
        self.settle(group)
    }

    fn settle(&mut self, group: u64) -> Vec<u64> {
        match self.groups.get(&group) {
            Some(g) if g.closed && g.outstanding == 0 => {
                self.groups.remove(&group).map(|g| g.records).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// The connection was lost: nothing outstanding will be confirmed now.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
