//! Work orders: creation and the status life cycle, with the context, ideal rate and OEE
//! period that a running order gives the assets below it.

use backplane_model::sample::{EventKind, WorkOrderStatus};
use backplane_model::{ContextField, ContextPatch, Timestamp};

use super::periods::roll;
use super::{Outcome, Production, check_id, check_quantity, push_bounded};
use crate::error::CommandError;
use crate::orders::{NewWorkOrder, StatusChange, WorkOrder, check_transition};

/// Closed work order periods kept per asset for queries.
const RECENT_ORDERS: usize = 20;

impl Production {
    /// Creates a work order (status `created`).
    pub fn create_work_order(
        &mut self,
        new: NewWorkOrder,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<WorkOrder, CommandError> {
        let id = check_id("id", &new.id)?;
        let product = check_id("product", &new.product)?;
        let asset = self.resolve_asset("asset", &new.asset)?;
        let planned_quantity = check_quantity("planned_quantity", new.planned_quantity)?;
        if let Some(rate) = new.ideal_rate_per_min
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(CommandError::invalid(
                "ideal_rate_per_min",
                format!("`ideal_rate_per_min` must be above 0, found {rate}"),
            ));
        }
        if let (Some(start), Some(end)) = (new.scheduled_start, new.scheduled_end)
            && end < start
        {
            return Err(CommandError::invalid(
                "scheduled_end",
                format!("`scheduled_end` ({end}) is before `scheduled_start` ({start})"),
            ));
        }
        if let Some(by) = by {
            check_id("by", by)?;
        }
        if self.st.work_orders.contains_key(&id) {
            return Err(CommandError::conflict(
                "id",
                format!("work order `{id}` exists already"),
            ));
        }
        self.seen(time);
        let order = WorkOrder {
            id: id.clone(),
            product,
            asset: asset.clone(),
            planned_quantity,
            ideal_rate_per_min: new.ideal_rate_per_min,
            scheduled_start: new.scheduled_start,
            scheduled_end: new.scheduled_end,
            actual_start: None,
            actual_end: None,
            status: WorkOrderStatus::Created,
            created: time,
            history: vec![StatusChange {
                status: WorkOrderStatus::Created,
                time,
                by: by.map(Into::into),
            }],
        };
        out.event(&asset, time, EventKind::WorkOrder(order.change(None, by)));
        self.st.work_orders.insert(id, order.clone());
        Ok(order)
    }

