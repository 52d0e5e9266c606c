//! Samples and events: what the pipeline hands to sinks.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{AssetPath, Context, ContextField, Quality, Timestamp, Value};

/// Interned id of one attribute of one asset (a "tag"). Ids are dense, assigned at
/// configuration time, and index the tables of the running plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TagId(pub u32);

impl TagId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One normalized value of one tag.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub tag: TagId,
    /// `None` only when the quality is bad and no value has been read yet (JSON `null`).
    pub value: Option<Value>,
    pub quality: Quality,
    /// When the device says the value was measured, if it says.
    pub source_time: Option<Timestamp>,
    /// When Backplane read it.
    pub gateway_time: Timestamp,
    /// The effective context of the tag's asset at `gateway_time`.
    pub context: Arc<Context>,
}

impl Clone for Sample {
    fn clone(&self) -> Sample {
        Sample {
            tag: self.tag,
            value: self.value.clone(),
            quality: self.quality,
            source_time: self.source_time,
            gateway_time: self.gateway_time,
            context: self.context.clone(),
        }
    }

    /// In place, for caches that keep each tag's latest sample: the context, mostly the
    /// one already held, is neither cloned nor dropped when it is the same.
    #[inline]
    fn clone_from(&mut self, source: &Sample) {
        let Sample {
            tag,
            value,
            quality,
            source_time,
            gateway_time,
            context,
        } = self;
        *tag = source.tag;
        crate::value::clone_option_from(value, &source.value);
        *quality = source.quality;
        *source_time = source.source_time;
        *gateway_time = source.gateway_time;
        if !Arc::ptr_eq(context, &source.context) {
            context.clone_from(&source.context);
        }
    }
}

/// A first-class record of something that happened on an asset.
///
/// Events serialize flat (`{"asset", "time", "event": "<kind>", ...fields of the kind,
/// "context"}`) and deserialize from the same form, so they can be stored and read back
/// (durable buffers, history). Field names of a kind never repeat `asset`, `time`,
/// `event`, `kind` or `context`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub asset: AssetPath,
    pub time: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
    /// The effective context of the asset after the event.
    pub context: Arc<Context>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A field of the asset's own context was set or cleared.
    ContextChanged {
        field: ContextField,
        old: Option<Arc<str>>,
        new: Option<Arc<str>>,
        /// Who made the change (API user, rule name), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Arc<str>>,
    },
    /// The machine state of the asset changed (see `docs/context.md`, "Machine states").
    StateChanged(StateChange),
    /// A downtime opened (`end` is `null`) or closed.
    Downtime(Downtime),
    /// A reason was assigned to a downtime, or corrected, after the fact.
    DowntimeReasonAssigned(ReasonAssignment),
    /// A production counter of the asset moved.
    Counts(Counts),
    /// OEE of a closed period (an hour, a shift or a work order) of the asset.
    Oee(Oee),
    /// A work order was created or changed status.
    WorkOrder(WorkOrderChange),
    /// A material lot (or batch) was created or changed status.
    Lot(LotChange),
    /// Lots were consumed to produce a lot.
    Genealogy(Genealogy),
    /// An operator submitted a form (a lab check, a checklist).
    OperatorEntry(OperatorEntry),
    /// A machine's own alarm (condition) was raised, changed severity or cleared.
    Alarm(Alarm),
}

/// `state_changed`: the asset left `from` (entered at `since`) for `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// The previous state; `null` for the first state known (after start).
    pub from: Option<Arc<str>>,
    pub to: Arc<str>,
    /// When the asset entered `from` (`null` with `from`). `time - since` is the exact
    /// duration in nanoseconds.
    pub since: Option<Timestamp>,
    /// How long the asset was in `from`, in whole milliseconds (rounded down).
    pub duration_ms: u64,
    /// The raw value the state was derived from, as text (a code such as `3`, a label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Arc<str>>,
}

/// `downtime`: a stretch of time in which the asset did not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Downtime {
    /// Unique per gateway; reasons are assigned by it.
    pub id: u64,
    pub start: Timestamp,
    /// `null` while the downtime is open.
    pub end: Option<Timestamp>,
    /// `end - start` in whole milliseconds; 0 while open.
    pub duration_ms: u64,
    /// The state the asset was in when the downtime opened.
    pub state: Arc<str>,
    /// The reason code: a path of the reason tree, e.g. `mechanical/jam`.
    pub reason: Option<Arc<str>>,
    /// The reason's description from the reason tree, e.g. `Bottle jam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_description: Option<Arc<str>>,
    /// Planned downtime is excluded from planned production time (OEE availability).
    pub planned: bool,
    /// Who assigned the reason (a user, or `machine` for reason codes read from a tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// `downtime_reason_assigned`: downtime `id` now has `reason`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReasonAssignment {
    pub id: u64,
    pub reason: Arc<str>,
    /// The reason it had before, when this corrects one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Arc<str>>,
    /// Whether the downtime now counts as planned.
    pub planned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// Which production count a counter feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountRole {
    Good,
    Reject,
    Total,
}

