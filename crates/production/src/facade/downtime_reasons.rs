//! Reasons assigned to downtimes, by the machine or by people, also after the fact; a
//! change between planned and unplanned revises the OEE periods the downtime touched.

use backplane_model::Timestamp;
use backplane_model::sample::EventKind;

use super::{Outcome, Production, check_id};
use crate::downtime::{AssignedBy, DowntimeRecord};
use crate::error::CommandError;

impl Production {
    /// Assigns (or corrects) the reason of downtime `downtime`, open or closed. A reason
    /// marked planned makes the whole downtime planned, and the other way round: open
    /// periods change from now on, and closed recent periods it touched are published
    /// again as `oee` events with `revised: true`.
    pub fn assign_reason(
        &mut self,
        downtime: u64,
        reason: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<DowntimeRecord, CommandError> {
        if self.st.downtimes.get(downtime).is_none() {
            return Err(CommandError::not_found(
                "id",
                format!("no downtime {downtime} (it never existed, or it is too old to keep)"),
            ));
        }
        if self.cfg.reasons.get(reason).is_none() {
            let hint = match self.cfg.reasons.closest(reason) {
                Some(c) => format!("; did you mean `{c}`?"),
                None if self.cfg.reasons.all().is_empty() => {
                    "; no reasons are configured ([downtime_reasons])".to_owned()
                }
                None => format!(
                    "; reasons are {}",
                    self.cfg
                        .reasons
                        .all()
                        .iter()
                        .map(|r| r.code.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(CommandError::invalid(
                "reason",
                format!("unknown reason `{reason}`{hint}"),
            ));
        }
        if let Some(by) = by {
            check_id("by", by)?;
        }
        self.seen(time);
        self.apply_reason(downtime, reason, by, AssignedBy::Command, time, out);
        self.st
            .downtimes
            .get(downtime)
            .cloned()
            .ok_or_else(|| CommandError::not_found("id", format!("no downtime {downtime}")))
    }

    pub(super) fn apply_reason(
        &mut self,
        id: u64,
        code: &str,
        by: Option<&str>,
        source: AssignedBy,
        time: Timestamp,
        out: &mut Outcome,
    ) {
        let Some(reason) = self.cfg.reasons.get(code).cloned() else {
            return;
        };
        let Some(record) = self.st.downtimes.get(id) else {
            return;
        };
        let asset = record.asset.clone();
        let was_planned = record.downtime.planned;
        let Some(assignment) = self.st.downtimes.assign(id, &reason, by, source) else {
            return;
        };
        let planned = assignment.planned;
        out.event(&asset, time, EventKind::DowntimeReasonAssigned(assignment));
        if planned == was_planned {
            return;
        }
        let Some(&i) = self.cfg.machine_index.get(&asset) else {
            return;
        };
        let scheme = self.cfg.machines.get(i).and_then(|m| m.scheme);
        let Some(m) = self.st.machines.get_mut(&asset) else {
            return;
        };
        for acc in m
            .hour
            .iter_mut()
            .chain(m.shift.iter_mut())
            .chain(m.orders.iter_mut())
        {
            acc.reclassify(id, planned);
        }
        for acc in m
            .recent_hours
            .iter_mut()
            .chain(m.recent_shifts.iter_mut())
            .chain(m.recent_orders.iter_mut())
        {
            if acc.reclassify(id, planned) {
                let mut figures = acc.figures(scheme, acc.end.unwrap_or(time));
                figures.revised = true;
                out.event(&asset, time, EventKind::Oee(figures));
            }
        }
    }
}
