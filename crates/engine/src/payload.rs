//! The JSON form of samples and events, shared by the JSON-lines sink, the API and the live
//! stream. `docs/payloads.md` documents it field by field; change both together.

use backplane_model::{Context, DataType, Event, Quality, Sample, Timestamp, Unit, Value};
use serde::Serialize;

use crate::topology::Topology;

/// One sample, self-describing: where it sits in the namespace, its unit and type, quality,
/// both timestamps, and the context active on its asset.
#[derive(Debug, Serialize)]
pub struct SamplePayload<'a> {
    /// Always `"sample"`.
    pub kind: &'static str,
    /// `asset/attribute`: the tag's place in the unified namespace.
    pub path: &'a str,
    pub asset: &'a str,
    pub attribute: &'a str,
    pub model: &'a str,
    pub value: &'a Option<Value>,
    #[serde(rename = "type", serialize_with = "display")]
    pub data_type: DataType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'a Unit>,
    pub quality: Quality,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_time: Option<Timestamp>,
    pub gateway_time: Timestamp,
    pub context: &'a Context,
}

/// One event: `{"kind": "event", "event": "<what>", ...fields of the event}`.
#[derive(Debug, Serialize)]
pub struct EventPayload<'a> {
    /// Always `"event"`.
    pub kind: &'static str,
    #[serde(flatten)]
    pub event: &'a Event,
}

fn display<S: serde::Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

impl<'a> SamplePayload<'a> {
    /// `None` if the sample's tag is not in `topology` (never the case for samples the
    /// engine produced from it).
    pub fn new(topology: &'a Topology, sample: &'a Sample) -> Option<SamplePayload<'a>> {
        let tag = topology.tag(sample.tag)?;
        let asset = topology.assets.get(tag.asset)?;
        Some(SamplePayload {
            kind: "sample",
            path: &tag.path,
            asset: asset.path.as_str(),
            attribute: &tag.attribute.name,
            model: &tag.model,
            value: &sample.value,
            data_type: tag.attribute.data_type,
            unit: tag.attribute.unit.as_ref(),
            quality: sample.quality,
            quality_reason: sample.quality.reason(),
            source_time: sample.source_time,
            gateway_time: sample.gateway_time,
            context: &sample.context,
        })
    }
}

impl<'a> EventPayload<'a> {
    pub fn new(event: &'a Event) -> EventPayload<'a> {
        EventPayload { kind: "event", event }
    }
}
