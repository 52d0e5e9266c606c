//! Starting and stopping an engine, and the [`EngineHandle`] through which the API (and
//! tests) read the cache, health and metrics, change context and subscribe to changes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backplane_buffer::{
    FsyncPolicy, Log, LogOptions, Overflow as BufferOverflow, Reader, ReaderMonitor, ReaderOptions,
};
use backplane_config::{Fsync, Overflow, Plan};
use backplane_model::{BadReason, Context, ContextField, ContextPatch, Event, Quality, TagId, Timestamp};
use serde::Serialize;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use backplane_connector::gate::{MachineWrite, WriteReport};
use backplane_connector::{
    Batch, CommandPath, ComponentError, ComponentStatus, PipelineInput, Registry, Services, SinkContext,
    SinkFeed, SinkIo, SinkIoParts, SourceContext, SourceIo, Stage, StageContext, Topology, WriteGate,
    WritePath, WriteRequest,
};
use backplane_security::AuditTrail;

use crate::cache::{Latest, LatestValues};
use crate::context::ContextStore;
use crate::continuity::{self, Effect};
use crate::durable::{BufferedInput, LogWriter};
use crate::feed::{BufferFeed, QueueFeed};
use crate::health::{ComponentHealth, ComponentState, Health};
use crate::lineage::{self, Lineage};
use crate::metrics::Metrics;
use crate::pipeline::{self, Pipeline, Router};
use crate::recent::RecentBatches;
use crate::report::EngineReport;
use crate::supervisor::{self, BackoffPolicy, Supervised};

/// The default [`EngineOptions::input_queue`]. With 1 024, a polling source read a whole
/// cycle ahead of the pipeline: at 100 000 changes a second, each answer then waited
/// 15 ms (p50) and 48 ms (p99) before its message was written (docs/performance.md,
/// "Read no sooner than it can be sent").
pub const INPUT_QUEUE: usize = 8;

/// Queue sizes and restart policy. The defaults suit a gateway; tests shorten the backoff.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Batches waiting for the pipeline; sources wait when it is full. Small on purpose:
    /// a batch waits behind at most this many, so a value leaves soon after it was read
    /// (docs/architecture.md, Backpressure).
    pub input_queue: usize,
    /// Batches waiting for each sink; the sink misses batches when it is full.
    pub sink_queue: usize,
    /// Batches buffered for each live-stream subscriber before it lags.
    pub stream_queue: usize,
    pub backoff: BackoffPolicy,
    /// How long shutdown waits for sinks to flush.
    pub drain_timeout: Duration,
    /// Services the embedding program offers to stages, sinks and the API besides those the
    /// kinds prepare (e.g. the audit trail).
    pub services: Services,
    /// Own context per asset path taken over from the engine this one replaces (a
    /// configuration reload), instead of the configured start context; no events.
    pub contexts: Vec<(String, Context)>,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            input_queue: INPUT_QUEUE,
            sink_queue: 1024,
            stream_queue: 1024,
            backoff: BackoffPolicy::default(),
            drain_timeout: Duration::from_secs(10),
            services: Services::default(),
            contexts: Vec::new(),
        }
    }
}

/// The engine refuses a request because it is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the engine is shutting down")]
pub struct EngineStopped;

/// Overall health.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// `ok` when every enabled component runs, `degraded` otherwise.
    pub status: &'static str,
    pub version: &'static str,
    pub config_version: String,
    pub started: Timestamp,
    pub uptime_seconds: f64,
    pub components: Vec<ComponentHealth>,
    /// The store-and-forward backlog of each buffered sink.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buffers: Vec<BufferHealth>,
}

/// One buffered sink's backlog, as health shows it.
#[derive(Debug, Serialize)]
pub struct BufferHealth {
    pub sink: String,
    /// Samples and events appended but not yet confirmed by the destination.
    pub backlog_samples: u64,
    pub backlog_bytes: u64,
    /// Age of the oldest unconfirmed record; absent when the backlog is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_age_seconds: Option<f64>,
    /// Samples and events confirmed per second (10 s average).
    pub drain_rate: f64,
    /// Lost to the quota (overflow = "drop-oldest") since start.
    pub dropped: u64,
    /// Data the sink could not deliver live is being sent again beside live data.
    pub replaying: bool,
}

/// A buffered sink's reader figures and its measured drain rate.
#[derive(Clone, Debug)]
struct BufferStatus {
    sink: String,
    monitor: ReaderMonitor,
    /// f64 bits: samples per second acknowledged, averaged.
    drain_rate: Arc<AtomicU64>,
}

/// Opens the store-and-forward log when any enabled sink is buffered: one reader per such
/// sink, by name.
#[allow(clippy::type_complexity)]
fn open_log(
    plan: &Plan,
    metrics: &Metrics,
) -> Result<(Option<Log>, std::collections::HashMap<String, Reader>), ComponentError> {
    let readers: Vec<(&str, ReaderOptions)> = plan
        .sinks
        .iter()
        .filter(|s| s.enabled)
        .filter_map(|s| {
            let b = s.buffer?;
            Some((
                s.name.as_str(),
                ReaderOptions {
                    quota_bytes: b.quota_bytes,
                    overflow: match b.overflow {
                        Overflow::DropOldest => BufferOverflow::DropOldest,
                        Overflow::Block => BufferOverflow::Block,
                    },
                    live_lag: b.live_lag,
                },
            ))
        })
        .collect();
    if readers.is_empty() {
        return Ok((None, Default::default()));
    }
    let dir = plan.gateway.data_dir.join("buffer");
    let settings = plan.gateway.buffer;
    let options = LogOptions {
        segment_bytes: settings.segment_bytes,
        fsync: match settings.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Every(d) => FsyncPolicy::Interval(d),
        },
    };
    let (log, opened, recovery) = Log::open(&dir, options, &readers).map_err(|e| {
        ComponentError::io(format!(
            "cannot open the store-and-forward log in {}: {e}",
            dir.display()
        ))
    })?;
    if recovery.corrupted_records > 0
        || recovery.truncated_bytes > 0
        || !recovery.damaged_positions.is_empty()
    {
        tracing::warn!(
            dir = %dir.display(),
            corrupted_records = recovery.corrupted_records,
            corrupted_bytes = recovery.corrupted_bytes,
            truncated_bytes = recovery.truncated_bytes,
            damaged_positions = ?recovery.damaged_positions,
            "store-and-forward log recovered from damage (see docs/reliability.md)"
        );
    }
    metrics.buffer_corrupted.inc_by(recovery.corrupted_records);
    let by_name = opened
        .into_iter()
        .map(|reader| (reader.name().to_owned(), reader))
        .collect();
    Ok((Some(log), by_name))
}

