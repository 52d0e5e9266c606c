//! Read-only views of the production state, for the HTTP API and tests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use backplane_config::production::{FormSpec, ReasonSpec};
use backplane_model::sample::{Oee, OeePeriod};
use backplane_model::{AssetPath, Timestamp};
use serde::Serialize;

use super::{EntryRecord, Production};
use crate::downtime::DowntimeRecord;
use crate::oee::Accumulator;
use crate::orders::{Lot, SignIn, WorkOrder};
use crate::states::{Category, CurrentState};

/// OEE of one asset for one kind of period: the periods still open and the recent closed
/// ones (newest last).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OeeReport {
    pub asset: AssetPath,
    pub period: OeePeriod,
    /// The open period (for work orders: every order with an open period on the asset).
    pub current: Vec<Oee>,
    pub recent: Vec<Oee>,
}

/// The state of a tracked asset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateView {
    pub asset: AssetPath,
    /// `None` until the first state is read.
    pub state: Option<CurrentState>,
    pub category: Option<Category>,
    /// The open downtime.
    pub downtime: Option<u64>,
    pub work_order: Option<Arc<str>>,
    pub ideal_rate_per_min: Option<f64>,
    /// Time accounted so far (up to the last sample or tick).
    pub accounted_to: Option<Timestamp>,
    /// Nanoseconds in each state since tracking began, up to `accounted_to`.
    pub durations_ns: BTreeMap<String, i64>,
}

impl Production {
    /// Every work order, by id.
    pub fn work_orders(&self) -> impl Iterator<Item = &WorkOrder> {
        self.st.work_orders.values()
    }

    pub fn work_order(&self, id: &str) -> Option<&WorkOrder> {
        self.st.work_orders.get(id)
    }

    /// OEE of work order `id` on each tracked asset it ran on (open or recently closed).
    pub fn work_order_oee(&self, id: &str) -> Vec<(AssetPath, Oee)> {
        let mut out = Vec::new();
        for mc in &self.cfg.machines {
            let Some(m) = self.st.machines.get(&mc.asset) else {
                continue;
            };
            let matches = |a: &&Accumulator| a.work_order.as_deref() == Some(id);
            if let Some(acc) = m.orders.iter().find(matches) {
                let end = m.cursor.or(self.st.time).unwrap_or(acc.start);
                out.push((mc.asset.clone(), acc.figures(mc.scheme, end)));
            } else if let Some(acc) = m.recent_orders.iter().rev().find(matches) {
                out.push((
                    mc.asset.clone(),
                    acc.figures(mc.scheme, acc.end.unwrap_or(acc.start)),
                ));
            }
        }
        out
    }

    /// Every lot, by id.
    pub fn lots(&self) -> impl Iterator<Item = &Lot> {
        self.st.lots.values()
    }

    pub fn lot(&self, id: &str) -> Option<&Lot> {
        self.st.lots.get(id)
    }

    /// Downtimes of `asset` and below (all for `None`) overlapping `[from, to)`.
    pub fn downtimes(
        &self,
        asset: Option<&AssetPath>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Vec<&DowntimeRecord> {
        self.st.downtimes.query(asset, from, to)
    }

    pub fn downtime(&self, id: u64) -> Option<&DowntimeRecord> {
        self.st.downtimes.get(id)
    }

    /// OEE of a tracked asset for one kind of period; `None` for an asset not tracked.
    pub fn oee(&self, asset: &AssetPath, period: OeePeriod) -> Option<OeeReport> {
        let &i = self.cfg.machine_index.get(asset)?;
        let mc = self.cfg.machines.get(i)?;
        let m = self.st.machines.get(asset)?;
        let now = m.cursor.or(self.st.time);
        let current_end = |a: &Accumulator| now.unwrap_or(a.start).max(a.start);
        let (current, recent): (Vec<&Accumulator>, &VecDeque<Accumulator>) = match period {
            OeePeriod::Hour => (m.hour.iter().collect(), &m.recent_hours),
            OeePeriod::Shift => (m.shift.iter().collect(), &m.recent_shifts),
            OeePeriod::WorkOrder => (m.orders.iter().collect(), &m.recent_orders),
        };
        Some(OeeReport {
            asset: asset.clone(),
            period,
            current: current
                .into_iter()
                .map(|a| a.figures(mc.scheme, current_end(a)))
                .collect(),
            recent: recent
                .iter()
                .map(|a| a.figures(mc.scheme, a.end.unwrap_or(a.start)))
                .collect(),
        })
    }

    /// The forms operators can fill in, for a UI to render.
    pub fn forms(&self) -> &[FormSpec] {
        &self.cfg.forms
    }

    pub fn form(&self, name: &str) -> Option<&FormSpec> {
        self.cfg.forms.iter().find(|f| f.name == name)
    }

    /// The recent operator entries (oldest first).
    pub fn entries(&self) -> impl Iterator<Item = &EntryRecord> {
        self.st.entries.iter()
    }

    /// The downtime reason tree, parents before children.
    pub fn reasons(&self) -> &[ReasonSpec] {
        self.cfg.reasons.all()
    }

    /// Every tracked asset.
    pub fn machines(&self) -> impl Iterator<Item = &AssetPath> {
        self.cfg.machines.iter().map(|m| &m.asset)
    }

    /// The state of a tracked asset; `None` if it is not tracked.
    pub fn state(&self, asset: &AssetPath) -> Option<StateView> {
        let &i = self.cfg.machine_index.get(asset)?;
        let mc = self.cfg.machines.get(i)?;
        let m = self.st.machines.get(asset)?;
        let current = m.tracker.current().cloned();
        Some(StateView {
            asset: asset.clone(),
            category: current
                .as_ref()
                .and_then(|c| mc.state.as_ref().map(|s| s.category(&c.state))),
            state: current,
            downtime: m.downtime,
            work_order: m.work_order.clone(),
            ideal_rate_per_min: m.ideal_rate_per_min,
            accounted_to: m.cursor,
            durations_ns: m.durations.clone(),
        })
    }

    /// Operators signed in now.
    pub fn operators(&self) -> &[SignIn] {
        &self.st.operators
    }

    /// The shift on at the last tick.
    pub fn shift(&self) -> Option<&str> {
        self.st.shift.as_ref().map(|(name, _)| &**name)
    }
}
