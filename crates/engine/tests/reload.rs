//! A configuration reload of a running engine (`Engine::reload`): a source whose entry and
//! addresses did not change keeps running (built once, never restarted, no reading lost or
//! repeated while the rest of the engine restarts around it), a changed one restarts, the
//! latest values, health rows and counters carry over, and a new configuration that fails
//! to start falls back to the previous one without losing what the sources read meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backplane_config::{Plan, Table};
use backplane_engine::{
    ComponentError, Effect, Engine, Fate, Kind, RawReading, Registry, Services, Sink, SinkContext, SinkKind,
    Source, SourceContext, SourceIo, SourceKind,
};
use backplane_model::{Quality, Timestamp, Value};
use backplane_testkit::engine::{self as support, latest, metric};

/// How many instances of each source were built, by source name, and the last value each
/// instance handed to the engine (by name and build).
type Builds = Arc<Mutex<Counts>>;

#[derive(Debug, Default)]
struct Counts {
    builds: HashMap<String, usize>,
    emitted: HashMap<(String, usize), u64>,
}

/// A source kind `ticker`: emits 0, 1, 2, … at address 0, one every `period_ms`, up to
/// `count` values, then idles. Counts its builds.
#[derive(Clone)]
struct Ticker(Builds);

#[derive(Clone, Debug)]
struct TickerSettings {
    period: Duration,
    count: u64,
}

impl Kind for Ticker {
    type Settings = TickerSettings;
    fn describe(&self) -> &'static str {
        "counts 0, 1, 2, … at a period (test)"
    }
    fn parse(&self, table: &mut Table<'_>) -> Option<TickerSettings> {
        let _ = table.optional_u64("label");
        Some(TickerSettings {
            period: Duration::from_millis(table.optional_u64("period_ms").unwrap_or(2)),
            count: table.optional_u64("count").unwrap_or(u64::MAX),
        })
    }
}

impl SourceKind for Ticker {
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, TickerSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let mut counts = self.0.lock().unwrap();
        let build = counts.builds.entry(ctx.name.to_owned()).or_default();
        *build += 1;
        Ok(Box::new(Instance {
            settings: ctx.settings.clone(),
            id: (ctx.name.to_owned(), *build),
            counts: self.0.clone(),
        }))
    }
}

type Run = Pin<Box<dyn Future<Output = Result<(), ComponentError>> + Send>>;

struct Instance {
    settings: TickerSettings,
    id: (String, usize),
    counts: Builds,
}

impl Source for Instance {
    fn run(self: Box<Self>, io: SourceIo) -> Run {
        Box::pin(async move {
            let mut ticks = tokio::time::interval(self.settings.period);
            for n in 0..self.settings.count {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = io.cancelled() => return Ok(()),
                }
                let reading = RawReading {
                    address: 0,
                    value: Some(Value::UInt(n)),
                    quality: Quality::Good,
                    source_time: None,
                };
                if !io.emit(Timestamp::now(), vec![reading]).await {
                    return Ok(());
                }
                self.counts.lock().unwrap().emitted.insert(self.id.clone(), n);
            }
            io.cancelled().await;
            Ok(())
        })
    }
}

/// A sink kind `refusing` whose preparation fails: a configuration that passes the check
/// but does not start.
#[derive(Clone, Copy)]
struct Refusing;

impl Kind for Refusing {
    type Settings = ();
    fn describe(&self) -> &'static str {
        "cannot be prepared (test)"
    }
    fn parse(&self, _table: &mut Table<'_>) -> Option<()> {
        Some(())
    }
    fn prepare(&self, _plan: &Plan, _instances: &[(&str, &())]) -> Result<Services, ComponentError> {
        Err(ComponentError::config("refusing to start (test)"))
    }
}

impl SinkKind for Refusing {
    fn build(&self, _ctx: &SinkContext<'_, ()>) -> Result<Box<dyn Sink>, ComponentError> {
        Err(ComponentError::config("never built"))
    }
}

/// What a `collect` sink received: per sink build, the `n` of every sample in order.
type Collected = Arc<Mutex<Vec<(usize, u64)>>>;

/// A sink kind `collect` (local) or `collect-buffered` (reads the store-and-forward log
/// and acknowledges every record): records the values of `line/steady/n` with the build
/// that received them, counting builds; it may be kept across a reload.
#[derive(Clone)]
struct Collect {
    buffered: bool,
    builds: Arc<Mutex<usize>>,
    values: Collected,
}

impl Kind for Collect {
    type Settings = ();
    fn describe(&self) -> &'static str {
        "collects values (test)"
    }
    fn parse(&self, table: &mut Table<'_>) -> Option<()> {
        let _ = table.optional_u64("label");
        Some(())
    }
}

