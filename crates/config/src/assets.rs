//! `[[assets]]`: the ISA-95 tree, each asset's model and context, and the bindings of its
//! attributes to source addresses with their transform chains.

use std::collections::HashMap;
use std::sync::Arc;

use backplane_model::asset::validate_slug;
use backplane_model::context::MAX_CONTEXT_VALUE_LEN;
use backplane_model::decimal;
use backplane_model::model::Binding;
use backplane_model::{
    AssetPath, Attribute, Context, ContextField, DataType, Deadband, DecodeType, Level, Model, ScalarType,
    Transform, WordOrder,
};

use crate::components::Registered;
use crate::models::{ModelEntry, parse_unit, read_pair, unknown_attribute};
use crate::plan::{AssetSpec, Namespace};
use crate::reader::{Item, Table, suggest};

/// What asset reading looks names up in.
#[derive(Debug)]
pub(crate) struct Env<'m> {
    pub models: &'m [ModelEntry],
    pub sources: &'m [Registered],
    /// The models' write allowlists, which an asset's `writes` may narrow.
    pub writes: &'m [crate::writes::WriteRule],
    /// A hub's paths start with their site, which the default levels skip.
    pub hub: bool,
    /// The bindings' transform chains and names, one copy of each.
    pub chains: crate::shared::Chains,
    pub names: crate::shared::Names,
}

impl Env<'_> {
    fn model(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.model.name == name)
    }

    fn source(&self, name: &str) -> Option<&Registered> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Reports an unknown source name at `item`.
    fn unknown_source(&self, item: &Item<'_>, name: &str) {
        let hint = suggest(
            name,
            self.sources.iter().map(|s| s.name.as_str()),
            "defined sources",
        )
        .or_else(|| Some("no sources are defined; add a [[sources]] entry".to_owned()));
        item.error(format!("unknown source `{name}`"), hint);
    }
}

/// One `[[assets]]` entry as read, before the checks across entries.
#[derive(Debug)]
pub(crate) struct Declared<'a> {
    /// Path below the site, e.g. `packaging/line-1/filler`.
    rel: String,
    path_item: Item<'a>,
    level: Level,
    level_item: Option<Item<'a>>,
    description: Option<String>,
    model: Option<Arc<Model>>,
    bindings: Vec<Binding>,
    context: Context,
    writes: Option<Vec<String>>,
}

/// The asset's default source for its bindings.
enum DefaultSource<'e> {
    None,
    /// Named, but not a source (already reported).
    Unknown,
    Known(&'e Registered),
}

pub(crate) fn read_assets<'a>(tables: Vec<Table<'a>>, env: &Env<'_>) -> Vec<Declared<'a>> {
    tables.into_iter().filter_map(|t| read_asset(t, env)).collect()
}

