//! `[models.NAME.writes.ATTRIBUTE]`: the allowlist of machine writes. An attribute with
//! no entry is never written. Each entry names the least role that may write it, how far
//! and how often a value may move, and the interlocks that must hold on the same asset.
//! The write gate (backplane-connector, `gate`) enforces these rules; this file reads them
//! and gives the interlock comparisons their meaning.

use std::fmt;
use std::time::Duration;

use backplane_model::{DataType, Model, ScalarType, Value};
use backplane_security::Role;

use crate::models::{ModelEntry, unknown_attribute};
use crate::reader::{Item, Table};

/// Default least role for a write rule: writes to machines are an engineer's call.
pub const DEFAULT_WRITE_ROLE: Role = Role::Engineer;

/// Default age beyond which an interlock's value is too old to trust.
pub const DEFAULT_INTERLOCK_MAX_AGE: Duration = Duration::from_secs(10);

/// Most interlocks one rule may have: each is checked on every write.
const MAX_INTERLOCKS: usize = 16;

/// One allowlisted attribute of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteRule {
    pub model: String,
    pub attribute: String,
    /// The least role that may write it (`role`, default engineer).
    pub role: Role,
    /// Largest change from the latest value in one write (`max_step`), numeric only.
    pub max_step: Option<f64>,
    /// Least time between two accepted writes to the same tag (`min_interval`).
    pub min_interval: Option<Duration>,
    /// Conditions on other attributes of the same asset; all must hold (`interlocks`).
    pub interlocks: Vec<Interlock>,
    /// An interlock's value older than this counts as unknown (`interlock_max_age`).
    pub interlock_max_age: Duration,
    /// Read the value back and compare it with what was asked (`verify`, default true).
    pub verify: bool,
}

/// `attribute OP literal`, e.g. `state == 'idle'` or `speed < 5`.
#[derive(Clone, Debug, PartialEq)]
pub struct Interlock {
    pub attribute: String,
    pub op: CompareOp,
    pub literal: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    const ALL: [(&'static str, CompareOp); 6] = [
        ("==", CompareOp::Eq),
        ("!=", CompareOp::Ne),
        ("<=", CompareOp::Le),
        (">=", CompareOp::Ge),
        ("<", CompareOp::Lt),
        (">", CompareOp::Gt),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(s, _)| s)
    }

    fn ordering(self) -> bool {
        !matches!(self, CompareOp::Eq | CompareOp::Ne)
    }
}

impl fmt::Display for Interlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.literal {
            Value::String(s) => write!(f, "{} {} '{s}'", self.attribute, self.op.as_str()),
            other => write!(f, "{} {} {other}", self.attribute, self.op.as_str()),
        }
    }
}

impl Interlock {
    /// Whether `value` (the attribute's latest good value) satisfies the comparison;
    /// `None` when the two cannot be compared (a type the rule did not expect).
    pub fn holds(&self, value: &Value) -> Option<bool> {
        use std::cmp::Ordering;
        let ordering = match (&self.literal, value) {
            (Value::String(a), Value::String(b)) => b.as_ref().cmp(a.as_ref()),
            (Value::Bool(a), Value::Bool(b)) => b.cmp(a),
            (lit, v) => v.as_f64()?.partial_cmp(&lit.as_f64()?)?,
        };
        if matches!(self.literal, Value::Bool(_) | Value::String(_)) && self.op.ordering() {
            return None;
        }
        Some(match self.op {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
        })
    }
}