impl CountRole {
    pub const ALL: [CountRole; 3] = [CountRole::Good, CountRole::Reject, CountRole::Total];

    pub fn name(self) -> &'static str {
        match self {
            CountRole::Good => "good",
            CountRole::Reject => "reject",
            CountRole::Total => "total",
        }
    }
}

/// How a raw counter moved between two readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterChange {
    /// It went up.
    Increment,
    /// It wrapped at its rollover modulus and went on counting.
    Rollover,
    /// It went down implausibly for a rollover: the counter was reset (power cycle, reset
    /// button) and its new value counts as production since the reset.
    Reset,
}

/// `counts`: a production counter moved by `delta`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// The model attribute of the raw counter.
    pub attribute: Arc<str>,
    pub role: CountRole,
    pub delta: u64,
    pub change: CounterChange,
    /// The raw counter reading.
    pub raw: u64,
    /// The work order the counts belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_order: Option<Arc<str>>,
    /// The shift the counts belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<Arc<str>>,
    /// This role's count of `work_order` on this asset so far, this delta included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_order_count: Option<u64>,
    /// This role's count of the current shift on this asset so far, this delta included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_count: Option<u64>,
}

/// The kind of period an OEE figure covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OeePeriod {
    Hour,
    Shift,
    WorkOrder,
}

impl OeePeriod {
    pub const ALL: [OeePeriod; 3] = [OeePeriod::Hour, OeePeriod::Shift, OeePeriod::WorkOrder];

    pub fn name(self) -> &'static str {
        match self {
            OeePeriod::Hour => "hour",
            OeePeriod::Shift => "shift",
            OeePeriod::WorkOrder => "work_order",
        }
    }

    pub fn parse(text: &str) -> Option<OeePeriod> {
        OeePeriod::ALL.into_iter().find(|p| p.name() == text)
    }
}

/// `oee`: availability, performance and quality of one period of one asset
/// (formulas in `docs/context.md`, "OEE"). A figure is `null` where it is undefined, e.g.
/// quality with nothing counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Oee {
    pub period: OeePeriod,
    /// The period's nominal bounds: the hour, the shift, or the work order's run.
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_order: Option<Arc<str>>,
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
    /// Observed time minus planned stops: the time the asset was meant to produce.
    pub planned_time_ms: u64,
    pub run_time_ms: u64,
    /// Planned stops (calendar and planned downtime) inside the observed time;
    /// `planned_time_ms + planned_stop_ms` is the observed time.
    pub planned_stop_ms: u64,
    /// Unplanned downtime: `planned_time_ms - run_time_ms`.
    pub downtime_ms: u64,
    pub good: u64,
    pub reject: u64,
    pub total: u64,
    /// The ideal rate in effect at the end of the period, in pieces per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_rate_per_min: Option<f64>,
    /// True when this replaces an `oee` event published before (a downtime reason was
    /// corrected after the period closed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revised: bool,
}

/// The life cycle of a work order (ISA-95 job order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderStatus {
    Created,
    Released,
    Running,
    Held,
    Completed,
    Cancelled,
}

