//! The production sections: `[calendar]`, `[downtime_reasons]`, `[models.NAME.production]`,
//! `[forms.NAME]` and `[[context_rules]]`, read into the plain spec types that
//! `backplane-production` runs (documented in `docs/configuration.md`, "Production").
//!
//! Everything here is checked against the models and assets of the same configuration:
//! attributes exist and have a usable type, state names belong to the chosen state model,
//! reason codes exist in the reason tree, form assets exist, shifts do not overlap.

use std::collections::HashSet;
use std::fmt;

use backplane_model::asset::validate_attribute_name;
use backplane_model::context::MAX_CONTEXT_VALUE_LEN;
use backplane_model::{AssetPath, Attribute, ContextField, DataType, Level, ScalarType, Unit};
use serde::Serialize;

use crate::models::{ModelEntry, parse_unit, read_pair, unknown_attribute};
use crate::plan::AssetSpec;
use crate::reader::{Item, KeyRef, Table, suggest, with_article};

/// Everything the production sections configure. The default configures nothing: no
/// calendar, no reasons, no machine tracked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductionSpec {
    pub calendar: Option<CalendarSpec>,
    /// The reason tree, flattened: parents before children, in configuration order.
    pub reasons: Vec<ReasonSpec>,
    /// One entry per model with a `production` section.
    pub models: Vec<ModelProduction>,
    pub forms: Vec<FormSpec>,
    pub context_rules: Vec<ContextRuleSpec>,
}

impl ProductionSpec {
    pub fn is_empty(&self) -> bool {
        *self == ProductionSpec::default()
    }

    pub fn model(&self, name: &str) -> Option<&ModelProduction> {
        self.models.iter().find(|m| m.model == name)
    }

    pub fn reason(&self, code: &str) -> Option<&ReasonSpec> {
        self.reasons.iter().find(|r| r.code == code)
    }

    pub fn form(&self, name: &str) -> Option<&FormSpec> {
        self.forms.iter().find(|f| f.name == name)
    }
}

// ── Calendar ──────────────────────────────────────────────────────────────────────────

/// `[calendar]`: shifts and daily planned stops, in local wall-clock time.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarSpec {
    /// Local time minus UTC, in minutes (`+01:00` is 60). Fixed: daylight saving time is
    /// not followed.
    pub utc_offset_minutes: i32,
    /// Never overlapping.
    pub shifts: Vec<Window>,
    /// May overlap each other and the shifts.
    pub planned_stops: Vec<Window>,
}

/// A recurring stretch of local time: a shift or a planned stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    /// Minutes after local midnight, 0 ..= 1439.
    pub start_minute: u16,
    /// Minutes after local midnight, 0 ..= 1440. At or before `start_minute`, the window
    /// ends the next day; equal to it, the window lasts 24 hours.
    pub end_minute: u16,
    /// The days on which the window starts.
    pub days: Days,
}

impl Window {
    /// Length in minutes, 1 ..= 1440.
    pub fn length_minutes(&self) -> u32 {
        let (start, end) = (u32::from(self.start_minute), u32::from(self.end_minute));
        if end > start {
            end - start
        } else {
            end + 1440 - start
        }
    }
}

/// A set of weekdays; bit 0 is Monday, bit 6 Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub u8);

impl Days {
    pub const ALL: Days = Days(0x7f);
    pub const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    /// `weekday` counts from Monday = 0.
    pub fn contains(self, weekday: u32) -> bool {
        weekday < 7 && self.0 & (1 << weekday) != 0
    }
}

// ── Reasons ───────────────────────────────────────────────────────────────────────────

/// One node of the downtime reason tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonSpec {
    /// The path of keys from the top of the tree, e.g. `mechanical/jam`.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A downtime with this reason is planned (inherited from the parent unless set).
    pub planned: bool,
}

// ── Per-model production ──────────────────────────────────────────────────────────────

/// `[models.NAME.production]`: how states and counts derive from a model's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProduction {
    pub model: String,
    pub state: Option<StateSpec>,
    pub counts: Option<CountsSpec>,
    /// Used when no running work order gives one.
    pub ideal_rate: Option<Rate>,
    pub reason_codes: Option<ReasonCodesSpec>,
}

/// The state sets a model's states come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateModel {
    /// The 17 states of PackML (ISA-TR88.00.02); `execute` is running.
    Packml,
    /// A short set for machines without a PackML state machine; `running` is running.
    Reduced,
}

const PACKML_STATES: [&str; 17] = [
    "stopped",
    "starting",
    "idle",
    "suspended",
    "execute",
    "stopping",
    "aborting",
    "aborted",
    "holding",
    "held",
    "unholding",
    "suspending",
    "unsuspending",
    "resetting",
    "completing",
    "complete",
    "clearing",
];

const REDUCED_STATES: [&str; 7] = [
    "running",
    "idle",
    "starved",
    "blocked",
    "setup",
    "down",
    "planned_stop",
];

impl StateModel {
    pub fn name(self) -> &'static str {
        match self {
            StateModel::Packml => "packml",
            StateModel::Reduced => "reduced",
        }
    }

    pub fn parse(text: &str) -> Option<StateModel> {
        [StateModel::Packml, StateModel::Reduced]
            .into_iter()
            .find(|m| m.name() == text)
    }

    /// Every state of the set.
    pub fn states(self) -> &'static [&'static str] {
        match self {
            StateModel::Packml => &PACKML_STATES,
            StateModel::Reduced => &REDUCED_STATES,
        }
    }

    /// The one state in which the machine produces (OEE run time).
    pub fn running(self) -> &'static str {
        match self {
            StateModel::Packml => "execute",
            StateModel::Reduced => "running",
        }
    }

    /// The states counted as planned stops unless `planned` says otherwise.
    pub fn default_planned(self) -> &'static [&'static str] {
        match self {
            StateModel::Packml => &[],
            StateModel::Reduced => &["planned_stop"],
        }
    }
}

