//! `[[sources]]` and `[[sinks]]`: the common keys, then the kind's own through its
//! [`KindSpec`].

use std::sync::Arc;

use backplane_model::asset::validate_slug;

use crate::plan::{ComponentSpec, Overflow, Settings, SinkBuffer};
use crate::reader::{Location, Table, suggest};
use crate::{Catalog, KindSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Source,
    Sink,
}

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Sink => "sink",
        }
    }
}

/// A named source or sink as far as it could be read. Entries whose kind or settings
/// failed are kept, so bindings naming them get no second error.
pub(crate) struct Registered {
    pub name: String,
    pub spec: Option<Arc<dyn KindSpec>>,
    pub settings: Option<Settings>,
    pub location: Location,
    /// Sources: when their values turn stale.
    pub age: Age,
}

/// A source's `stale_after` / `stale_after_polls`: when a value not read again turns
/// uncertain (`last_usable_value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Age {
    /// After this many of the address's read periods (kinds that poll); the default.
    Polls(u32),
    /// After this long, whatever the kind.
    After(std::time::Duration),
    /// `stale_after = "never"`.
    Never,
}

/// Three missed polls: one late or lost answer is not yet a stale value.
pub(crate) const DEFAULT_STALE_POLLS: u32 = 3;

impl Default for Age {
    fn default() -> Age {
        Age::Polls(DEFAULT_STALE_POLLS)
    }
}

impl Age {
    /// The age limit of a value read every `period` (`None`: the source reports on change).
    pub fn limit(self, period: Option<std::time::Duration>) -> Option<std::time::Duration> {
        match self {
            Age::Polls(n) => period.map(|p| p.saturating_mul(n)),
            Age::After(d) => Some(d),
            Age::Never => None,
        }
    }
}

/// Reads a source's `stale_after` (a duration or `"never"`) and `stale_after_polls`.
fn read_age(t: &mut Table<'_>) -> Age {
    let polls = t
        .optional_item("stale_after_polls")
        .and_then(|item| match item.expect_u64() {
            Some(n @ 2..=1000) => Some(n as u32),
            Some(_) => {
                item.error(
                    "`stale_after_polls` must be 2 to 1000",
                    Some(
                        "one missed poll is usually a late answer, not a stale value; the default is 3"
                            .to_owned(),
                    ),
                );
                None
            }
            None => None,
        });
    let after = t.optional_item("stale_after").and_then(|item| {
        if item.as_str() == Some("never") {
            return Some(Age::Never);
        }
        match item.expect_duration() {
            Some(d) if d >= std::time::Duration::from_millis(10) => Some(Age::After(d)),
            Some(_) => {
                item.error(
                    "`stale_after` must be at least 10ms",
                    Some("or \"never\" to keep values good however old they get".to_owned()),
                );
                None
            }
            None => None,
        }
    });
    match (after, polls) {
        (Some(after), Some(_)) => {
            t.error(
                "stale_after_polls",
                "give `stale_after` or `stale_after_polls`, not both",
                Some(
                    "`stale_after` is a fixed age; `stale_after_polls` counts each address's poll periods"
                        .to_owned(),
                ),
            );
            after
        }
        (Some(after), None) => after,
        (None, Some(n)) => Age::Polls(n),
        (None, None) => Age::default(),
    }
}

