//! The asset tree, one asset with its model attributes, and latest values by prefix.
//!
//! An asset's attributes are listed from its model, not from what the cache happens to
//! hold, so two assets of one model always show the same keys and types whatever their
//! devices deliver, and a value not read yet shows as `null` with a bad quality instead of
//! being missing.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use backplane_engine::payload::SamplePayload;
use backplane_engine::{AssetNode, EngineHandle, Latest, Topology};
use backplane_model::{AssetPath, BadReason, Context, Level, Quality, Sample, TagId, Timestamp, Unit, Value};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::ApiError;
use crate::{AppState, json_response};

/// `?prefix=` of the values and stream endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct PrefixQuery {
    pub prefix: Option<String>,
}

/// Checks a `prefix` parameter: absent or empty means everything; otherwise it must be a
/// valid asset path (400) naming a configured asset (404), so a typo is an error rather
/// than a silently empty result.
pub(crate) fn resolve_prefix(
    topology: &Topology,
    prefix: Option<&str>,
) -> Result<Option<AssetPath>, ApiError> {
    let Some(prefix) = prefix.map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = AssetPath::parse(prefix).map_err(|e| {
        ApiError::bad_request("invalid_prefix", format!("`{prefix}` is not an asset path: {e}"))
            .with_field("prefix")
    })?;
    if topology.asset(path.as_str()).is_none() {
        return Err(ApiError::unknown_asset(path.as_str()).with_field("prefix"));
    }
    Ok(Some(path))
}

pub(crate) fn prefix_param(
    query: Result<Query<PrefixQuery>, QueryRejection>,
) -> Result<Option<String>, ApiError> {
    query
        .map(|Query(q)| q.prefix)
        .map_err(|r| ApiError::from_query_rejection(&r))
}

/// The captured wildcard path of a route, without a trailing slash.
pub(crate) fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(path) = path.map_err(|r| ApiError::from_path_rejection(&r))?;
    Ok(path.trim_end_matches('/').to_owned())
}

/// Looks an asset up by path; 404 naming the path when unknown.
pub(crate) fn find_asset<'t>(topology: &'t Topology, path: &str) -> Result<(usize, &'t AssetNode), ApiError> {
    topology
        .asset_index(path)
        .and_then(|i| topology.assets.get(i).map(|node| (i, node)))
        .ok_or_else(|| ApiError::unknown_asset(path))
}

#[derive(Serialize)]
struct TreeNode<'a> {
    path: &'a str,
    name: &'a str,
    level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    children: Vec<TreeNode<'a>>,
}

// Recursion depth is bounded by the ISA-95 levels (at most six).
fn tree_node(topology: &Topology, index: usize) -> Option<TreeNode<'_>> {
    let node = topology.assets.get(index)?;
    Some(TreeNode {
        path: node.path.as_str(),
        name: node.path.name(),
        level: node.level,
        description: node.description.as_deref(),
        model: node.model.as_ref().map(|m| m.name.as_str()),
        children: node
            .children
            .iter()
            .filter_map(|&c| tree_node(topology, c))
            .collect(),
    })
}

/// `GET /api/v1/assets`: the asset tree, one entry per root.
pub(crate) async fn tree(State(state): State<AppState>) -> Result<Response, ApiError> {
    let topology = state.engine.topology();
    let roots: Vec<TreeNode<'_>> = topology.roots().filter_map(|r| tree_node(topology, r)).collect();
    json_response(&roots)
}

#[derive(Serialize)]
struct AssetView<'a> {
    path: &'a str,
    name: &'a str,
    level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    children: Vec<&'a str>,
    /// The effective context: the asset's own fields and those it inherits.
    context: Arc<Context>,
    attributes: Attributes<'a>,
}

/// Attributes in model order; serialized as a JSON object.
struct Attributes<'a>(Vec<(&'a str, AttributeView<'a>)>);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, view) in &self.0 {
            map.serialize_entry(name, view)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct AttributeView<'a> {
    value: Option<Value>,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a Unit>,
    quality: Quality,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_time: Option<Timestamp>,
    /// The context the value was stamped with when it was read (it can differ from the
    /// asset's current context until the next reading).
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Arc<Context>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// What a tag with no cached value shows.
const NOT_READ_YET: Quality = Quality::Bad(BadReason::WaitingForInitialData);

/// `GET /api/v1/assets/{path}`: one asset with its effective context and every model
/// attribute's latest value.
pub(crate) async fn asset(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let path = path_param(path)?;
    let topology = state.engine.topology();
    let (index, node) = find_asset(topology, &path)?;
    let latest = state.engine.latest_many(&node.tags);
    let attributes = node
        .tags
        .iter()
        .zip(latest)
        .filter_map(|(&tag, latest)| {
            let info = topology.tag(tag)?;
            let sample = latest.map(|l| l.sample);
            let quality = sample.as_ref().map_or(NOT_READ_YET, |s| s.quality);
            let view = AttributeView {
                value: sample.as_ref().and_then(|s| s.value.clone()),
                data_type: info.attribute.data_type.to_string(),
                unit: info.attribute.unit.as_ref(),
                quality,
                quality_reason: quality.reason(),
                source_time: sample.as_ref().and_then(|s| s.source_time),
                gateway_time: sample.as_ref().map(|s| s.gateway_time),
                context: sample.as_ref().map(|s| s.context.clone()),
                description: info.attribute.description.as_deref(),
            };
            Some((info.attribute.name.as_str(), view))
        })
        .collect();
    let view = AssetView {
        path: node.path.as_str(),
        name: node.path.name(),
        level: node.level,
        description: node.description.as_deref(),
        model: node.model.as_ref().map(|m| m.name.as_str()),
        parent: node
            .parent
            .and_then(|p| topology.assets.get(p))
            .map(|p| p.path.as_str()),
        children: node
            .children
            .iter()
            .filter_map(|&c| topology.assets.get(c))
            .map(|c| c.path.as_str())
            .collect(),
        context: state.engine.context(index).1,
        attributes: Attributes(attributes),
    };
    json_response(&view)
}

/// The latest sample of each tag; a tag not read yet gets a placeholder that says so, stamped
/// with `now` and its asset's effective context.
pub(crate) fn latest_samples(engine: &EngineHandle, tags: &[TagId], now: Timestamp) -> Vec<Sample> {
    let topology = engine.topology();
    tags.iter()
        .zip(engine.latest_many(tags))
        .map(|(&tag, latest)| match latest {
            Some(Latest { sample, .. }) => sample,
            None => Sample {
                tag,
                value: None,
                quality: NOT_READ_YET,
                source_time: None,
                gateway_time: now,
                context: topology
                    .tag(tag)
                    .map(|t| engine.context(t.asset).1)
                    .unwrap_or_default(),
            },
        })
        .collect()
}

/// `GET /api/v1/values?prefix=`: the latest value of every tag at or below the prefix.
pub(crate) async fn values(
    State(state): State<AppState>,
    query: Result<Query<PrefixQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let prefix = prefix_param(query)?;
    let topology = state.engine.topology();
    let prefix = resolve_prefix(topology, prefix.as_deref())?;
    let tags: Vec<TagId> = topology
        .assets
        .iter()
        .filter(|a| prefix.as_ref().is_none_or(|p| a.path.starts_with(p)))
        .flat_map(|a| a.tags.iter().copied())
        .collect();
    let samples = latest_samples(&state.engine, &tags, Timestamp::now());
    let payloads: Vec<SamplePayload<'_>> = samples
        .iter()
        .filter_map(|s| SamplePayload::new(topology, s))
        .collect();
    json_response(&payloads)
}