impl fmt::Display for StateModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A raw value as written in a `map`: a label, an integer code or a boolean.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RawKey {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl fmt::Display for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawKey::Text(s) => f.write_str(s),
            RawKey::Int(i) => write!(f, "{i}"),
            RawKey::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `state = { attribute, model, map, default, planned }`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSpec {
    pub attribute: String,
    pub model: StateModel,
    /// Raw value → state. Empty for a string attribute whose values are state names.
    pub map: Vec<(RawKey, String)>,
    /// The state of any value not in `map`; without it such values leave the state as it is.
    pub default: Option<String>,
    /// States counted as planned stops.
    pub planned: Vec<String>,
}

/// `counts = { good, reject, total }`: at most two of the three.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CountsSpec {
    pub good: Option<CounterSpec>,
    pub reject: Option<CounterSpec>,
    pub total: Option<CounterSpec>,
}

/// One raw counter.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSpec {
    pub attribute: String,
    /// The counter wraps to 0 at this value (65536 for 16 bits, 4294967296 for 32).
    pub rollover: Option<u64>,
}

/// `reason_codes = { attribute, map }`: reason codes a machine reports itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonCodesSpec {
    pub attribute: String,
    /// Raw code → reason code of the reason tree.
    pub map: Vec<(RawKey, String)>,
}

/// A production rate, e.g. `600/min`. Kept per minute, the unit plants quote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_minute: f64,
}

impl Rate {
    /// From pieces per minute; `None` unless finite and above zero.
    pub fn per_minute(per_minute: f64) -> Option<Rate> {
        (per_minute.is_finite() && per_minute > 0.0).then_some(Rate { per_minute })
    }

    /// From pieces per second; `None` unless finite and above zero.
    pub fn per_second(per_second: f64) -> Option<Rate> {
        Rate::per_minute(per_second * 60.0)
    }

    pub fn as_per_minute(self) -> f64 {
        self.per_minute
    }

    pub fn as_per_second(self) -> f64 {
        self.per_minute / 60.0
    }

