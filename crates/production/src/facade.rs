//! [`Production`]: one object that owns every production concern of a gateway, fed by
//! samples, ticks and commands, answering queries, and reporting what happened as an
//! [`Outcome`] of events and context patches for the engine to route and apply.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use backplane_config::Plan;
use backplane_config::production::{ContextRuleSpec, FormSpec, RawKey, ReasonSpec};
use backplane_model::context::MAX_CONTEXT_VALUE_LEN;
use backplane_model::sample::{
    ConsumedLot, CountRole, EventKind, Genealogy, LotStatus, Oee, OeePeriod, OperatorEntry, WorkOrderStatus,
};
use backplane_model::{AssetPath, ContextField, ContextPatch, Timestamp, Unit, Value};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::calendar::{Calendar, DAY_NS, HOUR_NS};
use crate::counters::Counter;
use crate::downtime::{AssignedBy, DowntimeLog, DowntimeRecord};
use crate::error::{CommandError, SnapshotError};
use crate::forms::{self, FieldError};
use crate::genealogy::{Direction, Graph, Link, Trace};
use crate::oee::{Accumulator, Scheme, TimeKind};
use crate::orders::{
    Lot, NewLot, NewWorkOrder, SignIn, StatusChange, WorkOrder, check_lot_transition, check_transition,
};
use crate::reasons::ReasonTree;
use crate::states::{Category, CurrentState, StateMachine, StateTracker, raw_key, value_text};

/// Closed periods kept per asset for queries: two days of hours, a week of three shifts,
/// the last work orders.
const RECENT_HOURS: usize = 48;
const RECENT_SHIFTS: usize = 21;
const RECENT_ORDERS: usize = 20;
/// Operator entries kept for queries (all of them are events, so history has the rest).
const RECENT_ENTRIES: usize = 1000;
/// The longest stretch of time accounted at once; anything before is not observed.
const MAX_CATCH_UP_NS: i64 = 7 * DAY_NS;
/// The snapshot format this build writes and reads.
const SNAPSHOT_VERSION: u32 = 1;

/// Who the machine is, in `by` fields of what it decides itself.
const MACHINE: &str = "machine";
/// `by` of what context rules record.
const RULE: &str = "context-rule";

/// What an observation, a tick or a command produced.
///
/// `events` are to be routed like any event (the engine stamps each with its asset's
/// effective context); `context` patches are to be applied to the assets' own context
/// (the engine then emits `context_changed` events for what really changed). Apply the
/// patches first, then stamp the events: an event's context is the context *after* it
/// (a `work_order` event of a started order carries that order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub events: Vec<(AssetPath, Timestamp, EventKind)>,
    pub context: Vec<(AssetPath, ContextPatch)>,
}

impl Outcome {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.context.is_empty()
    }

    /// Empties both lists, keeping their buffers.
    pub fn clear(&mut self) {
        self.events.clear();
        self.context.clear();
    }

    fn event(&mut self, asset: &AssetPath, time: Timestamp, kind: EventKind) {
        self.events.push((asset.clone(), time, kind));
    }

    fn patch(&mut self, asset: &AssetPath, patch: ContextPatch) {
        self.context.push((asset.clone(), patch));
    }
}

/// A pre-resolved `(asset, attribute)` that production uses: look it up once per tag
/// with [`Production::watch`], then feed samples with [`Production::observe_watched`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Watch(u32);

/// What a watched attribute is used for.
#[derive(Clone, Copy, Debug)]
enum Role {
    State(usize),
    Counter(usize, usize),
    ReasonCode(usize),
    Rule(usize),
}

#[derive(Clone, Debug)]
struct CounterCfg {
    attribute: Arc<str>,
    role: CountRole,
    rollover: Option<u64>,
}

/// A tracked asset: one whose model has a `production` section.
#[derive(Clone, Debug)]
struct MachineCfg {
    asset: AssetPath,
    state: Option<StateMachine>,
    counters: Vec<CounterCfg>,
    scheme: Option<Scheme>,
    ideal_rate_per_min: Option<f64>,
    reason_codes: HashMap<RawKey, String>,
}

