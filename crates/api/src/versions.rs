//! `/api/v1/config/versions`: the configuration versions this gateway has run, when each
//! was in force, and (for engineers) the files of each, from the data directory's archive
//! (`backplane_config::archive`). A stored sample's version is the one in force at its
//! gateway time.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use backplane_config::archive::{Activation, Archive};
use backplane_model::Timestamp;
use serde::Serialize;

use crate::error::ApiError;
use crate::history::{Params, blocking};
use crate::{AppState, json_response};

/// Activations a list returns when `limit` is not given, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

/// One activation as the API shows it.
#[derive(Serialize)]
pub(crate) struct ActivationView {
    version: String,
    from: Timestamp,
    /// `null`: the version in force now (or when the gateway last stopped).
    until: Option<Timestamp>,
    reason: String,
    /// Whether `GET /api/v1/config/versions/{version}` can return its files.
    archived: bool,
}

impl From<Activation> for ActivationView {
    fn from(a: Activation) -> ActivationView {
        ActivationView {
            version: a.version,
            from: a.from,
            until: a.until,
            reason: a.reason,
            archived: a.archived,
        }
    }
}

pub(crate) fn archive(state: &AppState) -> Archive {
    Archive::new(&state.engine.topology().plan.gateway.data_dir)
}

fn read_error(e: std::io::Error) -> ApiError {
    ApiError::internal(format!("the configuration version archive cannot be read: {e}"))
}

/// The versions in force at some time in `[from, to]`, oldest first; for the history
/// answers, which carry them so that each point can be tied to its configuration.
/// Reads the journal: call it on the blocking pool.
pub(crate) fn in_force(
    archive: &Archive,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<ActivationView>, ApiError> {
    Ok(archive
        .overlapping(from, to)
        .map_err(read_error)?
        .into_iter()
        .map(ActivationView::from)
        .collect())
}

#[derive(Serialize)]
struct ListView {
    versions: Vec<ActivationView>,
    /// More activations matched than `limit`; the oldest were left out.
    truncated: bool,
}

/// `GET /api/v1/config/versions`: newest first, optionally only those in force during
/// `[from, to]` (`at` for one instant; given with them, it narrows the range further).
pub(crate) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &[&["from", "to", "at", "limit"]])?;
    // Each given bound narrows the range; one that leaves nothing gives an empty list.
    let at = params.time("at")?;
    let from = [params.time("from")?, at].into_iter().flatten().max();
    let to = [params.time("to")?, at].into_iter().flatten().min();
    let from = from.unwrap_or(Timestamp::from_unix_nanos(i64::MIN));
    let to = to.unwrap_or(Timestamp::from_unix_nanos(i64::MAX));
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let archive = archive(&state);
    let view = blocking(&state, move || {
        let mut versions = if from <= to {
            archive.overlapping(from, to).map_err(read_error)?
        } else {
            Vec::new()
        };
        versions.reverse();
        let truncated = versions.len() > limit;
        versions.truncate(limit);
        Ok(ListView {
            versions: versions.into_iter().map(ActivationView::from).collect(),
            truncated,
        })
    })
    .await?;
    json_response(&view)
}

#[derive(Serialize)]
struct FileView {
    path: String,
    text: String,
}

#[derive(Serialize)]
struct VersionView {
    version: String,
    /// Every time it was put in force, oldest first.
    activations: Vec<ActivationView>,
    /// The main file, then the includes in load order, as they were hashed.
    files: Vec<FileView>,
}

/// `GET /api/v1/config/versions/{version}`: the files of an archived version (engineer:
/// they show every device's address; secrets are only ever references).
pub(crate) async fn get(
    State(state): State<AppState>,
    version: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(version) = version.map_err(|e| ApiError::from_path_rejection(&e))?;
    let archive = archive(&state);
    let view = blocking(&state, move || {
        let activations: Vec<ActivationView> = archive
            .activations()
            .map_err(read_error)?
            .into_iter()
            .filter(|a| a.version == version)
            .map(ActivationView::from)
            .collect();
        let files = archive.files(&version).map_err(read_error)?;
        match files {
            Some(files) => Ok(VersionView {
                version,
                activations,
                files: files
                    .into_iter()
                    .map(|f| FileView { path: f.path, text: f.text })
                    .collect(),
            }),
            None if activations.is_empty() => Err(ApiError::not_found(format!(
                "no configuration version `{version}` has run on this gateway (the archive keeps the last {} activations)",
                backplane_config::archive::KEEP_ACTIVATIONS
            ))),
            None => Err(ApiError::not_found(format!(
                "configuration version `{version}` ran, but its files were not archived (built in, or changed before it started)"
            ))
            .with_code("not_archived")),
        }
    })
    .await?;
    json_response(&view)
}