    /// `"600/min"`, `"10/s"`, `"36000/h"`, optionally naming the item: `"600 bottle/min"`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let Some((amount, per)) = text.trim().rsplit_once('/') else {
            return Err(format!("`{text}` is not a rate"));
        };
        let mut words = amount.split_whitespace();
        let number = words.next().unwrap_or("");
        let item = words.next();
        if words.next().is_some() || item.is_some_and(|w| !w.bytes().all(|c| c.is_ascii_lowercase())) {
            return Err(format!("`{text}` is not a rate"));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{number}` is not a number"))?;
        let per_minute = match per.trim() {
            "s" => value * 60.0,
            "min" => value,
            "h" => value / 60.0,
            other => return Err(format!("unknown time unit `{other}` (use s, min or h)")),
        };
        Rate::per_minute(per_minute).ok_or_else(|| "a rate must be above zero".to_owned())
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/min", self.as_per_minute())
    }
}

// ── Forms ─────────────────────────────────────────────────────────────────────────────

/// `[forms.NAME]`: what operators enter by hand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where it may be submitted: these assets and everything below them. Empty: anywhere.
    pub assets: Vec<AssetPath>,
    /// In configuration order.
    pub fields: Vec<FieldSpec>,
}

impl FormSpec {
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// What a form shows next to the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
    /// `[min, max]`, both included; `float` and `int` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    pub required: bool,
    /// The allowed values of a `choice` field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// The type of a form field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Float,
    Int,
    Bool,
    String,
    Choice,
}

impl FieldType {
    const ALL: [FieldType; 5] = [
        FieldType::Float,
        FieldType::Int,
        FieldType::Bool,
        FieldType::String,
        FieldType::Choice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
            FieldType::String => "string",
            FieldType::Choice => "choice",
        }
    }

    fn parse(text: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.name() == text)
    }

    fn is_numeric(self) -> bool {
        matches!(self, FieldType::Float | FieldType::Int)
    }
}

// ── Context rules ─────────────────────────────────────────────────────────────────────

/// `[[context_rules]]`: a context field derived from an attribute. Each new value of the
/// attribute sets the field (closing the running batch or lot and opening the next).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRuleSpec {
    pub asset: AssetPath,
    pub attribute: String,
    pub field: ContextField,
    /// `{value}` is replaced by the attribute's value, e.g. `B{value}`.
    pub format: Option<String>,
    /// When set, each value also opens a lot of this material (and completes the last).
    pub material: Option<String>,
    /// Assets whose rules open lots: their current lot is consumed by this rule's lot.
    pub consumes: Vec<AssetPath>,
}

impl ContextRuleSpec {
    /// The context value for a raw value rendered as text.
    pub fn render(&self, value: &str) -> String {
        match &self.format {
            Some(format) => format.replace("{value}", value),
            None => value.to_owned(),
        }
    }
}

// ── Reading ───────────────────────────────────────────────────────────────────────────

/// The production sections of every file, collected by the loader.
#[derive(Debug, Default)]
pub(crate) struct Sections<'a> {
    calendars: Vec<Item<'a>>,
    reasons: Vec<(KeyRef<'a>, Item<'a>)>,
    forms: Vec<(KeyRef<'a>, Item<'a>)>,
    rules: Vec<Table<'a>>,
    /// `[models.NAME.production]`, by model name (filled by the model reader).
    pub models: Vec<(String, Item<'a>)>,
}

impl<'a> Sections<'a> {
    /// Takes the production sections out of one file's top-level table.
    pub(crate) fn take(&mut self, root: &mut Table<'a>) {
        if let Some(item) = root.optional_item("calendar") {
            self.calendars.push(item);
        }
        if let Some(mut t) = root.optional_table("downtime_reasons") {
            self.reasons.extend(t.take_remaining());
            t.finish();
        }
        if let Some(mut t) = root.optional_table("forms") {
            self.forms.extend(t.take_remaining());
            t.finish();
        }
        if let Some(item) = root.optional_item("context_rules") {
            match item.as_array() {
                Some(items) => self.rules.extend(items.iter().filter_map(Item::expect_table)),
                None => item.error(
                    format!(
                        "expected an array of tables, found {}",
                        with_article(item.type_name())
                    ),
                    Some("write each rule as `[[context_rules]]`, with two brackets".to_owned()),
                ),
            }
        }
    }
}

/// What the cross-checks look names up in.
struct Env<'e> {
    models: &'e [ModelEntry],
    /// `None` when the asset tree has errors (reported elsewhere): asset checks are skipped.
    assets: Option<&'e [AssetSpec]>,
    site: Option<AssetPath>,
}

impl Env<'_> {
    fn rel(&self, path: &AssetPath) -> String {
        match &self.site {
            Some(site) => path
                .as_str()
                .strip_prefix(site.as_str())
                .map_or_else(|| path.to_string(), |r| r.trim_start_matches('/').to_owned()),
            None => path.to_string(),
        }
    }

    /// Resolves a path written below the site, reporting one that is not declared. `None`
    /// also when assets cannot be checked.
    fn asset(&self, item: &Item<'_>) -> Option<&AssetSpec> {
        let text = item.expect_str()?;
        let assets = self.assets?;
        let site = self.site.as_ref()?;
        let full = format!("{site}/{text}");
        if let Some(asset) = assets.iter().find(|a| a.path.as_str() == full) {
            return Some(asset);
        }
        let declared: Vec<String> = assets
            .iter()
            .filter(|a| a.level.rank() > Level::Site.rank())
            .map(|a| self.rel(&a.path))
            .collect();
        let hint = suggest(text, declared.iter().map(String::as_str), "declared assets")
            .map(|h| format!("{h}; asset paths here are written below the site, like in [[assets]]"));
        item.error(format!("unknown asset `{text}`"), hint);
        None
    }
}

pub(crate) fn read(
    sections: Sections<'_>,
    models: &[ModelEntry],
    assets: Option<&[AssetSpec]>,
) -> ProductionSpec {
    let site = assets.and_then(|a| a.iter().find(|a| a.level == Level::Site).map(|a| a.path.clone()));
    let env = Env { models, assets, site };
    let calendar = read_calendar(sections.calendars);
    let reasons = read_reasons(sections.reasons);
    let models = sections
        .models
        .into_iter()
        .filter_map(|(name, item)| {
            let entry = env.models.iter().find(|m| m.model.name == name)?;
            read_model_production(entry, &item, &reasons)
        })
        .collect();
    let forms = read_forms(sections.forms, &env);
    let context_rules = read_rules(sections.rules, &env);
    ProductionSpec {
        calendar,
        reasons,
        models,
        forms,
        context_rules,
    }
}

fn at(item: &Item<'_>) -> String {
    let l = item.location();
    format!("{}:{}:{}", l.file.display(), l.line, l.column)
}

/// The same rules as context values set by the API: ids, not text blocks.
fn check_context_value(item: &Item<'_>, text: &str, what: &str) -> bool {
    if text.trim().is_empty() || text.chars().any(char::is_control) {
        item.error(
            format!("{what} must be non-empty and contain no control characters"),
            None,
        );
        false
    } else if text.chars().count() > MAX_CONTEXT_VALUE_LEN {
        item.error(
            format!("{what} is longer than {MAX_CONTEXT_VALUE_LEN} characters"),
            None,
        );
        false
    } else {
        true
    }
}

// ── [calendar] ────────────────────────────────────────────────────────────────────────

const TIME_HINT: &str = "write local wall-clock time as \"HH:MM\", e.g. \"06:00\" or \"22:30\"";

fn read_calendar(items: Vec<Item<'_>>) -> Option<CalendarSpec> {
    let mut items = items.into_iter();
    let first = items.next()?;
    for again in items {
        again.error(
            "`calendar` is defined twice",
            Some(format!("first defined at {}; keep one", at(&first))),
        );
    }
    let mut t = first.expect_table()?;
    let offset = t.required_item("utc_offset").and_then(|item| {
        let text = item.expect_str()?;
        let parsed = parse_offset(text);
        if parsed.is_none() {
            item.error(
                format!("invalid UTC offset `{text}`"),
                Some("write the local time's offset from UTC as \"+01:00\", \"-05:00\" or \"Z\"".to_owned()),
            );
        }
        parsed
    });
    let shifts = t
        .optional_item("shifts")
        .map(|item| read_windows(&item, "shift"))
        .unwrap_or_default();
    let planned_stops = t
        .optional_item("planned_stops")
        .map(|item| read_windows(&item, "planned stop"))
        .unwrap_or_default();
    check_overlaps(&shifts);
    t.finish();
    Some(CalendarSpec {
        utc_offset_minutes: offset?,
        shifts: shifts.into_iter().map(|(w, _)| w).collect(),
        planned_stops: planned_stops.into_iter().map(|(w, _)| w).collect(),
    })
}

/// `Z`, `+HH:MM` or `-HH:MM` (at most 14 hours) to minutes.
fn parse_offset(text: &str) -> Option<i32> {
    if text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60 && h * 60 + m <= 14 * 60).then_some(sign * (h * 60 + m))
}

/// `HH:MM` to minutes after midnight; `24:00` only when `end`.
fn parse_time_of_day(text: &str, end: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn read_windows<'a>(item: &Item<'a>, what: &str) -> Vec<(Window, Item<'a>)> {
    let Some(items) = item.expect_array() else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|entry| {
            let window = read_window(&entry, what)?;
            Some((window, entry))
        })
        .collect()
}

fn read_window(item: &Item<'_>, what: &str) -> Option<Window> {
    let mut t = item.expect_table()?;
    let name = t.required_item("name").and_then(|item| {
        let text = item.expect_str()?;
        check_context_value(&item, text, &format!("a {what} name")).then(|| text.to_owned())
    });
    let mut time = |key: &str, end: bool| {
        let item = t.required_item(key)?;
        let text = item.expect_str()?;
        let parsed = parse_time_of_day(text, end);
        if parsed.is_none() {
            let hint = if text == "24:00" {
                "24:00 is only allowed as an end; a window starting at midnight starts at \"00:00\""
            } else {
                TIME_HINT
            };
            item.error(format!("invalid time of day `{text}`"), Some(hint.to_owned()));
        }
        parsed
    };
    let start = time("start", false);
    let end = time("end", true);
    let days = match t.optional_item("days") {
        None => Some(Days::ALL),
        Some(item) => read_days(&item),
    };
    t.finish();
    Some(Window {
        name: name?,
        start_minute: start?,
        end_minute: end?,
        days: days?,
    })
}

fn read_days(item: &Item<'_>) -> Option<Days> {
    let entries = item.expect_array()?;
    if entries.is_empty() {
        item.error(
            "`days` is empty",
            Some(
                "list the days it starts on, e.g. [\"mon\", \"tue\"], or leave `days` out for every day"
                    .to_owned(),
            ),
        );
        return None;
    }
    let mut days = 0u8;
    let mut ok = true;
    for entry in entries {
        let Some(text) = entry.expect_str() else {
            ok = false;
            continue;
        };
        match Days::NAMES.iter().position(|d| *d == text) {
            Some(i) if days & (1 << i) != 0 => {
                entry.error(format!("day `{text}` is listed twice"), None);
                ok = false;
            }
            Some(i) => days |= 1 << i,
            None => {
                entry.error(
                    format!("unknown day `{text}`"),
                    suggest(text, Days::NAMES, "days"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(Days(days))
}

const WEEK_MINUTES: usize = 7 * 1440;

/// Shifts must not overlap: each minute of the week belongs to at most one shift.
fn check_overlaps(shifts: &[(Window, Item<'_>)]) {
    let mut owner: Vec<Option<usize>> = vec![None; WEEK_MINUTES];
    for (i, (shift, item)) in shifts.iter().enumerate() {
        let mut clash: Option<(usize, usize)> = None;
        for day in 0..7usize {
            if !shift.days.contains(day as u32) {
                continue;
            }
            for m in 0..shift.length_minutes() as usize {
                let slot = (day * 1440 + usize::from(shift.start_minute) + m) % WEEK_MINUTES;
                match owner[slot] {
                    Some(j) if clash.is_none() => clash = Some((j, slot)),
                    Some(_) => {}
                    None => owner[slot] = Some(i),
                }
            }
        }
        if let Some((j, slot)) = clash {
            let other = &shifts[j].0;
            item.error(
                format!(
                    "shift `{}` overlaps shift `{}` (both on {} at {:02}:{:02})",
                    shift.name,
                    other.name,
                    Days::NAMES[slot / 1440],
                    (slot % 1440) / 60,
                    slot % 60
                ),
                Some(
                    "shifts must not overlap: end one where the next starts, or give them different `days`"
                        .to_owned(),
                ),
            );
        }
    }
}

// ── [downtime_reasons] ────────────────────────────────────────────────────────────────

fn validate_reason_key(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 64
        && bytes
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && bytes
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

fn read_reasons(entries: Vec<(KeyRef<'_>, Item<'_>)>) -> Vec<ReasonSpec> {
    let mut out = Vec::new();
    let mut first_seen: Vec<(String, String)> = Vec::new();
    for (key, item) in entries {
        if let Some((_, first)) = first_seen.iter().find(|(n, _)| n == key.name) {
            key.error(
                format!("reason `{}` is defined twice", key.name),
                Some(format!("first defined at {first}; reason codes must be unique")),
            );
            continue;
        }
        first_seen.push((key.name.to_owned(), at(&item)));
        read_reason(&key, &item, "", false, &mut out);
    }
    out
}

fn read_reason(key: &KeyRef<'_>, item: &Item<'_>, parent: &str, inherited: bool, out: &mut Vec<ReasonSpec>) {
    if !validate_reason_key(key.name) {
        key.error(
            format!("`{}` is not a reason code", key.name),
            Some("use lower-case letters, digits, `_` and `-`, e.g. `jam` or `no-material`".to_owned()),
        );
        return;
    }
    let code = if parent.is_empty() {
        key.name.to_owned()
    } else {
        format!("{parent}/{}", key.name)
    };
    if let Some(text) = item.as_str() {
        out.push(ReasonSpec {
            code,
            description: Some(text.to_owned()),
            planned: inherited,
        });
        return;
    }
    let Some(mut t) = item.as_table() else {
        item.error(
            format!(
                "expected a description or a table, found {}",
                with_article(item.type_name())
            ),
            Some(
                "write `jam = \"Bottle jam\"` or `jam = { description = \"Bottle jam\", planned = false }`"
                    .to_owned(),
            ),
        );
        return;
    };
    let description = t.optional_str("description").map(str::to_owned);
    let planned = t.optional_bool("planned").unwrap_or(inherited);
    out.push(ReasonSpec {
        code: code.clone(),
        description,
        planned,
    });
    if let Some(mut children) = t.optional_table("reasons") {
        for (child_key, child) in children.take_remaining() {
            read_reason(&child_key, &child, &code, planned, out);
        }
        children.finish();
    }
    t.finish();
}

