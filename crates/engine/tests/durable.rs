//! Buffered sinks end to end without a network: a recording sink kind that reads through
//! the store-and-forward log and acknowledges only when told to. What it did not
//! acknowledge must come again, as replay and with the same sequence numbers, after the
//! sink fails and after the whole engine restarts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use backplane_config::Table;
use backplane_engine::{ComponentError, Engine, Kind, Sink, SinkContext, SinkIo, SinkKind};
use backplane_testkit::engine as support;
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;

/// What the recording sink saw: `(seq, replay)` of every sample, in arrival order.
#[derive(Default)]
struct Record {
    seen: Mutex<Vec<(u64, bool)>>,
    /// Acknowledge what arrives.
    ack: AtomicBool,
    /// Fail (return an error) after this many deliveries; 0 = never.
    fail_after: AtomicUsize,
    /// Refuse to build this many instances first.
    failed_builds: AtomicUsize,
}

#[derive(Clone)]
struct Recorder(Arc<Record>);

impl Kind for Recorder {
    type Settings = ();
    fn describe(&self) -> &'static str {
        "recording sink (test)"
    }
    fn parse(&self, _table: &mut Table<'_>) -> Option<()> {
        Some(())
    }
}

impl SinkKind for Recorder {
    fn buffered(&self) -> bool {
        true
    }
    fn build(&self, _ctx: &SinkContext<'_, ()>) -> Result<Box<dyn Sink>, ComponentError> {
        let refuse = self.0.failed_builds.load(Ordering::SeqCst);
        if refuse > 0 {
            self.0.failed_builds.store(refuse - 1, Ordering::SeqCst);
            return Err(ComponentError::io("recorder told not to start"));
        }
        Ok(Box::new(self.clone()))
    }
}

impl Sink for Recorder {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let mut deliveries = 0;
            while let Some(d) = io.next().await {
                {
                    let mut seen = self.0.seen.lock();
                    for i in 0..d.batch.samples.len() {
                        seen.push((d.sample_seq(i).unwrap(), d.replay));
                    }
                }
                if self.0.ack.load(Ordering::SeqCst) {
                    io.ack(d.record.unwrap());
                }
                deliveries += 1;
                let fail_after = self.0.fail_after.swap(0, Ordering::SeqCst);
                if fail_after != 0 && deliveries >= fail_after {
                    return Err(ComponentError::io("recorder told to fail"));
                }
                self.0.fail_after.store(fail_after, Ordering::SeqCst);
            }
            Ok(())
        }
        .boxed()
    }
}

const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = { type = "float" }

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/tank"
model = "Tank"
source = "sim"
bindings.level = { address = "l" }

[[sources]]
name = "sim"
kind = "simulator"
period = "10ms"
signals.l = { signal = "ramp", from = 0, to = 100, period = "1s" }

[[sinks]]
name = "rec"
kind = "recorder"
"#;

fn start(record: &Arc<Record>, data_dir: &Path) -> Engine {
    let mut registry = backplane_engine::builtins();
    registry.add_sink("recorder", Recorder(record.clone()));
    support::start(CONFIG, data_dir, &registry)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    support::eventually(what, Duration::from_secs(10), || check().then_some(())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_data_comes_again_after_a_restart_with_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let record = Arc::new(Record::default());
    let engine = start(&record, dir.path());
    eventually("samples", || record.seen.lock().len() >= 20).await;
    engine.shutdown().await;
    let first: Vec<u64> = record.seen.lock().iter().map(|(s, _)| *s).collect();
    assert!(
        first.windows(2).all(|w| w[1] == w[0] + 1),
        "live numbers are consecutive: {first:?}"
    );

    // Nothing was acknowledged: the next engine on the same data directory sends it all
    // again, now acknowledging.
    let again = Arc::new(Record::default());
    again.ack.store(true, Ordering::SeqCst);
    let engine = start(&again, dir.path());
    let expected = first.clone();
    eventually("the backlog again", || {
        let seen = again.seen.lock();
        expected.iter().all(|s| seen.iter().any(|(t, _)| t == s))
    })
    .await;
    let handle = engine.handle();
    eventually("an empty backlog", || {
        handle.health().buffers[0].backlog_samples < 5
    })
    .await;
    engine.shutdown().await;
    let seen = again.seen.lock().clone();
    // The old data came as replay; live data continued after it without reusing a number.
    for s in &first {
        assert!(seen.contains(&(*s, true)), "{s} not replayed: {seen:?}");
    }
    let max_first = *first.iter().max().unwrap();
    assert!(
        seen.iter()
            .filter(|(_, replay)| !replay)
            .all(|(s, _)| *s > max_first)
    );

    // And everything acknowledged stays acknowledged.
    let third = Arc::new(Record::default());
    let engine = start(&third, dir.path());
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.shutdown().await;
    let max_acked = seen.iter().map(|(s, _)| *s).max().unwrap();
    let repeated: Vec<_> = third
        .seen
        .lock()
        .iter()
        .filter(|(s, _)| *s <= max_acked)
        .copied()
        .collect();
    assert!(
        repeated.is_empty(),
        "acknowledged data delivered again: {repeated:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sink_gets_what_it_had_not_acknowledged_again() {
    let dir = tempfile::tempdir().unwrap();
    let record = Arc::new(Record::default());
    // Not acknowledging, then failing after 10 deliveries: the supervisor builds a new
    // instance, which must receive those 10 again.
    record.fail_after.store(10, Ordering::SeqCst);
    let engine = start(&record, dir.path());
    eventually("the failure and a replay", || {
        record.seen.lock().iter().any(|(_, replay)| *replay)
    })
    .await;
    record.ack.store(true, Ordering::SeqCst);
    eventually("more samples", || record.seen.lock().len() >= 40).await;
    engine.shutdown().await;
    let seen = record.seen.lock().clone();
    // One sample per delivery: the first ten are what the failed instance had.
    let before_failure: Vec<u64> = seen.iter().take(10).map(|(s, _)| *s).collect();
    assert!(seen.iter().take(10).all(|(_, replay)| !replay));
    for s in &before_failure {
        assert!(
            seen.contains(&(*s, true)),
            "{s} was not replayed after the failure: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_could_not_start_gets_what_came_meanwhile_as_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let record = Arc::new(Record::default());
    record.ack.store(true, Ordering::SeqCst);
    // Two refused builds: the supervisor's backoff (50 ms, then 100 ms) lets the 10 ms
    // simulator append a dozen records before the first instance runs. Nothing was ever
    // delivered, so nothing is a replay.
    record.failed_builds.store(2, Ordering::SeqCst);
    let engine = start(&record, dir.path());
    eventually("samples", || record.seen.lock().len() >= 20).await;
    engine.shutdown().await;
    assert_eq!(record.failed_builds.load(Ordering::SeqCst), 0);
    let seen = record.seen.lock().clone();
    assert!(
        seen.iter().all(|(_, replay)| !replay),
        "delivered as replay: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "every record once, in order: {seen:?}"
    );
}
