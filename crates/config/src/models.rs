//! `[models.NAME]`: typed templates of equipment and their attributes.

use std::collections::HashSet;
use std::sync::Arc;

use backplane_model::asset::{MAX_NAME_LEN, validate_attribute_name};
use backplane_model::decimal::MAX_DECIMALS;
use backplane_model::{Attribute, DataType, LimitLevel, Limits, Model, ScalarType, Unit};

use crate::catalog::ExpressionChecker;
use crate::reader::{Item, KeyRef, Location, Table, suggest};

/// A model as read, with what later checks need to avoid follow-on errors.
#[derive(Debug)]
pub(crate) struct ModelEntry {
    pub model: Arc<Model>,
    /// Attributes that had errors and were left out: bindings to them are not reported
    /// again as unknown.
    pub broken: HashSet<String>,
}

/// `production` collects each model's `production` sub-table, read later with the
/// production sections (crate::production). A `[models.NAME.production]` table may also
/// stand alone in another file than the model (a plant's production rules beside a shared
/// model library): such an entry, with `production` and no `attributes`, extends the model.
/// `writes` likewise collects each model's `writes` sub-table (crate::writes), which may
/// also stand alone in another file.
pub(crate) fn read_models<'a>(
    entries: Vec<(KeyRef<'a>, Item<'a>)>,
    production: &mut Vec<(String, Item<'a>)>,
    writes: &mut Vec<(String, Item<'a>)>,
    expressions: Option<&Arc<dyn ExpressionChecker>>,
) -> Vec<ModelEntry> {
    let mut models: Vec<ModelEntry> = Vec::new();
    let mut exprs: Vec<Expr<'a>> = Vec::new();
    let mut first_seen: Vec<(String, Location)> = Vec::new();
    let is_extension = |item: &Item<'a>| {
        item.as_table()
            .is_some_and(|t| (t.has("production") || t.has("writes")) && !t.has("attributes"))
    };
    let defined: HashSet<&str> = entries
        .iter()
        .filter(|(_, item)| !is_extension(item))
        .map(|(key, _)| key.name)
        .collect();
    for (key, item) in entries {
        if is_extension(&item) && defined.contains(key.name) {
            if let Some(mut table) = item.as_table() {
                if let Some(p) = table.optional_item("production") {
                    production.push((key.name.to_owned(), p));
                }
                if let Some(w) = table.optional_item("writes") {
                    writes.push((key.name.to_owned(), w));
                }
                table.finish();
            }
            continue;
        }
        if let Some((_, first)) = first_seen.iter().find(|(n, _)| n == key.name) {
            key.error(
                format!("model `{}` is defined twice", key.name),
                Some(format!(
                    "first defined at {}:{}:{}",
                    first.file.display(),
                    first.line,
                    first.column
                )),
            );
            continue;
        }
        first_seen.push((key.name.to_owned(), key.location()));
        if !is_pascal_case(key.name) {
            key.error(
                format!("model name `{}` is not PascalCase", key.name),
                Some(
                    "start with an upper-case letter and use only letters and digits, e.g. `Filler`"
                        .to_owned(),
                ),
            );
        }
        // A model with errors is still registered, so assets naming it get no second error.
        let Some(table) = item.expect_table() else {
            let model = Model {
                name: key.name.to_owned(),
                description: None,
                attributes: Vec::new(),
            };
            models.push(ModelEntry {
                model: Arc::new(model),
                broken: HashSet::new(),
            });
            continue;
        };
        models.push(read_model(key.name, table, production, writes, &mut exprs));
    }
    check_expressions(&models, &exprs, expressions);
    models
}

/// A derived attribute's `expr` as read: where to report its problems.
struct Expr<'a> {
    model: String,
    attribute: String,
    item: Item<'a>,
}