/// Reports an unknown reason code at `item`.
fn check_reason(item: &Item<'_>, code: &str, reasons: &[ReasonSpec]) -> bool {
    if reasons.iter().any(|r| r.code == code) {
        return true;
    }
    let hint = if reasons.is_empty() {
        Some("no reasons are defined; add them under [downtime_reasons]".to_owned())
    } else {
        suggest(code, reasons.iter().map(|r| r.code.as_str()), "reason codes")
    };
    item.error(format!("unknown reason code `{code}`"), hint);
    false
}

// ── [models.NAME.production] ──────────────────────────────────────────────────────────

fn read_model_production(
    entry: &ModelEntry,
    item: &Item<'_>,
    reasons: &[ReasonSpec],
) -> Option<ModelProduction> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let model = &entry.model;
    let attribute = Attributes(entry);
    let state = t.optional_item("state").and_then(|item| {
        let spec = read_state(&item, attribute);
        ok &= spec.is_some();
        spec
    });
    let counts = t.optional_item("counts").and_then(|item| {
        let spec = read_counts(&item, attribute);
        ok &= spec.is_some();
        spec
    });
    let ideal_rate = t.optional_item("ideal_rate").and_then(|item| {
        let text = item.expect_str()?;
        match Rate::parse(text) {
            Ok(rate) => Some(rate),
            Err(reason) => {
                item.error(
                    format!("invalid ideal rate `{text}`: {reason}"),
                    Some("write pieces per time: \"600/min\", \"10/s\" or \"36000/h\"".to_owned()),
                );
                ok = false;
                None
            }
        }
    });
    let reason_codes = t.optional_item("reason_codes").and_then(|item| {
        let spec = read_reason_codes(&item, attribute, reasons);
        ok &= spec.is_some();
        spec
    });
    if ideal_rate.is_some() && counts.is_none() && t.has("ideal_rate") && !t.has("counts") {
        t.error(
            "ideal_rate",
            "`ideal_rate` without `counts`: performance needs counted pieces",
            Some("add `counts = { good = \"...\" }`, or remove `ideal_rate`".to_owned()),
        );
        ok = false;
    }
    t.finish();
    ok.then(|| ModelProduction {
        model: model.name.clone(),
        state,
        counts,
        ideal_rate,
        reason_codes,
    })
}

