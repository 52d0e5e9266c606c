//! The pipeline: normalize → contextualize → route, one batch at a time.
//!
//! [`Pipeline::process`] is synchronous and does no I/O: it turns a batch of raw readings
//! into samples (transform chain, quality, range check, deadband, age), stamps each with
//! the effective context of its asset, and records them in the latest-value cache.
//! [`Router::route`] then hands the resulting shared batch to every sink queue and to live
//! stream subscribers.
//!
//! Backpressure policy: nothing read is lost in the gateway. Sources wait when the
//! pipeline's input queue is full, and the pipeline waits when a local sink's queue is
//! full (a slow disk slows the gateway down; the wait is counted in
//! `backplane_sink_wait_seconds_total`). Network sinks read through the durable
//! store-and-forward log instead, so a slow or absent destination never holds the
//! pipeline back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_connector::{Batch, Derived, PipelineInput, RawBatch, RawReading, Stage, Topology};
use backplane_model::transform::{Deadband, Transform, TransformError};
use backplane_model::{
    Attribute, BadReason, Event, Quality, Sample, TagId, Timestamp, UncertainReason, Value,
};
use tokio::sync::{broadcast, mpsc};

use crate::cache::{LatestValues, Slot};
use crate::context::{ContextCache, ContextStore};
use crate::metrics::Metrics;

/// One tag a reading of the batch feeds, with what normalizing needs of its binding.
struct Target<'t> {
    /// Index of the reading in the batch.
    reading: usize,
    tag: TagId,
    asset: usize,
    attribute: &'t Attribute,
    transforms: &'t [Transform],
    deadband: Option<Deadband>,
}

impl<'t> Target<'t> {
    /// `tag` fed by reading `reading`, if the topology binds it.
    fn of(topology: &'t Topology, tag: TagId, reading: usize) -> Option<Target<'t>> {
        let info = topology.tags.get(tag.index())?;
        let binding = info.binding.as_ref()?;
        Some(Target {
            reading,
            tag,
            asset: info.asset,
            attribute: &info.attribute,
            transforms: &binding.transforms,
            deadband: binding.deadband,
        })
    }
}

/// What normalizing a batch has produced so far.
struct Normalized {
    samples: Vec<Sample>,
    /// Held back by their deadband.
    suppressed: u64,
    /// Readings the transform chain or the checks refused.
    failed: u64,
    /// The context store's version when the batch began.
    version: u64,
    gateway_time: Timestamp,
}

/// A tag whose values age: its index, and its `stale_after` as an index into
/// [`Pipeline::limits`] (a handful of distinct limits: 8 bytes a tag, not 16).
#[derive(Debug, Clone, Copy)]
struct Aging {
    tag: u32,
    limit: u32,
}

/// How a stale value is reported: uncertain, the last value kept (OPC UA's
/// Uncertain_LastUsableValue).
const STALE: Quality = Quality::Uncertain(UncertainReason::LastUsableValue);

/// The synchronous core of the pipeline.
#[derive(Debug)]
pub struct Pipeline {
    topology: Arc<Topology>,
    contexts: Arc<ContextStore>,
    /// Each asset's effective context, read from `contexts` again only once it changed.
    context_cache: ContextCache,
    cache: Arc<LatestValues>,
    metrics: Arc<Metrics>,
    /// Per tag, the gateway time of its last reading, reported or inside its deadband
    /// (unix nanoseconds; 0: never read), for the age check. The last reported value and
    /// quality, which the deadband, the checks and the age check compare with, are the
    /// cache's: one copy, updated as each reading is normalized (a second copy here was
    /// 32 bytes a tag and a value cloned twice a sample).
    read_at: Vec<i64>,
    /// The derive stages (e.g. production: states, counters, OEE, lots), in order.
    stages: Vec<Box<dyn Stage>>,
    /// What the stages derived from the current input; reused.
    derived: Derived,
    /// The tags whose values turn stale when not read again in time.
    aging: Vec<Aging>,
    /// The distinct `stale_after` limits of `aging`, in nanoseconds.
    limits: Vec<i64>,
    /// No value can turn stale before this (unix nanoseconds): the age check skips the
    /// scan until then. A lower bound, as readings only push deadlines later.
    next_age_check: i64,
}

impl Pipeline {
    pub fn new(
        topology: Arc<Topology>,
        contexts: Arc<ContextStore>,
        cache: Arc<LatestValues>,
        metrics: Arc<Metrics>,
    ) -> Pipeline {
        let read_at = vec![0; topology.tags.len()];
        let mut limits: Vec<i64> = Vec::new();
        let mut limit_index: HashMap<i64, u32> = HashMap::new();
        let mut aging: Vec<Aging> = topology
            .tags
            .iter()
            .filter_map(|info| {
                let limit = info.binding.as_ref()?.stale_after?;
                let limit = i64::try_from(limit.as_nanos()).unwrap_or(i64::MAX);
                let limit = *limit_index.entry(limit).or_insert_with(|| {
                    limits.push(limit);
                    (limits.len() - 1) as u32
                });
                Some(Aging {
                    tag: info.id.index() as u32,
                    limit,
                })
            })
            .collect();
        // Collected without knowing how many: up to twice the room otherwise, per tag.
        aging.shrink_to_fit();
        Pipeline {
            topology,
            contexts,
            context_cache: ContextCache::default(),
            cache,
            metrics,
            read_at,
            stages: Vec::new(),
            derived: Derived::default(),
            aging,
            limits,
            next_age_check: 0,
        }
    }

