//! The sink under load into an R3 stream of a private three-node cluster whose stream
//! leader is killed (`kill -9`) mid-run: a new leader takes over, and every seq the
//! store-and-forward log let go of is in the stream exactly once; replays are dropped by
//! JetStream's duplicate window and counted by the sink.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use backplane_testkit::engine::{eventually_every, start};
use common::cluster::Cluster;
use common::{counter, names, read_all};

fn config(servers: &[String], stream: &str, prefix: &str) -> String {
    let mut text = String::from(
        "[gateway]\nname = \"edge-c\"\n[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n[models.M.attributes]\n",
    );
    for a in 0..20 {
        text.push_str(&format!("a{a} = {{ type = \"float\" }}\n"));
    }
    text.push_str("[[assets]]\npath = \"area\"\nlevel = \"area\"\n[[assets]]\npath = \"area/m\"\nmodel = \"M\"\nsource = \"sim\"\n");
    for a in 0..20 {
        text.push_str(&format!("bindings.a{a} = {{ address = \"s{a}\" }}\n"));
    }
    // 20 signals every 10 ms: 2000 samples/s.
    text.push_str("[[sources]]\nname = \"sim\"\nkind = \"simulator\"\nperiod = \"10ms\"\n");
    for a in 0..20 {
        text.push_str(&format!(
            "signals.s{a} = {{ signal = \"ramp\", from = 0, to = 1000, period = \"7s\" }}\n"
        ));
    }
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    text.push_str(&format!(
        "[[sinks]]\nname = \"js\"\nkind = \"nats\"\nservers = [{}]\nprefix = \"{prefix}\"\nack_timeout = \"2s\"\nconnect_timeout = \"1s\"\nstream = {{ name = \"{stream}\", replicas = 3 }}\n",
        servers.join(", ")
    ));
    text
}

/// The stream's Raft leader (a server name), once the stream has one.
async fn leader(js: &jetstream::Context, stream: &str) -> Option<String> {
    let mut stream = js.get_stream(stream).await.ok()?;
    let info = stream.info().await.ok()?;
    info.cluster.as_ref()?.leader.clone()
}

/// The stream's message count once both followers are current and not lagging.
async fn caught_up(js: &jetstream::Context, stream: &str) -> Option<u64> {
    let mut stream = js.get_stream(stream).await.ok()?;
    let info = stream.info().await.ok()?;
    let cluster = info.cluster.as_ref()?;
    let current = cluster.leader.is_some()
        && cluster.replicas.len() == 2
        && cluster
            .replicas
            .iter()
            .all(|p| p.current && !p.offline && p.lag.unwrap_or(0) == 0);
    current.then_some(info.state.messages)
}

/// `backplane_buffer_acked_total` of sink `name`: seqs the destination confirmed.
fn acked(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("backplane_buffer_acked") && l.contains(&format!("name=\"{name}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seq_is_stored_once_when_the_stream_leader_of_an_r3_cluster_is_killed() {
    let mut cluster = Cluster::start();
    let (name, prefix) = names("cluster");
    let dir = tempfile::tempdir().unwrap();
    let registry = common::harness::registry();
    let engine = start(&config(&cluster.urls(), &name, &prefix), dir.path(), &registry);
    let h = engine.handle();

    // A client of its own on every node, to watch the stream.
    let client = async_nats::ConnectOptions::new()
        .connect(cluster.urls())
        .await
        .unwrap();
    let js = jetstream::new(client);
    let mut first = None;
    // Up to 60 s: on a loaded machine the three nodes take a while to elect JetStream's
    // meta leader, and the sink retries creating the stream after a backoff until then
    // (30 s failed once in a full test run).
    for _ in 0..600 {
        first = leader(&js, &name).await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = first.expect("the sink created the R3 stream and it elected a leader");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill(&first);
    println!("killed the stream leader {first}");

    // Load goes on while another node takes over.
    let mut second = None;
    for _ in 0..300 {
        second = leader(&js, &name).await.filter(|l| *l != first);
        if second.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = second.expect("a new stream leader");
    println!("new stream leader {second}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    eventually_every(
        "the backlog drained",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            let buffer = h.health().buffers.into_iter().find(|b| b.sink == "js")?;
            (buffer.backlog_samples == 0).then_some(())
        },
    )
    .await;
    let metrics = h.metrics_text();
    engine.shutdown().await;

    // The killed node comes back and catches up; the stream is read with all three.
    cluster.restart(&first);
    let client = async_nats::ConnectOptions::new()
        .connect(cluster.urls())
        .await
        .unwrap();
    let js = jetstream::new(client);
    let mut messages = 0;
    for _ in 0..600 {
        if let Some(n) = caught_up(&js, &name).await {
            messages = n;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(messages > 0, "the restarted node never caught up");
    let stored = read_all(&js, &name, 10_000_000).await;
    assert_eq!(stored.len() as u64, messages, "the whole stream was read back");
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for s in &stored {
        if let Some(seq) = s.json["seq"].as_u64() {
            *seen.entry(seq).or_default() += 1;
        }
    }
    let max = *seen.keys().last().unwrap();
    let missing: Vec<u64> = (1..=max).filter(|s| !seen.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {max} seqs lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let twice: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(s, _)| *s).collect();
    assert!(
        twice.is_empty(),
        "JetStream's duplicate window drops every replayed copy; stored twice: {:?}",
        &twice[..twice.len().min(10)]
    );
    let acked = acked(&metrics, "js");
    assert!(
        acked <= max,
        "every seq the log let go of is in the stream: {acked} acked, {max} stored"
    );
    let duplicates = counter(&metrics, "js", "duplicates");
    let unconfirmed = counter(&metrics, "js", "messages_unconfirmed_at_disconnect");
    println!(
        "{max} seqs stored once ({acked} acked), {unconfirmed} unconfirmed at the kill, {duplicates} replays dropped as duplicates"
    );
    assert!(
        duplicates <= unconfirmed + 1,
        "duplicates bounded by what was unconfirmed (+ the definitions)"
    );
    assert!(max > 10_000, "the sink was under load: {max}");
    let _ = js.delete_stream(&name).await;
}