fn read_asset<'a>(mut t: Table<'a>, env: &Env<'_>) -> Option<Declared<'a>> {
    let path_item = t.required_item("path");
    let rel = path_item.as_ref().and_then(|item| {
        let text = item.expect_str()?;
        let problem = if text.is_empty() {
            Some("asset path is empty".to_owned())
        } else if text.split('/').any(str::is_empty) {
            Some(format!(
                "asset path `{text}` has an empty segment: no leading, trailing or double `/`"
            ))
        } else {
            text.split('/')
                .find_map(|segment| validate_slug(segment).err())
                .map(|e| format!("invalid asset path `{text}`: {e}"))
        };
        match problem {
            Some(message) => {
                item.error(
                    message,
                    Some("write the path below the site, e.g. \"packaging/line-1/filler\"".to_owned()),
                );
                None
            }
            None => Some(text.to_owned()),
        }
    });

    let model_item = t.optional_item("model");
    let model = model_item.as_ref().and_then(|item| {
        let name = item.expect_str()?;
        let found = env.model(name);
        if found.is_none() {
            let hint = suggest(
                name,
                env.models.iter().map(|m| m.model.name.as_str()),
                "defined models",
            )
            .or_else(|| Some("no models are defined; add a [models.NAME] section".to_owned()));
            item.error(format!("unknown model `{name}`"), hint);
        }
        found
    });

    let level_item = t.optional_item("level");
    let depth = rel
        .as_deref()
        .map_or(1, |r| r.split('/').count() - usize::from(env.hub));
    let mut level = match (model_item.is_some(), depth) {
        (true, _) | (false, 4..) => Level::Equipment,
        (false, 1) => Level::Area,
        (false, 2) => Level::WorkCenter(backplane_model::asset::WorkCenter::Line),
        (false, _) => Level::WorkUnit(backplane_model::asset::WorkUnit::Cell),
    };
    if let Some(item) = &level_item
        && let Some(text) = item.expect_str()
    {
        match Level::parse(text) {
            Some(l) => level = l,
            None => {
                let hint = suggest(text, Level::names(), "levels");
                item.error(format!("unknown level `{text}`"), hint);
            }
        }
    }

    let description = t.optional_str("description").map(str::to_owned);

    let default_source = match t.optional_item("source") {
        None => DefaultSource::None,
        Some(item) => match item.expect_str() {
            Some(name) => match env.source(name) {
                Some(source) => DefaultSource::Known(source),
                None => {
                    env.unknown_source(&item, name);
                    DefaultSource::Unknown
                }
            },
            None => DefaultSource::Unknown,
        },
    };

    let context = t.optional_table("context").map(read_context).unwrap_or_default();
    let writes = t
        .optional_item("writes")
        .and_then(|item| crate::writes::read_asset_writes(&item, model.map(|m| &*m.model), env.writes));

    let mut bindings = Vec::new();
    if let Some(item) = t.optional_item("bindings") {
        match (&model_item, model) {
            (None, _) => item.error(
                "`bindings` needs a `model`",
                Some("name the model whose attributes these are, e.g. `model = \"Filler\"`".to_owned()),
            ),
            // The model is unknown (reported): its attributes cannot be checked.
            (Some(_), None) => {}
            (Some(_), Some(entry)) => {
                if let Some(table) = item.expect_table() {
                    bindings = read_bindings(table, entry, &default_source, env);
                }
            }
        }
    }
    t.finish();
    Some(Declared {
        rel: rel?,
        path_item: path_item?,
        level,
        level_item,
        description,
        model: model.map(|m| m.model.clone()),
        bindings,
        context,
        writes,
    })
}

fn read_context(mut t: Table<'_>) -> Context {
    let mut context = Context::default();
    for (key, item) in t.take_remaining() {
        let Some(field) = ContextField::parse(key.name) else {
            let hint = suggest(
                key.name,
                ContextField::ALL.iter().map(|f| f.name()),
                "context fields",
            );
            key.error(format!("unknown context field `{}`", key.name), hint);
            continue;
        };
        let Some(value) = item.expect_str() else { continue };
        if value.chars().count() > MAX_CONTEXT_VALUE_LEN {
            item.error(
                format!("context value is longer than {MAX_CONTEXT_VALUE_LEN} characters"),
                None,
            );
            continue;
        }
        // The same rules as the API: ids, not text blocks.
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            item.error(
                "a context value must be non-empty and contain no control characters (line breaks, tabs)",
                None,
            );
            continue;
        }
        context.set(field, Some(value.into()));
    }
    t.finish();
    context
}

