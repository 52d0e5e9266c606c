//! Backplane's connector interface: what a protocol crate implements and what the engine
//! runs. It depends on the model and configuration crates only, so a connector compiles
//! without the engine's runtime, and the engine without any connector or domain.
//!
//! Layout:
//! - [`kind`]: [`Kind`] (typed settings, optional hooks), [`SourceKind`], [`SinkKind`],
//!   and the [`Registry`] that erases the settings type in one place.
//! - [`source`]: the [`Source`] trait and [`SourceIo`] (emit readings, receive writes).
//! - [`sink`]: the [`Sink`] trait, [`SinkIo`] and [`Delivery`] (batches to acknowledge).
//! - [`stage`]: derive [`Stage`]s the pipeline runs after contextualize, and the
//!   [`CommandPath`] that runs calls between two batches.
//! - [`batch`]: raw readings, normalized batches, the pipeline's input.
//! - [`definitions`]: a gateway's models and assets as published to a hub, and drift.
//! - [`topology`]: the plan compiled into dense tables (assets, tags, routes).
//! - [`tag_path`]: a tag's `asset/attribute` path, made from its parts when needed.
//! - [`gate`]: the write gate, the one door to machine writes (allowlist, roles, limits,
//!   interlocks, inverse transforms, read-back, audit).
//! - [`writes`]: the raw write path from IT to a source's address, under the gate.
//! - [`payload`]: the shared JSON form of samples and events.
//! - [`inbound`]: a route a source offers the API to receive pushed JSON documents.
//! - [`json`]: JSON values and times as readings, for the sources that read JSON.
//! - [`services`]: what stages and kinds offer to sinks and the API, by type and name.
//! - [`hooks`]: discovery (browse) and device simulators, as plain data.
//! - [`status`]: how a component reports degraded health and its own counters.
//! - [`error`]: [`ComponentError`], typed by what the supervisor should do.
//! - [`backoff`]: the one retry policy (supervisor restarts, reconnect loops).

pub mod backoff;
pub mod batch;
pub mod definitions;
pub mod error;
pub mod gate;
pub mod hooks;
pub mod inbound;
pub mod json;
pub mod kind;
mod path_index;
pub mod payload;
pub mod persist;
pub mod services;
pub mod sink;
pub mod source;
pub mod stage;
pub mod status;
pub mod tag_path;
pub mod topology;
pub mod writes;

pub use backoff::{Backoff, BackoffPolicy};
pub use batch::{Batch, PipelineInput, RawBatch, RawReading};
pub use definitions::{Definitions, ModelDrift, SiteBoard};
pub use error::ComponentError;
pub use gate::{LatestReadings, MachineWrite, NoReadings, WriteGate, WriteReport};
pub use hooks::{
    BrowseReport, Browser, Decoding, Discovery, OptionSpec, Options, RunningSimulator, Signal, Simulator,
    SimulatorStart,
};
pub use inbound::{Inbound, InboundError, InboundField, InboundPost, InboundSchema};
pub use kind::{Kind, Registry, SinkContext, SinkKind, SourceContext, SourceKind};
pub use services::Services;
pub use sink::{Delivery, Sink, SinkFeed, SinkIo, SinkIoParts};
pub use source::{Source, SourceIo, WriteOutcome, WriteRequest, write_target};
pub use stage::{
    BuiltStage, CommandPath, Derivation, DerivationInput, Derived, PipelineStopped, Stage, StageCall,
    StageContext, StageKind,
};
pub use status::{ComponentStatus, DELAY_BUCKETS, Report, delay_histogram};
pub use tag_path::TagPath;
pub use topology::{AssetNode, Routes, SourceRoutes, TagInfo, Topology};
pub use writes::{WriteError, WritePath};