#[derive(Clone, Debug)]
struct Config {
    /// Where shift changes and lots without an asset are reported. Always known for a
    /// loaded plan (its second asset).
    site: Option<AssetPath>,
    assets: Vec<AssetPath>,
    calendar: Calendar,
    has_shifts: bool,
    reasons: ReasonTree,
    forms: Vec<FormSpec>,
    machines: Vec<MachineCfg>,
    machine_index: HashMap<AssetPath, usize>,
    rules: Vec<ContextRuleSpec>,
    /// `asset#field` of each rule, the key of its value in the snapshot.
    rule_keys: Vec<String>,
    watch_index: HashMap<Box<str>, Vec<(Box<str>, u32)>>,
    watches: Vec<Vec<Role>>,
}

/// The production state of one tracked asset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Machine {
    tracker: StateTracker,
    /// Time is accounted up to here; `None` before the first state.
    cursor: Option<Timestamp>,
    /// The open downtime.
    downtime: Option<u64>,
    /// Raw counter baselines by attribute.
    counters: BTreeMap<String, Counter>,
    /// The reason the machine signals now (mapped from its reason code).
    machine_reason: Option<String>,
    /// The running work order that applies (on this asset or the nearest above).
    work_order: Option<Arc<str>>,
    ideal_rate_per_min: Option<f64>,
    hour: Option<Accumulator>,
    shift: Option<Accumulator>,
    /// Open work order periods (the running order's, and held orders' until they end).
    orders: Vec<Accumulator>,
    recent_hours: VecDeque<Accumulator>,
    recent_shifts: VecDeque<Accumulator>,
    recent_orders: VecDeque<Accumulator>,
    /// Nanoseconds spent in each state since tracking began.
    durations: BTreeMap<String, i64>,
}

impl Machine {
    fn active(&self) -> bool {
        self.cursor.is_some() || self.hour.is_some()
    }

    fn order_mut(&mut self) -> Option<&mut Accumulator> {
        let id = self.work_order.clone()?;
        self.orders
            .iter_mut()
            .find(|a| a.work_order.as_ref() == Some(&id))
    }

    fn order(&self) -> Option<&Accumulator> {
        let id = self.work_order.as_ref()?;
        self.orders.iter().find(|a| a.work_order.as_ref() == Some(id))
    }

    /// The open accumulators that take what happens now: hour, shift, work order.
    fn open_mut(&mut self) -> impl Iterator<Item = &mut Accumulator> {
        let id = self.work_order.clone();
        self.hour.iter_mut().chain(self.shift.iter_mut()).chain(
            self.orders
                .iter_mut()
                .filter(move |a| id.is_some() && a.work_order == id),
        )
    }
}

/// One recorded operator entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub entry: u64,
    pub form: Arc<str>,
    pub asset: AssetPath,
    pub user: Arc<str>,
    pub time: Timestamp,
    pub values: Map<String, serde_json::Value>,
}

/// Everything [`Production`] must remember across a restart: work orders, lots,
/// genealogy, downtimes, counter baselines, states, open periods. Serialize it with serde
/// (JSON works) and hand it back to [`Production::restore`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    version: u32,
    /// The latest time seen.
    time: Option<Timestamp>,
    machines: BTreeMap<AssetPath, Machine>,
    downtimes: DowntimeLog,
    work_orders: BTreeMap<Arc<str>, WorkOrder>,
    /// Asset → the work order running there.
    running: BTreeMap<AssetPath, Arc<str>>,
    lots: BTreeMap<Arc<str>, Lot>,
    genealogy: Graph,
    /// `asset#field` → the value a context rule set last.
    rules: BTreeMap<String, Arc<str>>,
    operators: Vec<SignIn>,
    entries: VecDeque<EntryRecord>,
    next_entry: u64,
    /// The shift on, and when it started.
    shift: Option<(Arc<str>, Timestamp)>,
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            time: None,
            machines: BTreeMap::new(),
            downtimes: DowntimeLog::default(),
            work_orders: BTreeMap::new(),
            running: BTreeMap::new(),
            lots: BTreeMap::new(),
            genealogy: Graph::default(),
            rules: BTreeMap::new(),
            operators: Vec::new(),
            entries: VecDeque::new(),
            next_entry: 0,
            shift: None,
        }
    }
}

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

