//! A network blip, not a server restart: a TCP proxy between the `opcua` source and asyncua
//! (Python) cuts every connection and refuses new ones for a few seconds while the server's
//! counter keeps changing every 100 ms. The server keeps the session and its subscription;
//! the source reactivates the session, and every value change of the blip reaches the
//! pipeline afterwards: those the server still queued in the monitored item, and those it
//! had sent into the cut connection, which the source asks for again (Republish).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backplane_model::{BadReason, Quality, Value};
use backplane_testkit::engine::{latest, metric};
use backplane_testkit::fixtures::LabProbe;
use backplane_testkit::net::free_port;
use common::{Peer, eventually, start_engine};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const COUNTER: &str = "acme/lab/area/line/probe/counter";

/// A TCP proxy to `127.0.0.1:upstream` that can cut every connection and refuse new ones
/// (accept and close at once) for a while. Stops on drop.
struct Proxy {
    port: u16,
    cut: watch::Sender<u64>,
    refuse_until: Arc<Mutex<Option<Instant>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cuts) = watch::channel(0u64);
        let refuse_until: Arc<Mutex<Option<Instant>>> = Arc::default();
        let refusing = refuse_until.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let refused = refusing
                    .lock()
                    .unwrap()
                    .is_some_and(|until| Instant::now() < until);
                if refused {
                    drop(inbound);
                    continue;
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                connections.spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                    // Dropping both ends closes them, client side and server side.
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Proxy {
            port,
            cut,
            refuse_until,
            task,
        }
    }

    /// Cuts every open connection and refuses new ones for `refuse`.
    fn blip(&self, refuse: Duration) {
        *self.refuse_until.lock().unwrap() = Some(Instant::now() + refuse);
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops the JoinSet, which aborts every connection.
        self.task.abort();
    }
}

fn config(proxy: u16) -> String {
    LabProbe {
        attributes: r#"counter = { type = "uint" }"#,
        bindings: r#"bindings.counter = { address = "ns=2;s=Counter" }"#,
        source: "peer",
        settings: &format!(
            r#"kind = "opcua"
url = "opc.tcp://127.0.0.1:{proxy}"
security_policy = "None"
period = "100ms"
# Room for every change of a blip of a few seconds in the server's monitored item queue.
queue_size = 1000
reconnect_max = "1s"

[[sinks]]
name = "file"
kind = "jsonl"
path = "samples.jsonl"
"#
        ),
    }
    .toml()
}

/// The good counter values the jsonl sink wrote, in order.
fn delivered(dir: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join("samples.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["kind"] == "sample" && j["path"] == COUNTER && j["quality"] == "good")
        .filter_map(|j| j["value"].as_u64())
        .collect()
}

fn counter(handle: &backplane_engine::EngineHandle) -> Option<(Option<u64>, Quality)> {
    latest(handle, COUNTER).map(|l| (l.sample.value.as_ref().and_then(Value::as_u64), l.sample.quality))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_blip_keeps_the_subscription_and_loses_no_value_change() {
    let upstream = free_port();
    let mut peer = Peer::start(upstream, &[]);
    let proxy = Proxy::start(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(proxy.port), dir.path());
    let handle = engine.handle();

    // Steady state: the counter moves.
    let (first, _) = eventually("the counter is good", 60, || {
        counter(&handle).filter(|(v, q)| q.is_good() && v.is_some())
    })
    .await;
    let first = first.unwrap();
    eventually("the counter moves", 30, || {
        counter(&handle).filter(|(v, _)| v.is_some_and(|v| v >= first + 10))
    })
    .await;

    proxy.blip(Duration::from_secs(3));
    let (_, q) = eventually("values turn bad during the blip", 30, || {
        counter(&handle).filter(|(_, q)| q.is_bad())
    })
    .await;
    assert_eq!(q, Quality::Bad(BadReason::CommFailure));
    let during = delivered(dir.path()).last().copied().unwrap();

    // Back: good again, and well past the blip (the server counts 10 per second).
    eventually("the counter moves well past the blip", 90, || {
        counter(&handle).filter(|(v, q)| q.is_good() && v.is_some_and(|v| v >= during + 80))
    })
    .await;

    let values = delivered(dir.path());
    let seen: BTreeSet<u64> = values.iter().copied().collect();
    let (lo, hi) = (*seen.first().unwrap(), *seen.last().unwrap());
    let missing: Vec<u64> = (lo..=hi).filter(|v| !seen.contains(v)).collect();
    let metrics = handle.metrics_text();
    let series = |event: &str| {
        metric(
            &metrics,
            &format!(
                "backplane_component_events_total{{component=\"source\",name=\"peer\",event=\"{event}\"}}"
            ),
        )
    };
    eprintln!(
        "blip: delivered {lo}..={hi}, {} values, missing {missing:?}; reconnects {:?}, republished {:?}, lost {:?}",
        values.len(),
        series("reconnects"),
        series("notifications_republished"),
        series("notifications_lost"),
    );
    assert!(missing.is_empty(), "value changes lost in the blip: {missing:?}");
    assert_eq!(series("notifications_lost").unwrap_or(0.0), 0.0);
    // The server kept the session: reactivated, not created again.
    let stats = peer.stats();
    assert_eq!(stats["sessions_created"], 1, "{stats}");
    assert_eq!(stats["active_sessions"], 1, "{stats}");
    engine.shutdown().await;
    drop(proxy);
    peer.stop();
}