/// Looks up the attributes a production section names, reporting unknown ones and ones
/// of the wrong type.
#[derive(Clone, Copy)]
struct Attributes<'m>(&'m ModelEntry);

impl<'m> Attributes<'m> {
    fn get(
        self,
        item: &Item<'_>,
        purpose: &str,
        accepts: fn(DataType) -> bool,
        wanted: &str,
    ) -> Option<&'m Attribute> {
        let model = &self.0.model;
        let name = item.expect_str()?;
        if self.0.broken.contains(name) {
            return None;
        }
        let Some(attribute) = model.attribute(name) else {
            let (message, hint) = unknown_attribute(name, model);
            item.error(message, hint);
            return None;
        };
        if !accepts(attribute.data_type) {
            item.error(
                format!(
                    "attribute `{name}` is {}, but {purpose} needs {wanted}",
                    attribute.data_type
                ),
                None,
            );
            return None;
        }
        Some(attribute)
    }
}

fn is_code_type(t: DataType) -> bool {
    matches!(
        t,
        DataType::Scalar(ScalarType::String | ScalarType::Int | ScalarType::UInt | ScalarType::Bool)
    )
}

/// A map key read as a raw value of `attribute`'s type.
fn raw_key(key: &KeyRef<'_>, attribute: &Attribute) -> Option<RawKey> {
    let text = key.name;
    let parsed = match attribute.data_type.scalar() {
        ScalarType::String => Some(RawKey::Text(text.to_owned())),
        ScalarType::Int => text.trim().parse::<i64>().ok().map(RawKey::Int),
        ScalarType::UInt => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|i| *i >= 0)
            .map(RawKey::Int),
        ScalarType::Bool => match text {
            "true" => Some(RawKey::Bool(true)),
            "false" => Some(RawKey::Bool(false)),
            _ => None,
        },
        _ => None,
    };
    if parsed.is_none() {
        let wanted = match attribute.data_type.scalar() {
            ScalarType::Bool => "`true` or `false`",
            ScalarType::UInt => "a non-negative integer code",
            _ => "an integer code",
        };
        key.error(
            format!(
                "map key `{text}` is not {wanted} (attribute `{}` is {})",
                attribute.name, attribute.data_type
            ),
            None,
        );
        return None;
    }
    if let (Some(RawKey::Text(label)), Some(allowed)) = (&parsed, &attribute.allowed)
        && !allowed.iter().any(|a| a == label)
    {
        key.error(
            format!("`{label}` is not a label of attribute `{}`", attribute.name),
            suggest(label, allowed.iter().map(String::as_str), "its labels"),
        );
        return None;
    }
    parsed
}

fn state_name(item: &Item<'_>, model: StateModel) -> Option<String> {
    let text = item.expect_str()?;
    if model.states().contains(&text) {
        return Some(text.to_owned());
    }
    let other = match model {
        StateModel::Packml => StateModel::Reduced,
        StateModel::Reduced => StateModel::Packml,
    };
    let hint = if other.states().contains(&text) {
        Some(format!(
            "`{text}` is a state of the {other} model; set `model = \"{other}\"` or use a {model} state"
        ))
    } else {
        suggest(text, model.states().iter().copied(), &format!("{model} states"))
    };
    item.error(format!("unknown {model} state `{text}`"), hint);
    None
}

fn read_state(item: &Item<'_>, attribute: Attributes<'_>) -> Option<StateSpec> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let attr = t
        .required_item("attribute")
        .and_then(|item| attribute.get(&item, "a state", is_code_type, "a string, int, uint or bool"));
    let model = match t.optional_item("model") {
        None => StateModel::Packml,
        Some(item) => match item.expect_str() {
            Some(text) => StateModel::parse(text).unwrap_or_else(|| {
                item.error(
                    format!("unknown state model `{text}`"),
                    Some("state models: packml (the default), reduced".to_owned()),
                );
                ok = false;
                StateModel::Packml
            }),
            None => {
                ok = false;
                StateModel::Packml
            }
        },
    };
    let mut map = Vec::new();
    let map_item = t.optional_item("map");
    if let Some(item) = &map_item
        && let Some(mut m) = item.expect_table()
    {
        for (key, value) in m.take_remaining() {
            let state = state_name(&value, model);
            let raw = attr.and_then(|a| raw_key(&key, a));
            match (raw, state) {
                (Some(raw), Some(state)) => map.push((raw, state)),
                (None, _) if attr.is_none() => {}
                _ => ok = false,
            }
        }
        m.finish();
    } else if map_item.is_some() {
        ok = false;
    }
    let default = t.optional_item("default").and_then(|item| {
        let state = state_name(&item, model);
        ok &= state.is_some();
        state
    });
    let planned = match t.optional_item("planned") {
        None => model.default_planned().iter().map(|s| (*s).to_owned()).collect(),
        Some(item) => {
            let mut planned = Vec::new();
            for entry in item.expect_array().unwrap_or_default() {
                match state_name(&entry, model) {
                    Some(state) if state == model.running() => {
                        entry.error(
                            format!("`{state}` is the running state; it cannot be a planned stop"),
                            None,
                        );
                        ok = false;
                    }
                    Some(state) => planned.push(state),
                    None => ok = false,
                }
            }
            planned
        }
    };
    // A value with no state would leave the state stale: every known label must map.
    if let Some(attr) = attr {
        let is_string = attr.data_type == DataType::Scalar(ScalarType::String);
        if map_item.is_none() && !is_string {
            t.error(
                "map",
                format!(
                    "attribute `{}` is {}: `map` must say which code is which state",
                    attr.name, attr.data_type
                ),
                Some(format!(
                    "e.g. `map = {{ 0 = \"stopped\", 1 = \"idle\", 2 = \"{}\" }}`",
                    model.running()
                )),
            );
            ok = false;
        }
        if let (Some(labels), None, true) = (&attr.allowed, &default, ok) {
            let unmapped: Vec<&str> = labels
                .iter()
                .map(String::as_str)
                .filter(|label| {
                    if map_item.is_some() {
                        !map.iter().any(|(k, _)| *k == RawKey::Text((*label).to_owned()))
                    } else {
                        !model.states().contains(label)
                    }
                })
                .collect();
            if !unmapped.is_empty() {
                let message = if map_item.is_some() {
                    format!(
                        "labels of attribute `{}` with no state: {}",
                        attr.name,
                        unmapped.join(", ")
                    )
                } else {
                    format!(
                        "labels of attribute `{}` that are not {model} states: {}",
                        attr.name,
                        unmapped.join(", ")
                    )
                };
                t.error(
                    "map",
                    message,
                    Some("map every label to a state, or set `default` for the rest".to_owned()),
                );
                ok = false;
            }
        }
    }
    t.finish();
    let attr = attr?;
    ok.then(|| StateSpec {
        attribute: attr.name.clone(),
        model,
        map,
        default,
        planned,
    })
}