/// The production core: machine states and downtime, counters, OEE, work orders, lots
/// and genealogy, operators, operator forms and context rules. Pure: every method takes
/// the time it happens at, and nothing does I/O.
#[derive(Clone, Debug)]
pub struct Production {
    cfg: Config,
    st: Snapshot,
}

/// The text of an id or name that becomes context: the same rules as the context API.
fn check_id(field: &str, text: &str) -> Result<Arc<str>, CommandError> {
    if text.trim().is_empty() {
        Err(CommandError::invalid(field, format!("`{field}` is empty")))
    } else if text.chars().any(char::is_control) {
        Err(CommandError::invalid(
            field,
            format!("`{field}` contains control characters (line breaks, tabs)"),
        ))
    } else if text.chars().count() > MAX_CONTEXT_VALUE_LEN {
        Err(CommandError::invalid(
            field,
            format!("`{field}` is longer than {MAX_CONTEXT_VALUE_LEN} characters"),
        ))
    } else {
        Ok(text.into())
    }
}

fn check_quantity(field: &str, q: Option<f64>) -> Result<Option<f64>, CommandError> {
    match q {
        Some(x) if !x.is_finite() || x < 0.0 => Err(CommandError::invalid(
            field,
            format!("`{field}` must be a number of at least 0, found {x}"),
        )),
        other => Ok(other),
    }
}

fn check_unit(field: &str, unit: Option<&str>) -> Result<Option<Arc<str>>, CommandError> {
    match unit {
        None => Ok(None),
        Some(text) => match Unit::parse(text) {
            Some(u) => Ok(Some(u.symbol().into())),
            None => Err(CommandError::invalid(
                field,
                format!(
                    "unknown unit `{text}`: use a unit of docs/configuration.md, \"Units\" (L, kg, ...), or a lower-case count word such as `bottle`"
                ),
            )),
        },
    }
}

fn push_bounded<T>(list: &mut VecDeque<T>, item: T, max: usize) {
    list.push_back(item);
    while list.len() > max {
        list.pop_front();
    }
}

fn rule_key(asset: &AssetPath, field: ContextField) -> String {
    format!("{asset}#{field}")
}