fn read_bindings(
    mut t: Table<'_>,
    entry: &ModelEntry,
    default_source: &DefaultSource<'_>,
    env: &Env<'_>,
) -> Vec<Binding> {
    let model = &entry.model;
    let mut bindings = Vec::new();
    for (key, item) in t.take_remaining() {
        if entry.broken.contains(key.name) {
            continue;
        }
        let Some(attribute) = model.attribute(key.name) else {
            let (message, hint) = unknown_attribute(key.name, model);
            key.error(message, hint);
            continue;
        };
        if attribute.expr.is_some() {
            key.error(
                format!(
                    "attribute `{}` of `{}` is derived (`expr`) and takes no binding",
                    key.name, model.name
                ),
                Some("remove the binding: the derive stage computes the value".to_owned()),
            );
            continue;
        }
        if let Some(table) = item.expect_table() {
            bindings.extend(read_binding(table, attribute, &model.name, default_source, env));
        }
    }
    t.finish();
    bindings
}

fn mismatch(item: &Item<'_>, what: &str, attribute: &Attribute) {
    item.error(
        format!(
            "type mismatch: {what}, but attribute `{}` is {}",
            attribute.name, attribute.data_type
        ),
        None,
    );
}

fn read_binding(
    mut t: Table<'_>,
    attribute: &Attribute,
    model_name: &str,
    default_source: &DefaultSource<'_>,
    env: &Env<'_>,
) -> Option<Binding> {
    let mut ok = true;
    let data_type = attribute.data_type;
    let numeric = data_type.is_numeric_scalar();

    let address_item = t.required_item("address");
    let address = address_item.as_ref().and_then(|item| item.expect_str());
    ok &= address.is_some();

    let source = match t.optional_item("source") {
        Some(item) => {
            let name = item.expect_str();
            let found = name.and_then(|name| env.source(name));
            if let (Some(name), None) = (name, found) {
                env.unknown_source(&item, name);
            }
            found
        }
        None => match default_source {
            DefaultSource::Known(source) => Some(*source),
            DefaultSource::Unknown => None,
            DefaultSource::None => {
                t.error(
                    "source",
                    format!("no source for binding `{}`", attribute.name),
                    Some("set `source` on the asset, or on this binding".to_owned()),
                );
                None
            }
        },
    };
    ok &= source.is_some();
    if let (Some(source), Some(address), Some(item)) = (source, address, &address_item)
        && let Some((spec, settings)) = source.kind()
        && let Err(e) = spec.check_address(settings, address)
    {
        item.error(e.message, e.hint);
        ok = false;
    }

    let mut transforms = Vec::new();

    let decode = t.optional_item("decode").and_then(|item| {
        let text = item.expect_str()?;
        let kind = DecodeType::parse(text);
        if kind.is_none() {
            item.error(
                format!("unknown decode type `{text}`"),
                Some("decode types: u16, i16, u32, i32, u64, i64, f32, f64".to_owned()),
            );
        }
        kind
    });
    ok &= decode.is_some() || !t.has("decode");
    let mut word_order = WordOrder::default();
    if let Some(item) = t.optional_item("word_order") {
        if let Some(text) = item.expect_str() {
            match WordOrder::parse(text) {
                Some(order) => word_order = order,
                None => {
                    item.error(
                        format!("unknown word order `{text}`"),
                        Some("word orders: ABCD (big-endian), CDAB (swapped words), BADC (swapped bytes), DCBA (little-endian)".to_owned()),
                    );
                    ok = false;
                }
            }
        } else {
            ok = false;
        }
        if !t.has("decode") {
            item.error(
                "`word_order` applies only with `decode`",
                Some("add `decode = \"u32\"` (or another multi-register type)".to_owned()),
            );
            ok = false;
        }
    }
    if let (Some(_), Some(item)) = (decode, t.optional_item("decode")) {
        // A decoded number must end as a number, unless `bit` or `map` turn it into the
        // attribute's bool or label.
        if !data_type.is_numeric_scalar() && !t.has("bit") && !t.has("map") {
            mismatch(&item, "`decode` produces a number", attribute);
            ok = false;
        }
    }
    if let Some(kind) = decode {
        transforms.push(Transform::Decode { kind, word_order });
    }

    if let Some(item) = t.optional_item("bit") {
        match item.expect_i64() {
            Some(index @ 0..=63) => {
                if data_type != DataType::Scalar(ScalarType::Bool) {
                    mismatch(&item, "`bit` produces a bool", attribute);
                    ok = false;
                }
                transforms.push(Transform::Bit { index: index as u8 });
            }
            Some(index) => {
                item.error(
                    format!("bit index {index} is out of range"),
                    Some("bits are numbered 0 (least significant) to 63".to_owned()),
                );
                ok = false;
            }
            None => ok = false,
        }
    }

    if let Some(item) = t.optional_item("scale") {
        if !numeric {
            mismatch(&item, "`scale` needs a number", attribute);
            ok = false;
        }
        match item.expect_table().and_then(read_scale) {
            Some(scale) => {
                let integer_input = match decode {
                    Some(kind) => !matches!(kind, DecodeType::F32 | DecodeType::F64),
                    None => source.zip(address).is_some_and(|(source, address)| {
                        source
                            .kind()
                            .is_some_and(|(spec, settings)| spec.reads_integers(settings, address))
                    }),
                };
                let implied = implied_decimals(&scale).filter(|_| integer_input);
                transforms.push(scale);
                // A declared `decimals` rounds once at the end instead.
                if let (Some(decimals), None) = (implied, attribute.decimals) {
                    transforms.push(Transform::Round { decimals });
                }
            }
            None => ok = false,
        }
    }

    if let Some(item) = t.optional_item("unit") {
        if let Some(text) = item.expect_str() {
            match parse_unit(text) {
                Err(hint) => {
                    item.error(format!("unknown unit `{text}`"), hint);
                    ok = false;
                }
                Ok(from) => match &attribute.unit {
                    None => {
                        item.error(
                            format!(
                                "unit mismatch: raw unit is `{from}`, but attribute `{}` has no unit",
                                attribute.name
                            ),
                            Some(format!(
                                "give `{}` a unit in model `{model_name}`, or remove `unit` here",
                                attribute.name
                            )),
                        );
                        ok = false;
                    }
                    Some(to) => match from.conversion_to(to) {
                        Some((gain, offset)) if numeric => {
                            transforms.push(Transform::Convert {
                                from,
                                to: to.clone(),
                                gain,
                                offset,
                            });
                        }
                        Some(_) => {
                            mismatch(&item, "a unit conversion needs a number", attribute);
                            ok = false;
                        }
                        None => {
                            item.error(
                                format!(
                                    "unit mismatch: raw unit `{from}` cannot be converted to `{to}` (attribute `{}`)",
                                    attribute.name
                                ),
                                Some("the raw unit must measure the same quantity as the attribute's unit".to_owned()),
                            );
                            ok = false;
                        }
                    },
                },
            }
        } else {
            ok = false;
        }
    }

    if let Some(item) = t.optional_item("map") {
        if data_type != DataType::Scalar(ScalarType::String) {
            mismatch(&item, "`map` produces a string", attribute);
            ok = false;
        }
        match item.expect_table().and_then(|table| read_map(table, attribute)) {
            Some(map) => transforms.push(map),
            None => ok = false,
        }
    }

    let mut deadband = None;
    if let Some(item) = t.optional_item("deadband") {
        if !numeric {
            mismatch(&item, "a deadband needs a number", attribute);
            ok = false;
        }
        deadband = item
            .expect_table()
            .and_then(|table| read_deadband(table, attribute, model_name));
        ok &= deadband.is_some();
    }

    transforms.push(Transform::Cast { to: data_type });
    if let Some(decimals) = attribute.decimals {
        transforms.push(Transform::Round { decimals });
    }
    t.finish();
    let (source, address) = (source?, address?);
    let period = source
        .kind()
        .and_then(|(spec, settings)| spec.read_period(settings, address));
    ok.then(|| Binding {
        attribute: env.names.share(&attribute.name),
        source: env.names.share(&source.name),
        address: address.into(),
        transforms: env.chains.share(transforms),
        deadband,
        stale_after: source.age.limit(period),
    })
}

