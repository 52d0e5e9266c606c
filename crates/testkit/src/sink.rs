//! Runs a sink alone, on a scripted feed instead of the engine's log: the test decides
//! every delivery (records, seqs, replays) and sees every ack and rewind, and how many
//! acks had come when the sink took each delivery.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use backplane_connector::{
    Batch, CommandPath, ComponentStatus, Delivery, NoReadings, PipelineInput, Registry, Report, Services,
    Sink, SinkFeed, SinkIo, SinkIoParts, Topology, WriteGate, WritePath,
};
use backplane_model::{Context, Quality, Sample, TagId, Timestamp, Value};
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct FeedState {
    pub queue: VecDeque<Delivery>,
    pub acked: Vec<u64>,
    /// For each delivery handed out, in order, how many acks had come before it.
    pub acks_when_taken: Vec<usize>,
    pub rewinds: usize,
    pub closed: bool,
}

/// Hands out the queued deliveries, then waits (or ends, once closed).
#[derive(Debug, Default)]
pub struct ScriptedFeed {
    pub state: Mutex<FeedState>,
    pub notify: tokio::sync::Notify,
}

impl ScriptedFeed {
    pub fn push(&self, d: Delivery) {
        self.state.lock().unwrap().queue.push_back(d);
        self.notify.notify_waiters();
    }
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.notify.notify_waiters();
    }
    pub fn acked(&self) -> Vec<u64> {
        self.state.lock().unwrap().acked.clone()
    }
    pub fn acks_when_taken(&self) -> Vec<usize> {
        self.state.lock().unwrap().acks_when_taken.clone()
    }
    pub fn rewinds(&self) -> usize {
        self.state.lock().unwrap().rewinds
    }
}

impl SinkFeed for ScriptedFeed {
    fn next(&self) -> BoxFuture<'_, Option<Delivery>> {
        async move {
            loop {
                let notified = self.notify.notified();
                {
                    let mut s = self.state.lock().unwrap();
                    if let Some(d) = s.queue.pop_front() {
                        let acks = s.acked.len();
                        s.acks_when_taken.push(acks);
                        return Some(d);
                    }
                    if s.closed {
                        return None;
                    }
                }
                notified.await;
            }
        }
        .boxed()
    }
    fn is_buffered(&self) -> bool {
        true
    }
    fn ack(&self, record: u64) {
        self.state.lock().unwrap().acked.push(record);
    }
    fn rewind(&self) {
        self.state.lock().unwrap().rewinds += 1;
    }
}

/// Counters by name, as the engine would export them.
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<String, Counter>>);

impl Counters {
    pub fn get(&self, name: &str) -> u64 {
        self.0.lock().unwrap().get(name).map_or(0, |c| c.get())
    }
}

impl Report for Counters {
    fn set_degraded(&self, _reason: Option<String>) {}
    fn counter(&self, event: &str) -> Counter {
        self.0
            .lock()
            .unwrap()
            .entry(event.to_owned())
            .or_default()
            .clone()
    }
    fn delay(&self, _what: &str) -> prometheus_client::metrics::histogram::Histogram {
        backplane_connector::delay_histogram()
    }
}

/// What a sink of `topology` is given to run, reading `feed` and counting into
/// `counters`, with a write gate to no device and no command path of its own. The
/// command channel's sender comes back with it: the sink's command path works while the
/// caller keeps it.
pub fn sink_io(
    topology: &Arc<Topology>,
    feed: Arc<dyn SinkFeed>,
    counters: Arc<Counters>,
) -> (SinkIo, tokio::sync::mpsc::Sender<PipelineInput>) {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let io = SinkIo::new(SinkIoParts {
        feed,
        cancel: CancellationToken::new(),
        input_closed: CancellationToken::new(),
        topology: topology.clone(),
        gate: WriteGate::new(
            topology.clone(),
            WritePath::new(topology).0,
            Arc::new(NoReadings),
            None,
        ),
        commands: CommandPath::new(tx.downgrade()),
        services: Services::default(),
        status: ComponentStatus::new(counters),
    });
    (io, tx)
}

/// A plan's first sink, run alone on a [`ScriptedFeed`].
pub struct SinkHarness {
    pub topology: Arc<Topology>,
    pub feed: Arc<ScriptedFeed>,
    pub counters: Arc<Counters>,
    pub io: SinkIo,
    registry: Registry,
    /// The sinks' data directory (e.g. the Sparkplug sink's bdSeq file); removed on drop.
    dir: tempfile::TempDir,
    _commands: tokio::sync::mpsc::Sender<PipelineInput>,
}

impl std::fmt::Debug for SinkHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkHarness")
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

impl SinkHarness {
    /// The plan of `config`, its kinds from `registry`.
    pub fn new(config: &str, registry: Registry) -> SinkHarness {
        let plan = backplane_config::load_str(config, Path::new("test.toml"), &registry.catalog())
            .unwrap_or_else(|d| {
                panic!(
                    "{}",
                    d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
                )
            });
        let topology = Arc::new(Topology::new(plan));
        let feed = Arc::new(ScriptedFeed::default());
        let counters = Arc::new(Counters::default());
        let (io, tx) = sink_io(&topology, feed.clone(), counters.clone());
        let dir = tempfile::tempdir().unwrap();
        SinkHarness {
            topology,
            feed,
            counters,
            io,
            registry,
            dir,
            _commands: tx,
        }
    }

    /// Builds the plan's first sink.
    pub fn sink(&self) -> Box<dyn Sink> {
        let spec = &self.topology.plan.sinks[0];
        let kind = self.registry.sink(&spec.kind).unwrap();
        kind.build(&backplane_connector::SinkContext {
            gateway: &self.topology.plan.gateway.name,
            name: &spec.name,
            settings: &spec.settings,
            data_dir: &self.dir.path().to_path_buf(),
            services: &Services::default(),
        })
        .unwrap_or_else(|e| panic!("build: {e}"))
    }

    /// A delivery of one sample of each tag (value `base + tag`), with consecutive seqs
    /// from `first_seq`.
    pub fn delivery(&self, record: u64, first_seq: u64, base: f64, replay: bool) -> Delivery {
        let now = Timestamp::now();
        let context = Arc::new(Context::default());
        let samples: Vec<Sample> = self
            .topology
            .tags
            .iter()
            .map(|t| Sample {
                tag: t.id,
                value: Some(Value::Float(base + f64::from(t.id.0))),
                quality: Quality::Good,
                source_time: None,
                gateway_time: now,
                context: context.clone(),
            })
            .collect();
        let n = samples.len() as u64;
        Delivery {
            batch: Arc::new(Batch {
                samples,
                events: Vec::new(),
            }),
            record: Some(record),
            seqs: Some((first_seq..first_seq + n).collect::<Vec<u64>>().into()),
            replay,
        }
    }

    pub fn tag(&self, path: &str) -> TagId {
        self.topology.tag_by_path(path).unwrap().id
    }
}