    /// The shortest `stale_after` of any tag, `None` when no value ages: the engine checks
    /// ages often enough for that one to turn stale promptly.
    pub fn shortest_stale_after(&self) -> Option<Duration> {
        self.limits
            .iter()
            .map(|l| Duration::from_nanos((*l).max(0) as u64))
            .min()
    }

    /// Adds a derive stage after those already added.
    pub fn add_stage(&mut self, stage: Box<dyn Stage>) {
        self.stages.push(stage);
    }

    /// After a configuration reload, before the first input: takes over from `previous`,
    /// tag by tag (by path, where the tag's model and attribute did not change), the latest
    /// value and what the deadband and age checks keep. A source that a reload keeps
    /// running does not report unchanged values again, so without this the API would show
    /// nothing for them and their values could not turn stale. Returns the tags taken over.
    pub fn take_over(&mut self, previous: &Pipeline) -> usize {
        let (old, new) = (&previous.topology, &self.topology);
        let pairs: Vec<(usize, usize)> = new
            .tags
            .iter()
            .filter_map(|info| {
                let was = old.tag_at(new.path(info))?;
                (old.model_name(was) == new.model_name(info) && was.attribute == info.attribute)
                    .then(|| (was.id.index(), info.id.index()))
            })
            .collect();
        for &(from, to) in &pairs {
            self.read_at[to] = previous.read_at[from];
        }
        previous.cache.read_all(|before| {
            self.cache.update(|slots| {
                for &(from, to) in &pairs {
                    if let Some(mut latest) = before[from].clone() {
                        latest.sample.tag = TagId(to as u32);
                        slots[to] = Some(latest);
                    }
                }
            })
        });
        pairs.len()
    }

    /// The stages, for the pipeline a reload starts (they are not stopped).
    pub(crate) fn take_stages(&mut self) -> Vec<Box<dyn Stage>> {
        std::mem::take(&mut self.stages)
    }

    /// Lets every stage persist what must survive a restart (the pipeline has stopped).
    pub fn stop_stages(&mut self) {
        for stage in &mut self.stages {
            stage.stop();
        }
    }