fn read_counts(item: &Item<'_>, attribute: Attributes<'_>) -> Option<CountsSpec> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let mut spec = CountsSpec::default();
    for role in ["good", "reject", "total"] {
        let Some(item) = t.optional_item(role) else {
            continue;
        };
        let counter = read_counter(&item, attribute);
        ok &= counter.is_some();
        match role {
            "good" => spec.good = counter,
            "reject" => spec.reject = counter,
            _ => spec.total = counter,
        }
    }
    let given = ["good", "reject", "total"].iter().filter(|k| t.has(k)).count();
    if given == 0 {
        item.error(
            "`counts` names no counter",
            Some("set `good` and `reject`, or `total` and `reject`, e.g. `counts = { good = \"good_count\", reject = \"reject_count\" }`".to_owned()),
        );
        ok = false;
    } else if given == 3 {
        t.error(
            "total",
            "`counts` sets `good`, `reject` and `total`: two of them determine the third",
            Some("remove one; total = good + reject".to_owned()),
        );
        ok = false;
    } else if given == 1 && t.has("reject") {
        t.error(
            "reject",
            "`reject` alone gives no production count",
            Some("add `good` or `total`".to_owned()),
        );
        ok = false;
    }
    t.finish();
    ok.then_some(spec)
}

fn read_counter(item: &Item<'_>, attribute: Attributes<'_>) -> Option<CounterSpec> {
    let numeric = |t: DataType| t.is_numeric_scalar();
    if item.as_str().is_some() {
        let attr = attribute.get(item, "a counter", numeric, "a number")?;
        return Some(CounterSpec {
            attribute: attr.name.clone(),
            rollover: None,
        });
    }
    let Some(mut t) = item.as_table() else {
        item.error(
            format!(
                "expected an attribute name or a table, found {}",
                with_article(item.type_name())
            ),
            Some(
                "write `good = \"good_count\"` or `good = { attribute = \"good_count\", rollover = 65536 }`"
                    .to_owned(),
            ),
        );
        return None;
    };
    let attr = t
        .required_item("attribute")
        .and_then(|item| attribute.get(&item, "a counter", numeric, "a number"));
    let mut ok = true;
    let rollover = t.optional_item("rollover").and_then(|item| {
        let n = item.expect_u64();
        match n {
            Some(n) if n >= 2 => Some(n),
            Some(n) => {
                item.error(
                    format!("`rollover` must be at least 2, found {n}"),
                    Some("the value at which the counter wraps to 0: 65536 for 16 bits, 4294967296 for 32 bits".to_owned()),
                );
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        }
    });
    t.finish();
    let attr = attr?;
    ok.then(|| CounterSpec {
        attribute: attr.name.clone(),
        rollover,
    })
}

fn read_reason_codes(
    item: &Item<'_>,
    attribute: Attributes<'_>,
    reasons: &[ReasonSpec],
) -> Option<ReasonCodesSpec> {
    let mut t = item.expect_table()?;
    let attr = t.required_item("attribute").and_then(|item| {
        attribute.get(
            &item,
            "reason codes",
            |d| {
                matches!(
                    d,
                    DataType::Scalar(ScalarType::String | ScalarType::Int | ScalarType::UInt)
                )
            },
            "a string, int or uint",
        )
    });
    let mut ok = true;
    let mut map = Vec::new();
    if let Some(mut m) = t.required_table("map") {
        for (key, value) in m.take_remaining() {
            let reason = value
                .expect_str()
                .filter(|code| check_reason(&value, code, reasons));
            let raw = attr.and_then(|a| raw_key(&key, a));
            match (raw, reason) {
                (Some(raw), Some(reason)) => map.push((raw, reason.to_owned())),
                _ => ok = false,
            }
        }
        m.finish();
    } else {
        ok = false;
    }
    t.finish();
    let attr = attr?;
    ok.then(|| ReasonCodesSpec {
        attribute: attr.name.clone(),
        map,
    })
}

// ── [forms.NAME] ──────────────────────────────────────────────────────────────────────

fn read_forms(entries: Vec<(KeyRef<'_>, Item<'_>)>, env: &Env<'_>) -> Vec<FormSpec> {
    let mut forms: Vec<FormSpec> = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for (key, item) in entries {
        if let Some((_, first)) = seen.iter().find(|(n, _)| n == key.name) {
            key.error(
                format!("form `{}` is defined twice", key.name),
                Some(format!("first defined at {first}")),
            );
            continue;
        }
        seen.push((key.name.to_owned(), at(&item)));
        if let Err(e) = backplane_model::asset::validate_slug(key.name) {
            key.error(
                format!("invalid form name: {e}"),
                Some("form names are slugs, e.g. `milk-lab`: they appear in URLs".to_owned()),
            );
            continue;
        }
        if let Some(form) = read_form(key.name, &item, env) {
            forms.push(form);
        }
    }
    forms
}

fn read_form(name: &str, item: &Item<'_>, env: &Env<'_>) -> Option<FormSpec> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let description = t.optional_str("description").map(str::to_owned);
    let mut assets = Vec::new();
    if let Some(item) = t.optional_item("assets")
        && let Some(entries) = item.expect_array()
    {
        if entries.is_empty() {
            item.error(
                "`assets` is empty: the form could be submitted nowhere",
                Some("list where it may be submitted, or leave `assets` out to allow every asset".to_owned()),
            );
            ok = false;
        }
        for entry in entries {
            match env.asset(&entry) {
                Some(asset) => assets.push(asset.path.clone()),
                None => ok &= env.assets.is_none(),
            }
        }
    }
    let mut fields = Vec::new();
    if let Some(mut f) = t.required_table("fields") {
        let entries = f.take_remaining();
        if entries.is_empty() {
            t.error("fields", format!("form `{name}` has no fields"), None);
            ok = false;
        }
        for (key, item) in entries {
            match read_field(&key, &item) {
                Some(field) => fields.push(field),
                None => ok = false,
            }
        }
        f.finish();
    } else {
        ok = false;
    }
    t.finish();
    ok.then(|| FormSpec {
        name: name.to_owned(),
        description,
        assets,
        fields,
    })
}