/// Hands every model to the registered expression checker and reports each problem at
/// its line and column inside the `expr` string. Without a checker (a build with no
/// derive stage) a derived attribute cannot be computed, which is an error too.
fn check_expressions(
    models: &[ModelEntry],
    exprs: &[Expr<'_>],
    checker: Option<&Arc<dyn ExpressionChecker>>,
) {
    if exprs.is_empty() {
        return;
    }
    let Some(checker) = checker else {
        for e in exprs {
            e.item.error(
                format!(
                    "attribute `{}` of `{}` is derived, but this build has no derive stage to compute it",
                    e.attribute, e.model
                ),
                Some("remove `expr` and bind the attribute to a source".to_owned()),
            );
        }
        return;
    };
    let all: Vec<Arc<Model>> = models.iter().map(|m| m.model.clone()).collect();
    for problem in checker.check(&all) {
        // The checker reports only attributes that have an `expr`.
        if let Some(e) = exprs
            .iter()
            .find(|e| e.model == problem.model && e.attribute == problem.attribute)
        {
            e.item.error_in_str(problem.at, problem.message, problem.hint);
        }
    }
}

fn is_pascal_case(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        && name.bytes().all(|c| c.is_ascii_alphanumeric())
}

fn read_model<'a>(
    name: &str,
    mut t: Table<'a>,
    production: &mut Vec<(String, Item<'a>)>,
    writes: &mut Vec<(String, Item<'a>)>,
    exprs: &mut Vec<Expr<'a>>,
) -> ModelEntry {
    let description = t.optional_str("description").map(str::to_owned);
    if let Some(item) = t.optional_item("production") {
        production.push((name.to_owned(), item));
    }
    if let Some(item) = t.optional_item("writes") {
        writes.push((name.to_owned(), item));
    }
    let mut attributes = Vec::new();
    let mut broken = HashSet::new();
    if let Some(mut attrs) = t.required_table("attributes") {
        let entries = attrs.take_remaining();
        if entries.is_empty() {
            t.error("attributes", format!("model `{name}` has no attributes"), None);
        }
        for (key, item) in entries {
            match read_attribute(&key, &item) {
                Some((attribute, expr)) => {
                    if let Some(item) = expr {
                        exprs.push(Expr {
                            model: name.to_owned(),
                            attribute: attribute.name.clone(),
                            item,
                        });
                    }
                    attributes.push(Arc::new(attribute));
                }
                None => {
                    broken.insert(key.name.to_owned());
                }
            }
        }
        attrs.finish();
    }
    t.finish();
    ModelEntry {
        model: Arc::new(Model {
            name: name.to_owned(),
            description,
            attributes,
        }),
        broken,
    }
}

const TYPE_HINT: &str =
    "types: bool, int, uint, float, string, timestamp, or an array of one of them such as `float[]`";

/// The attribute, and for a derived one the `expr` value (its problems are reported once
/// every model is read).
fn read_attribute<'a>(key: &KeyRef<'a>, item: &Item<'a>) -> Option<(Attribute, Option<Item<'a>>)> {
    let mut ok = true;
    if let Err(e) = validate_attribute_name(key.name) {
        key.error(format!("invalid attribute name: {e}"), None);
        ok = false;
    }
    let mut t = item.expect_table()?;
    let data_type = match t.required_str("type") {
        Some(text) => {
            let parsed = DataType::parse(text);
            if parsed.is_none() {
                t.error(
                    "type",
                    format!("unknown type `{text}`"),
                    Some(TYPE_HINT.to_owned()),
                );
            }
            parsed
        }
        None => None,
    };
    let numeric = data_type.is_some_and(|d| d.scalar().is_numeric());
    let type_name = data_type.map_or_else(String::new, |d| d.to_string());

    let mut unit = None;
    if let Some(text) = t.optional_str("unit") {
        match parse_unit(text) {
            Ok(u) => unit = Some(u),
            Err(hint) => {
                t.error("unit", format!("unknown unit `{text}`"), hint);
                ok = false;
            }
        }
        if data_type.is_some() && !numeric {
            t.error(
                "unit",
                format!(
                    "a unit is only allowed on numeric attributes, and `{}` is {type_name}",
                    key.name
                ),
                Some("remove `unit`, or make the type int, uint or float".to_owned()),
            );
            ok = false;
        }
    }

    let description = t.optional_str("description").map(str::to_owned);

    let mut range = None;
    if let Some(item) = t.optional_item("range") {
        range = read_range(&item);
        ok &= range.is_some();
        if data_type.is_some() && !numeric {
            item.error(
                format!(
                    "a range is only allowed on numeric attributes, and `{}` is {type_name}",
                    key.name
                ),
                None,
            );
            ok = false;
        }
    }

    let mut allowed = None;
    if let Some(item) = t.optional_item("enum") {
        allowed = read_enum(&item);
        ok &= allowed.is_some();
        if data_type.is_some() && data_type != Some(DataType::Scalar(ScalarType::String)) {
            item.error(
                format!(
                    "`enum` is only allowed on string attributes, and `{}` is {type_name}",
                    key.name
                ),
                Some(
                    "make the type \"string\" and map raw codes to labels in the binding with `map`"
                        .to_owned(),
                ),
            );
            ok = false;
        }
    }
    let mut decimals = None;
    if let Some(item) = t.optional_item("decimals") {
        match item.expect_i64() {
            Some(n) if (0..=i64::from(MAX_DECIMALS)).contains(&n) => decimals = Some(n as u8),
            Some(n) => {
                item.error(
                    format!("`decimals = {n}` is out of range"),
                    Some(format!("decimals are 0 to {MAX_DECIMALS}")),
                );
                ok = false;
            }
            None => ok = false,
        }
        if data_type.is_some() && data_type != Some(DataType::Scalar(ScalarType::Float)) {
            item.error(
                format!(
                    "`decimals` is only allowed on float attributes, and `{}` is {type_name}",
                    key.name
                ),
                Some("remove `decimals`: other types are not rounded".to_owned()),
            );
            ok = false;
        }
    }
    let expr_item = t.optional_item("expr");
    let mut expr = None;
    if let Some(item) = &expr_item {
        match item.expect_str() {
            Some(text) if text.trim().is_empty() => {
                item.error(
                    "`expr` is empty",
                    Some("write an expression, e.g. `delta(good_count)`".to_owned()),
                );
                ok = false;
            }
            Some(text) if text.len() > MAX_EXPR_LEN => {
                item.error(
                    format!("`expr` is {} bytes long, more than {MAX_EXPR_LEN}", text.len()),
                    Some("split it into several derived attributes".to_owned()),
                );
                ok = false;
            }
            Some(text) => expr = Some(Arc::from(text)),
            None => ok = false,
        }
        if matches!(
            data_type,
            Some(DataType::Array(_)) | Some(DataType::Scalar(ScalarType::Timestamp))
        ) {
            item.error(
                format!(
                    "a derived attribute is a number, boolean or string, and `{}` is {type_name}",
                    key.name
                ),
                None,
            );
            ok = false;
        }
    }
    let mut limits = None;
    if let Some(item) = t.optional_item("limits") {
        limits = read_limits(&item);
        ok &= limits.is_some();
        if data_type.is_some() && !data_type.is_some_and(|d| d.is_numeric_scalar()) {
            item.error(
                format!(
                    "limits are only allowed on numeric attributes, and `{}` is {type_name}",
                    key.name
                ),
                Some("remove `limits`, or make the type int, uint or float".to_owned()),
            );
            ok = false;
        }
    }
    t.finish();
    let data_type = data_type?;
    ok.then(|| {
        (
            Attribute {
                name: key.name.to_owned(),
                data_type,
                unit,
                description,
                range,
                allowed,
                decimals,
                expr,
                limits,
            },
            expr_item,
        )
    })
}

/// `limits = { hihi = 95.0, hi = 85.0, lo = 2.0, lolo = 1.0, deadband = 0.5,
/// severity = { hi = 600 } }`: at least one level, ordered lolo < lo < hi < hihi.
fn read_limits(item: &Item<'_>) -> Option<Limits> {
    let mut t = item.expect_table()?;
    let mut ok = true;
    let mut levels = [None; 4];
    for level in LimitLevel::ALL {
        if t.has(level.name()) {
            let v = t.optional_f64(level.name());
            ok &= v.is_some();
            levels[level as usize] = v;
        }
    }
    let deadband = if t.has("deadband") {
        match t.optional_f64("deadband") {
            Some(d) if d >= 0.0 => d,
            Some(d) => {
                t.error(
                    "deadband",
                    format!("deadband {d} is negative"),
                    Some("a deadband is 0 or more, in the attribute's unit".to_owned()),
                );
                ok = false;
                0.0
            }
            None => {
                ok = false;
                0.0
            }
        }
    } else {
        0.0
    };
    let mut severity = LimitLevel::ALL.map(LimitLevel::default_severity);
    if let Some(mut s) = t.optional_table("severity") {
        for level in LimitLevel::ALL {
            if !s.has(level.name()) {
                continue;
            }
            match s.optional_i64(level.name()) {
                Some(n) if (1..=1000).contains(&n) => severity[level as usize] = n as u16,
                Some(n) => {
                    s.error(
                        level.name(),
                        format!("severity {n} is out of range"),
                        Some("OPC UA severities are 1 to 1000".to_owned()),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        s.finish();
    }
    if levels.iter().all(Option::is_none) && ok {
        t.error(
            "hi",
            "limits set no level",
            Some("set at least one of `lolo`, `lo`, `hi`, `hihi`".to_owned()),
        );
        ok = false;
    }
    // Set levels must increase from lolo to hihi.
    let set: Vec<(LimitLevel, f64)> = LimitLevel::ALL
        .into_iter()
        .filter_map(|l| levels[l as usize].map(|v| (l, v)))
        .collect();
    for pair in set.windows(2) {
        if let [(a, va), (b, vb)] = pair
            && va >= vb
        {
            t.error(
                b.name(),
                format!("limit `{}` = {vb} is not above `{}` = {va}", b.name(), a.name()),
                Some("limits are ordered lolo < lo < hi < hihi".to_owned()),
            );
            ok = false;
        }
    }
    t.finish();
    let [lolo, lo, hi, hihi] = levels;
    ok.then_some(Limits {
        hihi,
        hi,
        lo,
        lolo,
        deadband,
        severity,
    })
}

/// The longest `expr` accepted: an expression is a formula, not a program.
pub const MAX_EXPR_LEN: usize = 1000;

/// `[min, max]` with min < max.
fn read_range(item: &Item<'_>) -> Option<[f64; 2]> {
    let pair = read_pair(item)?;
    if pair[0] >= pair[1] {
        item.error(
            format!("range minimum {} is not below its maximum {}", pair[0], pair[1]),
            Some("write `range = [min, max]` with min < max".to_owned()),
        );
        return None;
    }
    Some(pair)
}

/// Two finite numbers, `[a, b]`.
/// The diagnostic for `name` when it is not an attribute of `model`: the message, and a
/// hint naming the closest attribute or listing them.
pub(crate) fn unknown_attribute(name: &str, model: &Model) -> (String, Option<String>) {
    let hint = suggest(
        name,
        model.attributes.iter().map(|a| a.name.as_str()),
        &format!("attributes of `{}`", model.name),
    );
    (
        format!("unknown attribute `{name}` of model `{}`", model.name),
        hint,
    )
}

pub(crate) fn read_pair(item: &Item<'_>) -> Option<[f64; 2]> {
    let items = item.expect_array()?;
    let [a, b] = items.as_slice() else {
        item.error(
            format!("expected two numbers `[a, b]`, found {} values", items.len()),
            None,
        );
        return None;
    };
    Some([a.expect_f64()?, b.expect_f64()?])
}

fn read_enum(item: &Item<'_>) -> Option<Vec<String>> {
    let items = item.expect_array()?;
    if items.is_empty() {
        item.error(
            "`enum` is empty",
            Some("list the allowed labels, e.g. [\"stopped\", \"running\"]".to_owned()),
        );
        return None;
    }
    let mut labels: Vec<String> = Vec::new();
    let mut ok = true;
    for entry in &items {
        let Some(label) = entry.expect_str() else {
            ok = false;
            continue;
        };
        if labels.iter().any(|l| l == label) {
            entry.error(format!("label `{label}` is listed twice"), None);
            ok = false;
        }
        labels.push(label.to_owned());
    }
    ok.then_some(labels)
}

/// Parses a unit, or explains why not. A lower-case word is a count unit (`bottle`), but
/// one that matches a known symbol in another case (`degc`, `kpa`) is almost surely a
/// typo, so it is rejected rather than silently counted.
pub(crate) fn parse_unit(text: &str) -> Result<Unit, Option<String>> {
    if !Unit::known_symbols().any(|s| s == text)
        && let Some(twin) = Unit::known_symbols().find(|s| s.eq_ignore_ascii_case(text))
    {
        return Err(Some(format!(
            "did you mean `{twin}`? (symbols are case-sensitive)"
        )));
    }
    if let Some(unit) = Unit::parse(text) {
        return Ok(unit);
    }
    Err(suggest(text, Unit::known_symbols(), "known units include").map(|hint| {
        if hint.starts_with("did you mean") {
            hint
        } else {
            format!(
                "{hint}; a count is a lower-case word (`bottle`) and a rate a word per time (`bottle/min`); see docs/configuration.md, \"Units\""
            )
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_in_the_wrong_case_are_rejected_with_the_right_spelling() {
        assert!(parse_unit("degC").is_ok());
        assert!(parse_unit("bottle/min").is_ok());
        assert!(parse_unit("l").is_ok());
        assert_eq!(
            parse_unit("degc").unwrap_err().unwrap(),
            "did you mean `degC`? (symbols are case-sensitive)"
        );
        assert!(parse_unit("kpa").is_err());
        assert!(parse_unit("DegC").is_err());
        assert!(parse_unit("furlong/fortnight").is_err());
    }

    #[test]
    fn model_names_are_pascal_case() {
        assert!(is_pascal_case("Filler"));
        assert!(is_pascal_case("CIP2"));
        assert!(!is_pascal_case("filler"));
        assert!(!is_pascal_case("Bottle_Filler"));
    }
}
