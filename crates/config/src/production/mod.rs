//! The production sections: `[calendar]`, `[downtime_reasons]`, `[models.NAME.production]`,
//! `[forms.NAME]` and `[[context_rules]]`, read into the plain spec types that
//! `backplane-production` runs (documented in `docs/configuration.md`, "Production").
//!
//! Everything here is checked against the models and assets of the same configuration:
//! attributes exist and have a usable type, state names belong to the chosen state model,
//! reason codes exist in the reason tree, form assets exist, shifts do not overlap.
//!
//! This file holds [`ProductionSpec`], the sections the loader collects and the entry
//! that reads them; each section has a file with its spec types and its reader:
//! - `calendar`: `[calendar]`, shifts and planned stops ([`CalendarSpec`]).
//! - `reasons`: `[downtime_reasons]`, the reason tree ([`ReasonSpec`]), and the
//!   `reason_codes` a machine reports itself ([`ReasonCodesSpec`]).
//! - `model`: `[models.NAME.production]` ([`ModelProduction`]), the ideal [`Rate`], and
//!   the attribute lookups and raw map keys ([`RawKey`]) its parts share.
//! - `states`: a model's `state` ([`StateSpec`], [`StateModel`]).
//! - `counters`: a model's `counts` ([`CountsSpec`], [`CounterSpec`]).
//! - `forms`: `[forms.NAME]` ([`FormSpec`], [`FieldSpec`], [`FieldType`]).
//! - `context_rules`: `[[context_rules]]` ([`ContextRuleSpec`]).

mod calendar;
mod context_rules;
mod counters;
mod forms;
mod model;
mod reasons;
mod states;

use backplane_model::context::MAX_CONTEXT_VALUE_LEN;
use backplane_model::{AssetPath, Level};

use crate::models::ModelEntry;
use crate::plan::AssetSpec;
use crate::reader::{Item, KeyRef, Table, suggest, with_article};

pub use calendar::{CalendarSpec, Days, Window};
pub use context_rules::ContextRuleSpec;
pub use counters::{CounterSpec, CountsSpec};
pub use forms::{FieldSpec, FieldType, FormSpec};
pub use model::{ModelProduction, Rate, RateError, RawKey};
pub use reasons::{ReasonCodesSpec, ReasonSpec};
pub use states::{StateModel, StateSpec};

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
    let calendar = calendar::read_calendar(sections.calendars);
    let reasons = reasons::read_reasons(sections.reasons);
    let models = sections
        .models
        .into_iter()
        .filter_map(|(name, item)| {
            let entry = env.models.iter().find(|m| m.model.name == name)?;
            model::read_model_production(entry, &item, &reasons)
        })
        .collect();
    let forms = forms::read_forms(sections.forms, &env);
    let context_rules = context_rules::read_rules(sections.rules, &env);
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
