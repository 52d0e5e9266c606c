//! Operator entries: form submissions validated against their form and recorded.
//!
//! A submission may carry a client-made `id` and the `time` it was made at (a tablet that
//! queued it while the gateway was unreachable). Each id is recorded once: a retry of an
//! id among the kept entries answers with the entry already recorded and records nothing;
//! the same id with other content is a conflict. The ids live on the entries, so they
//! are in the snapshot and survive a restart, and the set is bounded like the entries
//! ([`RECENT_ENTRIES`]).

use std::sync::Arc;

use backplane_model::sample::{EventKind, OperatorEntry};
use backplane_model::{AssetPath, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::{Outcome, Production, check_id, push_bounded};
use crate::commands::Refusal;
use crate::error::CommandError;
use crate::forms::{self, FieldError};

/// Operator entries kept for queries (all of them are events, so history has the rest),
/// and so the client ids that are recognised on a retry.
pub const RECENT_ENTRIES: usize = 1000;
/// The longest client id, in characters.
pub const MAX_ENTRY_ID_LEN: usize = 64;
/// How far ahead of the gateway's clock an entry's `time` may be (clock skew), in seconds.
pub const MAX_ENTRY_AHEAD_SECS: i64 = 5 * 60;
/// How old an entry's `time` may be: an entry queued offline for longer is refused.
pub const MAX_ENTRY_AGE_SECS: i64 = 7 * 24 * 3600;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// One submission of an operator form.
#[derive(Clone, Copy, Debug)]
pub struct Submission<'a> {
    pub form: &'a str,
    pub asset: &'a str,
    pub user: &'a str,
    pub values: &'a Map<String, serde_json::Value>,
    /// The client's id for it, recognised on a retry.
    pub id: Option<&'a str>,
    /// When it was made (RFC 3339); absent means now.
    pub time: Option<&'a str>,
}

/// What [`Production::submit_entry`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    pub record: EntryRecord,
    /// The id was recorded before: nothing new was recorded, `record` is the first one.
    pub duplicate: bool,
}

/// One recorded operator entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub entry: u64,
    /// The client's id, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Arc<str>>,
    pub form: Arc<str>,
    pub asset: AssetPath,
    pub user: Arc<str>,
    pub time: Timestamp,
    pub values: Map<String, serde_json::Value>,
}

/// A client id: 1 to [`MAX_ENTRY_ID_LEN`] ASCII letters, digits, `-`, `_`, `.` or `:`
/// (a UUID fits).
fn check_entry_id(id: &str) -> Result<Arc<str>, FieldError> {
    if id.is_empty() || id.len() > MAX_ENTRY_ID_LEN {
        return Err(FieldError::new(
            "id",
            format!("`id` must be 1 to {MAX_ENTRY_ID_LEN} characters long"),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(FieldError::new(
            "id",
            format!("`id` may hold ASCII letters, digits, `-`, `_`, `.` and `:` only, found {c:?}"),
        ));
    }
    Ok(id.into())
}

/// An entry's original time: RFC 3339.
fn parse_entry_time(text: &str) -> Result<Timestamp, FieldError> {
    Timestamp::parse_rfc3339(text).ok_or_else(|| {
        FieldError::new(
            "time",
            format!("`time` must be an RFC 3339 time such as 2026-11-27T06:20:31Z, found \"{text}\""),
        )
    })
}

/// A new entry's time is at most [`MAX_ENTRY_AHEAD_SECS`] ahead of `now` and at most
/// [`MAX_ENTRY_AGE_SECS`] before it. (A retry of an entry recorded before is answered
/// whatever its age.)
fn check_entry_time(time: Timestamp, now: Timestamp) -> Result<(), FieldError> {
    let ahead = time.unix_nanos().saturating_sub(now.unix_nanos()) / NANOS_PER_SEC;
    if ahead > MAX_ENTRY_AHEAD_SECS {
        return Err(FieldError::new(
            "time",
            format!(
                "`time` {time} is {ahead} s ahead of the gateway's clock ({now}); at most {MAX_ENTRY_AHEAD_SECS} s is accepted: check the device's clock"
            ),
        ));
    }
    if -ahead > MAX_ENTRY_AGE_SECS {
        return Err(FieldError::new(
            "time",
            format!(
                "`time` {time} is more than {} days before the gateway's clock ({now}): too old to record",
                MAX_ENTRY_AGE_SECS / 86_400
            ),
        ));
    }
    Ok(())
}

impl Production {
    /// Validates and records an operator entry made now, without a client id (see
    /// [`submit_entry`](Self::submit_entry)).
    pub fn submit_form(
        &mut self,
        form: &str,
        asset: &str,
        user: &str,
        values: &Map<String, serde_json::Value>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<EntryRecord, Vec<FieldError>> {
        let submission = Submission {
            form,
            asset,
            user,
            values,
            id: None,
            time: None,
        };
        match self.submit_entry(&submission, time, out) {
            Ok(done) => Ok(done.record),
            Err(Refusal::Fields { errors }) => Err(errors),
            Err(Refusal::Command(e)) => Err(vec![FieldError::new(
                e.field.as_deref().unwrap_or("entry"),
                e.message,
            )]),
        }
    }

    /// Validates and records an operator entry at `now` (or at its own `time`). On any
    /// problem returns every one of them, each naming its field (`form`, `asset`, `user`,
    /// `id` and `time` for the submission itself), and records nothing. A valid entry
    /// becomes an `operator_entry` event at `asset`, at its time.
    ///
    /// An `id` already recorded with the same content records nothing and answers the
    /// first record (`duplicate`); with other content it is a conflict on `id`.
    pub fn submit_entry(
        &mut self,
        submission: &Submission<'_>,
        now: Timestamp,
        out: &mut Outcome,
    ) -> Result<Submitted, Refusal> {
        let Submission {
            form,
            asset,
            user,
            values,
            id,
            time,
        } = *submission;
        let mut errors = Vec::new();
        let id = match id.map(check_entry_id).transpose() {
            Ok(id) => id,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let time = match time.map(parse_entry_time).transpose() {
            Ok(time) => time,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        // Out of bounds only matters for a new entry: a retry of one recorded is answered.
        let out_of_bounds = time.and_then(|t| check_entry_time(t, now).err());
        let retry_only = errors.is_empty() && out_of_bounds.is_some();
        if let Some(e) = out_of_bounds {
            errors.push(e);
        }
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
        let acceptable = errors.is_empty() || (retry_only && errors.len() == 1);
        let (Some(asset), Some(user), Some(values), true) = (asset, user, validated, acceptable) else {
            return Err(Refusal::Fields { errors });
        };
        if let Some(id) = &id
            && let Some(first) = self.st.entries.iter().find(|e| e.id.as_ref() == Some(id))
        {
            let same = *first.form == *form
                && first.asset == asset
                && first.user == user
                && first.values == values
                && time.is_none_or(|t| t == first.time);
            if !same {
                return Err(Refusal::Command(CommandError::conflict(
                    "id",
                    format!(
                        "entry id `{id}` was recorded before (entry {}) with other content; a new entry needs a new id",
                        first.entry
                    ),
                )));
            }
            return Ok(Submitted {
                record: first.clone(),
                duplicate: true,
            });
        }
        if !errors.is_empty() {
            return Err(Refusal::Fields { errors });
        }
        let time = time.unwrap_or(now);
        self.seen(now);
        self.st.next_entry = self.st.next_entry.saturating_add(1);
        let record = EntryRecord {
            entry: self.st.next_entry,
            id,
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
        Ok(Submitted {
            record,
            duplicate: false,
        })
    }
}