impl Production {
    /// Builds the production core for a loaded configuration (`plan.production` and the
    /// assets it names). With nothing configured it tracks nothing, but commands (work
    /// orders, lots, genealogy) still work.
    pub fn new(plan: &Plan) -> Production {
        let spec = &plan.production;
        let site = plan
            .assets
            .iter()
            .find(|a| a.level == backplane_model::Level::Site)
            .or_else(|| plan.assets.first())
            .map(|a| a.path.clone())
            .or_else(|| {
                AssetPath::parse(&format!("{}/{}", plan.namespace.enterprise, plan.namespace.site)).ok()
            });
        let mut cfg = Config {
            site,
            assets: plan.assets.iter().map(|a| a.path.clone()).collect(),
            calendar: spec
                .calendar
                .as_ref()
                .map_or_else(Calendar::hours_only, Calendar::new),
            has_shifts: spec.calendar.as_ref().is_some_and(|c| !c.shifts.is_empty()),
            reasons: ReasonTree::new(&spec.reasons),
            forms: spec.forms.clone(),
            machines: Vec::new(),
            machine_index: HashMap::new(),
            rules: spec.context_rules.clone(),
            rule_keys: spec
                .context_rules
                .iter()
                .map(|r| rule_key(&r.asset, r.field))
                .collect(),
            watch_index: HashMap::new(),
            watches: Vec::new(),
        };
        let mut roles: Vec<(AssetPath, Arc<str>, Role)> = Vec::new();
        for asset in &plan.assets {
            let Some(model) = &asset.model else { continue };
            let Some(mp) = spec.model(&model.name) else {
                continue;
            };
            let i = cfg.machines.len();
            let mut counters = Vec::new();
            if let Some(counts) = &mp.counts {
                for (role, c) in [
                    (CountRole::Good, &counts.good),
                    (CountRole::Reject, &counts.reject),
                    (CountRole::Total, &counts.total),
                ] {
                    if let Some(c) = c {
                        roles.push((
                            asset.path.clone(),
                            c.attribute.as_str().into(),
                            Role::Counter(i, counters.len()),
                        ));
                        counters.push(CounterCfg {
                            attribute: c.attribute.as_str().into(),
                            role,
                            rollover: c.rollover,
                        });
                    }
                }
            }
            if let Some(s) = &mp.state {
                roles.push((asset.path.clone(), s.attribute.as_str().into(), Role::State(i)));
            }
            if let Some(r) = &mp.reason_codes {
                roles.push((
                    asset.path.clone(),
                    r.attribute.as_str().into(),
                    Role::ReasonCode(i),
                ));
            }
            cfg.machine_index.insert(asset.path.clone(), i);
            cfg.machines.push(MachineCfg {
                asset: asset.path.clone(),
                state: mp.state.as_ref().map(StateMachine::new),
                counters,
                scheme: mp.counts.as_ref().map(Scheme::of),
                ideal_rate_per_min: mp.ideal_rate.map(|r| r.as_per_minute()),
                reason_codes: mp
                    .reason_codes
                    .iter()
                    .flat_map(|r| r.map.iter().cloned())
                    .collect(),
            });
        }
        for (r, rule) in cfg.rules.iter().enumerate() {
            roles.push((rule.asset.clone(), rule.attribute.as_str().into(), Role::Rule(r)));
        }
        for (asset, attribute, role) in roles {
            let list = cfg.watch_index.entry(asset.as_str().into()).or_default();
            match list.iter().find(|(a, _)| **a == *attribute) {
                Some((_, w)) => {
                    if let Some(roles) = cfg.watches.get_mut(*w as usize) {
                        roles.push(role);
                    }
                }
                None => {
                    let w = u32::try_from(cfg.watches.len()).unwrap_or(u32::MAX);
                    cfg.watches.push(vec![role]);
                    list.push((attribute.as_ref().into(), w));
                }
            }
        }
        let mut st = Snapshot::default();
        for m in &cfg.machines {
            st.machines.insert(
                m.asset.clone(),
                Machine {
                    ideal_rate_per_min: m.ideal_rate_per_min,
                    ..Machine::default()
                },
            );
        }
        Production { cfg, st }
    }

    /// Everything to persist across a restart (or a configuration reload).
    pub fn snapshot(&self) -> Snapshot {
        self.st.clone()
    }