    /// Moves a work order to `status` (see [`check_transition`] for what is allowed).
    /// Starting it sets `work_order` and `product` in its asset's context, and its counts
    /// and time from then on are its own; holding, completing or cancelling it clears
    /// them. Completing or cancelling publishes its OEE per tracked asset.
    pub fn set_work_order_status(
        &mut self,
        id: &str,
        status: WorkOrderStatus,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<WorkOrder, CommandError> {
        let Some(order) = self.st.work_orders.get(id) else {
            return Err(CommandError::not_found("id", format!("no work order `{id}`")));
        };
        check_transition(id, order.status, status)
            .map_err(|e| CommandError::invalid("status", e.to_string()))?;
        if let Some(by) = by {
            check_id("by", by)?;
        }
        let asset = order.asset.clone();
        if status == WorkOrderStatus::Running
            && let Some(other) = self.st.running.get(&asset)
            && &**other != id
        {
            return Err(CommandError::conflict(
                "id",
                format!("work order `{other}` is already running on `{asset}`; hold or complete it first"),
            ));
        }
        self.seen(time);
        let affected: Vec<usize> = self
            .cfg
            .machines
            .iter()
            .enumerate()
            .filter(|(_, m)| m.asset.starts_with(&asset))
            .map(|(i, _)| i)
            .collect();
        // What happened until now belongs to what ran until now.
        for &i in &affected {
            self.advance(i, time, out);
        }
        let Some(order) = self.st.work_orders.get_mut(id) else {
            return Err(CommandError::not_found("id", format!("no work order `{id}`")));
        };
        let previous = order.status;
        order.status = status;
        order.history.push(StatusChange {
            status,
            time,
            by: by.map(Into::into),
        });
        if status == WorkOrderStatus::Running && order.actual_start.is_none() {
            order.actual_start = Some(time);
        }
        if matches!(status, WorkOrderStatus::Completed | WorkOrderStatus::Cancelled) {
            order.actual_end = Some(time);
        }
        let order = order.clone();
        if status == WorkOrderStatus::Running {
            self.st.running.insert(asset.clone(), order.id.clone());
            out.patch(
                &asset,
                ContextPatch::default()
                    .set(ContextField::WorkOrder, &order.id)
                    .set(ContextField::Product, &order.product),
            );
        } else if previous == WorkOrderStatus::Running {
            if self.st.running.get(&asset) == Some(&order.id) {
                self.st.running.remove(&asset);
            }
            out.patch(
                &asset,
                ContextPatch::default()
                    .clear(ContextField::WorkOrder)
                    .clear(ContextField::Product),
            );
        }
        out.event(
            &asset,
            time,
            EventKind::WorkOrder(order.change(Some(previous), by)),
        );
        let ended = matches!(status, WorkOrderStatus::Completed | WorkOrderStatus::Cancelled);
        for &i in &affected {
            self.refresh_order(i);
            let (cal, has_shifts) = (&self.cfg.calendar, self.cfg.has_shifts);
            let Some(mc) = self.cfg.machines.get(i) else {
                continue;
            };
            let Some(m) = self.st.machines.get_mut(&mc.asset) else {
                continue;
            };
            if ended && let Some(pos) = m.orders.iter().position(|a| a.work_order.as_deref() == Some(id)) {
                let mut acc = m.orders.remove(pos);
                acc.end = Some(time.max(acc.start));
                let figures = acc.figures(mc.scheme, time.max(acc.start));
                out.event(&mc.asset, time, EventKind::Oee(figures));
                push_bounded(&mut m.recent_orders, acc, RECENT_ORDERS);
            }
            if m.active() {
                let at = m.cursor.map_or(time, |c| c.max(time));
                roll(cal, has_shifts, mc, m, at, out);
            }
        }
        Ok(order)
    }

    pub fn release_work_order(
        &mut self,
        id: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<WorkOrder, CommandError> {
        self.set_work_order_status(id, WorkOrderStatus::Released, by, time, out)
    }

    pub fn start_work_order(
        &mut self,
        id: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<WorkOrder, CommandError> {
        self.set_work_order_status(id, WorkOrderStatus::Running, by, time, out)
    }

    pub fn hold_work_order(
        &mut self,
        id: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<WorkOrder, CommandError> {
        self.set_work_order_status(id, WorkOrderStatus::Held, by, time, out)
    }

    pub fn complete_work_order(
        &mut self,
        id: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<WorkOrder, CommandError> {
        self.set_work_order_status(id, WorkOrderStatus::Completed, by, time, out)
    }

    pub fn cancel_work_order(
        &mut self,
        id: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<WorkOrder, CommandError> {
        self.set_work_order_status(id, WorkOrderStatus::Cancelled, by, time, out)
    }

    /// Recomputes which running work order applies to machine `i` (the one on its asset
    /// or the nearest above) and so its ideal rate.
    pub(super) fn refresh_order(&mut self, i: usize) {
        let Some(mc) = self.cfg.machines.get(i) else {
            return;
        };
        let order = self
            .st
            .running
            .iter()
            .filter(|(asset, _)| mc.asset.starts_with(asset))
            .max_by_key(|(asset, _)| asset.depth())
            .and_then(|(_, id)| self.st.work_orders.get(id));
        let (id, rate) = match order {
            Some(o) => (Some(o.id.clone()), o.ideal_rate_per_min.or(mc.ideal_rate_per_min)),
            None => (None, mc.ideal_rate_per_min),
        };
        if let Some(m) = self.st.machines.get_mut(&mc.asset) {
            m.work_order = id;
            m.ideal_rate_per_min = rate;
        }
    }
}
