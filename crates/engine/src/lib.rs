//! Backplane's engine: runs sources and sinks and the pipeline between them.
//!
//! Data path: sources emit [`RawBatch`]es into one bounded queue; the [`Pipeline`] turns
//! each into samples (normalize: transform chain, quality, range check, deadband;
//! contextualize: the effective [`Context`](backplane_model::Context) of the asset),
//! records them in the [`LatestValues`] cache and the [`Router`] hands the shared batch
//! to every sink queue and to live-stream subscribers.
//!
//! Layout:
//! - [`component`]: the [`Source`] and [`Sink`] traits, their I/O handles, the kind
//!   [`Registry`].
//! - [`topology`]: the plan compiled into dense tables (assets, tags, routes).
//! - [`pipeline`]: normalize → contextualize → route; the backpressure policy.
//! - [`context`]: own and effective context per asset.
//! - [`cache`]: latest value, raw reading and error per tag.
//! - [`supervisor`]: restart with capped exponential backoff and jitter.
//! - [`health`], [`metrics`]: what operators see.
//! - [`payload`]: the JSON form of samples and events; [`lineage`]: where a value came from.
//! - [`runtime`]: [`Engine`] (start, shutdown) and [`EngineHandle`] (used by the API).
//! - [`writes`]: the raw write path from IT to a source's address.
//! - [`production`]: the derive stage (machine states, counts, OEE, work orders, lots,
//!   operator entries) between the pipeline and `backplane-production`.
//! - [`durable`]: store-and-forward for network sinks (batches through the
//!   `backplane-buffer` log, acknowledged by the sink).
//! - [`builtin`]: the `simulator` source and `jsonl` sink kinds.

pub mod builtin;
pub mod cache;
pub mod component;
pub mod context;
pub mod durable;
pub mod health;
pub mod lineage;
pub mod metrics;
pub mod payload;
pub mod pipeline;
pub mod production;
pub mod runtime;
pub mod supervisor;
pub mod topology;
pub mod writes;

pub use cache::{Latest, LatestValues};
pub use component::{
    ComponentError, ComponentStatus, Delivery, PipelineInput, RawBatch, RawReading, Registry, Sink,
    SinkContext, SinkIo, SinkKind, Source, SourceContext, SourceIo, SourceKind, WriteRequest,
};
pub use health::{ComponentHealth, ComponentState};
pub use lineage::Lineage;
pub use pipeline::{Batch, Pipeline, Router};
pub use production::{CommandFailed, CommandPath};
pub use runtime::{BufferHealth, Engine, EngineHandle, EngineOptions, EngineStopped, HealthReport};
pub use topology::{AssetNode, TagInfo, Topology};
pub use writes::{WriteError, WritePath};
