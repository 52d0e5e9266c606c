//! Downtime records: opened when an asset stops running, closed when it runs again,
//! with a reason from the reason tree assigned by the machine (reason codes), an operator
//! or an MES, at any time, also after the downtime closed.
//!
//! One record covers one contiguous stop. A change between two stopped states (`held` to
//! `aborted`) continues the record, unless it changes whether the stop is planned and no
//! reason decides that: then one record closes and the next opens.

use std::collections::BTreeMap;
use std::sync::Arc;

use backplane_config::production::ReasonSpec;
use backplane_model::sample::{Downtime, ReasonAssignment};
use backplane_model::{AssetPath, Timestamp};
use serde::{Deserialize, Serialize};

/// How many closed records are kept (oldest dropped first); open ones are always kept.
pub const KEPT_CLOSED: usize = 20_000;

/// Who assigned the reason of a downtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignedBy {
    /// Nobody yet.
    Nobody,
    /// The machine, through `reason_codes`; a person's assignment replaces it.
    Machine,
    /// A person or system through a command; the machine no longer changes it.
    Command,
}

/// One downtime of one asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DowntimeRecord {
    pub asset: AssetPath,
    #[serde(flatten)]
    pub downtime: Downtime,
    /// Whether the state it opened in is a planned stop (decides `planned` until a reason
    /// is assigned).
    pub state_planned: bool,
    pub assigned_by: AssignedBy,
}

/// Every open and recent downtime, by id (ids grow with time).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DowntimeLog {
    next_id: u64,
    records: BTreeMap<u64, DowntimeRecord>,
}

fn duration_ms(start: Timestamp, end: Timestamp) -> u64 {
    u64::try_from(end.unix_nanos().saturating_sub(start.unix_nanos()) / 1_000_000).unwrap_or(0)
}

impl DowntimeLog {
    pub fn get(&self, id: u64) -> Option<&DowntimeRecord> {
        self.records.get(&id)
    }

    /// Whether downtime `id` counts as planned now (unknown ids do not).
    pub fn planned(&self, id: u64) -> bool {
        self.records.get(&id).is_some_and(|r| r.downtime.planned)
    }

    /// Opens a downtime of `asset` in `state` at `start`.
    pub fn open(&mut self, asset: &AssetPath, state: &str, planned: bool, start: Timestamp) -> Downtime {
        self.next_id = self.next_id.saturating_add(1);
        let downtime = Downtime {
            id: self.next_id,
            start,
            end: None,
            duration_ms: 0,
            state: state.into(),
            reason: None,
            reason_description: None,
            planned,
            by: None,
        };
        self.records.insert(
            self.next_id,
            DowntimeRecord {
                asset: asset.clone(),
                downtime: downtime.clone(),
                state_planned: planned,
                assigned_by: AssignedBy::Nobody,
            },
        );
        downtime
    }

    /// Closes downtime `id` at `end`; `None` if it is not open.
    pub fn close(&mut self, id: u64, end: Timestamp) -> Option<Downtime> {
        let record = self.records.get_mut(&id)?;
        if record.downtime.end.is_some() {
            return None;
        }
        let end = end.max(record.downtime.start);
        record.downtime.end = Some(end);
        record.downtime.duration_ms = duration_ms(record.downtime.start, end);
        let closed = record.downtime.clone();
        self.evict();
        Some(closed)
    }

