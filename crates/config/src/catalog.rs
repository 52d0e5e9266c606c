//! The kinds of sources and sinks the configuration may name, and how each reads its own
//! keys. The engine registers its kinds here; the config crate knows none of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use backplane_model::Model;

use crate::plan::Settings;
use crate::reader::Table;

/// How one kind of source or sink reads and checks its configuration, without connecting
/// to anything.
pub trait KindSpec: Send + Sync {
    /// One line saying what the kind is, for `backplane check` hints.
    fn describe(&self) -> &'static str;

    /// Reads the kind's own keys from one `[[sources]]` / `[[sinks]]` table (the common
    /// keys `name`, `kind` and `enabled` are already read). Problems are reported through
    /// `table` and the method returns `None` if the settings are unusable. Keys left unread
    /// are reported as unknown by the caller.
    fn parse(&self, table: &mut Table<'_>) -> Option<Settings>;

    /// Sinks: whether the kind sends over a network and so reads through the
    /// store-and-forward log (and accepts a `buffer` table). Local sinks say no.
    fn buffered(&self) -> bool {
        false
    }

    /// Sources: checks one address that a binding reads from this source.
    fn check_address(&self, _settings: &Settings, _address: &str) -> Result<(), AddressError> {
        Ok(())
    }

    /// Sources: whether every reading of a (valid) address is a whole number, known
    /// without connecting (e.g. a Modbus register served raw or decoded as an integer).
    /// A scale of such a reading by a short decimal gain is rounded to the resolution the
    /// gain implies. `false` when unknown.
    fn reads_integers(&self, _settings: &Settings, _address: &str) -> bool {
        false
    }

    /// Sources: how often the source reads a (valid) address when all is well, e.g. its
    /// poll group's period. A value not read again for `stale_after_polls` of these turns
    /// uncertain (stale). `None` for sources that report on change (MQTT, OPC UA
    /// subscriptions), where the age of a value says nothing; only an explicit
    /// `stale_after` on the source ages their values.
    fn read_period(&self, _settings: &Settings, _address: &str) -> Option<std::time::Duration> {
        None
    }
}

/// Why an address is not valid for a source, with a hint for the engineer. Shown as the
/// message alone; the hint goes beside it in a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AddressError {
    pub message: String,
    pub hint: Option<String>,
}

/// Checks the expressions of derived attributes (`expr` on a model attribute). The
/// expression language lives in the stage that evaluates it; the config crate only hands
/// it the models and reports what it finds where it points.
pub trait ExpressionChecker: Send + Sync {
    /// Every problem of every expression of `models`, read together (children
    /// aggregates name attributes of other models).
    fn check(&self, models: &[Arc<Model>]) -> Vec<ExpressionProblem>;
}

/// One problem in one attribute's expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpressionProblem {
    pub model: String,
    pub attribute: String,
    /// Where in the expression, in characters from its start.
    pub at: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Registered source and sink kinds, by name, and the checker of derived attributes'
/// expressions, if a stage that evaluates them is registered.
#[derive(Default, Clone)]
pub struct Catalog {
    sources: BTreeMap<String, Arc<dyn KindSpec>>,
    sinks: BTreeMap<String, Arc<dyn KindSpec>>,
    expressions: Option<Arc<dyn ExpressionChecker>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field("expressions", &self.expressions.is_some())
            .finish()
    }
}

impl Catalog {
    pub fn add_source(&mut self, kind: &str, spec: Arc<dyn KindSpec>) {
        self.sources.insert(kind.to_owned(), spec);
    }

    pub fn add_sink(&mut self, kind: &str, spec: Arc<dyn KindSpec>) {
        self.sinks.insert(kind.to_owned(), spec);
    }

    pub fn set_expressions(&mut self, checker: Arc<dyn ExpressionChecker>) {
        self.expressions = Some(checker);
    }

    pub fn expressions(&self) -> Option<&Arc<dyn ExpressionChecker>> {
        self.expressions.as_ref()
    }

    pub fn source(&self, kind: &str) -> Option<&Arc<dyn KindSpec>> {
        self.sources.get(kind)
    }

    pub fn sink(&self, kind: &str) -> Option<&Arc<dyn KindSpec>> {
        self.sinks.get(kind)
    }

    pub fn source_kinds(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    pub fn sink_kinds(&self) -> impl Iterator<Item = &str> {
        self.sinks.keys().map(String::as_str)
    }
}
