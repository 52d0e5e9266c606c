//! Derive stages: domain logic the pipeline runs after normalize and contextualize
//! (production states, counters, OEE, lots, ...), without the engine knowing the domain.
//!
//! A [`Stage`] sees every batch's samples and the passing of time, and answers with what it
//! [`Derived`]: context patches for assets (applied first, so later samples carry them)
//! and events (stamped with their asset's context after the patches, routed with the
//! batch). Commands for a stage (start a work order, record genealogy) reach the pipeline
//! as a [`StageCall`] through the [`CommandPath`] and run between two batches, so a
//! context change is exactly ordered with the data.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use backplane_config::ExpressionChecker;
use backplane_model::sample::EventKind;
use backplane_model::{AssetPath, ContextPatch, Quality, Sample, Timestamp, Value};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::batch::PipelineInput;
use crate::error::ComponentError;
use crate::services::Services;
use crate::topology::Topology;

/// What a stage derived from samples, time or a command.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Derived {
    /// Changes to assets' own context, applied in order before the events are stamped,
    /// each with who made it (the `by` of its `context_changed` events, e.g. `production`).
    pub context: Vec<(AssetPath, ContextPatch, &'static str)>,
    /// Events; the pipeline stamps each with its asset's effective context.
    pub events: Vec<(AssetPath, Timestamp, EventKind)>,
    /// Samples of tags the stage computes (derived attributes), each with how it was
    /// computed. The pipeline stamps them with their asset's context, records them in the
    /// latest-value cache (with the derivation, for lineage) and routes them with the
    /// batch; stages after this one observe them.
    pub samples: Vec<(Sample, Arc<Derivation>)>,
}

impl Derived {
    pub fn is_empty(&self) -> bool {
        self.context.is_empty() && self.events.is_empty() && self.samples.is_empty()
    }
}

/// How a stage computed a sample: the formula and the inputs it read, for lineage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Derivation {
    /// The formula as configured, e.g. `delta(good_count) / dt_min`.
    pub expression: Arc<str>,
    /// The inputs as they were when the value was computed.
    pub inputs: Vec<DerivationInput>,
    /// Why the value is bad, when the computation failed (division by zero, bad input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One input of a derivation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DerivationInput {
    /// `asset/attribute`.
    pub path: Arc<str>,
    /// What the input was used for when not its plain value, e.g. `prev` or `mean 5m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub value: Option<Value>,
    pub quality: Quality,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_reason: Option<&'static str>,
    /// When the gateway had it.
    pub time: Option<Timestamp>,
}

/// A step of the pipeline after normalize and contextualize. Runs in the pipeline task:
/// it must not block or do I/O on the hot path.
pub trait Stage: Send + fmt::Debug + 'static {
    /// The samples of one batch (normalized, with their context).
    fn observe(&mut self, samples: &[Sample], out: &mut Derived);

    /// Time passes (about every second): periods close, shifts change, state is saved.
    fn tick(&mut self, _now: Timestamp, _out: &mut Derived) {}

    /// The pipeline has stopped: persist what must survive a restart. May block.
    fn stop(&mut self) {}
}

/// What a stage kind is given to build its stage.
pub struct StageContext<'a> {
    pub topology: &'a Arc<Topology>,
    pub data_dir: &'a PathBuf,
    /// Where the stage's command handles send their calls.
    pub commands: CommandPath,
    /// The stage's own counters, by event name (`backplane_component_events_total` with
    /// `component="stage"`).
    pub counter: &'a (dyn Fn(&str) -> Counter + Sync),
}

impl fmt::Debug for StageContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageContext")
            .field("data_dir", &self.data_dir)
            .field("commands", &self.commands)
            .finish_non_exhaustive()
    }
}

/// A built stage and the services it offers to sinks and the API (e.g. a handle that
/// runs production commands and serves views of the production state).
#[derive(Debug)]
pub struct BuiltStage {
    pub stage: Box<dyn Stage>,
    pub services: Services,
}

/// A kind of stage, listed beside source and sink kinds.
pub trait StageKind: Send + Sync + 'static {
    /// One line saying what the stage does.
    fn describe(&self) -> &'static str;
    /// Builds the stage for a plan, restoring its saved state from `data_dir`.
    fn build(&self, ctx: &StageContext<'_>) -> Result<BuiltStage, ComponentError>;
    /// The checker of derived attributes' expressions, for a stage that computes them:
    /// the configuration is checked against it (`backplane check`).
    fn expressions(&self) -> Option<Arc<dyn ExpressionChecker>> {
        None
    }
}

/// The body of a [`StageCall`]: given the time, it does its work and adds what it derived.
pub type CallFn = dyn FnOnce(Timestamp, &mut Derived) + Send;

/// Work for a stage, run by the pipeline between two batches.
pub struct StageCall(pub Box<CallFn>);

impl fmt::Debug for StageCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StageCall")
    }
}

/// The pipeline stopped; the call did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine is shutting down")]
pub struct PipelineStopped;

/// Hands [`StageCall`]s to the pipeline. Holds no strong reference, so it never keeps a
/// stopping engine alive.
#[derive(Clone, Debug)]
pub struct CommandPath {
    /// Shared by every clone: a configuration reload that keeps the stages running points
    /// it at the next pipeline ([`CommandPath::retarget`]).
    input: Arc<std::sync::RwLock<mpsc::WeakSender<PipelineInput>>>,
}

impl CommandPath {
    /// For the engine: calls go into the pipeline's input queue.
    pub fn new(input: mpsc::WeakSender<PipelineInput>) -> CommandPath {
        CommandPath {
            input: Arc::new(std::sync::RwLock::new(input)),
        }
    }

    /// For the engine: from now on, calls through this path and its clones go to `input`.
    pub fn retarget(&self, input: mpsc::WeakSender<PipelineInput>) {
        *self
            .input
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = input;
    }

    /// Queues `call` behind the batches already waiting; it runs between two batches.
    /// Waits while the pipeline's input queue is full.
    pub async fn call(&self, call: StageCall) -> Result<(), PipelineStopped> {
        let input = self
            .input
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .upgrade()
            .ok_or(PipelineStopped)?;
        input
            .send(PipelineInput::Call(call))
            .await
            .map_err(|_| PipelineStopped)
    }
}
