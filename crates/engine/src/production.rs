//! The derive stage: production context and events (`backplane-production`) fed from the
//! pipeline. Watched samples (state, counter and context-rule attributes) go to
//! [`Production`]; what it produces — context patches and events — is applied in order
//! with the data: patches first (samples of the next batch carry them), then the events,
//! stamped with the asset's context after the patches.
//!
//! Commands (from the HTTP API and the MQTT command topic) run inside the pipeline task
//! too, between two batches, so a work order started by a message is on every sample read
//! after it and on none before. The state is saved to `{data_dir}/production/state.json`
//! every few seconds and at shutdown, and restored at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backplane_model::{Event, Sample, Timestamp};
use backplane_production::{Outcome, Production, Watch};
use parking_lot::Mutex;

use crate::context::ContextStore;
use crate::topology::Topology;

/// Who context changes made by production rules are attributed to.
const BY: &str = "production";

/// What a command does to the production state, given the time and where to put events.
pub type CommandFn = dyn FnOnce(&mut Production, Timestamp, &mut Outcome) + Send;

/// A command for [`Production`], run by the pipeline between batches.
pub struct ProductionCommand(pub Box<CommandFn>);

impl std::fmt::Debug for ProductionCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProductionCommand")
    }
}

/// How sinks that accept commands from their consumers (the MQTT command topic) and the
/// API hand production commands to the pipeline.
#[derive(Clone, Debug)]
pub struct CommandPath {
    pub(crate) input: tokio::sync::mpsc::WeakSender<crate::PipelineInput>,
}

/// Why a command got no answer, or the engine's refusal.
#[derive(Debug, thiserror::Error)]
pub enum CommandFailed {
    #[error("{}", .0.message())]
    Refused(backplane_production::Refusal),
    #[error("the engine is shutting down")]
    Stopped,
}

impl CommandPath {
    /// Runs `command` for `by` between two batches; returns what it created or changed.
    pub async fn execute(
        &self,
        command: backplane_production::Command,
        by: Option<String>,
    ) -> Result<serde_json::Value, CommandFailed> {
        let input = self.input.upgrade().ok_or(CommandFailed::Stopped)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let run = ProductionCommand(Box::new(move |p, now, out| {
            let _ = reply.send(p.execute(command, by.as_deref(), now, out));
        }));
        input
            .send(crate::PipelineInput::Production(run))
            .await
            .map_err(|_| CommandFailed::Stopped)?;
        drop(input);
        answer
            .await
            .map_err(|_| CommandFailed::Stopped)?
            .map_err(CommandFailed::Refused)
    }
}

/// The pipeline's handle on production: the shared state and which tags it watches.
#[derive(Debug)]
pub(crate) struct ProductionStage {
    pub(crate) production: Arc<Mutex<Production>>,
    /// By tag index.
    watches: Vec<Option<Watch>>,
    outcome: Outcome,
}

impl ProductionStage {
    pub(crate) fn new(production: Arc<Mutex<Production>>, topology: &Topology) -> ProductionStage {
        let watches = {
            let p = production.lock();
            topology
                .tags
                .iter()
                .map(|tag| {
                    let asset = &topology.assets.get(tag.asset)?.path;
                    p.watch(asset, &tag.attribute.name)
                })
                .collect()
        };
        ProductionStage {
            production,
            watches,
            outcome: Outcome::default(),
        }
    }

    /// Feeds the watched samples of a batch. Only values of good or uncertain quality
    /// count: a bad sample says the value is not known, not that it changed.
    pub(crate) fn observe(&mut self, samples: &[Sample]) {
        let mut production = None;
        for sample in samples {
            let Some(Some(watch)) = self.watches.get(sample.tag.index()) else {
                continue;
            };
            let (Some(value), false) = (&sample.value, sample.quality.is_bad()) else {
                continue;
            };
            let p = production.get_or_insert_with(|| self.production.lock());
            let time = sample.source_time.unwrap_or(sample.gateway_time);
            p.observe_watched(*watch, value, time, &mut self.outcome);
        }
    }

    pub(crate) fn tick(&mut self, now: Timestamp) {
        self.production.lock().tick(now, &mut self.outcome);
    }

    pub(crate) fn run(&mut self, command: ProductionCommand, now: Timestamp) {
        let mut production = self.production.lock();
        (command.0)(&mut production, now, &mut self.outcome);
    }

    /// Applies what production produced since the last call: context patches, then the
    /// events, appended to `events`.
    pub(crate) fn apply(&mut self, topology: &Topology, contexts: &ContextStore, events: &mut Vec<Event>) {
        for (asset, patch) in self.outcome.context.drain(..) {
            match topology.asset_index(asset.as_str()) {
                Some(i) => events.extend(contexts.apply(topology, i, &patch, Some(BY))),
                None => {
                    tracing::warn!(asset = %asset, "production: context for an asset the configuration does not have")
                }
            }
        }
        for (asset, time, kind) in self.outcome.events.drain(..) {
            let context = topology
                .asset_index(asset.as_str())
                .map(|i| contexts.effective(i))
                .unwrap_or_default();
            events.push(Event {
                asset,
                time,
                kind,
                context,
            });
        }
    }
}

/// Where the production state is kept between runs.
pub(crate) fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("production").join("state.json")
}

/// The production state saved by the last run, or a fresh one. A state that cannot be
/// read is set aside (renamed `.unreadable`) and logged, never silently overwritten.
pub(crate) fn restore(plan: &backplane_config::Plan) -> Production {
    let path = state_path(&plan.gateway.data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Production::new(plan),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "production: cannot read the saved state; starting empty");
            return Production::new(plan);
        }
    };
    let restored = serde_json::from_str(&text)
        .map_err(|e| e.to_string())
        .and_then(|snapshot| Production::restore(plan, snapshot).map_err(|e| e.to_string()));
    match restored {
        Ok(production) => production,
        Err(e) => {
            let aside = path.with_extension("json.unreadable");
            let _ = std::fs::rename(&path, &aside);
            tracing::error!(path = %path.display(), kept_as = %aside.display(), error = %e, "production: the saved state is unreadable; starting empty");
            Production::new(plan)
        }
    }
}

/// Writes the state atomically (temporary file, fsync, rename).
pub(crate) fn save(production: &Mutex<Production>, data_dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let snapshot = production.lock().snapshot();
    let json = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    let path = state_path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}
