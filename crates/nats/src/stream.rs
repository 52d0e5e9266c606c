//! The JetStream stream a sink publishes into: its settings (`stream = { ... }`), and
//! making sure it exists with them before the first publish ([`ensure`]).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use backplane_config::Table;
use backplane_connector::ComponentError;

use crate::subjects::{filter_covers, validate_filter};

/// `stream = { ... }` of a sink.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSettings {
    pub name: String,
    /// Create the stream if missing (or bring an existing one to these settings);
    /// `false`: bind to an existing stream and fail if it is missing.
    pub create: bool,
    /// `None`: `["<prefix>.>"]`.
    pub subjects: Option<Vec<String>>,
    pub retention: stream::RetentionPolicy,
    pub replicas: usize,
    pub duplicate_window: Duration,
    pub storage: stream::StorageType,
    /// Zero: unlimited.
    pub max_age: Duration,
    /// `None`: unlimited.
    pub max_bytes: Option<u64>,
}

impl StreamSettings {
    pub fn parse(mut t: Table<'_>) -> Option<StreamSettings> {
        let name = t.required_str("name").map(str::to_owned);
        if let Some(n) = &name
            && (n.is_empty()
                || n.chars()
                    .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\')))
        {
            t.error(
                "name",
                format!("`{n}` is not a valid stream name (no spaces, `.`, `*`, `>`, `/`)"),
                None,
            );
        }
        let create = t.optional_bool("create").unwrap_or(true);
        let subjects = match t.optional_item("subjects") {
            None => None,
            Some(item) => match item.as_array() {
                Some(items) => {
                    let mut out = Vec::new();
                    for i in items {
                        match i.as_str() {
                            Some(s) => match validate_filter(s) {
                                Ok(()) => out.push(s.to_owned()),
                                Err(e) => i.error(format!("invalid stream subject `{s}`: {e}"), None),
                            },
                            None => i.error("`subjects` must list subject strings", None),
                        }
                    }
                    Some(out)
                }
                None => {
                    item.error(
                        "`subjects` must be a list of subjects",
                        Some("subjects = [\"uns.>\"]".into()),
                    );
                    None
                }
            },
        };
        let retention = match t.optional_str("retention") {
            None | Some("limits") => stream::RetentionPolicy::Limits,
            Some("interest") => stream::RetentionPolicy::Interest,
            Some("workqueue") => stream::RetentionPolicy::WorkQueue,
            Some(other) => {
                t.error(
                    "retention",
                    format!("unknown retention `{other}`"),
                    Some("one of: \"limits\", \"interest\", \"workqueue\"".into()),
                );
                stream::RetentionPolicy::Limits
            }
        };
        let replicas = t.optional_u64("replicas").unwrap_or(1);
        if !(1..=5).contains(&replicas) {
            t.error("replicas", "`replicas` must be 1 to 5", None);
        }
        let duplicate_window = t
            .optional_duration("duplicate_window")
            .unwrap_or(Duration::from_secs(120));
        if duplicate_window.is_zero() {
            t.error("duplicate_window", "`duplicate_window` must be above zero", None);
        }
        let storage = match t.optional_str("storage") {
            None | Some("file") => stream::StorageType::File,
            Some("memory") => stream::StorageType::Memory,
            Some(other) => {
                t.error(
                    "storage",
                    format!("unknown storage `{other}`"),
                    Some("\"file\" or \"memory\"".into()),
                );
                stream::StorageType::File
            }
        };
        let max_age = t.optional_duration("max_age").unwrap_or(Duration::ZERO);
        if !max_age.is_zero() && max_age < duplicate_window {
            t.error(
                "max_age",
                "`max_age` must not be shorter than `duplicate_window`",
                None,
            );
        }
        let max_bytes = t.optional_bytes("max_bytes");
        t.finish();
        Some(StreamSettings {
            name: name?,
            create,
            subjects,
            retention,
            replicas: usize::try_from(replicas).unwrap_or(1),
            duplicate_window,
            storage,
            max_age,
            max_bytes,
        })
    }

    /// The subjects the stream holds.
    pub fn subjects_for(&self, prefix: &str) -> Vec<String> {
        self.subjects
            .clone()
            .unwrap_or_else(|| vec![format!("{prefix}.>")])
    }

    fn config(&self, prefix: &str) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects_for(prefix),
            retention: self.retention,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            storage: self.storage,
            max_age: self.max_age,
            max_bytes: self.max_bytes.and_then(|b| i64::try_from(b).ok()).unwrap_or(-1),
            ..Default::default()
        }
    }
}

/// Makes sure the stream exists and covers `prefix.>`: `create = true` creates it or
/// brings an existing one to the configured settings; `create = false` only binds.
pub async fn ensure(
    js: &jetstream::Context,
    settings: &StreamSettings,
    prefix: &str,
) -> Result<(), ComponentError> {
    let name = &settings.name;
    let existing = match js.get_stream(name).await {
        Ok(mut s) => Some(
            s.info()
                .await
                .map_err(|e| ComponentError::io(format!("nats: stream `{name}`: {e}")))?
                .config
                .clone(),
        ),
        Err(e) if is_not_found(&e) => None,
        Err(e) => {
            return Err(ComponentError::io(format!(
                "nats: cannot look up stream `{name}`: {e}"
            )));
        }
    };
    let wanted = settings.config(prefix);
    match existing {
        None if !settings.create => Err(ComponentError::config(format!(
            "nats: stream `{name}` does not exist and `stream.create` is false; create it (e.g. `nats stream add {name} --subjects '{prefix}.>'`) or set `create = true`"
        ))),
        None => {
            js.create_stream(wanted)
                .await
                .map_err(|e| ComponentError::config(format!("nats: cannot create stream `{name}`: {e}")))?;
            tracing::info!(stream = %name, "nats: created the stream");
            Ok(())
        }
        Some(config) => {
            let probe = format!("{prefix}.x");
            let covered = config.subjects.iter().any(|f| filter_covers(f, &probe));
            if !settings.create {
                if !covered {
                    return Err(ComponentError::config(format!(
                        "nats: stream `{name}` holds subjects {:?}, which do not cover `{prefix}.>`",
                        config.subjects
                    )));
                }
                return Ok(());
            }
            if !wanted.subjects.iter().any(|f| filter_covers(f, &probe)) {
                return Err(ComponentError::config(format!(
                    "nats: `stream.subjects` {:?} do not cover `{prefix}.>`",
                    wanted.subjects
                )));
            }
            let differs = config.subjects != wanted.subjects
                || config.retention != wanted.retention
                || config.num_replicas != wanted.num_replicas
                || config.duplicate_window != wanted.duplicate_window
                || config.max_age != wanted.max_age
                || config.max_bytes != wanted.max_bytes;
            if config.storage != wanted.storage {
                return Err(ComponentError::config(format!(
                    "nats: stream `{name}` exists with storage {:?}, configured {:?}; a stream's storage cannot change",
                    config.storage, wanted.storage
                )));
            }
            if differs {
                js.update_stream(wanted).await.map_err(|e| {
                    ComponentError::config(format!(
                        "nats: cannot update stream `{name}` to the configured settings: {e}"
                    ))
                })?;
                tracing::info!(stream = %name, "nats: updated the stream's settings");
            }
            Ok(())
        }
    }
}

fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(js)
        if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}
