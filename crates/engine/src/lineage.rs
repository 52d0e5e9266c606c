//! Lineage: where the current value of an attribute came from. The cached raw reading is
//! run through the binding's transform chain again, step by step, so an engineer sees every
//! intermediate value and can check the number on a dashboard by hand.

use backplane_model::transform::Transform;
use backplane_model::{Deadband, Quality, Timestamp, Value};
use serde::Serialize;

use crate::cache::Latest;
use backplane_connector::{Derivation, TagInfo, Topology};

#[derive(Debug, Serialize, PartialEq)]
pub struct Lineage {
    pub path: String,
    pub model: String,
    pub attribute: String,
    /// Hash of the loaded configuration the transform chain comes from.
    pub config_version: String,
    pub source: Option<LineageSource>,
    /// The reading as the source delivered it.
    pub raw: Option<Value>,
    pub steps: Vec<LineageStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadband: Option<Deadband>,
    /// The value the cache holds (what the API, sinks and stream reported).
    pub value: Option<Value>,
    pub quality: Quality,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_time: Option<Timestamp>,
    pub gateway_time: Option<Timestamp>,
    /// True when re-applying `steps` to `raw` yields `value`.
    pub reproduces: bool,
    /// Why the last reading could not be normalized, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a derived attribute: the expression and the inputs the value was computed
    /// from (attribute, value, time, quality).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derivation: Option<Derivation>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct LineageSource {
    pub name: String,
    pub kind: String,
    pub address: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct LineageStep {
    /// The transform with its parameters (`op` names it).
    pub transform: Transform,
    pub input: Option<Value>,
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub(crate) fn explain(topology: &Topology, tag: &TagInfo, latest: Option<Latest>) -> Lineage {
    let routes = tag.source.and_then(|s| topology.sources.get(s as usize));
    let source = tag.binding.as_ref().map(|b| LineageSource {
        name: routes.map(|s| s.name.clone()).unwrap_or_default(),
        kind: routes.map(|s| s.kind.clone()).unwrap_or_default(),
        address: b.address.to_string(),
    });
    let raw = latest.as_ref().and_then(|l| l.raw.clone());
    let mut steps = Vec::new();
    let mut current = raw.clone();
    for transform in tag.binding.iter().flat_map(|b| b.transforms.iter()) {
        let input = current.take();
        let (output, error) = match &input {
            Some(v) => match transform.apply(v) {
                Ok(out) => (Some(out), None),
                Err(e) => (None, Some(e.to_string())),
            },
            None => (None, None),
        };
        current = output.clone();
        steps.push(LineageStep {
            transform: transform.clone(),
            input,
            output,
            error,
        });
    }
    let sample = latest.as_ref().map(|l| &l.sample);
    let value = sample.and_then(|s| s.value.clone());
    let quality = sample.map_or(
        Quality::Bad(backplane_model::BadReason::WaitingForInitialData),
        |s| s.quality,
    );
    Lineage {
        path: topology.path(tag).to_string(),
        model: topology.model_name(tag).to_owned(),
        attribute: tag.attribute.name.clone(),
        config_version: topology.plan.version.clone(),
        source,
        reproduces: raw.is_some() && current.is_some() && current == value,
        raw,
        steps,
        deadband: tag.binding.as_ref().and_then(|b| b.deadband),
        value,
        quality,
        quality_reason: quality.reason(),
        source_time: sample.and_then(|s| s.source_time),
        gateway_time: sample.map(|s| s.gateway_time),
        derivation: latest.as_ref().and_then(|l| l.derivation.as_deref().cloned()),
        error: latest.and_then(|l| l.error),
    }
}
