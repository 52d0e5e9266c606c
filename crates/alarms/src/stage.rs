//! The `alarms` derive stage and its handle.
//!
//! - Every batch's samples of limited tags go to [`Conditions::observe`]; transitions
//!   become `alarm` events of the tag's asset.
//! - Acknowledgements ([`AlarmsHandle::acknowledge`]) run in the pipeline task between two
//!   batches, so the acknowledgement event is ordered with the transitions.
//! - Readers ([`AlarmsHandle::view`]) see a copy published after every change.
//! - The state is saved (off the pipeline task) on the tick after a change and when the
//!   pipeline stops, and restored when the stage is built.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use backplane_connector::{
    BuiltStage, CommandPath, ComponentError, Derived, Services, Stage, StageCall, StageContext, StageKind,
};
use backplane_model::sample::EventKind;
use backplane_model::{Sample, Timestamp};
use parking_lot::Mutex;

use crate::conditions::{AckRefused, Condition, Conditions};
use crate::persist;

/// The stage kind the binary registers as `alarms`.
#[derive(Debug, Default)]
pub struct AlarmsStageKind;

impl StageKind for AlarmsStageKind {
    fn describe(&self) -> &'static str {
        "alarms: limit alarms (hihi, hi, lo, lolo with a deadband) where the model defines limits"
    }

    fn build(&self, ctx: &StageContext<'_>) -> Result<BuiltStage, ComponentError> {
        let topology = ctx.topology;
        let mut conditions = Conditions::new(topology.tags.iter().filter_map(|tag| {
            let limits = tag.attribute.limits.clone()?;
            let asset = topology.assets.get(tag.asset)?.path.clone();
            Some((
                tag.id.index(),
                Arc::from(topology.path(tag).to_string()),
                asset,
                Arc::from(tag.attribute.name.as_str()),
                limits,
            ))
        }));
        persist::restore(&mut conditions, ctx.data_dir);
        let shared = Arc::new(Shared {
            view: ArcSwap::from_pointee(conditions.all.clone()),
            conditions: Mutex::new(conditions),
            dirty: AtomicBool::new(false),
            data_dir: ctx.data_dir.clone(),
            saving: Mutex::new(()),
        });
        let handle = AlarmsHandle {
            commands: ctx.commands.clone(),
            shared: shared.clone(),
        };
        Ok(BuiltStage {
            stage: Box::new(AlarmsStage { shared }),
            services: Services::one("alarms", Arc::new(handle)),
        })
    }
}

#[derive(Debug)]
struct Shared {
    conditions: Mutex<Conditions>,
    view: ArcSwap<Vec<Condition>>,
    /// Changed since the last save.
    dirty: AtomicBool,
    data_dir: PathBuf,
    /// One save at a time, so an older snapshot never lands after a newer one.
    saving: Mutex<()>,
}

impl Shared {
    fn changed(&self, conditions: &Conditions) {
        self.view.store(Arc::new(conditions.all.clone()));
        self.dirty.store(true, Ordering::Release);
    }

    fn save(&self) {
        let _one = self.saving.lock();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let snapshot = self.conditions.lock().snapshot();
        if let Err(e) = persist::save(&snapshot, &self.data_dir) {
            self.dirty.store(true, Ordering::Release);
            tracing::warn!(error = %e, "alarms: cannot save the state");
        }
    }
}

/// Why an acknowledgement did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckFailed {
    #[error("{0}")]
    Refused(AckRefused),
    #[error("the engine is shutting down")]
    Stopped,
}

/// Acknowledges limit alarms and shows their state; a service of the alarms stage (find
/// it with `services.get::<AlarmsHandle>()`).
#[derive(Clone, Debug)]
pub struct AlarmsHandle {
    commands: CommandPath,
    shared: Arc<Shared>,
}

impl AlarmsHandle {
    /// Every limit alarm with its state, as last changed.
    pub fn view(&self) -> Arc<Vec<Condition>> {
        self.shared.view.load_full()
    }

    /// Acknowledges the alarm of tag `path` (`asset/attribute`) for `by`, between two
    /// batches; the acknowledgement is an `alarm` event with `acked` true.
    pub async fn acknowledge(&self, path: &str, by: &str, comment: Option<&str>) -> Result<(), AckFailed> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let shared = self.shared.clone();
        let (path, by, comment) = (path.to_owned(), by.to_owned(), comment.map(str::to_owned));
        let call = StageCall(Box::new(move |now: Timestamp, derived: &mut Derived| {
            let mut conditions = shared.conditions.lock();
            let result = conditions.acknowledge(&path, &by, comment.as_deref(), now);
            let result = result.map(|(asset, alarm)| {
                derived.events.push((asset, now, EventKind::Alarm(alarm)));
            });
            if result.is_ok() {
                shared.changed(&conditions);
            }
            let _ = reply.send(result);
        }));
        self.commands.call(call).await.map_err(|_| AckFailed::Stopped)?;
        answer
            .await
            .map_err(|_| AckFailed::Stopped)?
            .map_err(AckFailed::Refused)
    }
}

#[derive(Debug)]
struct AlarmsStage {
    shared: Arc<Shared>,
}

impl Stage for AlarmsStage {
    fn observe(&mut self, samples: &[Sample], out: &mut Derived) {
        let mut conditions = self.shared.conditions.lock();
        if conditions.is_empty() {
            return;
        }
        let before = out.events.len();
        conditions.observe(samples, &mut out.events);
        if out.events.len() > before {
            self.shared.changed(&conditions);
        }
    }

    fn tick(&mut self, _now: Timestamp, _out: &mut Derived) {
        if !self.shared.dirty.load(Ordering::Acquire) {
            return;
        }
        let shared = self.shared.clone();
        // Serializing and fsyncing stay off the pipeline task.
        let save = move || shared.save();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(save)),
            Err(_) => save(),
        }
    }

    fn stop(&mut self) {
        self.shared.save();
    }
}
