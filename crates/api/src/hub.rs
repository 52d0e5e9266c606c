//! `/api/v1/hub/sites`: on a hub, every site it mirrors (gateway, configuration version,
//! when its definitions last arrived) and the model drift between the hub and the sites:
//! the same model name defined with other attributes, types or units somewhere. Drifting
//! attributes are not mixed: a mirroring source turns values whose type or unit disagree
//! with the hub's binding bad (`config_error`).
//!
//! Without a mirroring source (an edge) the endpoint answers 404 `hub_not_configured`.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use backplane_connector::SiteBoard;
use backplane_connector::definitions::{ModelDrift, SiteSummary};
use serde::Serialize;

use crate::error::ApiError;
use crate::history::Params;
use crate::{AppState, json_response};

#[derive(Serialize)]
struct SitesAnswer {
    enterprise: String,
    /// This gateway's own site, then the sites it mirrors as configured.
    configured: Vec<String>,
    /// Sites whose definitions arrived, by name.
    sites: Vec<SiteSummary>,
    /// Configured sites that have not sent definitions yet.
    silent: Vec<String>,
    drift: Vec<ModelDrift>,
}

/// `GET /api/v1/hub/sites`
pub(crate) async fn sites(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(raw, &[])?;
    let Some(board) = state.engine.services().get::<SiteBoard>() else {
        return Err(ApiError::not_found(
            "this gateway mirrors no other site: a hub has a `nats` source and `[namespace] sites` (see docs/hub.md)",
        )
        .with_code("hub_not_configured"));
    };
    let topology = state.engine.topology();
    let namespace = &topology.plan.namespace;
    let sites = board.sites();
    let silent = namespace
        .sites
        .iter()
        .filter(|s| !sites.iter().any(|known| &known.site == *s))
        .cloned()
        .collect();
    json_response(&SitesAnswer {
        enterprise: namespace.enterprise.clone(),
        configured: namespace.all_sites().map(str::to_owned).collect(),
        sites,
        silent,
        drift: board.drift(),
    })
}