impl WorkOrderStatus {
    pub const ALL: [WorkOrderStatus; 6] = [
        WorkOrderStatus::Created,
        WorkOrderStatus::Released,
        WorkOrderStatus::Running,
        WorkOrderStatus::Held,
        WorkOrderStatus::Completed,
        WorkOrderStatus::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WorkOrderStatus::Created => "created",
            WorkOrderStatus::Released => "released",
            WorkOrderStatus::Running => "running",
            WorkOrderStatus::Held => "held",
            WorkOrderStatus::Completed => "completed",
            WorkOrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<WorkOrderStatus> {
        WorkOrderStatus::ALL.into_iter().find(|s| s.name() == text)
    }
}

impl fmt::Display for WorkOrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `work_order`: a work order was created or changed status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderChange {
    pub id: Arc<str>,
    pub status: WorkOrderStatus,
    /// The status before, `null` when created.
    pub previous: Option<WorkOrderStatus>,
    pub product: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_rate_per_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_end: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_end: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// The state of a material lot or batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotStatus {
    /// Being produced (filled, processed) now.
    Active,
    /// Produced and available.
    Complete,
    /// Blocked for use pending a quality decision.
    Quarantined,
    /// Used up.
    Consumed,
    /// Discarded; final.
    Scrapped,
}

impl LotStatus {
    pub const ALL: [LotStatus; 5] = [
        LotStatus::Active,
        LotStatus::Complete,
        LotStatus::Quarantined,
        LotStatus::Consumed,
        LotStatus::Scrapped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LotStatus::Active => "active",
            LotStatus::Complete => "complete",
            LotStatus::Quarantined => "quarantined",
            LotStatus::Consumed => "consumed",
            LotStatus::Scrapped => "scrapped",
        }
    }

    pub fn parse(text: &str) -> Option<LotStatus> {
        LotStatus::ALL.into_iter().find(|s| s.name() == text)
    }
}

impl fmt::Display for LotStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `lot`: a material lot or batch was created or changed status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LotChange {
    pub id: Arc<str>,
    pub material: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
    pub status: LotStatus,
    /// The status before, `null` when created.
    pub previous: Option<LotStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// One consumed lot of a [`Genealogy`] record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumedLot {
    pub lot: Arc<str>,
    /// How much of it was used, when known, in `unit` (or the lot's unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
}

/// `genealogy`: `consumed` lots went into `produced`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Genealogy {
    pub consumed: Vec<ConsumedLot>,
    pub produced: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// `operator_entry`: a validated form submission. The event's asset is where it was
/// entered; its context is the context active there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatorEntry {
    /// The form's name in the configuration.
    pub form: Arc<str>,
    /// Unique per gateway.
    pub entry: u64,
    pub user: Arc<str>,
    /// Field name → validated value.
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// `alarm`: a condition a machine reports (an MTConnect `Fault`, say) was raised, changed
/// severity or cleared. One alarm is one (`address`, `code`) pair. The alarms stage's
/// limit alarms use the same event (`source` `alarms`, `address` the attribute,
/// `condition` `limit`) with the limit fields set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// The source that reported it and its address there (the condition's data item).
    pub source: Arc<str>,
    pub address: Arc<str>,
    /// `fault`, `warning`, `normal` (cleared) or `unavailable` (no longer known).
    pub severity: Arc<str>,
    /// The severity before; `null` when newly raised.
    pub previous: Option<Arc<str>>,
    /// Whether the alarm stands after this event (`fault` or `warning`).
    pub active: bool,
    /// The machine's own alarm code, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Arc<str>>,
    /// The machine's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Arc<str>>,
    /// What the condition watches (e.g. `SYSTEM`, `TEMPERATURE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Arc<str>>,
    /// Limit alarms (the alarms stage): the level the value is in, `null` when cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<crate::LimitLevel>,
    /// Limit alarms: the value that moved the alarm (absent on an acknowledgement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Limit alarms: the limit of `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Limit alarms: the OPC UA severity, 1 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Limit alarms: whether an operator acknowledged the alarm since it was last raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<bool>,
    /// Who acknowledged, with their comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Arc<str>>,
}

