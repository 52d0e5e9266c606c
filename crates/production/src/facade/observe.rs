//! Samples and time: resolving the attributes production uses, feeding their samples to
//! the machine state, counter and reason code of their asset, and moving time on.

use backplane_model::sample::EventKind;
use backplane_model::{AssetPath, ContextField, ContextPatch, Timestamp, Value};

use super::periods::roll;
use super::{Outcome, Production, Role, Watch};
use crate::counters::Counter;
use crate::downtime::AssignedBy;
use crate::states::{Category, raw_key, value_text};

/// Who the machine is, in `by` fields of what it decides itself.
const MACHINE: &str = "machine";

impl Production {
    /// The handle for `(asset, attribute)` if production uses it. Resolve every tag once
    /// (at plan time) and call [`observe_watched`](Self::observe_watched) for the
    /// watched ones only: everything else costs nothing.
    pub fn watch(&self, asset: &AssetPath, attribute: &str) -> Option<Watch> {
        self.cfg
            .watch_index
            .get(asset.as_str())?
            .iter()
            .find(|(a, _)| &**a == attribute)
            .map(|(_, w)| Watch(*w))
    }

    /// Every `(asset, attribute)` production uses.
    pub fn watched(&self) -> impl Iterator<Item = (&str, &str)> {
        self.cfg
            .watch_index
            .iter()
            .flat_map(|(asset, list)| list.iter().map(move |(a, _)| (&**asset, &**a)))
    }

    /// A normalized sample of `asset`'s `attribute` (good quality values only). One hash
    /// lookup, and nothing else for attributes production does not use.
    pub fn observe(
        &mut self,
        asset: &AssetPath,
        attribute: &str,
        value: &Value,
        time: Timestamp,
        out: &mut Outcome,
    ) {
        if let Some(w) = self.watch(asset, attribute) {
            self.observe_watched(w, value, time, out);
        }
    }

    /// Like [`observe`](Self::observe), for a handle from [`watch`](Self::watch).
    pub fn observe_watched(&mut self, watch: Watch, value: &Value, time: Timestamp, out: &mut Outcome) {
        let w = watch.0 as usize;
        let Some(count) = self.cfg.watches.get(w).map(Vec::len) else {
            return;
        };
        self.seen(time);
        for k in 0..count {
            let Some(&role) = self.cfg.watches.get(w).and_then(|roles| roles.get(k)) else {
                break;
            };
            match role {
                Role::State(i) => self.on_state(i, value, time, out),
                Role::Counter(i, c) => self.on_count(i, c, value, time, out),
                Role::ReasonCode(i) => self.on_reason_code(i, value, time, out),
                Role::Rule(r) => self.on_rule(r, value, time, out),
            }
        }
    }

    /// Moves time on: closes hours and shifts (publishing their OEE), sets the shift on
    /// the site when it changes. Call it every second or so, and once at shutdown.
    pub fn tick(&mut self, now: Timestamp, out: &mut Outcome) {
        self.seen(now);
        if self.cfg.has_shifts {
            let on = self.cfg.calendar.shift_at(now).map(|s| (s.name, s.start));
            if on != self.st.shift {
                let patch = match &on {
                    Some((name, _)) => ContextPatch::default().set(ContextField::Shift, name),
                    None => ContextPatch::default().clear(ContextField::Shift),
                };
                if let Some(site) = &self.cfg.site {
                    out.patch(site, patch);
                }
                self.st.shift = on;
            }
        }
        for i in 0..self.cfg.machines.len() {
            self.advance(i, now, out);
        }
    }

