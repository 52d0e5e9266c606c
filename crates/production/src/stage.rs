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
//!   task) and when the pipeline stops. An operator entry with a client id is saved
//!   before it is answered, so the gateway knows the id after a crash too. Saves are
//!   numbered in the order their snapshots were taken and an older one never overwrites
//!   a newer one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use backplane_connector::{
    BuiltStage, CommandPath, ComponentError, Derived, Services, Stage, StageCall, StageContext, StageKind,
};
use backplane_model::{Sample, Timestamp};
use parking_lot::Mutex;

use crate::{Command, Outcome, Production, Refusal, Snapshot, Watch, persist};

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
        let mut watches: Vec<Option<Watch>> = topology
            .tags
            .iter()
            .map(|tag| {
                let asset = &topology.assets.get(tag.asset)?.path;
                production.watch(asset, &tag.attribute.name)
            })
            .collect();
        // Up to the last watched tag only: none at all where production is not configured
        // (8 bytes a tag otherwise, 0.8 MB at 100 000 tags).
        while watches.last().is_some_and(Option::is_none) {
            watches.pop();
        }
        watches.shrink_to_fit();
        let shared = Arc::new(Shared {
            view: ArcSwap::from_pointee(production.clone()),
            production: Mutex::new(production),
            changed: AtomicBool::new(false),
            data_dir: ctx.data_dir.clone(),
            saves: AtomicU64::new(0),
            written: Mutex::new(None),
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
    data_dir: PathBuf,
    /// The number of the next save.
    saves: AtomicU64,
    /// The number of the save on disk.
    written: Mutex<Option<u64>>,
}

/// A snapshot to save, numbered in the order snapshots were taken.
struct PendingSave(u64, Snapshot);

impl Shared {
    /// A snapshot of `production` (locked by the caller) to save.
    fn to_save(&self, production: &Production) -> PendingSave {
        PendingSave(self.saves.fetch_add(1, Ordering::AcqRel), production.snapshot())
    }

    /// Writes `pending` unless a later snapshot is on disk already (saves run on blocking
    /// threads and may finish in any order).
    fn save(&self, pending: PendingSave) -> std::io::Result<()> {
        let PendingSave(number, snapshot) = pending;
        let mut written = self.written.lock();
        if written.is_some_and(|w| w > number) {
            return Ok(());
        }
        persist::save(&snapshot, &self.data_dir)?;
        *written = Some(number);
        Ok(())
    }

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
        // A new entry with a client id is on disk before it is answered: a retry after a
        // crash is recognised too.
        let durable = matches!(&command, Command::SubmitForm { id: Some(_), .. });
        let call = StageCall(Box::new(move |now: Timestamp, derived: &mut Derived| {
            let mut outcome = Outcome::default();
            let (result, pending) = {
                let mut production = shared.production.lock();
                let result = production.execute(command, by.as_deref(), now, &mut outcome);
                // The caller's next read sees what its command did.
                shared.publish(&production);
                let recorded = result.as_ref().is_ok_and(|v| v.get("duplicate").is_none());
                let pending = (durable && recorded).then(|| shared.to_save(&production));
                (result, pending)
            };
            derived
                .context
                .extend(outcome.context.into_iter().map(|(a, p)| (a, p, BY)));
            derived.events.extend(outcome.events);
            let _ = reply.send((result, pending));
        }));
        self.commands
            .call(call)
            .await
            .map_err(|_| CommandFailed::Stopped)?;
        let (result, pending) = answer.await.map_err(|_| CommandFailed::Stopped)?;
        if let Some(pending) = pending {
            let shared = self.shared.clone();
            let saved = tokio::task::spawn_blocking(move || shared.save(pending)).await;
            // Recorded all the same: only a crash before the next save could forget the id.
            match saved {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "production: cannot save the state after an entry"),
                Err(e) => tracing::warn!(error = %e, "production: the save after an entry did not run"),
            }
        }
        result.map_err(CommandFailed::Refused)
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
            let pending = self.shared.to_save(&production);
            let shared = self.shared.clone();
            // Serializing and fsyncing stay off the pipeline task.
            let save = move || {
                if let Err(e) = shared.save(pending) {
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
        let pending = self.shared.to_save(&self.shared.production.lock());
        if let Err(e) = self.shared.save(pending) {
            tracing::error!(error = %e, "production: cannot save the state at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use backplane_config::Catalog;

    use super::*;

    #[test]
    fn a_snapshot_saved_late_never_overwrites_a_newer_one_on_disk() {
        let plan = backplane_config::load_str(
            "[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n",
            Path::new("test.toml"),
            &Catalog::default(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut production = Production::new(&plan);
        let shared = Shared {
            view: ArcSwap::from_pointee(production.clone()),
            production: Mutex::new(production.clone()),
            changed: AtomicBool::new(false),
            data_dir: dir.path().to_path_buf(),
            saves: AtomicU64::new(0),
            written: Mutex::new(None),
        };
        production.tick(Timestamp::from_unix_millis(1_000), &mut Outcome::default());
        let older = shared.to_save(&production);
        production.tick(Timestamp::from_unix_millis(2_000), &mut Outcome::default());
        let newer = shared.to_save(&production);
        // The newer save finishes first; the older one, finishing late, is skipped.
        shared.save(newer).unwrap();
        shared.save(older).unwrap();
        let restored = persist::restore(&plan, dir.path());
        assert_eq!(restored.snapshot(), production.snapshot());
    }
}