    /// Builds the core for `plan` and resumes from `snapshot`. What no longer fits the
    /// configuration is dropped: assets no longer tracked, states no longer in their
    /// asset's state set (the asset waits for its next state). Time between the snapshot
    /// and the next sample or tick is accounted to the state the asset was in.
    pub fn restore(plan: &Plan, snapshot: Snapshot) -> Result<Production, SnapshotError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: snapshot.version,
                supported: SNAPSHOT_VERSION,
            });
        }
        let mut p = Production::new(plan);
        let mut st = snapshot;
        st.genealogy.reindex();
        let cfg = &p.cfg;
        st.machines
            .retain(|asset, _| cfg.machine_index.contains_key(asset));
        st.downtimes
            .retain_assets(|asset| cfg.machine_index.contains_key(asset));
        for m in &cfg.machines {
            let machine = st.machines.entry(m.asset.clone()).or_default();
            let known = machine
                .tracker
                .current()
                .is_some_and(|c| m.state.as_ref().is_some_and(|s| s.known(&c.state).is_some()));
            if !known {
                machine.tracker.clear();
                machine.cursor = None;
                if let (Some(id), Some(time)) = (machine.downtime.take(), st.time) {
                    st.downtimes.close(id, time);
                }
            }
        }
        st.running.retain(|_, id| {
            st.work_orders
                .get(id)
                .is_some_and(|w| w.status == WorkOrderStatus::Running)
        });
        p.st = st;
        for i in 0..p.cfg.machines.len() {
            p.refresh_order(i);
        }
        Ok(p)
    }

    // ── Samples and time ─────────────────────────────────────────────────────────────

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

    fn seen(&mut self, time: Timestamp) {
        self.st.time = Some(self.st.time.map_or(time, |t| t.max(time)));
    }

    /// Accounts the time of machine `i` up to `to`, closing periods on the way.
    fn advance(&mut self, i: usize, to: Timestamp, out: &mut Outcome) {
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

    fn on_rule(&mut self, r: usize, value: &Value, time: Timestamp, out: &mut Outcome) {
        let (Some(rule), Some(key)) = (self.cfg.rules.get(r), self.cfg.rule_keys.get(r)) else {
            return;
        };
        let Some(text) = value_text(value) else { return };
        let rendered = if text.trim().is_empty() {
            None
        } else {
            Some(rule.render(&text))
        };
        let current = self.st.rules.get(key);
        if current.map(|c| &**c) == rendered.as_deref() {
            return;
        }
        let new: Option<Arc<str>> = match rendered {
            None => None,
            Some(text) => match check_id("value", &text) {
                Ok(v) => Some(v),
                // A value that cannot be context (too long, control characters) is ignored.
                Err(_) => return,
            },
        };
        let current = current.cloned();
        let rule = rule.clone();
        let key = key.clone();
        let patch = match &new {
            Some(v) => ContextPatch::default().set(rule.field, v),
            None => ContextPatch::default().clear(rule.field),
        };
        out.patch(&rule.asset, patch);
        match &new {
            Some(v) => self.st.rules.insert(key, v.clone()),
            None => self.st.rules.remove(&key),
        };
        let Some(material) = &rule.material else { return };
        if let Some(old) = &current
            && let Some(lot) = self.st.lots.get_mut(old)
            && lot.status == LotStatus::Active
        {
            lot.status = LotStatus::Complete;
            lot.updated = time;
            let change = lot.change(Some(LotStatus::Active), Some(RULE));
            out.event(&rule.asset, time, EventKind::Lot(change));
        }
        let Some(new) = new else { return };
        let previous = self.st.lots.get(&new).map(|l| l.status);
        if previous != Some(LotStatus::Active) {
            let lot = self.st.lots.entry(new.clone()).or_insert_with(|| Lot {
                id: new.clone(),
                material: material.as_str().into(),
                quantity: None,
                unit: None,
                status: LotStatus::Active,
                asset: Some(rule.asset.clone()),
                created: time,
                updated: time,
            });
            lot.status = LotStatus::Active;
            lot.updated = time;
            let change = lot.change(previous, Some(RULE));
            out.event(&rule.asset, time, EventKind::Lot(change));
        }
        // What this lot consumes: the lots open now on the assets it consumes from.
        for source in &rule.consumes {
            let open = self.open_rule_lot(source);
            if let Some(src) = open {
                self.link_by_rule(&src, &new, &rule.asset, time, out);
            }
        }
        // What consumes this lot: rules consuming from this asset with a lot open.
        let consumers: Vec<ContextRuleSpec> = self
            .cfg
            .rules
            .iter()
            .filter(|c| c.consumes.contains(&rule.asset))
            .cloned()
            .collect();
        for consumer in consumers {
            let open = self.open_rule_lot(&consumer.asset);
            if let Some(dst) = open {
                self.link_by_rule(&new, &dst, &consumer.asset, time, out);
            }
        }
    }

    /// The lot a lot-opening rule of `asset` has open.
    fn open_rule_lot(&self, asset: &AssetPath) -> Option<Arc<str>> {
        self.cfg
            .rules
            .iter()
            .filter(|r| &r.asset == asset && r.material.is_some())
            .find_map(|r| self.st.rules.get(&rule_key(asset, r.field)).cloned())
    }

    fn link_by_rule(
        &mut self,
        consumed: &Arc<str>,
        produced: &Arc<str>,
        asset: &AssetPath,
        time: Timestamp,
        out: &mut Outcome,
    ) {
        if consumed == produced || self.st.genealogy.has(consumed, produced) {
            return;
        }
        self.st.genealogy.add(Link {
            consumed: consumed.clone(),
            produced: produced.clone(),
            quantity: None,
            unit: None,
            time,
            by: Some(RULE.into()),
        });
        out.event(
            asset,
            time,
            EventKind::Genealogy(Genealogy {
                consumed: vec![ConsumedLot {
                    lot: consumed.clone(),
                    quantity: None,
                    unit: None,
                }],
                produced: produced.clone(),
                by: Some(RULE.into()),
            }),
        );
    }

    // ── Downtime reasons ─────────────────────────────────────────────────────────────

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

    fn apply_reason(
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

    // ── Work orders ──────────────────────────────────────────────────────────────────

    fn resolve_asset(&self, field: &str, text: &str) -> Result<AssetPath, CommandError> {
        let site = self.cfg.site.as_ref().map_or("", AssetPath::as_str);
        let full = format!("{site}/{}", text.trim_matches('/'));
        self.cfg
            .assets
            .iter()
            .find(|a| a.as_str() == text || a.as_str() == full)
            .cloned()
            .ok_or_else(|| {
                CommandError::invalid(
                    field,
                    format!(
                        "unknown asset `{text}`: give a configured asset's path, in full or below the site (`{site}`)"
                    ),
                )
            })
    }

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
        check_transition(id, order.status, status).map_err(|m| CommandError::invalid("status", m))?;
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
    fn refresh_order(&mut self, i: usize) {
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

    // ── Lots and genealogy ───────────────────────────────────────────────────────────

    fn lot_asset(&self, lot: &Lot) -> Option<AssetPath> {
        lot.asset.clone().or_else(|| self.cfg.site.clone())
    }

    /// Creates a lot (default status `active`).
    pub fn create_lot(
        &mut self,
        new: NewLot,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<Lot, CommandError> {
        let id = check_id("id", &new.id)?;
        let material = check_id("material", &new.material)?;
        let quantity = check_quantity("quantity", new.quantity)?;
        let unit = check_unit("unit", new.unit.as_deref())?;
        let asset = match &new.asset {
            Some(text) => Some(self.resolve_asset("asset", text)?),
            None => None,
        };
        if let Some(by) = by {
            check_id("by", by)?;
        }
        if self.st.lots.contains_key(&id) {
            return Err(CommandError::conflict("id", format!("lot `{id}` exists already")));
        }
        self.seen(time);
        let lot = Lot {
            id: id.clone(),
            material,
            quantity,
            unit,
            status: new.status.unwrap_or(LotStatus::Active),
            asset,
            created: time,
            updated: time,
        };
        if let Some(asset) = self.lot_asset(&lot) {
            out.event(&asset, time, EventKind::Lot(lot.change(None, by)));
        }
        self.st.lots.insert(id, lot.clone());
        Ok(lot)
    }

    /// Changes a lot's status (anything but leaving `scrapped`).
    pub fn set_lot_status(
        &mut self,
        id: &str,
        status: LotStatus,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<Lot, CommandError> {
        let Some(lot) = self.st.lots.get(id) else {
            return Err(CommandError::not_found("id", format!("no lot `{id}`")));
        };
        check_lot_transition(id, lot.status, status).map_err(|m| CommandError::invalid("status", m))?;
        if let Some(by) = by {
            check_id("by", by)?;
        }
        let asset = self.lot_asset(lot);
        self.seen(time);
        let Some(lot) = self.st.lots.get_mut(id) else {
            return Err(CommandError::not_found("id", format!("no lot `{id}`")));
        };
        let previous = lot.status;
        lot.status = status;
        lot.updated = time;
        let lot = lot.clone();
        if let Some(asset) = asset {
            out.event(&asset, time, EventKind::Lot(lot.change(Some(previous), by)));
        }
        Ok(lot)
    }

    /// Records that `consumed` lots went into `produced`. Every lot must exist.
    pub fn record_genealogy(
        &mut self,
        consumed: &[ConsumedLot],
        produced: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<(), CommandError> {
        let Some(target) = self.st.lots.get(produced) else {
            return Err(CommandError::not_found(
                "produced",
                format!("no lot `{produced}`: create it first"),
            ));
        };
        if consumed.is_empty() {
            return Err(CommandError::invalid(
                "consumed",
                "`consumed` is empty: name at least one lot",
            ));
        }
        let mut checked = Vec::with_capacity(consumed.len());
        for (i, c) in consumed.iter().enumerate() {
            let field = format!("consumed[{i}]");
            if !self.st.lots.contains_key(&c.lot) {
                return Err(CommandError::not_found(
                    &format!("{field}.lot"),
                    format!("no lot `{}`: create it first", c.lot),
                ));
            }
            if &*c.lot == produced {
                return Err(CommandError::invalid(
                    &format!("{field}.lot"),
                    format!("lot `{produced}` cannot consume itself"),
                ));
            }
            if consumed[..i].iter().any(|o| o.lot == c.lot) {
                return Err(CommandError::invalid(
                    &format!("{field}.lot"),
                    format!("lot `{}` is listed twice; give its total quantity once", c.lot),
                ));
            }
            let quantity = check_quantity(&format!("{field}.quantity"), c.quantity)?;
            let unit = check_unit(&format!("{field}.unit"), c.unit.as_deref())?;
            checked.push(ConsumedLot {
                lot: c.lot.clone(),
                quantity,
                unit,
            });
        }
        if let Some(by) = by {
            check_id("by", by)?;
        }
        let asset = self.lot_asset(target);
        let produced: Arc<str> = target.id.clone();
        self.seen(time);
        for c in &checked {
            self.st.genealogy.add(Link {
                consumed: c.lot.clone(),
                produced: produced.clone(),
                quantity: c.quantity,
                unit: c.unit.clone(),
                time,
                by: by.map(Into::into),
            });
        }
        if let Some(asset) = asset {
            out.event(
                &asset,
                time,
                EventKind::Genealogy(Genealogy {
                    consumed: checked,
                    produced,
                    by: by.map(Into::into),
                }),
            );
        }
        Ok(())
    }

    fn trace(&self, lot: &str, direction: Direction, depth: u32) -> Result<Trace, CommandError> {
        if !self.st.lots.contains_key(lot) {
            return Err(CommandError::not_found("lot", format!("no lot `{lot}`")));
        }
        Ok(self.st.genealogy.trace(lot, direction, depth))
    }

    /// Where `lot` went: the lots made from it, and from those, `depth` levels deep.
    pub fn trace_forward(&self, lot: &str, depth: u32) -> Result<Trace, CommandError> {
        self.trace(lot, Direction::Forward, depth)
    }

    /// What `lot` is made of, `depth` levels deep.
    pub fn trace_backward(&self, lot: &str, depth: u32) -> Result<Trace, CommandError> {
        self.trace(lot, Direction::Backward, depth)
    }

    // ── Operators and forms ──────────────────────────────────────────────────────────

    /// Signs `operator` in at `asset` (moving them if signed in elsewhere) and sets the
    /// `operator` context there.
    pub fn sign_in(
        &mut self,
        operator: &str,
        name: Option<&str>,
        asset: &str,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<SignIn, CommandError> {
        let id = check_id("operator", operator)?;
        let name = name.map(|n| check_id("name", n)).transpose()?;
        let asset = self.resolve_asset("asset", asset)?;
        self.seen(time);
        if let Some(pos) = self.st.operators.iter().position(|s| s.operator == id) {
            let old = self.st.operators.remove(pos);
            if old.asset != asset {
                self.restore_operator_context(&old.asset, out);
            }
        }
        let sign_in = SignIn {
            operator: id.clone(),
            name,
            asset: asset.clone(),
            since: time,
        };
        self.st.operators.push(sign_in.clone());
        out.patch(&asset, ContextPatch::default().set(ContextField::Operator, &id));
        Ok(sign_in)
    }

    /// Signs `operator` out; the `operator` context of their asset goes to whoever signed
    /// in there last, or is cleared.
    pub fn sign_out(
        &mut self,
        operator: &str,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<SignIn, CommandError> {
        let Some(pos) = self.st.operators.iter().position(|s| &*s.operator == operator) else {
            return Err(CommandError::not_found(
                "operator",
                format!("operator `{operator}` is not signed in"),
            ));
        };
        self.seen(time);
        let old = self.st.operators.remove(pos);
        self.restore_operator_context(&old.asset, out);
        Ok(old)
    }

    fn restore_operator_context(&self, asset: &AssetPath, out: &mut Outcome) {
        let patch = match self.st.operators.iter().rev().find(|s| &s.asset == asset) {
            Some(s) => ContextPatch::default().set(ContextField::Operator, &s.operator),
            None => ContextPatch::default().clear(ContextField::Operator),
        };
        out.patch(asset, patch);
    }

    /// Validates and records an operator entry. On any problem returns every one of
    /// them, each naming its field (`form`, `asset` and `user` for the submission itself),
    /// and records nothing. A valid entry becomes an `operator_entry` event at `asset`.
    pub fn submit_form(
        &mut self,
        form: &str,
        asset: &str,
        user: &str,
        values: &Map<String, serde_json::Value>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<EntryRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        let spec = self.cfg.forms.iter().find(|f| f.name == form);
        if spec.is_none() {
            let names: Vec<&str> = self.cfg.forms.iter().map(|f| f.name.as_str()).collect();
            let known = if names.is_empty() {
                "no forms are configured".to_owned()
            } else {
                format!("forms are {}", names.join(", "))
            };
            errors.push(FieldError::new("form", format!("unknown form `{form}`; {known}")));
        }
        let asset = match self.resolve_asset("asset", asset) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(FieldError::new("asset", e.message));
                None
            }
        };
        if let (Some(spec), Some(a)) = (spec, &asset)
            && !spec.assets.is_empty()
            && !spec.assets.iter().any(|allowed| a.starts_with(allowed))
        {
            let allowed: Vec<String> = spec.assets.iter().map(ToString::to_string).collect();
            errors.push(FieldError::new(
                "asset",
                format!(
                    "form `{form}` is for {} (and below), not `{a}`",
                    allowed.join(", ")
                ),
            ));
        }
        let user = match check_id("user", user) {
            Ok(u) => Some(u),
            Err(e) => {
                errors.push(FieldError::new("user", e.message));
                None
            }
        };
        let validated = match spec.map(|s| forms::validate(s, values)) {
            Some(Ok(v)) => Some(v),
            Some(Err(field_errors)) => {
                errors.extend(field_errors);
                None
            }
            None => None,
        };
        let (Some(asset), Some(user), Some(values), true) = (asset, user, validated, errors.is_empty())
        else {
            return Err(errors);
        };
        self.seen(time);
        self.st.next_entry = self.st.next_entry.saturating_add(1);
        let record = EntryRecord {
            entry: self.st.next_entry,
            form: form.into(),
            asset: asset.clone(),
            user: user.clone(),
            time,
            values: values.clone(),
        };
        out.event(
            &asset,
            time,
            EventKind::OperatorEntry(OperatorEntry {
                form: form.into(),
                entry: record.entry,
                user,
                values,
            }),
        );
        push_bounded(&mut self.st.entries, record.clone(), RECENT_ENTRIES);
        Ok(record)
    }

    // ── Queries ──────────────────────────────────────────────────────────────────────

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

/// Closes the periods of machine `m` that ended by `t` (publishing their OEE) and opens
/// the ones that apply at `t`.
fn roll(cal: &Calendar, has_shifts: bool, mc: &MachineCfg, m: &mut Machine, t: Timestamp, out: &mut Outcome) {
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