impl EventKind {
    /// One event of every kind (two of some, with optional fields both set and left out):
    /// for documentation and for tests that check payloads against the published schemas.
    pub fn examples() -> Vec<EventKind> {
        let mut values = serde_json::Map::new();
        values.insert("fat".into(), serde_json::json!(3.9));
        values.insert("antibiotic".into(), serde_json::json!("pass"));
        vec![
            EventKind::ContextChanged {
                field: ContextField::WorkOrder,
                old: Some("WO-1".into()),
                new: None,
                by: Some("mes".into()),
            },
            EventKind::StateChanged(StateChange {
                from: Some("execute".into()),
                to: "aborted".into(),
                since: Some(example_time(0)),
                duration_ms: 61_000,
                code: Some("3".into()),
            }),
            EventKind::StateChanged(StateChange {
                from: None,
                to: "idle".into(),
                since: None,
                duration_ms: 0,
                code: None,
            }),
            EventKind::Downtime(Downtime {
                id: 7,
                start: example_time(0),
                end: None,
                duration_ms: 0,
                state: "aborted".into(),
                reason: None,
                reason_description: None,
                planned: false,
                by: None,
            }),
            EventKind::Downtime(Downtime {
                id: 7,
                start: example_time(0),
                end: Some(example_time(600)),
                duration_ms: 600_000,
                state: "aborted".into(),
                reason: Some("mechanical/jam".into()),
                reason_description: Some("Bottle jam".into()),
                planned: false,
                by: Some("anna".into()),
            }),
            EventKind::DowntimeReasonAssigned(ReasonAssignment {
                id: 7,
                reason: "mechanical/changeover".into(),
                previous: Some("mechanical/jam".into()),
                planned: true,
                by: Some("anna".into()),
            }),
            EventKind::Counts(Counts {
                attribute: "good_count".into(),
                role: CountRole::Good,
                delta: 12,
                change: CounterChange::Rollover,
                raw: 5,
                work_order: Some("WO-1".into()),
                shift: Some("A".into()),
                work_order_count: Some(4_000_000_000),
                shift_count: Some(12),
            }),
            EventKind::Oee(Oee {
                period: OeePeriod::WorkOrder,
                period_start: example_time(0),
                period_end: example_time(3600),
                shift: None,
                work_order: Some("WO-1".into()),
                availability: Some(0.75),
                performance: Some(1.0),
                quality: None,
                oee: Some(0.0),
                planned_time_ms: 3_600_000,
                run_time_ms: 2_700_000,
                planned_stop_ms: 0,
                downtime_ms: 900_000,
                good: 0,
                reject: 0,
                total: 0,
                ideal_rate_per_min: Some(600.0),
                revised: true,
            }),
            EventKind::WorkOrder(WorkOrderChange {
                id: "WO-1".into(),
                status: WorkOrderStatus::Running,
                previous: Some(WorkOrderStatus::Released),
                product: "milk-1l".into(),
                planned_quantity: Some(36_000.0),
                ideal_rate_per_min: Some(600.0),
                scheduled_start: Some(example_time(0)),
                scheduled_end: None,
                actual_start: Some(example_time(5)),
                actual_end: None,
                by: None,
            }),
            EventKind::Lot(LotChange {
                id: "L-1".into(),
                material: "raw-milk".into(),
                quantity: Some(25_000.0),
                unit: Some("L".into()),
                status: LotStatus::Quarantined,
                previous: Some(LotStatus::Complete),
                by: Some("lab".into()),
            }),
            EventKind::Genealogy(Genealogy {
                consumed: vec![
                    ConsumedLot {
                        lot: "S-1".into(),
                        quantity: Some(1000.5),
                        unit: Some("L".into()),
                    },
                    ConsumedLot {
                        lot: "S-2".into(),
                        quantity: None,
                        unit: None,
                    },
                ],
                produced: "B-1".into(),
                by: None,
            }),
            EventKind::OperatorEntry(OperatorEntry {
                form: "milk-lab".into(),
                entry: 3,
                user: "anna".into(),
                values,
            }),
            EventKind::Alarm(Alarm {
                source: "cnc-agent".into(),
                address: "system".into(),
                severity: "fault".into(),
                previous: None,
                active: true,
                code: Some("E1021".into()),
                message: Some("Spindle overload".into()),
                condition: Some("SYSTEM".into()),
                ..Alarm::default()
            }),
            EventKind::Alarm(Alarm {
                source: "cnc-agent".into(),
                address: "system".into(),
                severity: "normal".into(),
                previous: Some("fault".into()),
                active: false,
                code: None,
                message: None,
                condition: None,
                ..Alarm::default()
            }),
            EventKind::Alarm(Alarm {
                source: "alarms".into(),
                address: "product_temperature".into(),
                severity: "warning".into(),
                previous: Some("normal".into()),
                active: true,
                code: None,
                message: Some("product_temperature 6.2 above hi limit 6".into()),
                condition: Some("limit".into()),
                limit: Some(crate::LimitLevel::Hi),
                value: Some(6.2),
                threshold: Some(6.0),
                priority: Some(700),
                acked: Some(false),
                by: None,
                comment: None,
            }),
            EventKind::Alarm(Alarm {
                source: "alarms".into(),
                address: "product_temperature".into(),
                severity: "warning".into(),
                previous: Some("warning".into()),
                active: true,
                code: None,
                message: Some("acknowledged by anna".into()),
                condition: Some("limit".into()),
                limit: Some(crate::LimitLevel::Hi),
                value: None,
                threshold: Some(6.0),
                priority: Some(700),
                acked: Some(true),
                by: Some("anna".into()),
                comment: Some("cooling checked".into()),
            }),
        ]
    }
}

