//! The pipeline hands each batch on before it takes the next: a sink woken by a batch runs
//! before the pipeline processes another, even while a source keeps the pipeline's input
//! full. Otherwise a batch waits at the sink for every batch the pipeline takes meanwhile
//! (docs/performance.md, "Hand the batch on before taking the next").
//!
//! A counting source emits 0, 1, 2, ... as fast as the engine takes them; the sink notes,
//! for each value it gets, the value the engine's latest-value cache holds at that moment.
//! On one thread the two are equal only if the pipeline let the sink run first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backplane_config::Table;
use backplane_engine::{ComponentError, EngineHandle, Kind, Sink, SinkContext, SinkIo, SinkKind};
use backplane_model::Value;
use backplane_testkit::counter::{self, Counter};
use backplane_testkit::engine as support;
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;

const COUNT: u64 = 200;

/// A value the sink received and the value the pipeline had last processed by then.
type Seen = (u64, Option<u64>);

/// Notes a [`Seen`] for each value it receives.
#[derive(Clone, Default)]
struct Watching {
    engine: Arc<OnceLock<EngineHandle>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Kind for Watching {
    type Settings = ();
    fn describe(&self) -> &'static str {
        "notes how far the pipeline is at each batch (test)"
    }
    fn parse(&self, _table: &mut Table<'_>) -> Option<()> {
        Some(())
    }
}

impl SinkKind for Watching {
    fn build(&self, _ctx: &SinkContext<'_, ()>) -> Result<Box<dyn Sink>, ComponentError> {
        Ok(Box::new(self.clone()))
    }
}

fn uint(value: &Option<Value>) -> Option<u64> {
    match value {
        Some(Value::UInt(n)) => Some(*n),
        _ => None,
    }
}

impl Sink for Watching {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            while let Some(batch) = io.recv().await {
                let processed = self.engine.get().and_then(|engine| {
                    let tag = engine.topology().tags.first()?.id;
                    uint(&engine.latest(tag)?.sample.value)
                });
                let mut seen = self.seen.lock();
                for s in &batch.samples {
                    if let Some(n) = uint(&s.value) {
                        seen.push((n, processed));
                    }
                }
            }
            Ok(())
        }
        .boxed()
    }
}

// One thread: which task runs when is then the scheduler's order, not a race.
#[tokio::test(flavor = "current_thread")]
async fn a_sink_gets_each_batch_before_the_pipeline_takes_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Watching::default();
    let mut registry = backplane_engine::builtins();
    registry.add_source("counter", Counter);
    registry.add_sink("watching", sink.clone());
    let config = counter::plan(COUNT) + "[[sinks]]\nname = \"watching\"\nkind = \"watching\"\n";
    let engine = support::start_with(&config, dir.path(), &registry, support::options());
    // Set before this test first awaits, so before any task of the engine has run.
    assert!(sink.engine.set(engine.handle()).is_ok());
    support::eventually("the sink to get every value", Duration::from_secs(30), || {
        (sink.seen.lock().len() as u64 >= COUNT).then_some(())
    })
    .await;
    let seen = sink.seen.lock().clone();
    let values: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        values,
        (0..COUNT).collect::<Vec<_>>(),
        "every value once, in order"
    );
    let ahead: Vec<_> = seen
        .iter()
        .filter(|(n, processed)| *processed != Some(*n))
        .collect();
    assert!(
        ahead.is_empty(),
        "the pipeline went on before the sink had its batch, {} times; the first (value, the \
         pipeline's latest): {:?}",
        ahead.len(),
        &ahead[..ahead.len().min(10)]
    );
    engine.shutdown().await;
}
