//! `GET /api/v1/lineage/{asset/attribute}`: where the current value of an attribute came
//! from (source, address, raw reading, every transform step, config version).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::assets::path_param;
use crate::error::ApiError;
use crate::{AppState, json_response};

pub(crate) async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let path = path_param(path)?;
    let topology = state.engine.topology();
    let Some(tag) = topology.tag_by_path(&path) else {
        return Err(unknown_tag(&state, &path));
    };
    let lineage = state
        .engine
        .lineage(tag.id)
        .ok_or_else(|| ApiError::not_found(format!("no tag `{path}`")))?;
    json_response(&lineage)
}

/// Says which half of `asset/attribute` is wrong, so a typo is found at once.
fn unknown_tag(state: &AppState, path: &str) -> ApiError {
    let topology = state.engine.topology();
    let Some((asset, attribute)) = path.rsplit_once('/') else {
        return ApiError::not_found(format!(
            "`{path}` is not a tag path; write `asset/path/attribute`"
        ));
    };
    let Some(node) = topology.asset(asset) else {
        return ApiError::not_found(format!("no asset `{asset}`"));
    };
    match &node.model {
        Some(model) => {
            let names: Vec<&str> = model.attributes.iter().map(|a| a.name.as_str()).collect();
            ApiError::not_found(format!(
                "asset `{asset}` ({}) has no attribute `{attribute}`; its attributes are: {}",
                model.name,
                names.join(", ")
            ))
        }
        None => ApiError::not_found(format!(
            "asset `{asset}` has no model, so no attribute `{attribute}`"
        )),
    }
}
