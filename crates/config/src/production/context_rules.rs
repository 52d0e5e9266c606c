//! `[[context_rules]]`: context fields derived from attributes, optionally opening lots
//! that consume the lots of other rules.

use std::collections::HashSet;

use backplane_model::{AssetPath, ContextField, DataType};

use super::{Env, check_context_value};
use crate::models::unknown_attribute;
use crate::reader::{Item, Table, suggest};

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

/// A rule as read, with where it came from for the checks across rules.
struct ReadRule<'a> {
    spec: Option<ContextRuleSpec>,
    asset: Option<AssetPath>,
    field: Option<ContextField>,
    material: bool,
    consumes: Vec<(Item<'a>, Option<AssetPath>)>,
    item: Item<'a>,
}

pub(super) fn read_rules(tables: Vec<Table<'_>>, env: &Env<'_>) -> Vec<ContextRuleSpec> {
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