const FIELD_TYPE_HINT: &str = "field types: float, int, bool, string, choice";

fn read_field(key: &KeyRef<'_>, item: &Item<'_>) -> Option<FieldSpec> {
    let mut ok = true;
    if let Err(e) = validate_attribute_name(key.name) {
        key.error(format!("invalid field name: {e}"), None);
        ok = false;
    }
    let mut t = item.expect_table()?;
    let field_type = t.required_item("type").and_then(|item| {
        let text = item.expect_str()?;
        let parsed = FieldType::parse(text);
        if parsed.is_none() {
            let hint = if DataType::parse(text).is_some() {
                format!("{FIELD_TYPE_HINT} (forms have no `{text}`)")
            } else {
                FIELD_TYPE_HINT.to_owned()
            };
            item.error(format!("unknown field type `{text}`"), Some(hint));
        }
        parsed
    });
    let type_name = field_type.map_or("", FieldType::name);
    let numeric = field_type.is_some_and(FieldType::is_numeric);
    let label = t.optional_str("label").map(str::to_owned);
    let description = t.optional_str("description").map(str::to_owned);
    let required = t.optional_bool("required").unwrap_or(false);
    let mut unit = None;
    if let Some(item) = t.optional_item("unit")
        && let Some(text) = item.expect_str()
    {
        match parse_unit(text) {
            Ok(u) => unit = Some(u),
            Err(hint) => {
                item.error(format!("unknown unit `{text}`"), hint);
                ok = false;
            }
        }
        if field_type.is_some() && !numeric {
            item.error(
                format!(
                    "a unit is only allowed on float and int fields, and `{}` is {type_name}",
                    key.name
                ),
                None,
            );
            ok = false;
        }
    }
    let mut range = None;
    if let Some(item) = t.optional_item("range") {
        range = read_pair(&item);
        match range {
            Some([min, max]) if min > max => {
                item.error(
                    format!("range minimum {min} is above its maximum {max}"),
                    Some("write `range = [min, max]` with min <= max".to_owned()),
                );
                ok = false;
            }
            Some(_) => {}
            None => ok = false,
        }
        if field_type.is_some() && !numeric {
            item.error(
                format!(
                    "a range is only allowed on float and int fields, and `{}` is {type_name}",
                    key.name
                ),
                None,
            );
            ok = false;
        }
    }
    let mut choices = Vec::new();
    let choices_item = t.optional_item("choices");
    if let Some(item) = &choices_item {
        if field_type.is_some() && field_type != Some(FieldType::Choice) {
            item.error(
                format!(
                    "`choices` is only allowed on choice fields, and `{}` is {type_name}",
                    key.name
                ),
                Some("set `type = \"choice\"`".to_owned()),
            );
            ok = false;
        }
        let entries = item.expect_array().unwrap_or_default();
        for entry in &entries {
            match entry.expect_str() {
                Some(text) if choices.iter().any(|c| c == text) => {
                    entry.error(format!("choice `{text}` is listed twice"), None);
                    ok = false;
                }
                Some(text) => choices.push(text.to_owned()),
                None => ok = false,
            }
        }
        if entries.is_empty() && field_type == Some(FieldType::Choice) {
            item.error("`choices` is empty", None);
            ok = false;
        }
    } else if field_type == Some(FieldType::Choice) {
        t.error(
            "choices",
            format!("choice field `{}` needs `choices`", key.name),
            Some("e.g. `choices = [\"pass\", \"fail\"]`".to_owned()),
        );
        ok = false;
    }
    t.finish();
    let field_type = field_type?;
    ok.then(|| FieldSpec {
        name: key.name.to_owned(),
        field_type,
        label,
        description,
        unit,
        range,
        required,
        choices,
    })
}

// ── [[context_rules]] ─────────────────────────────────────────────────────────────────

/// A rule as read, with where it came from for the checks across rules.
struct ReadRule<'a> {
    spec: Option<ContextRuleSpec>,
    asset: Option<AssetPath>,
    field: Option<ContextField>,
    material: bool,
    consumes: Vec<(Item<'a>, Option<AssetPath>)>,
    item: Item<'a>,
}