/// The most decimals a gain or offset may have to imply a rounding: longer decimals are
/// more likely a truncated fraction (`0.3333333`) than a resolution.
const MAX_IMPLIED_DECIMALS: u8 = 6;

/// The resolution a scale of whole numbers implies: `gain * x + offset` with `x` whole has
/// no more decimals than `gain` and `offset` together, so rounding to that many removes
/// only binary noise (`0.1 * 4042` = `404.20000000000005` → `404.2`). `None` when no
/// rounding is needed (whole gain and offset) or the gain or offset is not a short decimal.
fn implied_decimals(scale: &Transform) -> Option<u8> {
    let Transform::Scale { gain, offset, .. } = scale else {
        return None;
    };
    let gain = decimal::places(*gain, MAX_IMPLIED_DECIMALS)?;
    let offset = decimal::places(*offset, MAX_IMPLIED_DECIMALS)?;
    Some(gain.max(offset)).filter(|d| *d > 0)
}

/// `{ gain, offset }` or `{ raw = [a, b], eng = [c, d] }`.
fn read_scale(mut t: Table<'_>) -> Option<Transform> {
    let linear = t.has("gain") || t.has("offset");
    let ranges = t.has("raw") || t.has("eng");
    if linear && ranges {
        let key = if t.has("raw") { "raw" } else { "eng" };
        t.error(
            key,
            "`scale` mixes `gain`/`offset` with `raw`/`eng`",
            Some("use either `gain` and `offset`, or `raw = [a, b]` and `eng = [c, d]`".to_owned()),
        );
        for key in ["gain", "offset", "raw", "eng"] {
            t.skip(key);
        }
        t.finish();
        return None;
    }
    let scale = if ranges {
        let raw = t
            .required_item("raw")
            .and_then(|item| read_pair(&item).map(|p| (p, item)));
        let eng = t.required_item("eng").and_then(|item| read_pair(&item));
        match (raw, eng) {
            (Some(([a, b], item)), Some([c, d])) => {
                if a == b {
                    item.error("`raw` must span a range: its two ends are equal", None);
                    None
                } else {
                    let gain = (d - c) / (b - a);
                    if gain == 0.0 || !gain.is_finite() || !(c - gain * a).is_finite() {
                        item.error(
                            format!("`raw = [{a}, {b}]` to `eng = [{c}, {d}]` gives no usable gain ({gain})"),
                            Some("`eng` must span a range too, and both ranges must be finite".to_owned()),
                        );
                        return None;
                    }
                    Some(Transform::Scale {
                        gain,
                        offset: c - gain * a,
                        raw: Some([a, b]),
                        eng: Some([c, d]),
                    })
                }
            }
            _ => None,
        }
    } else {
        let gain = t.optional_f64("gain");
        let offset = t.optional_f64("offset");
        let bad = (t.has("gain") && gain.is_none()) || (t.has("offset") && offset.is_none());
        if gain == Some(0.0) {
            t.error("gain", "`gain` is 0: every reading would become the offset", None);
            None
        } else {
            (!bad).then(|| Transform::Scale {
                gain: gain.unwrap_or(1.0),
                offset: offset.unwrap_or(0.0),
                raw: None,
                eng: None,
            })
        }
    };
    t.finish();
    scale
}