impl SinkKind for Collect {
    fn buffered(&self) -> bool {
        self.buffered
    }

    fn survives_reload(&self, _settings: &()) -> bool {
        true
    }

    fn build(&self, _ctx: &SinkContext<'_, ()>) -> Result<Box<dyn Sink>, ComponentError> {
        let mut builds = self.builds.lock().unwrap();
        *builds += 1;
        Ok(Box::new(Collecting {
            build: *builds,
            values: self.values.clone(),
        }))
    }
}

struct Collecting {
    build: usize,
    values: Collected,
}

impl Sink for Collecting {
    fn run(self: Box<Self>, io: backplane_engine::SinkIo) -> Run {
        Box::pin(async move {
            while let Some(delivery) = io.next().await {
                let mut values = self.values.lock().unwrap();
                for sample in &delivery.batch.samples {
                    let steady = io
                        .topology
                        .tag(sample.tag)
                        .is_some_and(|t| io.topology.path(t).to_string().ends_with("line/steady/n"));
                    if let (true, Some(Value::Int(n))) = (steady, &sample.value) {
                        values.push((self.build, *n as u64));
                    }
                }
                drop(values);
                if let Some(record) = delivery.record {
                    io.ack(record);
                }
            }
            Ok(())
        })
    }
}

fn registry(builds: &Builds) -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_source("ticker", Ticker(builds.clone()));
    registry.add_sink("refusing", Refusing);
    registry
}

fn collecting(builds: &Builds, buffered: bool) -> (Registry, Arc<Mutex<usize>>, Collected) {
    let mut registry = registry(builds);
    let collect = Collect {
        buffered,
        builds: Arc::default(),
        values: Arc::default(),
    };
    let (count, values) = (collect.builds.clone(), collect.values.clone());
    registry.add_sink(if buffered { "collect-buffered" } else { "collect" }, collect);
    (registry, count, values)
}

/// Two tickers feeding `line/steady` and `line/moved`, a jsonl sink; `extra` appended.
fn config(moved_label: u64, extra: &str) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant"

[models.Counter.attributes]
n = {{ type = "int" }}

[[assets]]
path = "line"

[[assets]]
path = "line/steady"
model = "Counter"
source = "steady"
bindings.n = {{ address = "n" }}

[[assets]]
path = "line/moved"
model = "Counter"
source = "moved"
bindings.n = {{ address = "n" }}

[[sources]]
name = "steady"
kind = "ticker"

[[sources]]
name = "moved"
kind = "ticker"
label = {moved_label}

[[sinks]]
name = "file"
kind = "jsonl"
path = "out.jsonl"
{extra}"#
    )
}

/// The values of `asset`'s `n` in the jsonl file, in the order written.
fn written(dir: &Path, asset: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join("out.jsonl")).unwrap_or_default();
    let path = format!("acme/plant/line/{asset}/n");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["path"] == path.as_str())
        .filter_map(|v| v["value"].as_u64())
        .collect()
}

async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::eventually(what, Duration::from_secs(10), check).await
}

async fn reload(engine: Engine, text: &str, dir: &Path, registry: &Registry) -> (Engine, Vec<Effect>) {
    let mut recorded = |_: &Plan, _: &str, _: Timestamp| {};
    engine
        .reload(
            support::plan(text, dir, registry),
            registry,
            support::options(),
            &mut recorded,
        )
        .await
        .expect("the new configuration starts")
}

