//! `[forms.NAME]`: the forms operators fill in, their fields and where they may be
//! submitted.

use backplane_model::asset::validate_attribute_name;
use backplane_model::{AssetPath, DataType, Unit};
use serde::Serialize;

use super::{Env, at};
use crate::models::{parse_unit, read_pair};
use crate::reader::{Item, KeyRef};

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

pub(super) fn read_forms(entries: Vec<(KeyRef<'_>, Item<'_>)>, env: &Env<'_>) -> Vec<FormSpec> {
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