fn read_rules(tables: Vec<Table<'_>>, env: &Env<'_>) -> Vec<ContextRuleSpec> {
    let read: Vec<ReadRule<'_>> = tables.into_iter().filter_map(|t| read_rule(t, env)).collect();
    let mut seen: HashSet<(AssetPath, ContextField)> = HashSet::new();
    let mut out = Vec::new();
    for (i, rule) in read.iter().enumerate() {
        let mut ok = rule.spec.is_some();
        if let (Some(asset), Some(field)) = (&rule.asset, rule.field)
            && !seen.insert((asset.clone(), field))
        {
            rule.item.error(
                format!("a second context rule sets `{field}` on `{}`", env.rel(asset)),
                Some("one rule per asset and field: each new value would fight the other rule's".to_owned()),
            );
            ok = false;
        }
        for (item, target) in &rule.consumes {
            let Some(target) = target else { continue };
            if Some(target) == rule.asset.as_ref() {
                item.error("a rule's lots cannot consume its own lots", None);
                ok = false;
            } else if !read
                .iter()
                .enumerate()
                .any(|(j, r)| j != i && r.material && r.asset.as_ref() == Some(target))
            {
                item.error(
                    format!("no context rule opens lots on `{}`", env.rel(target)),
                    Some("`consumes` names assets whose [[context_rules]] entry has a `material`".to_owned()),
                );
                ok = false;
            }
        }
        if ok && let Some(spec) = &rule.spec {
            out.push(spec.clone());
        }
    }
    out
}

fn read_rule<'a>(mut t: Table<'a>, env: &Env<'_>) -> Option<ReadRule<'a>> {
    let item = t.required_item("asset")?;
    let mut ok = true;
    let asset = env.asset(&item);
    ok &= asset.is_some();
    let attribute = t.required_item("attribute").and_then(|attr_item| {
        let name = attr_item.expect_str()?;
        let asset = asset?;
        let Some(model) = &asset.model else {
            attr_item.error(
                format!("asset `{}` has no model, so no attributes", env.rel(&asset.path)),
                None,
            );
            return None;
        };
        let Some(attribute) = model.attribute(name) else {
            let (message, hint) = unknown_attribute(name, model);
            attr_item.error(message, hint);
            return None;
        };
        if matches!(attribute.data_type, DataType::Array(_)) {
            attr_item.error(
                format!(
                    "attribute `{name}` is {}: a context value comes from one value",
                    attribute.data_type
                ),
                None,
            );
            return None;
        }
        Some(name.to_owned())
    });
    ok &= attribute.is_some();
    let field = t.required_item("field").and_then(|item| {
        let text = item.expect_str()?;
        let field = ContextField::parse(text);
        if field.is_none() {
            item.error(
                format!("unknown context field `{text}`"),
                suggest(text, ContextField::ALL.iter().map(|f| f.name()), "context fields"),
            );
        }
        field
    });
    ok &= field.is_some();
    let format = t.optional_item("format").and_then(|item| {
        let text = item.expect_str()?;
        let braces = text.matches(['{', '}']).count();
        if text.matches("{value}").count() != 1 || braces != 2 {
            item.error(
                format!("invalid format `{text}`"),
                Some("write the text with one `{value}` where the value goes, e.g. \"B{value}\"".to_owned()),
            );
            ok = false;
            return None;
        }
        Some(text.to_owned())
    });
    let material_item = t.optional_item("material");
    let material = material_item.as_ref().and_then(|item| {
        let text = item.expect_str()?;
        if !check_context_value(item, text, "a material") {
            ok = false;
            return None;
        }
        if let Some(f) = field
            && !matches!(f, ContextField::Batch | ContextField::Lot)
        {
            item.error(
                format!("`material` opens lots, but this rule sets `{f}`"),
                Some("use `field = \"batch\"` or `field = \"lot\"`, or remove `material`".to_owned()),
            );
            ok = false;
        }
        Some(text.to_owned())
    });
    ok &= material.is_some() || material_item.is_none();
    let mut consumes = Vec::new();
    if let Some(item) = t.optional_item("consumes") {
        if material_item.is_none() {
            item.error(
                "`consumes` needs `material`: only a rule that opens lots consumes lots",
                None,
            );
            ok = false;
        }
        for entry in item.expect_array().unwrap_or_default() {
            let target = env.asset(&entry).map(|a| a.path.clone());
            ok &= target.is_some() || env.assets.is_none();
            consumes.push((entry, target));
        }
    }
    t.finish();
    let asset_path = asset.map(|a| a.path.clone());
    let spec = match (ok, &asset_path, attribute, field) {
        (true, Some(asset), Some(attribute), Some(field)) => Some(ContextRuleSpec {
            asset: asset.clone(),
            attribute,
            field,
            format,
            material,
            consumes: consumes.iter().filter_map(|(_, p)| p.clone()).collect(),
        }),
        _ => None,
    };
    Some(ReadRule {
        spec,
        asset: asset_path,
        field,
        material: material_item.is_some(),
        consumes,
        item,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_accept_per_second_minute_and_hour() {
        assert_eq!(Rate::parse("600/min").map(Rate::as_per_second), Ok(10.0));
        assert_eq!(Rate::parse("36000/h").map(Rate::as_per_second), Ok(10.0));
        assert_eq!(Rate::parse("600 bottle/min").map(Rate::as_per_minute), Ok(600.0));
        assert!(Rate::parse("600").is_err());
        assert!(Rate::parse("0/min").is_err());
        assert!(Rate::parse("600/day").is_err());
        assert!(Rate::parse("-5/s").is_err());
    }

    #[test]
    fn offsets_and_times_of_day_parse_strictly() {
        assert_eq!(parse_offset("+01:00"), Some(60));
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("+1"), None);
        assert_eq!(parse_offset("+15:00"), None);
        assert_eq!(parse_time_of_day("06:00", false), Some(360));
        assert_eq!(parse_time_of_day("24:00", true), Some(1440));
        assert_eq!(parse_time_of_day("24:00", false), None);
        assert_eq!(parse_time_of_day("6:00", false), None);
        assert_eq!(parse_time_of_day("06:60", false), None);
    }

    #[test]
    fn windows_crossing_midnight_and_whole_days_have_their_length() {
        let w = |start, end| Window {
            name: "x".into(),
            start_minute: start,
            end_minute: end,
            days: Days::ALL,
        };
        assert_eq!(w(360, 840).length_minutes(), 480);
        assert_eq!(w(1320, 360).length_minutes(), 480);
        assert_eq!(w(360, 360).length_minutes(), 1440);
        assert_eq!(w(0, 1440).length_minutes(), 1440);
    }
}
