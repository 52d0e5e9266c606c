//! `[downtime_reasons]`: the downtime reason tree; and a model's `reason_codes`, the
//! codes a machine reports itself mapped to reasons of the tree.

use backplane_model::{DataType, ScalarType};
use serde::Serialize;

use super::at;
use super::model::{Attributes, RawKey, raw_key};
use crate::reader::{Item, KeyRef, suggest, with_article};

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

/// `reason_codes = { attribute, map }`: reason codes a machine reports itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonCodesSpec {
    pub attribute: String,
    /// Raw code → reason code of the reason tree.
    pub map: Vec<(RawKey, String)>,
}

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

pub(super) fn read_reasons(entries: Vec<(KeyRef<'_>, Item<'_>)>) -> Vec<ReasonSpec> {
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

pub(super) fn read_reason_codes(
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