fn fate<'a>(effects: &'a [Effect], component: &str, name: &str) -> &'a Fate {
    &effects
        .iter()
        .find(|e| e.component == component && e.name == name)
        .unwrap_or_else(|| panic!("no effect for {component} {name}: {effects:?}"))
        .fate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_an_unchanged_source_running_without_losing_or_repeating_a_reading() {
    let dir = tempfile::tempdir().unwrap();
    let builds = Builds::default();
    let registry = registry(&builds);
    let engine = support::start(&config(1, ""), dir.path(), &registry);
    eventually("readings of both sources", || {
        (written(dir.path(), "steady").len() > 50 && !written(dir.path(), "moved").is_empty()).then_some(())
    })
    .await;

    // `moved` changes a setting; a new asset on `moved` too; `steady` is untouched.
    let extra = "\n[[assets]]\npath = \"line/third\"\nmodel = \"Counter\"\nsource = \"moved\"\nbindings.n = { address = \"n\" }\n";
    let (engine, effects) = reload(engine, &config(2, extra), dir.path(), &registry).await;
    assert_eq!(fate(&effects, "source", "steady"), &Fate::Kept);
    assert_eq!(
        fate(&effects, "source", "moved"),
        &Fate::Restarted("its settings changed (label)".to_owned())
    );
    assert!(matches!(fate(&effects, "sink", "file"), Fate::Restarted(_)));
    let handle = engine.handle();
    eventually("readings of the third asset", || {
        latest(&handle, "acme/plant/line/third/n")
    })
    .await;
    let last = written(dir.path(), "steady").last().copied().unwrap();
    eventually("more readings of the kept source", || {
        (written(dir.path(), "steady").last().copied() > Some(last + 50)).then_some(())
    })
    .await;
    engine.shutdown().await;

    let builds = builds.lock().unwrap().builds.clone();
    assert_eq!(
        builds["steady"], 1,
        "the kept source was never built again: {builds:?}"
    );
    assert_eq!(builds["moved"], 2, "the changed source restarted: {builds:?}");
    // Every reading of the kept source, once each, in order, across the reload.
    let steady = written(dir.path(), "steady");
    let expected: Vec<u64> = (0..steady.len() as u64).collect();
    assert_eq!(steady, expected, "lost or repeated across the reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_source_keeps_its_health_row_counters_and_latest_values() {
    let dir = tempfile::tempdir().unwrap();
    let builds = Builds::default();
    let registry = registry(&builds);
    // `steady` reads 20 values, then stays quiet (as a device reporting by exception).
    let quiet =
        |label| config(label, "").replace("kind = \"ticker\"\n\n", "kind = \"ticker\"\ncount = 20\n\n");
    let engine = support::start(&quiet(1), dir.path(), &registry);
    let handle = engine.handle();
    eventually("the last value of the quiet source", || {
        latest(&handle, "acme/plant/line/steady/n").filter(|l| l.sample.value == Some(Value::Int(19)))
    })
    .await;
    let row = |engine: &Engine| {
        engine
            .handle()
            .health()
            .components
            .into_iter()
            .find(|c| c.name == "steady")
            .unwrap()
    };
    let before = row(&engine);
    let readings = |engine: &Engine| {
        metric(
            &engine.handle().metrics_text(),
            "backplane_source_readings_total{name=\"steady\"}",
        )
        .unwrap()
    };
    assert_eq!(readings(&engine), 20.0);

    let (engine, effects) = reload(engine, &quiet(2), dir.path(), &registry).await;
    assert_eq!(fate(&effects, "source", "steady"), &Fate::Kept);
    // Nothing new was read, yet the value is there, and the row is the same row.
    let value = latest(&engine.handle(), "acme/plant/line/steady/n").expect("the latest value carried over");
    assert_eq!(value.sample.value, Some(Value::Int(19)));
    assert_eq!(row(&engine).since, before.since, "{:?}", row(&engine));
    assert_eq!(row(&engine).restarts, 0);
    assert_eq!(readings(&engine), 20.0, "the counter went on, not from zero");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_does_not_start_falls_back_without_losing_a_reading() {
    let dir = tempfile::tempdir().unwrap();
    let builds = Builds::default();
    let registry = registry(&builds);
    let engine = support::start(&config(1, ""), dir.path(), &registry);
    eventually("readings", || {
        (written(dir.path(), "steady").len() > 50).then_some(())
    })
    .await;
    // A new source ahead of the others (so every source's index differs between the two
    // configurations) and a sink that cannot be prepared.
    let broken = config(1, "\n[[sinks]]\nname = \"bad\"\nkind = \"refusing\"\n").replacen(
        "[[sources]]",
        "[[sources]]\nname = \"first\"\nkind = \"ticker\"\n\n[[sources]]",
        1,
    );
    let plan = support::plan(&broken, dir.path(), &registry);
    let mut recorded = Vec::new();
    let mut record = |_: &Plan, why: &str, _: Timestamp| recorded.push(why.to_owned());
    let failed = engine
        .reload(plan, &registry, support::options(), &mut record)
        .await
        .expect_err("the new configuration does not start");
    assert!(
        failed.error.to_string().contains("refusing to start"),
        "{}",
        failed.error
    );
    assert_eq!(recorded, ["reload", "reload-fallback"]);
    let engine = failed.engine.expect("the previous configuration runs again");
    let last = written(dir.path(), "steady").last().copied().unwrap();
    eventually("readings after the fallback", || {
        (written(dir.path(), "steady").len() as u64 > last + 20).then_some(())
    })
    .await;
    engine.shutdown().await;
    // The kept source restarted with the previous configuration (counting from 0 again);
    // what it read before, during and after the failed start arrived once each.
    let steady = written(dir.path(), "steady");
    let restart = steady
        .iter()
        .skip(1)
        .position(|&n| n == 0)
        .map(|i| i + 1)
        .expect("restarted");
    let (first, second) = steady.split_at(restart);
    assert_eq!(
        first,
        (0..first.len() as u64).collect::<Vec<_>>(),
        "before the fallback"
    );
    assert_eq!(
        second,
        (0..second.len() as u64).collect::<Vec<_>>(),
        "after the fallback"
    );
    let counts = builds.lock().unwrap();
    assert_eq!(counts.builds["steady"], 2);
    // Up to the last value the first instance handed over before it was stopped.
    let handed = counts.emitted[&("steady".to_owned(), 1)];
    assert_eq!(
        first.last().copied(),
        Some(handed),
        "the readings of the switch arrived"
    );
}

/// A local and a buffered `collect` sink: each kept while only a source changes, both
/// restarted once an asset is added; every value of the kept source reaches each sink
/// once, in order, across both reloads.
async fn sinks_are_kept_while_the_asset_tree_stays(buffered: bool) {
    let dir = tempfile::tempdir().unwrap();
    let builds = Builds::default();
    let (registry, sink_builds, values) = collecting(&builds, buffered);
    let kind = if buffered { "collect-buffered" } else { "collect" };
    let with_sink = |label, extra: &str| {
        config(label, extra).replace(
            "[[sinks]]\nname = \"file\"",
            &format!("[[sinks]]\nname = \"collector\"\nkind = \"{kind}\"\n\n[[sinks]]\nname = \"file\""),
        )
    };
    let engine = support::start(&with_sink(1, ""), dir.path(), &registry);
    let count = |values: &Collected| values.lock().unwrap().len();
    eventually("values in the sink", || (count(&values) > 50).then_some(())).await;

    // Only a source changes: the sink keeps running.
    let (engine, effects) = reload(engine, &with_sink(2, ""), dir.path(), &registry).await;
    assert_eq!(fate(&effects, "sink", "collector"), &Fate::Kept, "{effects:?}");
    let seen = count(&values);
    eventually("values after the first reload", || {
        (count(&values) > seen + 50).then_some(())
    })
    .await;
    assert_eq!(*sink_builds.lock().unwrap(), 1, "kept: never built again");

    // An asset is added: the sink restarts.
    let extra = "\n[[assets]]\npath = \"line/third\"\nmodel = \"Counter\"\nsource = \"moved\"\nbindings.n = { address = \"n\" }\n";
    let (engine, effects) = reload(engine, &with_sink(2, extra), dir.path(), &registry).await;
    assert_eq!(
        fate(&effects, "sink", "collector"),
        &Fate::Restarted("the asset tree changed".to_owned())
    );
    let seen = count(&values);
    eventually("values after the second reload", || {
        (count(&values) > seen + 50).then_some(())
    })
    .await;
    engine.shutdown().await;
    assert_eq!(*sink_builds.lock().unwrap(), 2);
    let values = values.lock().unwrap().clone();
    let received: Vec<u64> = values.iter().map(|&(_, n)| n).collect();
    if buffered {
        // At least once: a restarted buffered sink may get again what it had not acknowledged.
        let mut distinct = received.clone();
        distinct.dedup();
        let expected: Vec<u64> = (0..distinct.len() as u64).collect();
        assert_eq!(distinct, expected, "lost or reordered across the reloads");
    } else {
        let expected: Vec<u64> = (0..received.len() as u64).collect();
        assert_eq!(
            received, expected,
            "lost, repeated or reordered across the reloads"
        );
    }
    assert!(
        values.iter().any(|&(build, _)| build == 2),
        "the restarted sink received"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_sink_is_kept_while_the_asset_tree_stays_and_loses_nothing() {
    sinks_are_kept_while_the_asset_tree_stays(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_sink_is_kept_with_its_log_while_the_asset_tree_stays() {
    sinks_are_kept_while_the_asset_tree_stays(true).await;
}

/// A stage kind `tally` counting the samples it observed; its handle (a service) adds to
/// the count through the pipeline, as a production command does. Counts its builds.
#[derive(Default)]
struct TallyKind {
    builds: Arc<Mutex<usize>>,
}

#[derive(Debug)]
struct TallyStage(Arc<std::sync::atomic::AtomicU64>);

impl backplane_connector::Stage for TallyStage {
    fn observe(&mut self, samples: &[backplane_model::Sample], _out: &mut backplane_connector::Derived) {
        self.0
            .fetch_add(samples.len() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The stage's handle: adds through a call that the pipeline runs between batches.
#[derive(Debug)]
struct Tally {
    commands: backplane_engine::CommandPath,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl Tally {
    async fn add(&self, n: u64) -> bool {
        let count = self.count.clone();
        let call = backplane_connector::StageCall(Box::new(move |_, _| {
            count.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        }));
        self.commands.call(call).await.is_ok()
    }
}

impl backplane_connector::StageKind for TallyKind {
    fn describe(&self) -> &'static str {
        "counts samples (test)"
    }
    fn build(
        &self,
        ctx: &backplane_connector::StageContext<'_>,
    ) -> Result<backplane_connector::BuiltStage, ComponentError> {
        *self.builds.lock().unwrap() += 1;
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        Ok(backplane_connector::BuiltStage {
            stage: Box::new(TallyStage(count.clone())),
            services: Services::one(
                "tally",
                Arc::new(Tally {
                    commands: ctx.commands.clone(),
                    count,
                }),
            ),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_run_on_with_their_state_while_the_assets_stay_and_their_handles_follow() {
    let dir = tempfile::tempdir().unwrap();
    let builds = Builds::default();
    let mut registry = registry(&builds);
    let tally = TallyKind::default();
    let stage_builds = tally.builds.clone();
    registry.add_stage("tally", Arc::new(tally));
    let engine = support::start(&config(1, ""), dir.path(), &registry);
    let handle = engine.handle().services().named::<Tally>("tally").unwrap();
    let count = || handle.count.load(std::sync::atomic::Ordering::SeqCst);
    eventually("samples counted", || (count() > 20).then_some(())).await;

    // Only a source changes: the same stage goes on counting, and a handle taken before
    // the reload reaches it through the next pipeline.
    let (engine, _) = reload(engine, &config(2, ""), dir.path(), &registry).await;
    assert_eq!(
        *stage_builds.lock().unwrap(),
        1,
        "the stage was kept, not built again"
    );
    let after = engine.handle().services().named::<Tally>("tally").unwrap();
    assert!(
        Arc::ptr_eq(&after.count, &handle.count),
        "the same stage's handle"
    );
    let before = count();
    assert!(handle.add(1_000_000).await, "the old handle's call runs");
    eventually("the call ran", || (count() >= before + 1_000_000).then_some(())).await;
    eventually("counting after the reload", || {
        (count() > before + 1_000_020).then_some(())
    })
    .await;

    // An asset is added: the stage is built again, and a call through a handle of the
    // stopped stage fails rather than change a state nobody reads.
    let extra = "\n[[assets]]\npath = \"line/third\"\nmodel = \"Counter\"\nsource = \"moved\"\nbindings.n = { address = \"n\" }\n";
    let (engine, _) = reload(engine, &config(2, extra), dir.path(), &registry).await;
    assert_eq!(*stage_builds.lock().unwrap(), 2);
    assert!(!handle.add(1).await, "the stopped stage takes no call");
    let fresh = engine.handle().services().named::<Tally>("tally").unwrap();
    assert!(fresh.add(5).await);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_kept_for_a_configuration_that_fails_to_start_run_on_in_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let builds = Builds::default();
    let (mut registry, _, _) = collecting(&builds, true);
    let tally = TallyKind::default();
    let stage_builds = tally.builds.clone();
    registry.add_stage("tally", Arc::new(tally));
    let engine = support::start(&config(1, ""), dir.path(), &registry);
    let handle = engine.handle().services().named::<Tally>("tally").unwrap();
    let count = || handle.count.load(std::sync::atomic::Ordering::SeqCst);
    eventually("samples counted", || (count() > 20).then_some(())).await;

    // A first buffered sink: the store-and-forward log is opened, and cannot be (a file
    // stands where its directory goes). The stages, kept for it, run on in the fallback.
    std::fs::write(dir.path().join("buffer"), "not a directory").unwrap();
    let broken = config(1, "\n[[sinks]]\nname = \"cloud\"\nkind = \"collect-buffered\"\n");
    let plan = support::plan(&broken, dir.path(), &registry);
    let mut record = |_: &Plan, _: &str, _: Timestamp| {};
    let failed = engine
        .reload(plan, &registry, support::options(), &mut record)
        .await
        .expect_err("the log cannot be opened");
    let engine = failed.engine.expect("the previous configuration runs again");
    assert_eq!(
        *stage_builds.lock().unwrap(),
        1,
        "the stage was kept, not built again"
    );
    let before = count();
    assert!(handle.add(1_000_000).await, "the old handle reaches the stage");
    eventually("the call ran and counting goes on", || {
        (count() > before + 1_000_020).then_some(())
    })
    .await;
    engine.shutdown().await;
}
