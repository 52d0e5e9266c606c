//! Time accounted into the OEE periods of each tracked asset (hour, shift, work order),
//! and the closing of periods that ended.

use backplane_model::Timestamp;
use backplane_model::sample::{EventKind, OeePeriod};

use super::{Machine, MachineCfg, Outcome, Production, push_bounded};
use crate::calendar::{Calendar, DAY_NS, HOUR_NS};
use crate::oee::{Accumulator, TimeKind};
use crate::states::Category;

/// Closed periods kept per asset for queries: two days of hours, a week of three shifts.
const RECENT_HOURS: usize = 48;
const RECENT_SHIFTS: usize = 21;
/// The longest stretch of time accounted at once; anything before is not observed.
const MAX_CATCH_UP_NS: i64 = 7 * DAY_NS;

impl Production {
    /// Accounts the time of machine `i` up to `to`, closing periods on the way.
    pub(super) fn advance(&mut self, i: usize, to: Timestamp, out: &mut Outcome) {
        let Some(mc) = self.cfg.machines.get(i) else {
            return;
        };
        let Some(m) = self.st.machines.get_mut(&mc.asset) else {
            return;
        };
        if !m.active() {
            return;
        }
        let cal = &self.cfg.calendar;
        let has_shifts = self.cfg.has_shifts;
        let Some(mut cursor) = m.cursor else {
            roll(cal, has_shifts, mc, m, to, out);
            return;
        };
        let current = m.tracker.current().map(|c| {
            (
                c.state.clone(),
                mc.state
                    .as_ref()
                    .map_or(Category::Unplanned, |s| s.category(&c.state)),
            )
        });
        let Some((state, category)) = current else { return };
        if to.unix_nanos().saturating_sub(cursor.unix_nanos()) > MAX_CATCH_UP_NS {
            // The gateway was off for long, or a clock jumped: only the last week counts.
            cursor = to.add_nanos(-MAX_CATCH_UP_NS);
        }
        while cursor < to {
            roll(cal, has_shifts, mc, m, cursor, out);
            // The next boundary is always later; the guard keeps the loop finite even at
            // the ends of the timestamp range.
            let end = Some(cal.next_boundary(cursor).min(to))
                .filter(|end| *end > cursor)
                .unwrap_or(to);
            let kind = match category {
                Category::Running => TimeKind::Run,
                _ if cal.in_planned_stop(cursor) => TimeKind::CalendarPlanned,
                _ => {
                    let id = m.downtime.unwrap_or(0);
                    TimeKind::Downtime {
                        id,
                        planned: self.st.downtimes.planned(id),
                    }
                }
            };
            let ns = end.unix_nanos().saturating_sub(cursor.unix_nanos());
            for acc in m.open_mut() {
                acc.add_time(kind, ns);
            }
            match m.durations.get_mut(&*state) {
                Some(total) => *total = total.saturating_add(ns),
                None => {
                    m.durations.insert(state.to_string(), ns);
                }
            }
            cursor = end;
        }
        m.cursor = Some(cursor);
        roll(cal, has_shifts, mc, m, cursor, out);
    }
}

/// Closes the periods of machine `m` that ended by `t` (publishing their OEE) and opens
/// the ones that apply at `t`.
pub(super) fn roll(
    cal: &Calendar,
    has_shifts: bool,
    mc: &MachineCfg,
    m: &mut Machine,
    t: Timestamp,
    out: &mut Outcome,
) {
    if let Some(end) = m.hour.as_ref().and_then(|a| a.end)
        && end <= t
        && let Some(acc) = m.hour.take()
    {
        out.event(&mc.asset, end, EventKind::Oee(acc.figures(mc.scheme, end)));
        push_bounded(&mut m.recent_hours, acc, RECENT_HOURS);
    }
    if m.hour.is_none() {
        let start = cal.hour_start(t);
        m.hour = Some(Accumulator::new(
            OeePeriod::Hour,
            start,
            Some(start.add_nanos(HOUR_NS)),
        ));
    }
    let shift = if has_shifts { cal.shift_at(t) } else { None };
    if let Some(acc) = &m.shift
        && (acc.end.is_some_and(|e| e <= t) || shift.as_ref().map(|s| s.start) != Some(acc.start))
        && let Some(acc) = m.shift.take()
    {
        let end = acc.end.map_or(t, |e| e.min(t.max(acc.start)));
        out.event(&mc.asset, end, EventKind::Oee(acc.figures(mc.scheme, end)));
        push_bounded(&mut m.recent_shifts, acc, RECENT_SHIFTS);
    }
    if m.shift.is_none()
        && let Some(s) = &shift
    {
        let mut acc = Accumulator::new(OeePeriod::Shift, s.start, Some(s.end));
        acc.shift = Some(s.name.clone());
        m.shift = Some(acc);
    }
    let shift_name = shift.map(|s| s.name);
    if let Some(id) = &m.work_order
        && !m.orders.iter().any(|a| a.work_order.as_ref() == Some(id))
    {
        let mut acc = Accumulator::new(OeePeriod::WorkOrder, t, None);
        acc.work_order = Some(id.clone());
        m.orders.push(acc);
    }
    let work_order = m.work_order.clone();
    if let Some(acc) = &mut m.hour {
        acc.shift = shift_name.clone();
        acc.work_order = work_order.clone();
    }
    if let Some(acc) = &mut m.shift {
        acc.work_order = work_order;
    }
    if let Some(acc) = m.order_mut() {
        acc.shift = shift_name;
    }
}