/// `{ 0 = "stopped", 1 = "idle" }`: integer codes to labels, in the attribute's `enum`.
fn read_map(mut t: Table<'_>, attribute: &Attribute) -> Option<Transform> {
    let mut ok = true;
    let mut entries = Vec::new();
    for (key, item) in t.take_remaining() {
        let code = key.name.trim().parse::<i64>().ok();
        if code.is_none() {
            key.error(
                format!("map key `{}` is not an integer", key.name),
                Some("write raw codes as keys, e.g. `map = { 0 = \"stopped\", 1 = \"running\" }`".to_owned()),
            );
        }
        let label = item.expect_str();
        if let (Some(label), Some(allowed)) = (label, &attribute.allowed)
            && !allowed.iter().any(|a| a == label)
        {
            let hint = suggest(label, allowed.iter().map(String::as_str), "allowed labels");
            item.error(
                format!("unknown label `{label}` for attribute `{}`", attribute.name),
                hint,
            );
            ok = false;
        }
        match (code, label) {
            (Some(code), Some(_)) if entries.iter().any(|(c, _)| *c == code) => {
                key.error(format!("map code {code} is given twice"), None);
                ok = false;
            }
            (Some(code), Some(label)) => entries.push((code, Arc::<str>::from(label))),
            _ => ok = false,
        }
    }
    t.finish();
    ok.then(|| Transform::Map {
        entries: entries.into(),
    })
}