/// How often time advances for the derive stages.
const STAGE_TICK: Duration = Duration::from_secs(1);

/// How often values' ages are checked: a tenth of the shortest `stale_after`, so a value
/// turns stale within 10 % of its limit, but not more often than every 25 ms nor less
/// than every second. (The check itself skips its scan until a value can be due.)
fn age_tick(shortest_stale_after: Duration) -> Duration {
    (shortest_stale_after / 10).clamp(Duration::from_millis(25), Duration::from_secs(1))
}

/// Sends `input(now)` through the pipeline every `period` (in order with data). Ends when
/// the pipeline's input closes.
async fn clock(
    input: mpsc::WeakSender<PipelineInput>,
    period: Duration,
    tick: fn(Timestamp) -> PipelineInput,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(tx) = input.upgrade() else { return };
        // In line behind the sources waiting for room, not dropped: with the queue kept
        // full by sources, a tick tried without waiting would never get in.
        let Ok(permit) = tx.reserve().await else { return };
        permit.send(tick(Timestamp::now()));
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[tokio::test]
    async fn a_tick_gets_in_while_a_source_keeps_the_input_queue_full() {
        let (tx, mut rx) = mpsc::channel(1);
        let source = tx.clone();
        let feeding =
            tokio::spawn(
                async move { while source.send(PipelineInput::Events(Vec::new())).await.is_ok() {} },
            );
        let ticking = tokio::spawn(clock(
            tx.downgrade(),
            Duration::from_millis(1),
            PipelineInput::Tick,
        ));
        let mut ticks = 0;
        for _ in 0..200 {
            if let Some(PipelineInput::Tick(_)) = rx.recv().await {
                ticks += 1;
            }
            // A busy pipeline: the source is always waiting for room when some is made.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(ticks > 0, "no tick got past the source");
        feeding.abort();
        ticking.abort();
    }
}

/// How often buffer figures are refreshed, and the averaging window of the drain rate.
const BUFFER_TICK: Duration = Duration::from_secs(1);
const DRAIN_RATE_WINDOW_SECS: f64 = 10.0;

/// Measures each buffered sink's drain rate and refreshes its metrics every second.
async fn watch_buffers(buffers: Arc<Vec<BufferStatus>>, metrics: Arc<Metrics>) {
    let mut last: Vec<u64> = buffers.iter().map(|b| b.monitor.stats().acked_seqs).collect();
    let mut at = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(BUFFER_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = tokio::time::Instant::now();
        let dt = now.duration_since(at).as_secs_f64().max(1e-3);
        at = now;
        for (b, last) in buffers.iter().zip(&mut last) {
            let stats = b.monitor.stats();
            let instant = stats.acked_seqs.saturating_sub(*last) as f64 / dt;
            *last = stats.acked_seqs;
            let old = f64::from_bits(b.drain_rate.load(Ordering::Relaxed));
            let alpha = 1.0 - (-dt / DRAIN_RATE_WINDOW_SECS).exp();
            let rate = old + (instant - old) * alpha;
            b.drain_rate.store(rate.to_bits(), Ordering::Relaxed);
            metrics.update_buffer(&b.sink, &stats, rate);
        }
    }
}

#[derive(Debug)]
struct Shared {
    topology: Arc<Topology>,
    cache: Arc<LatestValues>,
    contexts: Arc<ContextStore>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    stream: broadcast::Sender<Arc<Batch>>,
    input: mpsc::WeakSender<PipelineInput>,
    gate: WriteGate,
    started: Timestamp,
    buffers: Arc<Vec<BufferStatus>>,
    services: Services,
    /// Cancelled once the engine has stopped: live streams end, so nothing holds it.
    stopped: CancellationToken,
}

/// A cheap, cloneable view of a running engine.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

/// A running engine: its tasks and the means to stop them.
#[derive(Debug)]
pub struct Engine {
    handle: EngineHandle,
    input: mpsc::Sender<PipelineInput>,
    sources: Vec<RunningSource>,
    /// What the kinds prepared for the running sources and sinks (e.g. a webhook's route,
    /// a historian's store), which a reload that keeps one running hands on with it.
    source_services: Services,
    sink_services: Services,
    /// What the stages offer (production commands, alarms), and the path their calls
    /// take, both handed on with the stages when a reload keeps them.
    stage_services: Services,
    commands: CommandPath,
    sinks: Vec<RunningSink>,
    pipeline: JoinHandle<(Pipeline, Router)>,
    buffer_task: Option<JoinHandle<()>>,
    clock_tasks: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
}

/// One running source's supervisor and what a reload needs to keep it running under the
/// next engine: the handle whose pipeline it retargets, its health slot and write queue.
#[derive(Debug)]
struct RunningSource {
    name: String,
    io: SourceIo,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    slot: usize,
    writes: Option<mpsc::Sender<WriteRequest>>,
}

/// One running sink's supervisor and what a reload needs to keep it running: its health
/// slot, the sender of its queue (a local sink) or its reader's figures (a buffered one).
#[derive(Debug)]
struct RunningSink {
    name: String,
    /// Stops the sink at once (after the drain timeout).
    cancel: CancellationToken,
    /// Tells the sink nothing more will come: it hands out what is there and returns.
    closed: CancellationToken,
    task: JoinHandle<()>,
    slot: usize,
    queue: Option<mpsc::Sender<Arc<Batch>>>,
    buffer: Option<BufferStatus>,
}

/// Stages a reload keeps running: the stages, what they offer, the path of their calls.
type KeptStages = (Vec<Box<dyn Stage>>, Services, CommandPath);

/// What an engine started by a reload takes over from the one it replaces. Given back
/// unused when the start fails before anything of the new engine runs.
#[derive(Debug, Default)]
struct Carry {
    health: Option<Arc<Health>>,
    metrics: Option<Arc<Metrics>>,
    gate: Option<WriteGate>,
    /// The sources kept running; their readings wait in `input` meanwhile.
    sources: Vec<RunningSource>,
    source_services: Services,
    /// The sinks kept running, their prepared services, and the log the buffered ones
    /// read (only when every buffered sink is kept).
    sinks: Vec<RunningSink>,
    sink_services: Services,
    log: Option<Log>,
    /// The stages, running on with their state in memory, their services and their
    /// command path (only when the assets and the production settings did not change).
    stages: Option<KeptStages>,
    input: Option<(mpsc::Sender<PipelineInput>, mpsc::Receiver<PipelineInput>)>,
    /// The stopped pipeline: the latest values and deadband state to take over.
    previous: Option<Pipeline>,
}

/// What every part of a starting engine shares.
struct Core {
    topology: Arc<Topology>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Each configured component's health slot: sources, then sinks, in plan order.
    slots: Vec<usize>,
    input_tx: mpsc::Sender<PipelineInput>,
    gate: WriteGate,
    services: Services,
    /// Where stage handles and sinks send their calls.
    commands: CommandPath,
    options: EngineOptions,
}

/// A reload that could not start the new configuration, and what runs instead.
#[derive(Debug)]
pub struct ReloadFailed {
    /// Why the new configuration did not start.
    pub error: ComponentError,
    /// The previous configuration, started again; `None` when that failed as well and
    /// nothing runs.
    pub engine: Option<Engine>,
}

impl Engine {
    /// Starts every enabled source and sink of `plan`, the registry's stages, and the
    /// pipeline between them. Must be called inside a Tokio runtime.
    pub fn start(plan: Plan, registry: &Registry, options: EngineOptions) -> Result<Engine, ComponentError> {
        Engine::launch(Arc::new(Topology::new(plan)), registry, options, Carry::default()).map_err(|(e, _)| e)
    }

    /// Replaces the running configuration with `plan` (see docs/configuration.md, "Reloading").
    /// Sources whose entry and addresses did not change keep running, connections and all
    /// ([`continuity::effects`] decides); the others stop. The pipeline drains, the stages
    /// save their state, the sinks drain (buffered sinks keep their backlog in the log)
    /// and stop. The next engine then starts with the health table, the metrics' counters,
    /// the latest values and the kept sources of this one; what those read meanwhile
    /// waited in its input queue. `record` is called with each plan about to start, why
    /// ("reload", "reload-fallback") and from when it is in force (the moment the kept
    /// sources' readings went to the next engine). Should the new plan not start, the previous one
    /// starts again, its kept sources then restarted as well.
    pub async fn reload(
        self,
        plan: Plan,
        registry: &Registry,
        options: EngineOptions,
        record: &mut (dyn FnMut(&Plan, &str, Timestamp) + Send),
    ) -> Result<(Engine, Vec<Effect>), ReloadFailed> {
        let old_topology = self.handle.shared.topology.clone();
        let new_topology = Arc::new(Topology::new(plan));
        let effects = continuity::effects(&old_topology, &new_topology, registry);
        let keep = continuity::kept(&effects, "source");
        let keep_sinks = continuity::kept(&effects, "sink");
        let keep_stages = continuity::stages_kept(&old_topology, &new_topology);
        let Engine {
            handle,
            input,
            sources,
            source_services,
            sink_services,
            stage_services,
            commands,
            sinks,
            pipeline,
            buffer_task,
            clock_tasks,
            drain_timeout,
        } = self;
        let (kept, stopping): (Vec<_>, Vec<_>) = sources.into_iter().partition(|s| keep.contains(&s.name));
        stop_sources(stopping).await;
        // From here the kept sources' readings wait for the next pipeline, in order: they
        // are read under the next configuration, which is in force from now.
        let switch = Timestamp::now();
        let (tx, rx) = mpsc::channel(options.input_queue.max(1));
        retarget(&kept, &new_topology.plan, &tx);
        // Calls to kept stages wait for the next pipeline too; calls to stages that
        // restart fail (their state is the stopped stage's).
        if keep_stages {
            commands.retarget(tx.downgrade());
        }
        let stopped = stop_downstream(
            &handle,
            input,
            sinks,
            &keep_sinks,
            keep_stages,
            pipeline,
            buffer_task,
            clock_tasks,
            drain_timeout,
        )
        .await;
        let carry = Carry {
            health: Some(handle.shared.health.clone()),
            metrics: Some(handle.shared.metrics.clone()),
            gate: Some(handle.shared.gate.clone()),
            sources: kept,
            source_services: source_services.only(&keep),
            sinks: stopped.kept,
            sink_services: sink_services.only(&keep_sinks),
            log: stopped.log,
            stages: stopped.stages.map(|stages| (stages, stage_services, commands)),
            input: Some((tx, rx)),
            previous: stopped.pipeline,
        };
        record(&new_topology.plan, "reload", switch);
        let (error, mut carry) = match Engine::launch(new_topology.clone(), registry, options.clone(), carry)
        {
            Ok(engine) => return Ok((engine, effects)),
            Err(failed) => failed,
        };
        tracing::error!(error = %error, "reload: the new configuration did not start; starting the previous one again");
        let fallback = Arc::new(Topology::new(old_topology.bound_plan()));
        carry.restart_sources(&new_topology, &fallback).await;
        // In force from the same moment: the version that did not start read nothing.
        record(&fallback.plan, "reload-fallback", switch);
        match Engine::launch(fallback, registry, options, *carry) {
            Ok(engine) => Err(ReloadFailed {
                error,
                engine: Some(engine),
            }),
            Err((again, carry)) => {
                // The stages kept in memory save their state now.
                if let Some((mut stages, _, _)) = carry.stages {
                    let _ = tokio::task::spawn_blocking(move || {
                        for stage in &mut stages {
                            stage.stop();
                        }
                    })
                    .await;
                }
                tracing::error!(error = %again, "reload: the previous configuration did not start again either");
                Err(ReloadFailed { error, engine: None })
            }
        }
    }

    /// Starts an engine for `topology`, taking over what `carry` holds. The steps that can
    /// fail come first, before anything runs; on failure the carry is given back.
    fn launch(
        topology: Arc<Topology>,
        registry: &Registry,
        options: EngineOptions,
        mut carry: Carry,
    ) -> Result<Engine, (ComponentError, Box<Carry>)> {
        let plan = &topology.plan;
        if let Err(e) = known_kinds(plan, registry) {
            return Err((e, Box::new(carry)));
        }
        let running: BTreeSet<String> = carry.sources.iter().map(|s| s.name.clone()).collect();
        let running_sinks: BTreeSet<String> = carry.sinks.iter().map(|s| s.name.clone()).collect();
        // Services the kinds open before anything runs (e.g. the historian's stores); a
        // kept source or sink keeps those it was prepared with.
        let (mut source_services, mut sink_services) =
            match registry.prepare_parts(plan, &running, &running_sinks) {
                Ok(parts) => parts,
                Err(e) => return Err((e, Box::new(carry))),
            };
        source_services.extend(&carry.source_services);
        sink_services.extend(&carry.sink_services);
        let mut services = source_services.clone();
        services.extend(&sink_services);
        services.extend(&options.services);
        let source_names: Vec<String> = plan.sources.iter().map(|s| s.name.clone()).collect();
        let sink_names: Vec<String> = plan.sinks.iter().map(|s| s.name.clone()).collect();
        let metrics = Arc::new(match &carry.metrics {
            Some(previous) => previous.next(&source_names, &sink_names, &plan.version),
            None => Metrics::new(&source_names, &sink_names, &plan.version),
        });
        let now = Timestamp::now();
        let rows = health_rows(plan, now);
        let (health, slots) = match &carry.health {
            Some(health) => {
                let layout = rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, row)| {
                        let slot = if i < plan.sources.len() {
                            carry.sources.iter().find(|s| s.name == row.name).map(|s| s.slot)
                        } else {
                            carry.sinks.iter().find(|s| s.name == row.name).map(|s| s.slot)
                        };
                        (row, slot)
                    })
                    .collect();
                let slots = health.relayout(layout);
                (health.clone(), slots)
            }
            None => {
                let slots = (0..rows.len()).collect();
                (Arc::new(Health::new(rows)), slots)
            }
        };
        let input_tx = carry
            .input
            .get_or_insert_with(|| mpsc::channel(options.input_queue.max(1)))
            .0
            .clone();
        let commands = match &carry.stages {
            Some((_, _, commands)) => {
                commands.retarget(input_tx.downgrade());
                commands.clone()
            }
            None => CommandPath::new(input_tx.downgrade()),
        };
        let kept_writes = |i: usize| {
            let name = &plan.sources[i].name;
            carry
                .sources
                .iter()
                .find(|s| &s.name == name)
                .and_then(|s| s.writes.clone())
        };
        let (writes, write_rxs) = WritePath::keeping(&topology, kept_writes);
        let write_senders: Vec<_> = (0..plan.sources.len()).map(|i| writes.sender(i)).collect();
        let cache = Arc::new(LatestValues::new(topology.tags.len()));
        // The one door to the machines: sinks and the API get the gate, never the path.
        let audit = services
            .named::<AuditTrail>(AuditTrail::SERVICE)
            .map(|trail| (*trail).clone());
        let gate = match &carry.gate {
            Some(gate) => {
                gate.retarget(topology.clone(), writes, cache.clone());
                gate.clone()
            }
            None => WriteGate::new(topology.clone(), writes, cache.clone(), audit),
        };
        let mut core = Core {
            topology: topology.clone(),
            metrics,
            health,
            slots,
            input_tx,
            gate,
            services,
            commands,
            options,
        };
        // Stages are built, and the log opened with a reader for each buffered sink, unless
        // the carry holds them; the carry's are taken only once nothing can fail, so a
        // failed start gives them back to the fallback.
        let built = match carry.stages {
            Some(_) => None,
            None => match build_stages(registry, &mut core) {
                Ok(built) => Some(built),
                Err(e) => return Err((e, Box::new(carry))),
            },
        };
        let opened = match carry.log {
            Some(_) => None,
            None => match open_log(plan, &core.metrics) {
                Ok(opened) => Some(opened),
                Err(e) => return Err((e, Box::new(carry))),
            },
        };
        // Nothing below fails: the carry is used up.
        let (stages, stage_services) = match carry.stages.take() {
            Some((stages, stage_services, _)) => {
                core.services.extend(&stage_services);
                (stages, stage_services)
            }
            None => built.unwrap_or_default(),
        };
        let log = opened.unwrap_or_else(|| (carry.log.take(), Default::default()));
        let Some((_, input_rx)) = carry.input.take() else {
            unreachable!("the input queue was made above")
        };
        // Sinks first, so nothing the first readings produce is missed.
        let sinks = start_sinks(registry, &core, log, std::mem::take(&mut carry.sinks));
        let (stream, _) = broadcast::channel(core.options.stream_queue.max(1));
        let contexts = Arc::new(ContextStore::new(&topology));
        for (path, own) in &core.options.contexts {
            if let Some(asset) = topology.asset_index(path) {
                let patch = ContextPatch {
                    changes: ContextField::ALL
                        .iter()
                        .map(|&f| (f, own.get(f).cloned()))
                        .collect(),
                };
                let _ = contexts.apply(&topology, asset, &patch, None);
            }
        }
        let mut router = Router::new(
            sinks.queues,
            plan.sinks.iter().map(|s| s.name.clone()).collect(),
            stream.clone(),
            core.metrics.clone(),
        );
        router.durable = sinks.log;
        let mut pipeline = Pipeline::new(
            topology.clone(),
            contexts.clone(),
            cache.clone(),
            core.metrics.clone(),
        );
        if let Some(previous) = carry.previous.take() {
            let tags = pipeline.take_over(&previous);
            tracing::debug!(tags, "reload: latest values taken over");
        }
        let has_stages = !stages.is_empty();
        let age_period = pipeline.shortest_stale_after().map(age_tick);
        for stage in stages {
            pipeline.add_stage(stage);
        }
        let pipeline_task = tokio::spawn(pipeline::run(pipeline, router, input_rx));
        let buffers = Arc::new(sinks.buffers);
        let buffer_task =
            (!buffers.is_empty()).then(|| tokio::spawn(watch_buffers(buffers.clone(), core.metrics.clone())));
        let mut clock_tasks = Vec::new();
        if has_stages {
            clock_tasks.push(tokio::spawn(clock(
                core.input_tx.downgrade(),
                STAGE_TICK,
                PipelineInput::Tick,
            )));
        }
        if let Some(period) = age_period {
            clock_tasks.push(tokio::spawn(clock(
                core.input_tx.downgrade(),
                period,
                PipelineInput::Age,
            )));
        }
        let mut sources = std::mem::take(&mut carry.sources);
        retarget(&sources, plan, &core.input_tx);
        sources.extend(start_sources(
            registry,
            &core,
            write_rxs,
            &write_senders,
            &running,
        ));

        let shared = Arc::new(Shared {
            topology: topology.clone(),
            cache,
            contexts,
            health: core.health.clone(),
            metrics: core.metrics.clone(),
            stream,
            input: core.input_tx.downgrade(),
            gate: core.gate.clone(),
            started: now,
            buffers,
            services: core.services.clone(),
            stopped: CancellationToken::new(),
        });
        Ok(Engine {
            handle: EngineHandle { shared },
            input: core.input_tx,
            sources,
            source_services,
            sink_services,
            stage_services,
            commands: core.commands,
            sinks: sinks.running,
            pipeline: pipeline_task,
            buffer_task,
            clock_tasks,
            drain_timeout: core.options.drain_timeout,
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops sources, lets the pipeline and sinks drain what was read, then stops them.
    pub async fn shutdown(self) {
        let Engine {
            handle,
            input,
            sources,
            source_services: _,
            sink_services: _,
            stage_services: _,
            commands: _,
            sinks,
            pipeline,
            buffer_task,
            clock_tasks,
            drain_timeout,
        } = self;
        stop_sources(sources).await;
        drop(
            stop_downstream(
                &handle,
                input,
                sinks,
                &BTreeSet::new(),
                false,
                pipeline,
                buffer_task,
                clock_tasks,
                drain_timeout,
            )
            .await,
        );
    }
}

impl Carry {
    /// For a fallback after a failed start: the kept sources stop too (the previous
    /// configuration starts them afresh), and what they read meanwhile, numbered for
    /// `from`, is renumbered for `to`, in order.
    async fn restart_sources(&mut self, from: &Topology, to: &Topology) {
        stop_sources(std::mem::take(&mut self.sources)).await;
        self.source_services = Services::default();
        let Some((tx, mut rx)) = self.input.take() else {
            return;
        };
        let renumber = |source: u32| {
            let name = &from.plan.sources.get(source as usize)?.name;
            to.plan
                .sources
                .iter()
                .position(|s| &s.name == name)
                .map(|j| j as u32)
        };
        let (next_tx, next_rx) = mpsc::channel(tx.max_capacity());
        drop(tx);
        while let Ok(input) = rx.try_recv() {
            let input = match input {
                PipelineInput::Readings(mut batch) => match renumber(batch.source) {
                    Some(j) => {
                        batch.source = j;
                        PipelineInput::Readings(batch)
                    }
                    None => continue,
                },
                PipelineInput::SourceDown {
                    source,
                    quality,
                    time,
                } => match renumber(source) {
                    Some(source) => PipelineInput::SourceDown {
                        source,
                        quality,
                        time,
                    },
                    None => continue,
                },
                other => other,
            };
            // The same capacity, and nothing else sends: it fits.
            let _ = next_tx.try_send(input);
        }
        self.input = Some((next_tx, next_rx));
    }
}

/// Points each running source at `input` under its index in `plan`.
fn retarget(sources: &[RunningSource], plan: &Plan, input: &mpsc::Sender<PipelineInput>) {
    for source in sources {
        if let Some(j) = plan.sources.iter().position(|s| s.name == source.name) {
            source.io.retarget(j as u32, input.clone());
        }
    }
}

/// Stops sources and waits for each to end.
async fn stop_sources(sources: Vec<RunningSource>) {
    for source in &sources {
        source.cancel.cancel();
    }
    for source in sources {
        let _ = source.task.await;
    }
}

/// What [`stop_downstream`] leaves for the next engine.
struct Stopped {
    /// The stopped pipeline: its latest values to take over.
    pipeline: Option<Pipeline>,
    /// The sinks still running, and the log, when every buffered sink is among them.
    kept: Vec<RunningSink>,
    log: Option<Log>,
    /// The stages, taken out of the stopped pipeline to run on (not stopped, not saved).
    stages: Option<Vec<Box<dyn Stage>>>,
}

/// Everything after the sources: the pipeline ends once its queue is drained (the input
/// sender given here is the last strong one), stages save their state, and every sink but
/// those in `keep` is told its input has ended, flushes and returns.
#[allow(clippy::too_many_arguments)]
async fn stop_downstream(
    handle: &EngineHandle,
    input: mpsc::Sender<PipelineInput>,
    sinks: Vec<RunningSink>,
    keep: &BTreeSet<String>,
    keep_stages: bool,
    pipeline: JoinHandle<(Pipeline, Router)>,
    buffer_task: Option<JoinHandle<()>>,
    clock_tasks: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
) -> Stopped {
    drop(input);
    for clock in &clock_tasks {
        clock.abort();
    }
    let mut stages = None;
    let (stopped, router) = match pipeline.await {
        Ok((mut pipeline, router)) if keep_stages => {
            // The stages run on in the next pipeline, their state in memory.
            stages = Some(pipeline.take_stages());
            (Some(pipeline), Some(router))
        }
        Ok((mut pipeline, router)) => {
            // Stages save their state (e.g. production), off the async workers.
            match tokio::task::spawn_blocking(move || {
                pipeline.stop_stages();
                pipeline
            })
            .await
            {
                Ok(pipeline) => (Some(pipeline), Some(router)),
                Err(e) => {
                    tracing::error!(error = %e, "a derive stage failed while stopping");
                    (None, Some(router))
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "the pipeline task failed");
            (None, None)
        }
    };
    // The router held a sender of every local sink's queue: gone now.
    let log = router.and_then(|r| r.durable).map(LogWriter::into_log);
    let (kept, mut stopping): (Vec<_>, Vec<_>) = sinks.into_iter().partition(|s| keep.contains(&s.name));
    for sink in &mut stopping {
        // A local sink's queue closes; a buffered sink hands out what is ready, then
        // stops, and the rest stays in the log.
        sink.queue = None;
        sink.closed.cancel();
    }
    let drain = async {
        for sink in &mut stopping {
            let _ = (&mut sink.task).await;
        }
    };
    if tokio::time::timeout(drain_timeout, drain).await.is_err() {
        tracing::warn!("sinks did not drain in time; stopping them");
        for sink in &stopping {
            sink.cancel.cancel();
        }
        // Each supervisor gives its sink a few seconds, then aborts it: wait for that, so
        // no stopped sink reports on a health slot the next engine hands to another.
        let _ = tokio::time::timeout(
            supervisor::STOP_GRACE + Duration::from_secs(1),
            futures::future::join_all(stopping.into_iter().map(|s| s.task).filter(|t| !t.is_finished())),
        )
        .await;
    }
    if let Some(task) = buffer_task {
        task.abort();
    }
    handle.shared.stopped.cancel();
    tracing::info!("engine stopped");
    // The log stays open only for buffered sinks that keep running (then all of them).
    let log = log.filter(|_| kept.iter().any(|s| s.buffer.is_some()));
    Stopped {
        pipeline: stopped,
        kept,
        log,
        stages,
    }
}

/// Every enabled source's and sink's kind is registered.
fn known_kinds(plan: &Plan, registry: &Registry) -> Result<(), ComponentError> {
    for spec in plan.sources.iter().filter(|s| s.enabled) {
        if registry.source(&spec.kind).is_none() {
            return Err(ComponentError::config(format!(
                "source `{}`: unknown kind `{}`",
                spec.name, spec.kind
            )));
        }
    }
    for spec in plan.sinks.iter().filter(|s| s.enabled) {
        if registry.sink(&spec.kind).is_none() {
            return Err(ComponentError::config(format!(
                "sink `{}`: unknown kind `{}`",
                spec.name, spec.kind
            )));
        }
    }
    Ok(())
}

/// One health row per configured component, sources first.
fn health_rows(plan: &Plan, now: Timestamp) -> Vec<ComponentHealth> {
    plan.sources
        .iter()
        .map(|s| ("source", s))
        .chain(plan.sinks.iter().map(|s| ("sink", s)))
        .map(|(component, spec)| ComponentHealth {
            component,
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            state: if spec.enabled {
                ComponentState::Starting
            } else {
                ComponentState::Disabled
            },
            since: now,
            restarts: 0,
            last_error: None,
            last_error_at: None,
            last_reading_at: None,
            error_kind: None,
            retry_at: None,
        })
        .collect()
}

/// Builds the registry's derive stages, in order, and adds the services they offer.
fn build_stages(
    registry: &Registry,
    core: &mut Core,
) -> Result<(Vec<Box<dyn Stage>>, Services), ComponentError> {
    let mut stages = Vec::new();
    let mut offered = Services::default();
    for (name, kind) in registry.stages() {
        let events = core.metrics.component_events.clone();
        let counter = move |event: &str| {
            events
                .get_or_create(&crate::metrics::EventLabels {
                    component: "stage".to_owned(),
                    name: name.to_owned(),
                    event: event.to_owned(),
                })
                .clone()
        };
        let built = kind
            .build(&StageContext {
                topology: &core.topology,
                data_dir: &core.topology.plan.gateway.data_dir,
                commands: core.commands.clone(),
                counter: &counter,
            })
            .map_err(|e| ComponentError::config(format!("stage `{name}`: {}", e.chain())))?;
        core.services.extend(&built.services);
        offered.extend(&built.services);
        stages.push(built.stage);
    }
    Ok((stages, offered))
}

/// How a component reports on itself: its slot in health and its events counters.
fn status(core: &Core, component: &'static str, name: &str, slot: usize) -> ComponentStatus {
    ComponentStatus::new(Arc::new(EngineReport {
        component,
        name: name.to_owned(),
        slot,
        health: core.health.clone(),
        events: core.metrics.component_events.clone(),
        delays: core.metrics.component_delays.clone(),
    }))
}

/// The running sinks (kept and started) and the log writer for the router.
struct Sinks {
    queues: Vec<Option<mpsc::Sender<Arc<Batch>>>>,
    log: Option<LogWriter>,
    running: Vec<RunningSink>,
    buffers: Vec<BufferStatus>,
}

/// Starts one supervisor per enabled sink not in `kept`, each reading its queue or its
/// reader of the log; a kept sink goes on reading its queue or reader.
#[allow(clippy::type_complexity)]
fn start_sinks(
    registry: &Registry,
    core: &Core,
    (log, mut readers): (Option<Log>, std::collections::HashMap<String, Reader>),
    mut kept: Vec<RunningSink>,
) -> Sinks {
    let plan = &core.topology.plan;
    let mut queues = Vec::new();
    let mut running = Vec::new();
    let mut buffers = Vec::new();
    let recent = Arc::new(RecentBatches::default());
    for (i, spec) in plan.sinks.iter().enumerate() {
        if let Some(k) = kept.iter().position(|s| s.name == spec.name) {
            let sink = kept.swap_remove(k);
            queues.push(sink.queue.clone());
            buffers.extend(sink.buffer.clone());
            running.push(sink);
            continue;
        }
        if !spec.enabled {
            queues.push(None);
            continue;
        }
        // Checked before the engine started anything (`known_kinds`).
        let Some(kind) = registry.sink(&spec.kind).cloned() else {
            queues.push(None);
            continue;
        };
        let closed = CancellationToken::new();
        let mut buffer = None;
        let mut queue = None;
        let feed: Arc<dyn SinkFeed> = match readers.remove(&spec.name) {
            Some(mut reader) => {
                // What an earlier run sent but never saw confirmed goes again, as replay.
                // Done now, before the pipeline appends: this run's first records are live
                // however late the first instance starts.
                reader.rewind();
                let buffer_metrics = core.metrics.buffer(&spec.name);
                buffer = Some(BufferStatus {
                    sink: spec.name.clone(),
                    monitor: reader.monitor(),
                    drain_rate: Arc::new(AtomicU64::new(0f64.to_bits())),
                });
                let (commands, command_rx) = mpsc::unbounded_channel();
                Arc::new(BufferFeed {
                    input: Mutex::new(BufferedInput {
                        reader,
                        commands: command_rx,
                        topology: core.topology.clone(),
                        recent: recent.add_reader(),
                        closed: closed.clone(),
                        unreadable: buffer_metrics.unreadable,
                        unknown_tags: buffer_metrics.unknown_tags,
                    }),
                    commands,
                })
            }
            None => {
                let (tx, rx) = mpsc::channel(core.options.sink_queue.max(1));
                queue = Some(tx);
                Arc::new(QueueFeed(Mutex::new(rx)))
            }
        };
        queues.push(queue.clone());
        buffers.extend(buffer.clone());
        let slot = core.slots[plan.sources.len() + i];
        let cancel = CancellationToken::new();
        let io = SinkIo::new(SinkIoParts {
            feed,
            cancel: cancel.clone(),
            input_closed: closed.clone(),
            topology: core.topology.clone(),
            gate: core.gate.clone(),
            commands: core.commands.clone(),
            services: core.services.clone(),
            status: status(core, "sink", &spec.name, slot),
        });
        let spec = spec.clone();
        let data_dir = plan.gateway.data_dir.clone();
        let gateway = plan.gateway.name.clone();
        let services = core.services.clone();
        // Whether an instance has run: only then can something have been delivered and not
        // confirmed (a build that failed delivered nothing).
        let mut ran = false;
        let start: Box<dyn FnMut() -> _ + Send> = Box::new(move || {
            // What the previous instance sent but never saw confirmed goes again.
            if ran {
                io.rewind();
            }
            let sink = kind.build(&SinkContext {
                gateway: &gateway,
                name: &spec.name,
                settings: &spec.settings,
                data_dir: &data_dir,
                services: &services,
            })?;
            ran = true;
            Ok(sink.run(io.clone()))
        });
        let supervised = Supervised {
            component: "sink",
            name: plan.sinks[i].name.clone(),
            slot,
            health: core.health.clone(),
            restarts: core.metrics.sinks[i].restarts.clone(),
            up: core.metrics.sinks[i].up.clone(),
            cancel: cancel.clone(),
            policy: core.options.backoff,
            return_is_stop: true,
        };
        running.push(RunningSink {
            name: plan.sinks[i].name.clone(),
            cancel,
            closed,
            task: tokio::spawn(supervisor::supervise(
                supervised,
                start,
                Box::new(|| Box::pin(async {})),
            )),
            slot,
            queue,
            buffer,
        });
    }
    let log = log.map(|log| {
        LogWriter::new(
            log,
            core.topology.clone(),
            recent,
            core.metrics.buffer_append_errors.clone(),
        )
    });
    Sinks {
        queues,
        log,
        running,
        buffers,
    }
}

/// Starts one supervisor per enabled source not already `running`; a failed source turns
/// its tags bad.
fn start_sources(
    registry: &Registry,
    core: &Core,
    mut write_rxs: Vec<Option<mpsc::Receiver<WriteRequest>>>,
    write_senders: &[Option<mpsc::Sender<WriteRequest>>],
    running: &BTreeSet<String>,
) -> Vec<RunningSource> {
    let plan = &core.topology.plan;
    let mut started = Vec::new();
    for (i, spec) in plan.sources.iter().enumerate() {
        if !spec.enabled || running.contains(&spec.name) {
            continue;
        }
        // Checked before the engine started anything (`known_kinds`).
        let Some(kind) = registry.source(&spec.kind).cloned() else {
            continue;
        };
        let Some(write_rx) = write_rxs[i].take() else {
            continue;
        };
        let slot = core.slots[i];
        let cancel = CancellationToken::new();
        let io = SourceIo::new(
            i as u32,
            core.input_tx.clone(),
            cancel.clone(),
            write_rx,
            status(core, "source", &spec.name, slot),
        );
        let spec = spec.clone();
        let data_dir = plan.gateway.data_dir.clone();
        let gateway = plan.gateway.name.clone();
        let topology = core.topology.clone();
        let services = core.services.clone();
        let run_io = io.clone();
        let start: Box<dyn FnMut() -> _ + Send> = Box::new(move || {
            let source = kind.build(&SourceContext {
                gateway: &gateway,
                name: &spec.name,
                settings: &spec.settings,
                // The topology's own list: a copy per source would be 16 bytes a tag.
                addresses: &topology.sources[i].addresses,
                data_dir: &data_dir,
                topology: &topology,
                services: &services,
            })?;
            Ok(source.run(run_io.clone()))
        });
        // The pipeline and index of the moment: a reload may have kept the source running.
        let down_io = io.clone();
        let on_failure: Box<dyn FnMut() -> _ + Send> = Box::new(move || {
            let (source, tx) = down_io.pipeline();
            let down = PipelineInput::SourceDown {
                source,
                quality: Quality::Bad(BadReason::CommFailure),
                time: Timestamp::now(),
            };
            Box::pin(async move {
                let _ = tx.send(down).await;
            }) as futures::future::BoxFuture<'static, ()>
        });
        let supervised = Supervised {
            component: "source",
            name: plan.sources[i].name.clone(),
            slot,
            health: core.health.clone(),
            restarts: core.metrics.sources[i].restarts.clone(),
            up: core.metrics.sources[i].up.clone(),
            cancel: cancel.clone(),
            policy: core.options.backoff,
            return_is_stop: false,
        };
        started.push(RunningSource {
            name: plan.sources[i].name.clone(),
            io,
            cancel,
            task: tokio::spawn(supervisor::supervise(supervised, start, on_failure)),
            slot,
            writes: write_senders[i].clone(),
        });
    }
    started
}

impl EngineHandle {
    pub fn topology(&self) -> &Arc<Topology> {
        &self.shared.topology
    }

    pub fn latest(&self, tag: TagId) -> Option<Latest> {
        self.shared.cache.get(tag)
    }

    pub fn latest_many(&self, tags: &[TagId]) -> Vec<Option<Latest>> {
        self.shared.cache.get_many(tags)
    }

    /// `(own, effective)` context of an asset (by topology index).
    /// Resolves once the engine has stopped (its live streams end then).
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shared.stopped.clone().cancelled_owned()
    }

    /// Every asset's own context (the fields set on it), by path: what a reload carries
    /// over into the next engine ([`EngineOptions::contexts`]).
    pub fn own_contexts(&self) -> Vec<(String, Context)> {
        let topology = &self.shared.topology;
        (0..topology.assets.len())
            .map(|i| (topology.assets[i].path.to_string(), self.shared.contexts.own(i)))
            .collect()
    }

    pub fn context(&self, asset: usize) -> (Context, Arc<Context>) {
        (
            self.shared.contexts.own(asset),
            self.shared.contexts.effective(asset),
        )
    }

    /// Changes an asset's own context. Samples read from now on carry it; the returned
    /// events (one per changed field) are also routed to sinks and the live stream.
    pub async fn set_context(
        &self,
        asset: usize,
        patch: &ContextPatch,
        by: Option<&str>,
    ) -> Result<Vec<Event>, EngineStopped> {
        let input = self.shared.input.upgrade().ok_or(EngineStopped)?;
        // Applied by the pipeline between batches, so it is ordered exactly with samples.
        let (reply, answer) = oneshot::channel();
        let request = PipelineInput::SetContext {
            asset,
            patch: patch.clone(),
            by: by.map(str::to_owned),
            reply,
        };
        input.send(request).await.map_err(|_| EngineStopped)?;
        let events = answer.await.map_err(|_| EngineStopped)?;
        Ok(events)
    }

    /// What the stages and kinds offer (e.g. the production commands and views, each
    /// historian's store), by type and name.
    pub fn services(&self) -> &Services {
        &self.shared.services
    }

    /// Hands calls to the pipeline's stages, run between two batches.
    pub fn commands(&self) -> CommandPath {
        CommandPath::new(self.shared.input.clone())
    }

    /// Every batch the pipeline routes from now on. A subscriber that falls more than the
    /// stream queue behind gets `RecvError::Lagged` and should call [`Self::note_stream_lag`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.shared.stream.subscribe()
    }

    pub fn note_stream_lag(&self, missed: u64) {
        self.shared.metrics.stream_lagged.inc_by(missed);
    }

    pub fn health(&self) -> HealthReport {
        let mut components = self.shared.health.snapshot();
        // Sources come first, in the order of the metrics' sources.
        for (c, m) in components.iter_mut().zip(&self.shared.metrics.sources) {
            let at = m.last_reading.load(Ordering::Relaxed);
            if c.component == "source" && at != 0 {
                c.last_reading_at = Some(Timestamp::from_unix_nanos(at));
            }
        }
        let ok = components
            .iter()
            .all(|c| matches!(c.state, ComponentState::Running | ComponentState::Disabled));
        let now = Timestamp::now();
        HealthReport {
            status: if ok { "ok" } else { "degraded" },
            version: env!("CARGO_PKG_VERSION"),
            config_version: self.shared.topology.plan.version.clone(),
            started: self.shared.started,
            uptime_seconds: (now.unix_nanos() - self.shared.started.unix_nanos()) as f64 / 1e9,
            components,
            buffers: self
                .shared
                .buffers
                .iter()
                .map(|b| {
                    let stats = b.monitor.stats();
                    BufferHealth {
                        sink: b.sink.clone(),
                        backlog_samples: stats.backlog_seqs,
                        backlog_bytes: stats.backlog_bytes,
                        oldest_age_seconds: stats.oldest_unacked_age.map(|d| d.as_secs_f64()),
                        drain_rate: f64::from_bits(b.drain_rate.load(Ordering::Relaxed)),
                        dropped: stats.dropped_seqs,
                        replaying: stats.replaying,
                    }
                })
                .collect(),
        }
    }

    /// Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    /// Writes an engineering value to a machine through the write gate (allowlist, role,
    /// limits, interlocks, inverse transform, read-back, audit); see `docs/writes.md`.
    pub async fn write(&self, request: MachineWrite) -> WriteReport {
        self.shared.gate.write(request).await
    }

    /// The write gate, for the API.
    pub fn gate(&self) -> &WriteGate {
        &self.shared.gate
    }

    /// Where the current value of a tag came from.
    pub fn lineage(&self, tag: TagId) -> Option<Lineage> {
        let info = self.shared.topology.tag(tag)?;
        Some(lineage::explain(&self.shared.topology, info, self.latest(tag)))
    }
}
