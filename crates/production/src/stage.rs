//! The production derive stage: [`Production`] fed from the pipeline, and the
//! [`ProductionHandle`] through which the HTTP API and the MQTT command topic run
//! commands and read views.
//!
//! - Watched samples (state, counter and context-rule attributes) go to
//!   [`Production::observe_watched`]; only good or uncertain values count (a bad sample
//!   says the value is not known, not that it changed).
//! - Commands run inside the pipeline task, between two batches, so a work order started
//!   by a message is on every sample read after it and on none before.
//! - Views: readers never take the lock the pipeline needs; they serialize from a
//!   published copy. The stage publishes one after every command and, when something
//!   changed, at most every [`PUBLISH_EVERY`] ([`ProductionHandle::view`]). A reader that
//!   must see everything that happened before its request (the API: a work order's OEE
//!   right after its first samples) asks for [`ProductionHandle::current`], which
//!   publishes between two batches when the state changed since the last copy.
//! - The state is saved every [`SAVE_EVERY_TICKS`] ticks (about 10 s, off the pipeline
//!   task) and when the pipeline stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use backplane_connector::{
    BuiltStage, CommandPath, ComponentError, Derived, Services, Stage, StageCall, StageContext, StageKind,
};
use backplane_model::{Sample, Timestamp};
use parking_lot::Mutex;

use crate::{Command, Outcome, Production, Refusal, Watch, persist};

/// Who the context changes production makes are attributed to (`by` of their events).
const BY: &str = "production";

/// The most a published view lags behind the state while data flows.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Ticks (about a second each) between two saves of the state.
pub const SAVE_EVERY_TICKS: u32 = 10;
/// How long [`ProductionHandle::current`] waits for the pipeline before it settles for
/// the last published copy.
pub const CURRENT_WAIT: Duration = Duration::from_secs(2);

/// The stage kind the binary registers as `production`.
#[derive(Debug, Default)]
pub struct ProductionStageKind;

impl StageKind for ProductionStageKind {
    fn describe(&self) -> &'static str {
        "production: machine states, downtime, counts, OEE, work orders, lots, genealogy, operator forms"
    }

    fn build(&self, ctx: &StageContext<'_>) -> Result<BuiltStage, ComponentError> {
        let topology = ctx.topology;
        let production = persist::restore(&topology.plan, ctx.data_dir);
        let watches = topology
            .tags
            .iter()
            .map(|tag| {
                let asset = &topology.assets.get(tag.asset)?.path;
                production.watch(asset, &tag.attribute.name)
            })
            .collect();
        let shared = Arc::new(Shared {
            view: ArcSwap::from_pointee(production.clone()),
            production: Mutex::new(production),
            changed: AtomicBool::new(false),
        });
        let handle = ProductionHandle {
            commands: ctx.commands.clone(),
            shared: shared.clone(),
        };
        Ok(BuiltStage {
            stage: Box::new(ProductionStage {
                shared,
                watches,
                outcome: Outcome::default(),
                data_dir: ctx.data_dir.clone(),
                ticks: 0,
                published: Instant::now(),
            }),
            services: Services::one("production", Arc::new(handle)),
        })
    }
}

/// The state, locked only by the pipeline task, and the copy readers see.
#[derive(Debug)]
struct Shared {
    production: Mutex<Production>,
    view: ArcSwap<Production>,
    /// The state changed since the copy was published.
    changed: AtomicBool,
}

impl Shared {
    fn publish(&self, production: &Production) {
        self.changed.store(false, Ordering::Release);
        self.view.store(Arc::new(production.clone()));
    }
}

/// Why a command got no answer, or the production core's refusal.
#[derive(Debug, thiserror::Error)]
pub enum CommandFailed {
    #[error("{}", .0.message())]
    Refused(Refusal),
    #[error("the engine is shutting down")]
    Stopped,
}

/// Runs production commands and serves views of the production state; a service of the
/// production stage (find it with `services.get::<ProductionHandle>()`).
#[derive(Clone, Debug)]
pub struct ProductionHandle {
    commands: CommandPath,
    shared: Arc<Shared>,
}

