//! Local sinks never lose data to a full queue: the pipeline waits for a slow one (and the
//! sources wait for the pipeline), and a local sink that will not run again closes its
//! queue so nothing waits for it. A counting source emits 0, 1, 2, ... as fast as the
//! engine takes them; sinks record what they got.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::sync::Arc;
use std::time::Duration;

use backplane_config::Table;
use backplane_engine::{ComponentError, Engine, EngineOptions, Kind, Sink, SinkContext, SinkIo, SinkKind};
use backplane_model::Value;
use backplane_testkit::counter::{self, Counter};
use backplane_testkit::engine as support;
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;

const COUNT: u64 = 400;

/// Records every value it gets, `delay` per batch (a slow disk); or cannot start at all.
#[derive(Clone)]
struct Slow {
    seen: Arc<Mutex<Vec<u64>>>,
    delay: Duration,
    broken: bool,
}

impl Slow {
    fn new(delay: Duration) -> Slow {
        Slow {
            seen: Arc::default(),
            delay,
            broken: false,
        }
    }

    fn seen(&self) -> Vec<u64> {
        self.seen.lock().clone()
    }
}

impl Kind for Slow {
    type Settings = ();
    fn describe(&self) -> &'static str {
        "a slow local sink (test)"
    }
    fn parse(&self, _table: &mut Table<'_>) -> Option<()> {
        Some(())
    }
}

impl SinkKind for Slow {
    fn build(&self, _ctx: &SinkContext<'_, ()>) -> Result<Box<dyn Sink>, ComponentError> {
        if self.broken {
            return Err(ComponentError::config("this sink can never start (test)"));
        }
        Ok(Box::new(self.clone()))
    }
}

impl Sink for Slow {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            while let Some(batch) = io.recv().await {
                tokio::time::sleep(self.delay).await;
                let mut seen = self.seen.lock();
                for s in &batch.samples {
                    if let Some(Value::UInt(n)) = s.value {
                        seen.push(n);
                    }
                }
            }
            Ok(())
        }
        .boxed()
    }
}

fn config(sinks: &[&str]) -> String {
    let mut text = counter::plan(COUNT);
    for sink in sinks {
        text.push_str(&format!("[[sinks]]\nname = \"{sink}\"\nkind = \"{sink}\"\n"));
    }
    text
}

fn start(sinks: &[(&str, Slow)], dir: &std::path::Path) -> Engine {
    let mut registry = backplane_engine::builtins();
    registry.add_source("counter", Counter);
    for (name, sink) in sinks {
        registry.add_sink(name, sink.clone());
    }
    let names: Vec<&str> = sinks.iter().map(|(n, _)| *n).collect();
    // Queues of two batches: the source is far faster than the slow sink.
    let options = EngineOptions {
        sink_queue: 2,
        ..support::options()
    };
    support::start_with(&config(&names), dir, &registry, options)
}

fn metric(engine: &Engine, name: &str, sink: &str) -> f64 {
    let text = engine.handle().metrics_text();
    let series = format!("{name}{{name=\"{sink}\"}}");
    support::metric(&text, &series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_local_sink_gets_every_sample_in_order_while_the_pipeline_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Slow::new(Duration::from_millis(2));
    let fast = Slow::new(Duration::ZERO);
    let engine = start(&[("slow", slow.clone()), ("fast", fast.clone())], dir.path());
    support::eventually(
        "the slow sink to get every sample",
        Duration::from_secs(60),
        || (slow.seen().len() as u64 >= COUNT).then_some(()),
    )
    .await;
    let everything: Vec<u64> = (0..COUNT).collect();
    assert_eq!(slow.seen(), everything, "every value once, in order");
    assert_eq!(fast.seen(), everything, "the other sink too");
    assert_eq!(metric(&engine, "backplane_sink_dropped_total", "slow"), 0.0);
    assert!(
        metric(&engine, "backplane_sink_wait_seconds_total", "slow") > 0.0,
        "the pipeline waited for the slow sink, and it is measured"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_sink_that_can_never_start_does_not_hold_the_pipeline_back() {
    let dir = tempfile::tempdir().unwrap();
    let broken = Slow {
        broken: true,
        ..Slow::new(Duration::ZERO)
    };
    let fine = Slow::new(Duration::ZERO);
    let engine = start(&[("broken", broken), ("fine", fine.clone())], dir.path());
    support::eventually(
        "the working sink to get every sample",
        Duration::from_secs(60),
        || (fine.seen().len() as u64 >= COUNT).then_some(()),
    )
    .await;
    assert_eq!(fine.seen(), (0..COUNT).collect::<Vec<_>>());
    let health = engine.handle().health();
    let row = health.components.iter().find(|c| c.name == "broken").unwrap();
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("never start")),
        "{row:?}"
    );
    assert!(
        metric(&engine, "backplane_sink_dropped_total", "broken") > 0.0,
        "what the failed sink could not take is counted"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonl_sink_on_a_throttled_writer_stores_every_value_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // A named pipe read slowly stands in for a slow disk: each write waits for the reader.
    let fifo = dir.path().join("slow.jsonl");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || {
            use std::io::BufRead;
            let file = std::io::BufReader::with_capacity(512, std::fs::File::open(&fifo).unwrap());
            let mut values = Vec::new();
            for line in file.lines() {
                let line = line.unwrap();
                let sample: serde_json::Value = serde_json::from_str(&line).unwrap();
                values.push(sample["value"].as_u64().unwrap());
                if values.len() % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            values
        }
    });
    let mut registry = backplane_engine::builtins();
    registry.add_source("counter", Counter);
    let config = config(&[])
        + &format!(
            "[[sinks]]\nname = \"file\"\nkind = \"jsonl\"\npath = {:?}\n",
            fifo.display().to_string()
        );
    let options = EngineOptions {
        sink_queue: 2,
        ..support::options()
    };
    let engine = support::start_with(&config, dir.path(), &registry, options);
    support::eventually(
        "every value to pass the pipeline",
        Duration::from_secs(60),
        || {
            support::latest(&engine.handle(), "acme/plant/meter/count")
                .filter(|l| l.sample.value == Some(Value::UInt(399)))
        },
    )
    .await;
    assert_eq!(metric(&engine, "backplane_sink_dropped_total", "file"), 0.0);
    engine.shutdown().await;
    // The sink closed the pipe at shutdown: the reader has everything.
    assert_eq!(reader.join().unwrap(), (0..COUNT).collect::<Vec<_>>());
}