    fn on_state(&mut self, i: usize, value: &Value, time: Timestamp, out: &mut Outcome) {
        let Some(mc) = self.cfg.machines.get(i) else {
            return;
        };
        let Some(sm) = &mc.state else { return };
        let Some(state) = sm.state_of(value) else { return };
        let category = sm.category(state);
        let asset = mc.asset.clone();
        self.advance(i, time, out);
        let (cal, has_shifts) = (&self.cfg.calendar, self.cfg.has_shifts);
        let Some(mc) = self.cfg.machines.get(i) else {
            return;
        };
        let Some(m) = self.st.machines.get_mut(&asset) else {
            return;
        };
        if m.tracker.current().is_some_and(|c| &*c.state == state) {
            return;
        }
        let time = m.cursor.map_or(time, |c| c.max(time));
        let code = value_text(value);
        let Some(change) = m.tracker.enter(state, code.as_deref(), time) else {
            return;
        };
        out.event(&asset, time, EventKind::StateChanged(change));
        out.patch(
            &asset,
            ContextPatch::default().set(ContextField::MachineState, state),
        );
        if m.cursor.is_none() {
            m.cursor = Some(time);
            roll(cal, has_shifts, mc, m, time, out);
        }
        let planned = category == Category::Planned;
        let mut open = false;
        match (m.downtime, category) {
            (Some(id), Category::Running) => {
                m.downtime = None;
                if let Some(d) = self.st.downtimes.close(id, time) {
                    out.event(&asset, time, EventKind::Downtime(d));
                }
            }
            (Some(id), _) => {
                let undecided = self
                    .st
                    .downtimes
                    .get(id)
                    .is_some_and(|r| r.assigned_by == AssignedBy::Nobody && r.state_planned != planned);
                if undecided {
                    if let Some(d) = self.st.downtimes.close(id, time) {
                        out.event(&asset, time, EventKind::Downtime(d));
                    }
                    open = true;
                }
            }
            (None, Category::Running) => {}
            (None, _) => open = true,
        }
        if open {
            let d = self.st.downtimes.open(&asset, state, planned, time);
            m.downtime = Some(d.id);
            let id = d.id;
            out.event(&asset, time, EventKind::Downtime(d));
            if let Some(reason) = m.machine_reason.clone() {
                self.apply_reason(id, &reason, Some(MACHINE), AssignedBy::Machine, time, out);
            }
        }
    }

    fn on_count(&mut self, i: usize, c: usize, value: &Value, time: Timestamp, out: &mut Outcome) {
        let Some(raw) = value.as_u64() else { return };
        self.advance(i, time, out);
        let (cal, has_shifts) = (&self.cfg.calendar, self.cfg.has_shifts);
        let Some(mc) = self.cfg.machines.get(i) else {
            return;
        };
        let Some(counter) = mc.counters.get(c) else { return };
        let Some(m) = self.st.machines.get_mut(&mc.asset) else {
            return;
        };
        if !m.active() {
            roll(cal, has_shifts, mc, m, time, out);
        }
        let inc = match m.counters.get_mut(&*counter.attribute) {
            Some(baseline) => baseline.observe(raw, counter.rollover),
            None => {
                let mut baseline = Counter::default();
                let inc = baseline.observe(raw, counter.rollover);
                m.counters.insert(counter.attribute.to_string(), baseline);
                inc
            }
        };
        let Some(inc) = inc else { return };
        let rate = m.ideal_rate_per_min;
        if let Some(scheme) = mc.scheme {
            for acc in m.open_mut() {
                acc.add_count(counter.role, inc.delta, scheme, rate);
            }
        }
        let event = backplane_model::sample::Counts {
            attribute: counter.attribute.clone(),
            role: counter.role,
            delta: inc.delta,
            change: inc.change,
            raw,
            work_order: m.work_order.clone(),
            shift: m.shift.as_ref().and_then(|a| a.shift.clone()),
            work_order_count: m.order().map(|a| a.count(counter.role)),
            shift_count: m.shift.as_ref().map(|a| a.count(counter.role)),
        };
        let time = m.cursor.map_or(time, |c| c.max(time));
        out.event(&mc.asset, time, EventKind::Counts(event));
    }

    fn on_reason_code(&mut self, i: usize, value: &Value, time: Timestamp, out: &mut Outcome) {
        let Some(mc) = self.cfg.machines.get(i) else {
            return;
        };
        let reason = raw_key(value).and_then(|k| mc.reason_codes.get(&k)).cloned();
        let Some(m) = self.st.machines.get_mut(&mc.asset) else {
            return;
        };
        m.machine_reason = reason.clone();
        if let (Some(reason), Some(id)) = (reason, m.downtime) {
            self.apply_reason(id, &reason, Some(MACHINE), AssignedBy::Machine, time, out);
        }
    }
}