impl ProductionHandle {
    /// Runs `command` for `by` between two batches; returns what it created or changed.
    pub async fn execute(
        &self,
        command: Command,
        by: Option<String>,
    ) -> Result<serde_json::Value, CommandFailed> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let shared = self.shared.clone();
        let call = StageCall(Box::new(move |now: Timestamp, derived: &mut Derived| {
            let mut outcome = Outcome::default();
            let result = {
                let mut production = shared.production.lock();
                let result = production.execute(command, by.as_deref(), now, &mut outcome);
                // The caller's next read sees what its command did.
                shared.publish(&production);
                result
            };
            derived
                .context
                .extend(outcome.context.into_iter().map(|(a, p)| (a, p, BY)));
            derived.events.extend(outcome.events);
            let _ = reply.send(result);
        }));
        self.commands
            .call(call)
            .await
            .map_err(|_| CommandFailed::Stopped)?;
        answer
            .await
            .map_err(|_| CommandFailed::Stopped)?
            .map_err(CommandFailed::Refused)
    }

    /// The production state as last published (work orders, lots, traces, OEE, ...), at
    /// most [`PUBLISH_EVERY`] behind while data flows. Serialize from it freely: the
    /// pipeline never waits for it.
    pub fn view(&self) -> Arc<Production> {
        self.shared.view.load_full()
    }

    /// The production state after every batch and command queued before this call: a
    /// copy is published between two batches if the state changed since the last one.
    /// Falls back to [`view`](Self::view) when the pipeline is stopping or busier than
    /// [`CURRENT_WAIT`].
    pub async fn current(&self) -> Arc<Production> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let shared = self.shared.clone();
        let call = StageCall(Box::new(move |_now: Timestamp, _derived: &mut Derived| {
            if shared.changed.load(Ordering::Acquire) {
                shared.publish(&shared.production.lock());
            }
            let _ = reply.send(());
        }));
        let asked = async {
            self.commands.call(call).await.ok()?;
            answer.await.ok()
        };
        let _ = tokio::time::timeout(CURRENT_WAIT, asked).await;
        self.view()
    }
}

/// The pipeline's side: which tags production watches, by tag index.
#[derive(Debug)]
struct ProductionStage {
    shared: Arc<Shared>,
    watches: Vec<Option<Watch>>,
    outcome: Outcome,
    data_dir: PathBuf,
    ticks: u32,
    /// When the stage last published a copy by itself.
    published: Instant,
}

impl ProductionStage {
    /// Moves what production produced into the pipeline's `out`.
    fn drain(&mut self, out: &mut Derived) {
        out.context
            .extend(self.outcome.context.drain(..).map(|(a, p)| (a, p, BY)));
        out.events.append(&mut self.outcome.events);
    }

    fn publish_if_due(&mut self, production: &Production) {
        if self.shared.changed.load(Ordering::Acquire) && self.published.elapsed() >= PUBLISH_EVERY {
            self.shared.publish(production);
            self.published = Instant::now();
        }
    }
}

impl Stage for ProductionStage {
    fn observe(&mut self, samples: &[Sample], out: &mut Derived) {
        let shared = self.shared.clone();
        let mut production = None;
        for sample in samples {
            let Some(Some(watch)) = self.watches.get(sample.tag.index()) else {
                continue;
            };
            let (Some(value), false) = (&sample.value, sample.quality.is_bad()) else {
                continue;
            };
            let p = production.get_or_insert_with(|| shared.production.lock());
            let time = sample.source_time.unwrap_or(sample.gateway_time);
            p.observe_watched(*watch, value, time, &mut self.outcome);
        }
        if let Some(production) = production {
            self.shared.changed.store(true, Ordering::Release);
            self.publish_if_due(&production);
        }
        self.drain(out);
    }

    fn tick(&mut self, now: Timestamp, out: &mut Derived) {
        let shared = self.shared.clone();
        let mut production = shared.production.lock();
        production.tick(now, &mut self.outcome);
        self.shared.changed.store(true, Ordering::Release);
        self.publish_if_due(&production);
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(SAVE_EVERY_TICKS) {
            let snapshot = production.snapshot();
            let dir = self.data_dir.clone();
            // Serializing and fsyncing stay off the pipeline task.
            let save = move || {
                if let Err(e) = persist::save(&snapshot, &dir) {
                    tracing::warn!(error = %e, "production: cannot save the state");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(save)),
                Err(_) => save(),
            }
        }
        drop(production);
        self.drain(out);
    }

    fn stop(&mut self) {
        let snapshot = self.shared.production.lock().snapshot();
        if let Err(e) = persist::save(&snapshot, &self.data_dir) {
            tracing::error!(error = %e, "production: cannot save the state at shutdown");
        }
    }
}
