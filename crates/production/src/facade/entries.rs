//! Operator entries: form submissions validated against their form and recorded.

use std::sync::Arc;

use backplane_model::sample::{EventKind, OperatorEntry};
use backplane_model::{AssetPath, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::{Outcome, Production, check_id, push_bounded};
use crate::forms::{self, FieldError};

/// Operator entries kept for queries (all of them are events, so history has the rest).
const RECENT_ENTRIES: usize = 1000;

/// One recorded operator entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub entry: u64,
    pub form: Arc<str>,
    pub asset: AssetPath,
    pub user: Arc<str>,
    pub time: Timestamp,
    pub values: Map<String, serde_json::Value>,
}

impl Production {
    /// Validates and records an operator entry. On any problem returns every one of
    /// them, each naming its field (`form`, `asset` and `user` for the submission itself),
    /// and records nothing. A valid entry becomes an `operator_entry` event at `asset`.
    pub fn submit_form(
        &mut self,
        form: &str,
        asset: &str,
        user: &str,
        values: &Map<String, serde_json::Value>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<EntryRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        let spec = self.cfg.forms.iter().find(|f| f.name == form);
        if spec.is_none() {
            let names: Vec<&str> = self.cfg.forms.iter().map(|f| f.name.as_str()).collect();
            let known = if names.is_empty() {
                "no forms are configured".to_owned()
            } else {
                format!("forms are {}", names.join(", "))
            };
            errors.push(FieldError::new("form", format!("unknown form `{form}`; {known}")));
        }
        let asset = match self.resolve_asset("asset", asset) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(FieldError::new("asset", e.message));
                None
            }
        };
        if let (Some(spec), Some(a)) = (spec, &asset)
            && !spec.assets.is_empty()
            && !spec.assets.iter().any(|allowed| a.starts_with(allowed))
        {
            let allowed: Vec<String> = spec.assets.iter().map(ToString::to_string).collect();
            errors.push(FieldError::new(
                "asset",
                format!(
                    "form `{form}` is for {} (and below), not `{a}`",
                    allowed.join(", ")
                ),
            ));
        }
        let user = match check_id("user", user) {
            Ok(u) => Some(u),
            Err(e) => {
                errors.push(FieldError::new("user", e.message));
                None
            }
        };
        let validated = match spec.map(|s| forms::validate(s, values)) {
            Some(Ok(v)) => Some(v),
            Some(Err(field_errors)) => {
                errors.extend(field_errors);
                None
            }
            None => None,
        };
        let (Some(asset), Some(user), Some(values), true) = (asset, user, validated, errors.is_empty())
        else {
            return Err(errors);
        };
        self.seen(time);
        self.st.next_entry = self.st.next_entry.saturating_add(1);
        let record = EntryRecord {
            entry: self.st.next_entry,
            form: form.into(),
            asset: asset.clone(),
            user: user.clone(),
            time,
            values: values.clone(),
        };
        out.event(
            &asset,
            time,
            EventKind::OperatorEntry(OperatorEntry {
                form: form.into(),
                entry: record.entry,
                user,
                values,
            }),
        );
        push_bounded(&mut self.st.entries, record.clone(), RECENT_ENTRIES);
        Ok(record)
    }
}