/// Reads every model's `writes` table (collected by `read_models`), checking each entry
/// against the model's attributes.
pub(crate) fn read_write_rules(items: Vec<(String, Item<'_>)>, models: &[ModelEntry]) -> Vec<WriteRule> {
    let mut rules = Vec::new();
    for (model_name, item) in items {
        let Some(entry) = models.iter().find(|m| m.model.name == model_name) else {
            continue;
        };
        let Some(mut table) = item.expect_table() else {
            continue;
        };
        for (key, item) in table.take_remaining() {
            if entry.broken.contains(key.name) {
                continue;
            }
            let Some(attribute) = entry.model.attribute(key.name) else {
                let (message, hint) = unknown_attribute(key.name, &entry.model);
                key.error(message, hint);
                continue;
            };
            if !writable_type(attribute.data_type) {
                key.error(
                    format!(
                        "`{}` is {} and cannot be written; writes take one bool, int, uint, float or string",
                        key.name, attribute.data_type
                    ),
                    None,
                );
                continue;
            }
            let Some(t) = item.expect_table() else { continue };
            if let Some(rule) = read_rule(&entry.model, key.name, attribute.data_type, t) {
                rules.push(rule);
            }
        }
        table.finish();
    }
    rules
}

/// An asset's `writes`: `false` (nothing on this asset is written) or the list of the
/// model's allowlisted attributes that may be written here. It narrows, never widens.
pub(crate) fn read_asset_writes(
    item: &Item<'_>,
    model: Option<&Model>,
    rules: &[WriteRule],
) -> Option<Vec<String>> {
    let hint = || {
        Some("write `writes = false`, or list attributes the model allowlists: `writes = [\"speed_setpoint\"]`".to_owned())
    };
    if let Some(b) = item.as_bool() {
        if b {
            item.error(
                "`writes = true` cannot widen the model's allowlist; it is the default",
                hint(),
            );
        }
        return Some(Vec::new());
    }
    let Some(items) = item.as_array() else {
        item.error("`writes` must be false or a list of attribute names", hint());
        return None;
    };
    let Some(model) = model else {
        item.error("`writes` needs a `model`", None);
        return None;
    };
    let mut names: Vec<String> = Vec::new();
    for entry in &items {
        let Some(name) = entry.expect_str() else { continue };
        if model.attribute(name).is_none() {
            let (message, hint) = unknown_attribute(name, model);
            entry.error(message, hint);
        } else if !rules.iter().any(|r| r.model == model.name && r.attribute == name) {
            entry.error(
                format!("`{name}` is not in the write allowlist of model `{}`", model.name),
                Some(format!(
                    "an asset can only narrow its model's allowlist; add [models.{}.writes.{name}] first",
                    model.name
                )),
            );
        } else if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Some(names)
}

fn writable_type(t: DataType) -> bool {
    matches!(t, DataType::Scalar(s) if s != ScalarType::Timestamp)
}

fn read_rule(model: &Model, attribute: &str, data_type: DataType, mut t: Table<'_>) -> Option<WriteRule> {
    let mut role = DEFAULT_WRITE_ROLE;
    if let Some(text) = t.optional_str("role") {
        match text.parse::<Role>() {
            Ok(r) => role = r,
            Err(e) => t.error("role", e.to_string(), None),
        }
    }
    let max_step = t.optional_f64("max_step");
    if let Some(step) = max_step {
        if !data_type.is_numeric_scalar() {
            t.error(
                "max_step",
                format!("`max_step` is only allowed on numeric attributes, and `{attribute}` is {data_type}"),
                None,
            );
        } else if !(step.is_finite() && step > 0.0) {
            t.error("max_step", "`max_step` must be a number above zero", None);
        }
    }
    let min_interval = t.optional_duration("min_interval");
    let interlock_max_age = t
        .optional_duration("interlock_max_age")
        .unwrap_or(DEFAULT_INTERLOCK_MAX_AGE);
    if interlock_max_age.is_zero() {
        t.error(
            "interlock_max_age",
            "`interlock_max_age` must be above zero",
            None,
        );
    }
    let verify = t.optional_bool("verify").unwrap_or(true);
    let mut interlocks = Vec::new();
    if let Some(items) = t.optional_item("interlocks").and_then(|i| i.expect_array()) {
        if items.len() > MAX_INTERLOCKS {
            t.error(
                "interlocks",
                format!("at most {MAX_INTERLOCKS} interlocks per attribute"),
                None,
            );
        }
        for item in &items {
            let Some(text) = item.expect_str() else { continue };
            match parse_interlock(text, model) {
                Ok(i) => interlocks.push(i),
                Err((message, hint)) => item.error(format!("interlock `{text}`: {message}"), hint),
            }
        }
    }
    t.finish();
    // A rule with errors is still returned: any diagnostic fails the whole configuration.
    Some(WriteRule {
        model: model.name.clone(),
        attribute: attribute.to_owned(),
        role,
        max_step,
        min_interval,
        interlocks,
        interlock_max_age,
        verify,
    })
}

/// Parses `attribute OP literal` against `model`.
pub fn parse_interlock(text: &str, model: &Model) -> Result<Interlock, (String, Option<String>)> {
    let hint = || {
        Some("write `attribute OP value` with OP one of == != < <= > >=, e.g. \"state == 'idle'\" or \"speed < 5\"".to_owned())
    };
    let Some((at, op_text, op)) = CompareOp::ALL
        .iter()
        .filter_map(|(s, op)| text.find(s).map(|at| (at, *s, *op)))
        .min_by_key(|(at, s, _)| (*at, std::cmp::Reverse(s.len())))
    else {
        return Err(("no comparison operator".into(), hint()));
    };
    let name = text[..at].trim();
    let literal_text = text[at + op_text.len()..].trim();
    if name.is_empty() || literal_text.is_empty() {
        return Err(("expected an attribute, an operator and a value".into(), hint()));
    }
    let Some(attribute) = model.attribute(name) else {
        return Err(unknown_attribute(name, model));
    };
    let literal = parse_literal(literal_text).ok_or_else(|| {
        (
            format!("`{literal_text}` is not a number, true, false or a quoted string"),
            hint(),
        )
    })?;
    let compatible = match (&literal, attribute.data_type) {
        (Value::String(_), DataType::Scalar(ScalarType::String)) => true,
        (Value::Bool(_), DataType::Scalar(ScalarType::Bool)) => true,
        (Value::Float(_), t) => t.is_numeric_scalar(),
        _ => false,
    };
    if !compatible {
        return Err((
            format!(
                "`{name}` is {} and cannot be compared with {literal_text}",
                attribute.data_type
            ),
            None,
        ));
    }
    if op.ordering() && !attribute.data_type.is_numeric_scalar() {
        return Err((
            format!(
                "`{}` only compares numbers; `{name}` is {}",
                op.as_str(),
                attribute.data_type
            ),
            Some("use == or != for strings and bools".to_owned()),
        ));
    }
    Ok(Interlock {
        attribute: name.to_owned(),
        op,
        literal,
    })
}

fn parse_literal(text: &str) -> Option<Value> {
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    for quote in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return (!inner.contains(quote)).then(|| Value::String(inner.into()));
        }
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filler() -> Model {
        let attr = |name: &str, t: &str| backplane_model::Attribute {
            name: name.into(),
            data_type: DataType::parse(t).unwrap(),
            unit: None,
            description: None,
            range: None,
            allowed: None,
            decimals: None,
            expr: None,
            limits: None,
        };
        Model {
            name: "Filler".into(),
            description: None,
            attributes: vec![
                attr("state", "string").into(),
                attr("speed", "float").into(),
                attr("jam", "bool").into(),
            ],
        }
    }

    #[test]
    fn interlocks_parse_and_compare_like_an_engineer_reads_them() {
        let m = filler();
        let idle = parse_interlock("state == 'idle'", &m).unwrap();
        assert!(idle.holds(&Value::String("idle".into())).unwrap());
        assert!(!idle.holds(&Value::String("running".into())).unwrap());
        let slow = parse_interlock("speed<=5", &m).unwrap();
        assert_eq!(slow.op, CompareOp::Le);
        assert!(slow.holds(&Value::Float(5.0)).unwrap());
        assert!(!slow.holds(&Value::Float(5.1)).unwrap());
        let clear = parse_interlock("jam != true", &m).unwrap();
        assert!(clear.holds(&Value::Bool(false)).unwrap());
        assert_eq!(idle.to_string(), "state == 'idle'");
    }

    #[test]
    fn interlocks_that_cannot_be_meant_are_refused() {
        let m = filler();
        assert!(parse_interlock("state 'idle'", &m).is_err());
        assert!(parse_interlock("stat == 'idle'", &m).is_err());
        assert!(parse_interlock("state < 'idle'", &m).is_err());
        assert!(parse_interlock("speed == 'fast'", &m).is_err());
        assert!(parse_interlock("speed == fast", &m).is_err());
        assert!(parse_interlock("== 5", &m).is_err());
    }
}
