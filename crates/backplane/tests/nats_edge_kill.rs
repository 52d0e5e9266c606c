//! An edge (the real binary) publishing a dense sample stream to NATS JetStream is killed
//! (`kill -9`) mid-stream and started again on the same data directory: its
//! store-and-forward log replays what JetStream had not confirmed (or what the killed
//! process had not yet recorded as confirmed), JetStream drops the copies by message id,
//! and every seq is in the stream exactly once. A private nats-server, removed afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use backplane_testkit::net::{free_port, wait_for_port};
use futures::StreamExt;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backplane");
const SIGNALS: usize = 40;

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 40 ramps every 10 ms (4000 samples/s) into a file-backed stream.
fn config(data_dir: &Path, api: u16, nats: u16) -> String {
    let mut text = format!(
        "[gateway]\nname = \"edge-k\"\ndata_dir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
         [namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n[models.M.attributes]\n",
        data_dir.display()
    );
    for a in 0..SIGNALS {
        text.push_str(&format!("a{a} = {{ type = \"float\" }}\n"));
    }
    text.push_str("[[assets]]\npath = \"area\"\nlevel = \"area\"\n[[assets]]\npath = \"area/m\"\nmodel = \"M\"\nsource = \"sim\"\n");
    for a in 0..SIGNALS {
        text.push_str(&format!("bindings.a{a} = {{ address = \"s{a}\" }}\n"));
    }
    text.push_str("[[sources]]\nname = \"sim\"\nkind = \"simulator\"\nperiod = \"10ms\"\n");
    for a in 0..SIGNALS {
        text.push_str(&format!(
            "signals.s{a} = {{ signal = \"ramp\", from = 0, to = 1000, period = \"7s\" }}\n"
        ));
    }
    text.push_str(&format!(
        "[[sinks]]\nname = \"js\"\nkind = \"nats\"\nurl = \"nats://127.0.0.1:{nats}\"\nprefix = \"kill\"\n\
         ack_timeout = \"2s\"\nstream = {{ name = \"EDGE_KILL\" }}\n"
    ));
    text
}

fn edge(config: &Path, log: &Path) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Running(
        Command::new(BIN)
            .arg("run")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Messages in the stream, 0 until it exists.
async fn stored(js: &jetstream::Context) -> u64 {
    match js.get_stream("EDGE_KILL").await {
        Ok(mut stream) => stream.info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}

/// Polls `check` every 200 ms for at most `limit`; gives up with the edge's log.
async fn until<T, Fut>(log: &Path, what: &str, limit: Duration, mut check: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} after {limit:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `backplane_component_events_total` of the sink `js` for `event`, and
/// `backplane_buffer_acked_total` with `event = "acked"`.
fn metric(metrics: &str, event: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.contains("name=\"js\"")
                && if event == "acked" {
                    l.starts_with("backplane_buffer_acked")
                } else {
                    l.starts_with("backplane_component_events_total")
                        && l.contains(&format!("event=\"{event}\""))
                }
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The `seq` of every sample message in the stream, with how many times it is there.
async fn seqs(js: &jetstream::Context) -> BTreeMap<u64, u32> {
    let mut stream = js.get_stream("EDGE_KILL").await.unwrap();
    let total = stream.info().await.unwrap().state.messages;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for _ in 0..total {
        let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await else {
            break;
        };
        let json: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        if let Some(seq) = json["seq"].as_u64() {
            *seen.entry(seq).or_default() += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_mid_stream_and_restarted_on_its_data_dir_stores_every_seq_once() {
    let dir = tempfile::tempdir().unwrap();
    let nats_port = free_port();
    let _nats = Running(
        Command::new(std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into()))
            .args(["-a", "127.0.0.1", "-p", &nats_port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed"),
    );
    assert!(wait_for_port(nats_port, Duration::from_secs(10)));
    let api = free_port();
    let file: PathBuf = dir.path().join("edge.toml");
    std::fs::write(&file, config(&dir.path().join("data"), api, nats_port)).unwrap();
    let log = dir.path().join("edge.log");
    let client = async_nats::connect(format!("nats://127.0.0.1:{nats_port}"))
        .await
        .unwrap();
    let js = jetstream::new(client);

    let mut first = edge(&file, &log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stored(&js).await < 20_000 {
        let exited = first.0.try_wait().unwrap();
        assert!(
            exited.is_none() && tokio::time::Instant::now() < deadline,
            "no 20 000 samples in the stream ({exited:?})\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let at_kill = stored(&js).await;

    let _second = edge(&file, &log);
    let http = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{api}/api/v1/health");
    // More load after the restart, then the whole backlog confirmed.
    until(
        &log,
        "more samples after the restart",
        Duration::from_secs(60),
        || async { (stored(&js).await >= at_kill + 20_000).then_some(()) },
    )
    .await;
    until(&log, "the backlog drained", Duration::from_secs(60), || async {
        let h: Value = http.get(&health).send().await.ok()?.json().await.ok()?;
        let js = h["buffers"].as_array()?.iter().find(|b| b["sink"] == "js")?;
        (js["backlog_samples"].as_u64()? == 0).then_some(())
    })
    .await;
    let metrics = http
        .get(format!("http://127.0.0.1:{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let seen = seqs(&js).await;
    let max = *seen.keys().last().unwrap();
    let missing: Vec<u64> = (1..=max).filter(|s| !seen.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {max} seqs lost across the kill, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let twice: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(s, _)| *s).collect();
    assert!(
        twice.is_empty(),
        "the replay was de-duplicated by message id; stored twice: {:?}",
        &twice[..twice.len().min(10)]
    );
    let acked = metric(&metrics, "acked");
    assert!(
        acked <= max,
        "every seq the restarted edge let go of is in the stream: {acked} acked, {max} stored"
    );
    println!(
        "{max} seqs stored once, {at_kill} messages at the kill; after the restart: {acked} acked, {} replays dropped as duplicates",
        metric(&metrics, "duplicates")
    );
}