/// `{ absolute = x }` or `{ percent = p }` (of the attribute's range).
fn read_deadband(mut t: Table<'_>, attribute: &Attribute, model_name: &str) -> Option<Deadband> {
    let absolute = t.optional_f64("absolute");
    let percent = t.optional_f64("percent");
    let deadband = match (t.has("absolute"), t.has("percent")) {
        (true, true) => {
            t.error(
                "percent",
                "a deadband is either `absolute` or `percent`, not both",
                None,
            );
            None
        }
        (false, false) => {
            t.error(
                "absolute",
                "a deadband needs `absolute` or `percent`",
                Some("e.g. `deadband = { absolute = 0.5 }` or `deadband = { percent = 1 }`".to_owned()),
            );
            None
        }
        (true, false) => match absolute {
            Some(d) if d > 0.0 => Some(Deadband::Absolute(d)),
            Some(d) => {
                t.error(
                    "absolute",
                    format!("deadband `absolute` must be greater than 0, found {d}"),
                    None,
                );
                None
            }
            None => None,
        },
        (false, true) => match (percent, attribute.range) {
            (Some(p), _) if !(p > 0.0 && p <= 100.0) => {
                t.error(
                    "percent",
                    format!("deadband `percent` must be in (0, 100], found {p}"),
                    None,
                );
                None
            }
            (Some(_), None) => {
                t.error(
                    "percent",
                    format!(
                        "deadband `percent` needs a `range` on attribute `{}`",
                        attribute.name
                    ),
                    Some(format!(
                        "add `range = [min, max]` to `{}` in model `{model_name}`, or use `absolute`",
                        attribute.name
                    )),
                );
                None
            }
            (Some(_), Some([min, max])) if !(max - min).is_finite() => {
                t.error(
                    "percent",
                    format!(
                        "the range of `{}` is too wide for a percent deadband",
                        attribute.name
                    ),
                    Some("use an `absolute` deadband".to_owned()),
                );
                None
            }
            (Some(percent), Some([min, max])) => Some(Deadband::Percent {
                percent,
                span: max - min,
            }),
            (None, _) => None,
        },
    };
    t.finish();
    deadband
}

