//! The sink under load while its private nats-server is killed (`kill -9`) for 20 s
//! (`BACKPLANE_OUTAGE_SECS`) and restarted on the same store: nothing is lost, and what
//! is sent twice is dropped by JetStream's duplicate window and counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use backplane_testkit::engine::{eventually_every, start};
use common::server::PrivateNats;
use common::{counter, js, names, read_all};

fn config(url: &str, stream: &str, prefix: &str) -> String {
    let mut text = String::from(
        "[gateway]\nname = \"edge-f\"\n[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n[models.M.attributes]\n",
    );
    for a in 0..10 {
        text.push_str(&format!("a{a} = {{ type = \"float\" }}\n"));
    }
    text.push_str("[[assets]]\npath = \"area\"\nlevel = \"area\"\n[[assets]]\npath = \"area/m\"\nmodel = \"M\"\nsource = \"sim\"\n");
    for a in 0..10 {
        text.push_str(&format!("bindings.a{a} = {{ address = \"s{a}\" }}\n"));
    }
    text.push_str("[[sources]]\nname = \"sim\"\nkind = \"simulator\"\nperiod = \"10ms\"\n");
    for a in 0..10 {
        text.push_str(&format!(
            "signals.s{a} = {{ signal = \"ramp\", from = 0, to = 1000, period = \"7s\" }}\n"
        ));
    }
    text.push_str(&format!(
        "[[sinks]]\nname = \"js\"\nkind = \"nats\"\nurl = \"{url}\"\nprefix = \"{prefix}\"\nack_timeout = \"2s\"\nconnect_timeout = \"1s\"\nstream = {{ name = \"{stream}\" }}\n"
    ));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seq_survives_a_killed_server_and_duplicates_are_bounded_and_counted() {
    let outage = Duration::from_secs(
        std::env::var("BACKPLANE_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let store = tempfile::tempdir().unwrap();
    let mut server = PrivateNats::start(store.path());
    let (name, prefix) = names("fault");
    let dir = tempfile::tempdir().unwrap();
    let registry = common::harness::registry();
    let engine = start(&config(&server.url(), &name, &prefix), dir.path(), &registry);
    let h = engine.handle();
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.kill();
    tokio::time::sleep(outage).await;
    server.restart();
    // Load goes on a little, then the backlog drains to zero.
    tokio::time::sleep(Duration::from_secs(2)).await;
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

    let js = js(&server.url()).await;
    let stored = read_all(&js, &name, 10_000_000).await;
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
    let twice = seen.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "JetStream's duplicate window drops every replayed copy");
    let duplicates = counter(&metrics, "js", "duplicates");
    let unconfirmed = counter(&metrics, "js", "messages_unconfirmed_at_disconnect");
    println!("{max} seqs, {unconfirmed} unconfirmed at the kill, {duplicates} replays dropped as duplicates");
    assert!(
        duplicates <= unconfirmed + 1,
        "duplicates bounded by what was unconfirmed (+ the definitions)"
    );
    assert!(max > 1000, "the sink was under load: {max}");
    let _ = js.delete_stream(&name).await;
}
