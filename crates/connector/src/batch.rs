//! What flows through the data path: raw readings from sources, normalized batches to
//! sinks, and the pipeline's input queue that both sources and commands feed.

use backplane_model::{ContextPatch, Event, Quality, Sample, Timestamp, Value};
use tokio::sync::oneshot;

use crate::stage::StageCall;

/// One reading of one address, before normalization.
#[derive(Clone, Debug, PartialEq)]
pub struct RawReading {
    /// Index into the addresses the source was built with.
    pub address: u32,
    /// `None` when the device gave no value (e.g. an exception response).
    pub value: Option<Value>,
    pub quality: Quality,
    pub source_time: Option<Timestamp>,
}

/// Readings a source took at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct RawBatch {
    pub source: u32,
    /// When the gateway read the batch.
    pub gateway_time: Timestamp,
    pub readings: Vec<RawReading>,
}

/// What the pipeline hands to sinks and stream subscribers, shared without copying.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub samples: Vec<Sample>,
    pub events: Vec<Event>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.samples.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.events.is_empty()
    }
}

/// What flows into the pipeline.
#[derive(Debug)]
pub enum PipelineInput {
    Readings(RawBatch),
    /// A source failed or stopped: every tag it feeds turns to this quality.
    SourceDown {
        source: u32,
        quality: Quality,
        time: Timestamp,
    },
    /// Events from outside the data path, routed in order with samples.
    Events(Vec<Event>),
    /// A context change, applied by the pipeline between two batches: samples read before
    /// it keep the old context, samples after it carry the new one, and its events are
    /// routed in between. The events (one per changed field) are sent back on `reply`.
    SetContext {
        asset: usize,
        patch: ContextPatch,
        by: Option<String>,
        reply: oneshot::Sender<Vec<Event>>,
    },
    /// Time passes for the age of values: a value its source has not read again within
    /// its binding's `stale_after` turns uncertain (`last_usable_value`).
    Age(Timestamp),
    /// Time passes for the derive stages (periods close, shifts change); about every second.
    Tick(Timestamp),
    /// A command for a stage (e.g. start a work order), run between two batches; what it
    /// derives is applied and routed in between.
    Call(StageCall),
}