/// The checks across entries (duplicates, parents, level order), then the asset list with
/// the enterprise and site first and every parent before its children. `None` without a
/// valid namespace (reported elsewhere).
pub(crate) fn arrange(declared: Vec<Declared<'_>>, namespace: Option<&Namespace>) -> Option<Vec<AssetSpec>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut keep = vec![true; declared.len()];
    for (i, asset) in declared.iter().enumerate() {
        if let Some(&first) = index.get(asset.rel.as_str()) {
            let at = declared[first].path_item.location();
            asset.path_item.error(
                format!("duplicate asset path `{}`", asset.rel),
                Some(format!("first declared at {}:{}", at.file.display(), at.line)),
            );
            keep[i] = false;
        } else {
            index.insert(&asset.rel, i);
        }
    }

    // A hub's asset paths start with the site they belong to; an edge's are below its site.
    let hub_sites: Vec<&str> = namespace
        .filter(|n| n.is_hub())
        .map(|n| n.all_sites().collect())
        .unwrap_or_default();
    let mut parents: Vec<Option<usize>> = vec![None; declared.len()];
    for (i, asset) in declared.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let parent = asset.rel.rsplit_once('/').map(|(parent, _)| parent);
        let (parent_level, parent_name) = match parent {
            None if !hub_sites.is_empty() => {
                asset.path_item.error(
                    format!("asset `{}` is not below a site", asset.rel),
                    Some(format!(
                        "this gateway is a hub: every asset path starts with one of its sites ({}), e.g. \"{}/{}\"",
                        hub_sites.join(", "),
                        hub_sites[0],
                        asset.rel
                    )),
                );
                keep[i] = false;
                continue;
            }
            None => (Level::Site, namespace.map_or("the site", |n| n.site.as_str())),
            Some(site) if hub_sites.contains(&site) => (Level::Site, site),
            Some(parent) => match index.get(parent) {
                Some(&p) => {
                    parents[i] = Some(p);
                    (declared[p].level, parent)
                }
                None => {
                    asset.path_item.error(
                        format!("parent asset `{parent}` of `{}` is not declared", asset.rel),
                        Some(format!("declare it: [[assets]] path = \"{parent}\"")),
                    );
                    keep[i] = false;
                    continue;
                }
            },
        };
        if asset.level.rank() <= parent_level.rank() {
            let at = asset.level_item.as_ref().unwrap_or(&asset.path_item);
            at.error(
                format!(
                    "level `{}` of `{}` is not below its parent `{parent_name}` ({parent_level})",
                    asset.level, asset.rel
                ),
                Some("each asset sits at a deeper ISA-95 level than its parent: site > area > line (process-cell, production-unit, storage-zone) > cell (unit, storage-unit) > equipment".to_owned()),
            );
            keep[i] = false;
        }
    }

    // Configuration order, except that a parent comes before its children.
    let mut order = Vec::with_capacity(declared.len());
    let mut placed = vec![false; declared.len()];
    for i in 0..declared.len() {
        let mut chain = vec![i];
        while let Some(p) = chain.last().and_then(|&c| parents[c]) {
            chain.push(p);
        }
        for &c in chain.iter().rev() {
            if keep[c] && !placed[c] {
                placed[c] = true;
                order.push(c);
            }
        }
    }

    let namespace = namespace?;
    let enterprise = AssetPath::parse(&namespace.enterprise).ok()?;
    let site = enterprise.child(&namespace.site).ok()?;
    // Where declared paths hang: below the site on an edge, below the enterprise on a hub.
    let base = if namespace.is_hub() {
        enterprise.clone()
    } else {
        site.clone()
    };
    let mut out = vec![AssetSpec {
        path: enterprise.clone(),
        level: Level::Enterprise,
        description: None,
        model: None,
        bindings: Vec::new(),
        context: Context::default(),
        writes: None,
    }];
    for name in namespace.all_sites() {
        out.push(AssetSpec {
            path: enterprise.child(name).ok()?,
            level: Level::Site,
            description: None,
            model: None,
            bindings: Vec::new(),
            context: Context::default(),
            writes: None,
        });
    }
    let mut slots: Vec<Option<Declared<'_>>> = declared.into_iter().map(Some).collect();
    for i in order {
        let Some(asset) = slots.get_mut(i).and_then(Option::take) else {
            continue;
        };
        let Ok(path) = AssetPath::parse(&format!("{base}/{}", asset.rel)) else {
            asset
                .path_item
                .error(format!("invalid asset path `{}`", asset.rel), None);
            return None;
        };
        out.push(AssetSpec {
            path,
            level: asset.level,
            description: asset.description,
            model: asset.model,
            bindings: asset.bindings,
            context: asset.context,
            writes: asset.writes,
        });
    }
    Some(out)
}
