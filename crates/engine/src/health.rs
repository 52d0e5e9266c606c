//! Health of every source and sink, as shown by `GET /api/v1/health`.

use backplane_model::Timestamp;
use parking_lot::RwLock;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    Starting,
    Running,
    /// Running, but not doing its job fully, e.g. a sink reconnecting to its broker while it
    /// keeps its state; `last_error` says why.
    Degraded,
    /// Failed; the supervisor restarts it after a backoff.
    Restarting,
    /// Stopped after a failure that retrying cannot fix (a configuration or permanent
    /// error); `last_error` and `error_kind` say why. Fix the cause and restart.
    Failed,
    /// `enabled = false` in the configuration.
    Disabled,
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentHealth {
    /// `source` or `sink`.
    pub component: &'static str,
    pub name: String,
    pub kind: String,
    pub state: ComponentState,
    /// When the component entered `state`.
    pub since: Timestamp,
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When `last_error` happened (it stays after the component recovers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<Timestamp>,
    /// The kind of the last failure: `config`, `connect`, `io`, `protocol`, `permanent`
    /// or `panic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<&'static str>,
    /// Sources: when the gateway last received readings from it (a source that runs but
    /// reads nothing shows here first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reading_at: Option<Timestamp>,
    /// When the supervisor will retry, while restarting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
}

/// The health table; one slot per component, sources first.
/// The health table. A component reports to its slot, which stays its own for as long as it
/// runs, across configuration reloads that keep it ([`Health::relayout`]).
#[derive(Debug)]
pub struct Health {
    components: RwLock<Table>,
}

#[derive(Debug)]
struct Table {
    rows: Vec<ComponentHealth>,
    /// The slots shown, in the configuration's order (sources first).
    shown: Vec<usize>,
}

impl Health {
    pub fn new(components: Vec<ComponentHealth>) -> Health {
        let shown = (0..components.len()).collect();
        Health {
            components: RwLock::new(Table {
                rows: components,
                shown,
            }),
        }
    }

    /// Every shown component, in the configuration's order.
    pub fn snapshot(&self) -> Vec<ComponentHealth> {
        let table = self.components.read();
        table.shown.iter().map(|&slot| table.rows[slot].clone()).collect()
    }

    /// The table for the next configuration, in its order: a row given with a slot (a
    /// component that keeps running) keeps that slot and what it says; every other row gets
    /// a slot no longer shown (whose component has stopped). Returns each row's slot.
    pub(crate) fn relayout(&self, next: Vec<(ComponentHealth, Option<usize>)>) -> Vec<usize> {
        let mut table = self.components.write();
        let kept: std::collections::HashSet<usize> = next.iter().filter_map(|(_, slot)| *slot).collect();
        let mut free = (0..table.rows.len()).filter(|slot| !kept.contains(slot));
        let mut shown = Vec::with_capacity(next.len());
        for (row, slot) in next {
            let slot = match slot {
                Some(slot) => slot,
                None => match free.next() {
                    Some(slot) => {
                        table.rows[slot] = row;
                        slot
                    }
                    None => {
                        table.rows.push(row);
                        table.rows.len() - 1
                    }
                },
            };
            shown.push(slot);
        }
        // Rows beyond the last one used are not needed any more (a smaller configuration).
        let used = shown.iter().max().map_or(0, |&m| m + 1);
        table.rows.truncate(used);
        table.shown = shown.clone();
        shown
    }

    pub(crate) fn set_state(&self, slot: usize, state: ComponentState) {
        if let Some(c) = self.components.write().rows.get_mut(slot) {
            if c.state != state {
                c.state = state;
                c.since = Timestamp::now();
            }
            if state == ComponentState::Running {
                c.retry_at = None;
            }
        }
    }

    /// Marks a running component degraded (with the reason) or running again (`None`).
    pub(crate) fn set_degraded(&self, slot: usize, reason: Option<String>) {
        if let Some(c) = self.components.write().rows.get_mut(slot) {
            let next = match (&reason, c.state) {
                (Some(_), ComponentState::Running | ComponentState::Degraded) => ComponentState::Degraded,
                (None, ComponentState::Degraded) => ComponentState::Running,
                (_, other) => other,
            };
            if next != c.state {
                c.state = next;
                c.since = Timestamp::now();
            }
            if reason.is_some() {
                if reason != c.last_error || c.last_error_at.is_none() {
                    c.last_error_at = Some(Timestamp::now());
                }
                c.last_error = reason;
            }
        }
    }

    /// A failure; `retry_at` is `None` when it will not be retried (the component stays
    /// `failed`).
    pub(crate) fn record_failure(
        &self,
        slot: usize,
        error: String,
        kind: &'static str,
        retry_at: Option<Timestamp>,
    ) {
        if let Some(c) = self.components.write().rows.get_mut(slot) {
            c.state = if retry_at.is_some() {
                ComponentState::Restarting
            } else {
                ComponentState::Failed
            };
            c.since = Timestamp::now();
            c.restarts += u64::from(retry_at.is_some());
            c.last_error = Some(error);
            c.last_error_at = Some(Timestamp::now());
            c.error_kind = Some(kind);
            c.retry_at = retry_at;
        }
    }
}
