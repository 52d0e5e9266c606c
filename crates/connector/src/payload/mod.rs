//! The JSON form of samples and events, shared by the JSON-lines sink, the API, the live
//! stream and the network sinks. `docs/payloads.md` documents it field by field; change
//! both together.
//!
//! [`SamplePayload`] and [`EventPayload`] are the reference form (through `serde`);
//! [`SampleEncoder`] writes the same sample JSON byte for byte on the per-sample path of
//! the sinks, from [`json`]'s pieces.

mod encode;
pub mod json;

pub use encode::SampleEncoder;

use backplane_model::{Context, DataType, Event, Quality, Sample, Timestamp, Unit, Value};
use serde::Serialize;

use crate::tag_path::TagPath;
use crate::topology::Topology;

/// One sample, self-describing: where it sits in the namespace, its unit and type, quality,
/// both timestamps, and the context active on its asset.
#[derive(Debug, Serialize)]
pub struct SamplePayload<'a> {
    /// Always `"sample"`.
    pub kind: &'static str,
    /// `asset/attribute`: the tag's place in the unified namespace.
    pub path: TagPath<'a>,
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
    /// Buffered sinks: the sample's number in the gateway's stream to this sink, one more
    /// than the previous sample or event; gaps mean loss, repeats mean redelivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Sent late, after live data: a redelivery or backlog from an outage.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

/// One event: `{"kind": "event", "event": "<what>", ...fields of the event}`.
#[derive(Debug, Serialize)]
pub struct EventPayload<'a> {
    /// Always `"event"`.
    pub kind: &'static str,
    #[serde(flatten)]
    pub event: &'a Event,
    /// As for samples: the event's number in the stream to a buffered sink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
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
            path: asset.tag_path(tag),
            asset: asset.path.as_str(),
            attribute: &tag.attribute.name,
            model: asset.model_name(),
            value: &sample.value,
            data_type: tag.attribute.data_type,
            unit: tag.attribute.unit.as_ref(),
            quality: sample.quality,
            quality_reason: sample.quality.reason(),
            source_time: sample.source_time,
            gateway_time: sample.gateway_time,
            context: &sample.context,
            seq: None,
            replay: false,
        })
    }

    /// The payload as a buffered sink sends it: with its stream number.
    pub fn with_seq(mut self, seq: Option<u64>, replay: bool) -> SamplePayload<'a> {
        self.seq = seq;
        self.replay = replay;
        self
    }
}

impl<'a> EventPayload<'a> {
    pub fn new(event: &'a Event) -> EventPayload<'a> {
        EventPayload {
            kind: "event",
            event,
            seq: None,
            replay: false,
        }
    }

    pub fn with_seq(mut self, seq: Option<u64>, replay: bool) -> EventPayload<'a> {
        self.seq = seq;
        self.replay = replay;
        self
    }
}
