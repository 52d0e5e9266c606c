//! Backplane's engine: runs sources and sinks and the pipeline between them. It knows the
//! connector interface (`backplane-connector`) and no protocol or domain.
//!
//! Data path: sources emit [`RawBatch`]es into one bounded queue; the [`Pipeline`] turns
//! each into samples (normalize: transform chain, quality, range check, deadband;
//! contextualize: the effective [`Context`](backplane_model::Context) of the asset),
//! records them in the [`LatestValues`] cache, runs the registry's derive
//! [`Stage`](backplane_connector::Stage)s (e.g. production), and the [`Router`] hands the
//! shared batch to every sink queue and to live-stream subscribers.
//!
//! Layout:
//! - [`pipeline`]: normalize → contextualize → stages → route; the backpressure policy.
//! - [`context`]: own and effective context per asset.
//! - [`cache`]: latest value, raw reading and error per tag.
//! - [`supervisor`]: restart with capped exponential backoff and jitter; no retry of
//!   configuration or permanent errors.
//! - [`health`], [`metrics`]: what operators see; [`report`]: components' own reports.
//! - [`lineage`]: where a value came from.
//! - [`runtime`]: [`Engine`] (start, shutdown) and [`EngineHandle`] (used by the API).
//! - [`durable`]: store-and-forward for network sinks (batches through the
//!   `backplane-buffer` log, acknowledged by the sink); [`feed`]: where sinks read from.
//! - [`builtin`]: the `simulator` source and `jsonl` sink kinds ([`builtins`]).
//!
//! The connector interface's types are re-exported here for the engine's users.

pub mod builtin;
pub mod cache;
pub mod context;
pub mod continuity;
pub mod durable;
pub mod feed;
pub mod health;
pub mod lineage;
pub mod metrics;
pub mod pipeline;
mod recent;
pub mod repeats;
pub mod report;
pub mod runtime;
pub mod supervisor;

pub use backplane_connector::gate::{Failure, Rule, Status as WriteStatus};
pub use backplane_connector::{
    AssetNode, LatestReadings, MachineWrite, TagInfo, Topology, WriteError, WriteGate, WritePath, WriteReport,
};
pub use backplane_connector::{
    Batch, CommandPath, ComponentError, ComponentStatus, Delivery, Kind, PipelineInput, RawBatch, RawReading,
    Registry, Services, Sink, SinkContext, SinkIo, SinkKind, Source, SourceContext, SourceIo, SourceKind,
    WriteRequest, payload, topology, writes,
};
pub use cache::{Latest, LatestValues};
pub use continuity::{Effect, Fate};
pub use health::{ComponentHealth, ComponentState};
pub use lineage::Lineage;
pub use pipeline::{Pipeline, Router};
pub use runtime::{
    BufferHealth, Engine, EngineHandle, EngineOptions, EngineStopped, HealthReport, ReloadFailed,
};

/// A registry with the kinds built into the engine: `simulator` (source) and `jsonl`
/// (sink). The binary adds the protocol crates' kinds and the stages.
pub fn builtins() -> Registry {
    let mut registry = Registry::default();
    registry.add_source("simulator", builtin::simulator::SimulatorKind);
    registry.add_sink("jsonl", builtin::jsonl::JsonlKind);
    registry
}
