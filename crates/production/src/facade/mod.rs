//! [`Production`]: one object that owns every production concern of a gateway, fed by
//! samples, ticks and commands, answering queries, and reporting what happened as an
//! [`Outcome`] of events and context patches for the engine to route and apply.
//!
//! This file holds the object, its configuration and per-asset state, the constructor
//! and the checks commands share. Each concern adds its own `impl Production` block in a
//! file of its own:
//! - `observe`: samples and time ([`Production::watch`], [`Production::observe`],
//!   [`Production::tick`]): machine states, counts, reason codes.
//! - `periods`: time accounted into hour, shift and work order periods, and their closing.
//! - `context_rules`: context derived from tags, with the lots and genealogy it implies.
//! - `downtime_reasons`: reasons assigned to downtimes, and OEE revised after the fact.
//! - `work_orders`: work orders and their status life cycle.
//! - `lots`: lots, genealogy and traces.
//! - `operators`: operators signing in and out.
//! - `entries`: operator form submissions ([`EntryRecord`]).
//! - `snapshot`: [`Snapshot`], [`Production::snapshot`] and [`Production::restore`].
//! - `queries`: read-only views ([`OeeReport`], [`StateView`], ...).

mod context_rules;
mod downtime_reasons;
mod entries;
mod lots;
mod observe;
mod operators;
mod periods;
mod queries;
mod snapshot;
mod work_orders;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use backplane_config::Plan;
use backplane_config::production::{ContextRuleSpec, FormSpec, RawKey};
use backplane_model::context::MAX_CONTEXT_VALUE_LEN;
use backplane_model::sample::{CountRole, EventKind};
use backplane_model::{AssetPath, ContextField, ContextPatch, Timestamp, Unit};
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::counters::Counter;
use crate::error::CommandError;
use crate::oee::{Accumulator, Scheme};
use crate::reasons::ReasonTree;
use crate::states::{StateMachine, StateTracker};

pub use entries::{
    EntryRecord, MAX_ENTRY_AGE_SECS, MAX_ENTRY_AHEAD_SECS, MAX_ENTRY_ID_LEN, RECENT_ENTRIES, Submission,
    Submitted,
};
pub use queries::{OeeReport, StateView};
pub use snapshot::Snapshot;

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

    /// Keeps the latest time seen, which the snapshot carries.
    fn seen(&mut self, time: Timestamp) {
        self.st.time = Some(self.st.time.map_or(time, |t| t.max(time)));
    }

    /// A configured asset, named by its full path or its path below the site.
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
}

#[cfg(test)]
mod tests {
    /// The engine publishes copies of the production state for readers on other threads.
    #[test]
    fn production_and_its_snapshot_can_be_copied_and_shared_across_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<super::Production>();
        shareable::<super::Snapshot>();
    }
}