impl Registered {
    /// The kind and its settings, when both could be read.
    pub fn kind(&self) -> Option<(&dyn KindSpec, &Settings)> {
        Some((self.spec.as_deref()?, self.settings.as_ref()?))
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("name", &self.name)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Components {
    /// Every valid entry, for the plan.
    pub specs: Vec<ComponentSpec>,
    /// Every named entry, valid or not, in configuration order.
    pub registry: Vec<Registered>,
}

pub(crate) fn read_components(tables: Vec<Table<'_>>, catalog: &Catalog, role: Role) -> Components {
    let mut out = Components::default();
    let noun = role.noun();
    for mut t in tables {
        let name_item = t.required_item("name");
        let name = name_item.as_ref().and_then(|item| item.expect_str());
        let mut name_ok = name.is_some();
        if let (Some(name), Some(item)) = (name, &name_item) {
            if let Err(e) = validate_slug(name) {
                item.error(format!("invalid {noun} name: {e}"), None);
                name_ok = false;
            }
            if let Some(first) = out.registry.iter().find(|r| r.name == name) {
                let at = &first.location;
                item.error(
                    format!("duplicate {noun} name `{name}`"),
                    Some(format!(
                        "first defined at {}:{}:{}; {noun} names must be unique",
                        at.file.display(),
                        at.line,
                        at.column
                    )),
                );
                name_ok = false;
            }
        }
        let keys = Arc::new(t.canonical_keys());
        let kind = t.required_str("kind");
        let spec = kind.and_then(|kind| {
            let spec = match role {
                Role::Source => catalog.source(kind),
                Role::Sink => catalog.sink(kind),
            };
            if spec.is_none() {
                let kinds: Vec<&str> = match role {
                    Role::Source => catalog.source_kinds().collect(),
                    Role::Sink => catalog.sink_kinds().collect(),
                };
                let hint = suggest(kind, kinds.iter().copied(), &format!("known {noun} kinds"))
                    .or_else(|| Some(format!("no {noun} kinds are registered")));
                t.error("kind", format!("unknown {noun} kind `{kind}`"), hint);
            }
            spec.cloned()
        });
        let enabled = t.optional_bool("enabled").unwrap_or(true);
        let age = match role {
            Role::Source => read_age(&mut t),
            Role::Sink => Age::default(),
        };
        let buffered = role == Role::Sink && spec.as_ref().is_some_and(|s| s.buffered());
        let buffer = if buffered {
            Some(read_sink_buffer(t.optional_table("buffer")))
        } else {
            if let (Some(kind), true, Some(item)) = (kind, spec.is_some(), t.optional_item("buffer")) {
                item.error(
                    format!("a `{kind}` {noun} has no store-and-forward buffer"),
                    Some("only network sinks (mqtt, sparkplug, ...) read through a buffer".to_owned()),
                );
            }
            None
        };
        let settings = match (kind, &spec) {
            (Some(kind), Some(spec)) => {
                let before = t.reported();
                let settings = spec.parse(&mut t);
                if settings.is_none() && t.reported() == before {
                    // A kind must say why it failed; without a word the entry would vanish.
                    t.error(
                        "kind",
                        format!("the `{kind}` settings of this {noun} are invalid"),
                        None,
                    );
                }
                t.finish();
                settings
            }
            _ => None,
        };
        // Without a kind its keys are unknowable, so they are not reported one by one.
        if let (Some(name), Some(item)) = (name, &name_item)
            && !out.registry.iter().any(|r| r.name == name)
        {
            out.registry.push(Registered {
                name: name.to_owned(),
                spec: spec.clone(),
                settings: settings.clone(),
                location: item.location(),
                age,
            });
        }
        if let (true, Some(name), Some(kind), Some(settings)) = (name_ok, name, kind, settings) {
            out.specs.push(ComponentSpec {
                name: name.to_owned(),
                kind: kind.to_owned(),
                enabled,
                settings,
                buffer,
                keys,
            });
        }
    }
    out
}

/// A sink's `buffer = { quota = "2GiB", overflow = "drop-oldest", live_lag = "2s" }`.
fn read_sink_buffer(table: Option<Table<'_>>) -> SinkBuffer {
    let mut buffer = SinkBuffer::default();
    let Some(mut t) = table else { return buffer };
    if let Some(quota) = t.optional_bytes("quota") {
        if quota < MIN_QUOTA {
            t.error(
                "quota",
                format!("a quota of {quota} bytes cannot hold even one segment of backlog"),
                Some("use at least \"1MiB\"; size it as bytes per sample × samples/s × the outage to ride through (docs/reliability.md)".to_owned()),
            );
        } else {
            buffer.quota_bytes = quota;
        }
    }
    if let Some(item) = t.optional_item("overflow") {
        match item.as_str() {
            Some("drop-oldest") => buffer.overflow = Overflow::DropOldest,
            Some("block") => buffer.overflow = Overflow::Block,
            _ => item.error(
                "`overflow` must be \"drop-oldest\" or \"block\"",
                Some("drop-oldest loses this sink's oldest backlog; block holds back the sources".to_owned()),
            ),
        }
    }
    if let Some(lag) = t.optional_duration("live_lag") {
        if lag.is_zero() {
            t.error(
                "live_lag",
                "`live_lag` must be above zero",
                Some("e.g. \"2s\"".to_owned()),
            );
        } else {
            buffer.live_lag = lag;
        }
    }
    t.finish();
    buffer
}

/// The smallest quota accepted.
const MIN_QUOTA: u64 = 1024 * 1024;