    fn evict(&mut self) {
        let closed = self.records.values().filter(|r| r.downtime.end.is_some()).count();
        let mut excess = closed.saturating_sub(KEPT_CLOSED);
        if excess == 0 {
            return;
        }
        self.records.retain(|_, r| {
            if excess > 0 && r.downtime.end.is_some() {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Assigns `reason` to downtime `id`. Returns the assignment, or `None` when nothing
    /// changes (the same reason again, or the machine proposing a reason after a person
    /// decided). The caller has checked that `id` exists.
    pub fn assign(
        &mut self,
        id: u64,
        reason: &ReasonSpec,
        by: Option<&str>,
        source: AssignedBy,
    ) -> Option<ReasonAssignment> {
        let record = self.records.get_mut(&id)?;
        if source == AssignedBy::Machine && record.assigned_by == AssignedBy::Command {
            return None;
        }
        let previous = record.downtime.reason.clone();
        if previous.as_deref() == Some(reason.code.as_str()) && record.assigned_by == source {
            return None;
        }
        let by: Option<Arc<str>> = by.map(Into::into);
        record.downtime.reason = Some(reason.code.as_str().into());
        record.downtime.reason_description = reason.description.as_deref().map(Into::into);
        record.downtime.planned = reason.planned;
        record.downtime.by = by.clone();
        record.assigned_by = source;
        Some(ReasonAssignment {
            id,
            reason: reason.code.as_str().into(),
            previous,
            planned: reason.planned,
            by,
        })
    }

    /// Downtimes of `asset` and below (every asset for `None`) that overlap `[from, to)`;
    /// open ones overlap everything after their start.
    pub fn query(
        &self,
        asset: Option<&AssetPath>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Vec<&DowntimeRecord> {
        self.records
            .values()
            .filter(|r| asset.is_none_or(|a| r.asset.starts_with(a)))
            .filter(|r| to.is_none_or(|to| r.downtime.start < to))
            .filter(|r| from.is_none_or(|from| r.downtime.end.is_none_or(|end| end > from)))
            .collect()
    }

    /// Drops records of assets no longer tracked (after a configuration change).
    pub(crate) fn retain_assets(&mut self, keep: impl Fn(&AssetPath) -> bool) {
        self.records.retain(|_, r| keep(&r.asset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str, planned: bool) -> ReasonSpec {
        ReasonSpec {
            code: code.into(),
            description: Some(code.to_uppercase()),
            planned,
        }
    }

    #[test]
    fn a_person_overrides_the_machine_but_not_the_other_way_round() {
        let asset = AssetPath::parse("acme/plant/filler").unwrap();
        let mut log = DowntimeLog::default();
        let t = Timestamp::from_unix_millis(0);
        let id = log.open(&asset, "aborted", false, t).id;
        assert!(
            log.assign(id, &reason("jam", false), Some("machine"), AssignedBy::Machine)
                .is_some()
        );
        let a = log
            .assign(id, &reason("changeover", true), Some("anna"), AssignedBy::Command)
            .unwrap();
        assert_eq!(a.previous.as_deref(), Some("jam"));
        assert!(log.planned(id));
        assert!(
            log.assign(id, &reason("jam", false), Some("machine"), AssignedBy::Machine)
                .is_none()
        );
        assert!(log.planned(id));
        let closed = log.close(id, Timestamp::from_unix_millis(90_000)).unwrap();
        assert_eq!(closed.duration_ms, 90_000);
        assert!(log.close(id, Timestamp::from_unix_millis(95_000)).is_none());
    }

    #[test]
    fn queries_select_by_subtree_and_overlap() {
        let a = AssetPath::parse("acme/plant/line-1/filler").unwrap();
        let b = AssetPath::parse("acme/plant/line-10/filler").unwrap();
        let mut log = DowntimeLog::default();
        let ms = Timestamp::from_unix_millis;
        let first = log.open(&a, "idle", false, ms(0)).id;
        log.close(first, ms(100));
        log.open(&a, "idle", false, ms(200));
        log.open(&b, "idle", false, ms(0));
        let line1 = AssetPath::parse("acme/plant/line-1").unwrap();
        assert_eq!(log.query(Some(&line1), None, None).len(), 2);
        assert_eq!(log.query(Some(&line1), Some(ms(150)), None).len(), 1);
        assert_eq!(log.query(None, Some(ms(50)), Some(ms(150))).len(), 2);
    }
}