    /// Processes one input; returns the batch to route, if there is anything to route.
    pub fn process(&mut self, input: PipelineInput) -> Option<Batch> {
        let mut batch = match input {
            PipelineInput::Readings(raw) => self.normalize(raw),
            PipelineInput::SourceDown {
                source,
                quality,
                time,
            } => self.source_down(source, quality, time),
            PipelineInput::Events(events) => {
                self.metrics.events.inc_by(events.len() as u64);
                Batch {
                    samples: Vec::new(),
                    events,
                }
            }
            PipelineInput::SetContext {
                asset,
                patch,
                by,
                reply,
            } => {
                let events = self.contexts.apply(&self.topology, asset, &patch, by.as_deref());
                self.metrics.events.inc_by(events.len() as u64);
                // The caller may have given up waiting; the change stands either way.
                let _ = reply.send(events.clone());
                Batch {
                    samples: Vec::new(),
                    events,
                }
            }
            PipelineInput::Age(now) => self.age(now),
            PipelineInput::Tick(now) => {
                for stage in &mut self.stages {
                    stage.tick(now, &mut self.derived);
                }
                Batch::default()
            }
            PipelineInput::Call(call) => {
                (call.0)(Timestamp::now(), &mut self.derived);
                Batch::default()
            }
        };
        // Derived samples from a stage join the batch at once: later stages observe them.
        self.take_derived_samples(&mut batch.samples);
        if !batch.samples.is_empty() {
            for i in 0..self.stages.len() {
                self.stages[i].observe(&batch.samples, &mut self.derived);
                self.take_derived_samples(&mut batch.samples);
            }
        }
        if !self.derived.is_empty() {
            let before = batch.events.len();
            self.apply_derived(&mut batch.events);
            self.metrics.events.inc_by((batch.events.len() - before) as u64);
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// Moves the samples the stages computed into `samples`, each stamped with its asset's
    /// context, and records them in the cache with their derivation.
    fn take_derived_samples(&mut self, samples: &mut Vec<Sample>) {
        if self.derived.samples.is_empty() {
            return;
        }
        let start = samples.len();
        let version = self.contexts.version();
        let mut derivations = Vec::with_capacity(self.derived.samples.len());
        for (mut sample, derivation) in self.derived.samples.drain(..) {
            let Some(info) = self.topology.tags.get(sample.tag.index()) else {
                tracing::warn!(
                    tag = sample.tag.index(),
                    "derive stage: a sample for a tag the configuration does not have"
                );
                continue;
            };
            sample.context = self.context_cache.get(&self.contexts, version, info.asset);
            samples.push(sample);
            derivations.push(derivation);
        }
        let added = &samples[start..];
        self.metrics.samples.inc_by(added.len() as u64);
        self.cache.update(|slots| {
            for (sample, derivation) in added.iter().zip(derivations) {
                if let Some(slot) = slots.get_mut(sample.tag.index()) {
                    *slot = Some(Slot::new(
                        sample.clone(),
                        None,
                        derivation.error.clone(),
                        Some(derivation),
                    ));
                }
            }
        });
    }

    /// Applies what the stages derived: context patches first (samples of the next batch
    /// carry them), then the events, stamped with their asset's context after the patches.
    fn apply_derived(&mut self, events: &mut Vec<Event>) {
        for (asset, patch, by) in self.derived.context.drain(..) {
            match self.topology.asset_index(asset.as_str()) {
                Some(i) => events.extend(self.contexts.apply(&self.topology, i, &patch, Some(by))),
                None => {
                    tracing::warn!(asset = %asset, "derive stage: context for an asset the configuration does not have")
                }
            }
        }
        for (asset, time, kind) in self.derived.events.drain(..) {
            let context = self
                .topology
                .asset_index(asset.as_str())
                .map(|i| self.contexts.effective(i))
                .unwrap_or_default();
            events.push(Event {
                asset,
                time,
                kind,
                context,
            });
        }
    }

    fn normalize(&mut self, raw: RawBatch) -> Batch {
        let topology = self.topology.clone();
        let Some(routes) = topology.sources.get(raw.source as usize) else {
            return Batch::default();
        };
        if let Some(m) = self.metrics.sources.get(raw.source as usize) {
            m.readings.inc_by(raw.readings.len() as u64);
            if !raw.readings.is_empty() {
                // When the gateway read them: the batch's own time, no second clock read.
                m.last_reading.store(
                    raw.gateway_time.unix_nanos(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        // A batch's tags can lie anywhere in the tables (an OPC UA server sends its items
        // in its own order). Then every reading's tag and what normalizing needs of it are
        // gathered first, in a short loop whose loads do not wait for each other, so their
        // cache misses overlap; inside the long per-reading work they came one after the
        // other (measured natively: most of this function's time). Readings in address
        // order (a Modbus poll) go straight through: their tables are read in order.
        let read_at = raw.gateway_time.unix_nanos();
        let scattered = raw.readings.windows(2).any(|w| w[1].address < w[0].address);
        let mut out = Normalized {
            samples: Vec::with_capacity(raw.readings.len()),
            suppressed: 0,
            failed: 0,
            version: self.contexts.version(),
            gateway_time: raw.gateway_time,
        };
        // One write lock for the batch: each sample is recorded in the cache as it is
        // normalized, against the last one there.
        let cache = self.cache.clone();
        cache.update(|slots| {
            if scattered {
                let mut targets = Vec::with_capacity(raw.readings.len());
                let mut touched = 0usize;
                for (index, reading) in raw.readings.iter().enumerate() {
                    for &tag in routes.routes.get(reading.address as usize).unwrap_or_default() {
                        if let Some(target) = Target::of(&topology, tag, index) {
                            // Read now, with the others (the work sets it again). A slot
                            // spans two cache lines: fields at both ends are read.
                            if let Some(at) = self.read_at.get_mut(tag.index()) {
                                *at = read_at;
                            }
                            touched += slots
                                .get(tag.index())
                                .and_then(Option::as_ref)
                                .is_some_and(|l| l.has_rare() || l.sample.source_time.is_some())
                                as usize;
                            targets.push(target);
                        }
                    }
                }
                std::hint::black_box(touched);
                for target in targets {
                    if let Some(reading) = raw.readings.get(target.reading) {
                        self.normalize_one(target, reading, slots, &mut out);
                    }
                }
            } else {
                for (index, reading) in raw.readings.iter().enumerate() {
                    for &tag in routes.routes.get(reading.address as usize).unwrap_or_default() {
                        if let Some(target) = Target::of(&topology, tag, index) {
                            self.normalize_one(target, reading, slots, &mut out);
                        }
                    }
                }
            }
        });
        let Normalized {
            samples,
            suppressed,
            failed,
            ..
        } = out;
        self.metrics.samples.inc_by(samples.len() as u64);
        self.metrics.deadband_suppressed.inc_by(suppressed);
        self.metrics.transform_errors.inc_by(failed);
        Batch {
            samples,
            events: Vec::new(),
        }
    }

    /// Normalizes one reading for one tag: transform chain, checks, deadband, context;
    /// the sample joins `out` and its tag's slot in `slots` (the cache's) unless the
    /// deadband holds it back.
    #[inline]
    fn normalize_one(
        &mut self,
        target: Target<'_>,
        reading: &RawReading,
        slots: &mut [Option<Slot>],
        out: &mut Normalized,
    ) {
        let Target {
            tag,
            asset,
            attribute,
            transforms,
            deadband,
            ..
        } = target;
        let (Some(read_at), Some(slot)) = (self.read_at.get_mut(tag.index()), slots.get_mut(tag.index()))
        else {
            return;
        };
        *read_at = out.gateway_time.unix_nanos();
        let last = slot.as_ref().map(|l| &l.sample);
        let last_quality = last.map(|s| s.quality);
        let last_value = last.and_then(|s| s.value.as_ref());

        let (value, quality, error) = match (&reading.value, reading.quality) {
            (Some(raw_value), q) if !q.is_bad() => {
                match backplane_model::transform::apply_chain(transforms, raw_value) {
                    Ok(Value::String(label))
                        if attribute
                            .allowed
                            .as_ref()
                            .is_some_and(|allowed| !allowed.iter().any(|a| **a == *label)) =>
                    {
                        out.failed += 1;
                        (
                            last_value.cloned(),
                            Quality::Bad(BadReason::ConfigError),
                            Some(format!("{label:?} is not one of the attribute's `enum` labels")),
                        )
                    }
                    // NaN and ±inf are no reading a plant can have (an unset float
                    // register, a division by zero in a PLC): never good.
                    Ok(Value::Float(x)) if !x.is_finite() => {
                        out.failed += 1;
                        (
                            last_value.cloned(),
                            Quality::Bad(BadReason::OutOfRange),
                            Some(format!("the reading decodes to {x}, not a finite number")),
                        )
                    }
                    Ok(v) => {
                        let q = range_check(&v, attribute.range, q);
                        (Some(v), q, None)
                    }
                    Err(e) => {
                        out.failed += 1;
                        (
                            last_value.cloned(),
                            Quality::Bad(bad_reason(&e)),
                            Some(e.to_string()),
                        )
                    }
                }
            }
            (None, q) if !q.is_bad() => (
                last_value.cloned(),
                Quality::Bad(BadReason::Unspecified),
                Some("the source delivered no value".to_owned()),
            ),
            (_, q) => (last_value.cloned(), q, None),
        };

        // The deadband first: without one, no value is converted to compare (an integer's
        // conversion to f64 was 21 instructions a sample under callgrind).
        if let Some(deadband) = deadband
            && last_quality == Some(quality)
            && let Some(next) = value.as_ref().and_then(Value::as_f64)
            && let Some(last) = last_value.and_then(Value::as_f64)
            && !deadband.exceeded(last, next)
        {
            out.suppressed += 1;
            return;
        }

        let context = self.context_cache.get(&self.contexts, out.version, asset);
        // A kept value keeps the raw reading that produced it, so lineage still
        // explains it; the new reading's problem is in `error`.
        let kept = value.is_some() && (quality.is_bad() || error.is_some());
        if !quality.is_bad() && last_quality.is_none_or(|q| q.is_bad() || q == STALE) {
            // The tag starts ageing again: its deadline may be the next one.
            self.next_age_check = 0;
        }
        let sample = Sample {
            tag,
            value,
            quality,
            source_time: reading.source_time,
            gateway_time: out.gateway_time,
            context,
        };
        record(slot, &sample, (!kept).then_some(&reading.value), error);
        out.samples.push(sample);
    }

    /// Every tag of a failed source turns to `quality`, keeping its last value: once, at
    /// the failure. A tag already of that quality is left alone, so a source retrying
    /// (every failed attempt reports down again) repeats nothing while it stays down.
    fn source_down(&mut self, source: u32, quality: Quality, time: Timestamp) -> Batch {
        let topology = self.topology.clone();
        let Some(routes) = topology.sources.get(source as usize) else {
            return Batch::default();
        };
        let mut samples = Vec::with_capacity(routes.tags.len());
        let version = self.contexts.version();
        let cache = self.cache.clone();
        cache.update(|slots| {
            for &tag in &routes.tags {
                let Some(slot) = slots.get_mut(tag.index()) else {
                    continue;
                };
                let last = slot.as_ref().map(|l| &l.sample);
                if last.map(|s| s.quality) == Some(quality) {
                    continue;
                }
                let sample = Sample {
                    tag,
                    value: last.and_then(|s| s.value.clone()),
                    quality,
                    source_time: None,
                    gateway_time: time,
                    context: self.context_cache.get(
                        &self.contexts,
                        version,
                        topology.tags[tag.index()].asset,
                    ),
                };
                record(slot, &sample, None, None);
                samples.push(sample);
            }
        });
        self.metrics.samples.inc_by(samples.len() as u64);
        Batch {
            samples,
            events: Vec::new(),
        }
    }

    /// Values not read again within their `stale_after` turn uncertain
    /// (`last_usable_value`), keeping their value; once each, until read again. Values
    /// already bad (their source is down) say more than stale and are left alone.
    fn age(&mut self, now: Timestamp) -> Batch {
        let topology = self.topology.clone();
        let now_ns = now.unix_nanos();
        if now_ns < self.next_age_check {
            return Batch::default();
        }
        let mut samples = Vec::new();
        let mut next = i64::MAX;
        let version = self.contexts.version();
        let cache = self.cache.clone();
        cache.update(|slots| {
            for aging in &self.aging {
                let read_at = self.read_at[aging.tag as usize];
                let Some(slot) = slots.get_mut(aging.tag as usize) else {
                    continue;
                };
                let last = slot.as_ref().map(|l| &l.sample);
                let limit = self.limits[aging.limit as usize];
                if read_at == 0 || last.is_none_or(|s| s.quality.is_bad() || s.quality == STALE) {
                    continue;
                }
                let age = now_ns.saturating_sub(read_at);
                if age <= limit {
                    next = next.min(read_at.saturating_add(limit));
                    continue;
                }
                let info = &topology.tags[aging.tag as usize];
                if let Some(m) = info.source.and_then(|s| self.metrics.sources.get(s as usize)) {
                    m.stale.inc();
                }
                let sample = Sample {
                    tag: info.id,
                    value: last.and_then(|s| s.value.clone()),
                    quality: STALE,
                    source_time: None,
                    gateway_time: now,
                    context: self.context_cache.get(&self.contexts, version, info.asset),
                };
                let why = format!(
                    "stale: not read again for {:.1} s (stale after {:.1} s)",
                    age as f64 / 1e9,
                    limit as f64 / 1e9
                );
                record(slot, &sample, None, Some(why));
                samples.push(sample);
            }
        });
        self.metrics.samples.inc_by(samples.len() as u64);
        // Tags that are not read yet, bad or stale may start ageing with any reading.
        self.next_age_check = next;
        Batch {
            samples,
            events: Vec::new(),
        }
    }

    /// The tags the pipeline knows.
    pub fn tag_count(&self) -> usize {
        self.read_at.len()
    }
}

/// Records `sample` in its tag's latest-value `slot` with `error`, updated in place
/// (`Sample::clone_from`: the entry is not rebuilt, nor the context, mostly the same,
/// cloned and dropped). `raw` is the raw reading behind it; `None` keeps the slot's, for
/// a sample that keeps its tag's last value, so lineage still explains the value shown.
#[inline]
fn record(slot: &mut Option<Slot>, sample: &Sample, raw: Option<&Option<Value>>, error: Option<String>) {
    match slot {
        Some(latest) => {
            latest.sample.clone_from(sample);
            if let Some(raw) = raw {
                backplane_model::value::clone_option_from(&mut latest.raw, raw);
            }
            if error.is_some() || latest.has_rare() {
                latest.set_rare(error, None);
            }
        }
        None => *slot = Some(Slot::new(sample.clone(), raw.cloned().flatten(), error, None)),
    }
}

fn range_check(value: &Value, range: Option<[f64; 2]>, quality: Quality) -> Quality {
    let number = match value {
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => value.as_f64(),
        _ => None,
    };
    match (range, number) {
        (Some([min, max]), Some(x)) if quality.is_good() && !(min..=max).contains(&x) => {
            Quality::Uncertain(UncertainReason::EngineeringUnitsExceeded)
        }
        _ => quality,
    }
}

fn bad_reason(error: &TransformError) -> BadReason {
    match error {
        TransformError::WrongInput { .. } => BadReason::TypeMismatch,
        TransformError::Unmapped(_) => BadReason::ConfigError,
        TransformError::Conversion(backplane_model::ConversionError::OutOfRange { .. }) => {
            BadReason::OutOfRange
        }
        TransformError::Conversion(_) => BadReason::TypeMismatch,
    }
}

/// Hands batches to sink queues and live-stream subscribers.
#[derive(Debug)]
pub struct Router {
    pub(crate) sinks: Vec<Option<mpsc::Sender<Arc<Batch>>>>,
    pub(crate) stream: broadcast::Sender<Arc<Batch>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) sink_names: Vec<String>,
    last_wait_log: Vec<Option<Instant>>,
    /// The store-and-forward log buffered sinks read from, when there are any.
    pub(crate) durable: Option<crate::durable::LogWriter>,
}

/// A wait for a sink's queue this long is logged (at most every `WAIT_LOG_INTERVAL`).
const SLOW_SINK_WAIT: Duration = Duration::from_secs(1);
const WAIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Router {
    pub fn new(
        sinks: Vec<Option<mpsc::Sender<Arc<Batch>>>>,
        sink_names: Vec<String>,
        stream: broadcast::Sender<Arc<Batch>>,
        metrics: Arc<Metrics>,
    ) -> Router {
        let last_wait_log = vec![None; sinks.len()];
        Router {
            sinks,
            stream,
            metrics,
            sink_names,
            last_wait_log,
            durable: None,
        }
    }

    /// Hands a batch to every queued sink and to live-stream subscribers (buffered sinks
    /// get it from the log, see [`run`]). A local sink whose queue is full is waited for:
    /// the pipeline, and through its input queue the sources, slow down to the pace of
    /// the slowest local sink rather than lose anything it should store (the historian is
    /// the plant's record). The wait is measured and logged.
    pub async fn route(&mut self, batch: Batch) -> Arc<Batch> {
        let len = batch.len() as u64;
        let batch = Arc::new(batch);
        for (i, sink) in self.sinks.iter().enumerate() {
            let Some(tx) = sink else { continue };
            let metrics = &self.metrics.sinks[i];
            let delivered = match tx.try_send(batch.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(batch)) => {
                    let started = Instant::now();
                    let delivered = tx.send(batch).await.is_ok();
                    let waited = started.elapsed();
                    metrics.wait_seconds.inc_by(waited.as_secs_f64());
                    if waited >= SLOW_SINK_WAIT
                        && self.last_wait_log[i]
                            .is_none_or(|t| started.duration_since(t) >= WAIT_LOG_INTERVAL)
                    {
                        self.last_wait_log[i] = Some(started);
                        tracing::warn!(
                            sink = %self.sink_names[i],
                            waited_ms = waited.as_millis() as u64,
                            "sink is slower than the data: the pipeline waited for its queue (sources slow down; see backplane_sink_wait_seconds_total)"
                        );
                    }
                    delivered
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            };
            if delivered {
                metrics.records.inc_by(len);
            } else {
                // Only when the sink's input is gone for good: the engine is stopping, or
                // the sink failed in a way retrying cannot fix (health says which).
                metrics.dropped.inc_by(len);
            }
        }
        // No subscribers is the normal case; nothing to do then.
        let _ = self.stream.send(batch.clone());
        batch
    }
}

/// The pipeline task: runs until it receives [`PipelineInput`]s no more, then hands the
/// pipeline back (its stages save their state) with the router (a reload keeps its log).
pub(crate) async fn run(
    mut pipeline: Pipeline,
    mut router: Router,
    mut input: mpsc::Receiver<PipelineInput>,
) -> (Pipeline, Router) {
    while let Some(item) = input.recv().await {
        if let Some(batch) = pipeline.process(item) {
            let batch = router.route(batch).await;
            if let Some(log) = router.durable.as_mut() {
                log.append(&batch).await;
            }
            // Let the sinks just woken take this batch before the next is processed.
            // Without it a sink waits in this worker's slot for the task that woke it,
            // which goes on while sources keep its queue full: at 100 000 changes/s
            // answers then waited 5-6 ms for the socket at p99, about 2 with this
            // (docs/performance.md, "Hand the batch on before taking the next"). With
            // nothing waiting the pipeline pauses anyway, and the sinks run then: a source
            // of many small batches pays no yield (and no other thread woken) per batch.
            if !input.is_empty() {
                tokio::task::yield_now().await;
            }
        }
    }
    (pipeline, router)
}