fn example_time(secs: i64) -> Timestamp {
    Timestamp::from_unix_nanos(1_795_000_000_000_000_000 + secs * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tag's latest sample is kept twice (the engine's cache, the UNS sink): its size
    /// is memory per tag.
    #[test]
    fn a_sample_takes_56_bytes() {
        assert_eq!(std::mem::size_of::<Sample>(), 56);
        assert_eq!(std::mem::size_of::<Option<Sample>>(), 56);
    }

    #[test]
    fn a_sample_cloned_in_place_equals_its_source_and_shares_its_context() {
        let shared = Arc::new(Context::default());
        let source = Sample {
            tag: TagId(3),
            value: Some(Value::String("b".into())),
            quality: Quality::Good,
            source_time: Some(Timestamp::from_unix_nanos(4)),
            gateway_time: Timestamp::from_unix_nanos(5),
            context: shared.clone(),
        };
        let other_context = Arc::new(Context {
            lot: Some("L".into()),
            ..Context::default()
        });
        for context in [shared.clone(), other_context] {
            let mut target = Sample {
                tag: TagId(1),
                value: None,
                quality: Quality::Bad(crate::BadReason::CommFailure),
                source_time: None,
                gateway_time: Timestamp::from_unix_nanos(1),
                context,
            };
            target.clone_from(&source);
            assert_eq!(target, source);
            assert!(Arc::ptr_eq(&target.context, &shared));
            assert_eq!(target, source.clone());
        }
        assert_eq!(Arc::strong_count(&shared), 2, "no reference left behind");
    }

    #[test]
    fn events_serialize_flat_with_their_kind() {
        let e = Event {
            asset: AssetPath::parse("acme/plant-a").unwrap(),
            time: Timestamp::from_unix_nanos(0),
            kind: EventKind::ContextChanged {
                field: ContextField::Batch,
                old: None,
                new: Some("B-1".into()),
                by: None,
            },
            context: Arc::new(Context::default()),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "context_changed");
        assert_eq!(json["field"], "batch");
        assert_eq!(json["new"], "B-1");
    }

    #[test]
    fn every_event_kind_round_trips_through_json() {
        let context = Arc::new(Context {
            work_order: Some("WO-1".into()),
            shift: Some("A".into()),
            ..Context::default()
        });
        for kind in EventKind::examples() {
            let event = Event {
                asset: AssetPath::parse("acme/plant-a/packaging/line-1/filler").unwrap(),
                time: Timestamp::from_unix_nanos(1_795_000_000_123_456_789),
                kind,
                context: context.clone(),
            };
            let json = serde_json::to_string(&event).unwrap();
            let back: Event = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e} in {json}"));
            assert_eq!(back, event, "{json}");
            // The payload the sinks publish adds `"kind": "event"`; it reads back too.
            let mut value = serde_json::to_value(&event).unwrap();
            value["kind"] = "event".into();
            assert_eq!(serde_json::from_value::<Event>(value).unwrap(), event);
        }
    }

    #[test]
    fn event_names_are_snake_case_and_fields_do_not_shadow_the_envelope() {
        let names: Vec<String> = EventKind::examples()
            .iter()
            .map(|k| {
                let json = serde_json::to_value(k).unwrap();
                for reserved in ["asset", "time", "kind", "context"] {
                    assert!(json.get(reserved).is_none(), "{reserved} in {json}");
                }
                json["event"].as_str().unwrap().to_owned()
            })
            .collect();
        for expected in [
            "context_changed",
            "state_changed",
            "downtime",
            "downtime_reason_assigned",
            "counts",
            "oee",
            "work_order",
            "lot",
            "genealogy",
            "operator_entry",
            "alarm",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
    }

    #[test]
    fn events_with_a_bad_asset_or_time_do_not_deserialize() {
        let good = r#"{"asset":"acme/plant","time":"2026-11-27T10:00:00Z","event":"context_changed","field":"batch","old":null,"new":"B-1","context":{}}"#;
        assert!(serde_json::from_str::<Event>(good).is_ok());
        let bad_asset = good.replace("acme/plant", "Acme Plant");
        assert!(serde_json::from_str::<Event>(&bad_asset).is_err());
        let bad_time = good.replace("2026-11-27T10:00:00Z", "noon");
        assert!(serde_json::from_str::<Event>(&bad_time).is_err());
        let unknown = good.replace("context_changed", "exploded");
        assert!(serde_json::from_str::<Event>(&unknown).is_err());
    }
}
