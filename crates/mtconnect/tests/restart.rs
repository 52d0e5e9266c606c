//! The cursor across gateway restarts: a whole engine (the `mtconnect` kind, a jsonl
//! sink) stopped and started again against the same scripted agent, with a fresh kind,
//! so only the cursor file in the data directory carries the place in the agent's buffer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;
use std::time::Duration;

use backplane_engine::{Engine, Registry};
use common::{ScriptedAgent, empty_sample, fixture, header_attr};

const V13: u64 = 1_764_490_000;
const LIMIT: Duration = Duration::from_secs(15);

fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_source("mtconnect", backplane_mtconnect::MtConnectKind::default());
    registry
}

fn config(url: &str) -> String {
    format!(
        r#"
[gateway]
name = "gw-test"

[namespace]
enterprise = "acme"
site = "plant"

[models.Cnc.attributes]
parts = {{ type = "int" }}

[[assets]]
path = "shop"
level = "area"

[[assets]]
path = "shop/vmc"
model = "Cnc"
source = "vmc"
bindings.parts = {{ address = "pcount" }}

[[sources]]
name = "vmc"
kind = "mtconnect"
url = "{url}"
streaming = false
interval = "20ms"
timeout = "2s"

[[sinks]]
name = "out"
kind = "jsonl"
path = "out.jsonl"
"#
    )
}

/// A fresh kind each time: nothing of the last engine's memory.
fn start(url: &str, dir: &Path) -> Engine {
    backplane_testkit::engine::start(&config(url), dir, &registry())
}

/// The good part counts the sink wrote, in order.
fn parts(dir: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(dir.join("out.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "sample" && v["attribute"] == "parts" && v["quality"] == "good")
        .filter_map(|v| v["value"].as_i64())
        .collect()
}

async fn wait_parts(dir: &Path, n: usize) -> Vec<i64> {
    backplane_testkit::engine::eventually_every(
        &format!("{n} part counts in the sink"),
        LIMIT,
        Duration::from_millis(20),
        || {
            let p = parts(dir);
            (p.len() >= n).then_some(p)
        },
    )
    .await
}

/// A source counter from the engine's metrics.
fn counter(engine: &Engine, event: &str) -> f64 {
    engine
        .handle()
        .metrics_text()
        .lines()
        .filter(|l| l.contains(&format!("event=\"{event}\"")) && l.contains("\"vmc\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One `PartCount` observation at `sequence`, in a sample whose buffer runs `first..next`.
fn part_sample(instance: u64, first: u64, sequence: u64, next: u64, value: u32) -> String {
    format!(
        r#"<MTConnectStreams><Header instanceId="{instance}" version="1.3.0.18" bufferSize="131072" firstSequence="{first}" lastSequence="{}" nextSequence="{next}"/><Streams><DeviceStream name="VMC-3Axis"><ComponentStream component="Path" componentId="path"><Events>
<PartCount dataItemId="pcount" sequence="{sequence}" timestamp="2026-11-30T09:00:00Z">{value}</PartCount>
</Events></ComponentStream></DeviceStream></Streams></MTConnectStreams>"#,
        next - 1
    )
}

/// The first run: current (41 at sequence 96, next 101), then 101..108 (42), then quiet
/// at 109. Stopped; the cursor file says 109.
async fn first_run(agent: &ScriptedAgent, dir: &Path) {
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("sample", 200, fixture("v1.3/sample.xml"))
        .then("sample", 200, empty_sample(V13, 1, 109));
    let engine = start(&agent.url, dir);
    assert_eq!(wait_parts(dir, 2).await, [41, 42]);
    backplane_testkit::engine::eventually("the quiet sample", LIMIT, || {
        agent
            .requests()
            .iter()
            .any(|r| r == "sample?from=109&count=1000")
            .then_some(())
    })
    .await;
    engine.shutdown().await;
    let saved = std::fs::read_to_string(dir.join("mtconnect/vmc.cursor")).unwrap();
    assert!(saved.contains("\"next\":109"), "{saved}");
}

#[tokio::test]
async fn a_restarted_gateway_resumes_at_the_saved_cursor_without_gap_or_double() {
    let agent = ScriptedAgent::start().await;
    let dir = tempfile::tempdir().unwrap();
    first_run(&agent, dir.path()).await;

    // The same agent instance went on while the gateway was down: 109..111, part 43 at 110.
    agent.reset();
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("sample", 200, part_sample(V13, 1, 110, 112, 43))
        .then("sample", 200, empty_sample(V13, 1, 112));
    let engine = start(&agent.url, dir.path());
    assert_eq!(wait_parts(dir.path(), 3).await, [41, 42, 43]);
    backplane_testkit::engine::eventually("the next sample", LIMIT, || {
        (agent.requests().len() >= 3).then_some(())
    })
    .await;
    let requests = agent.requests();
    assert_eq!(
        requests[..3],
        [
            "probe",
            "sample?from=109&count=1000",
            "sample?from=112&count=1000"
        ],
        "resumed at the saved cursor, no current"
    );
    assert_eq!(counter(&engine, "sequence_gap"), 0.0);
    engine.shutdown().await;
    assert_eq!(parts(dir.path()), [41, 42, 43], "no double after the restart");
    let saved = std::fs::read_to_string(dir.path().join("mtconnect/vmc.cursor")).unwrap();
    assert!(saved.contains("\"next\":112"), "{saved}");
}

#[tokio::test]
async fn a_saved_cursor_the_agent_no_longer_holds_resyncs_with_current_and_counts_the_gap() {
    let agent = ScriptedAgent::start().await;
    let dir = tempfile::tempdir().unwrap();
    first_run(&agent, dir.path()).await;

    // Down long enough for the agent's buffer to run past the cursor: it holds 900..999.
    agent.reset();
    let later = header_attr(
        &header_attr(&fixture("v1.3/current.xml"), "firstSequence", "900"),
        "nextSequence",
        "1000",
    )
    .replace(">41</PartCount>", ">77</PartCount>");
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("sample", 400, fixture("v1.3/error_out_of_range.xml"))
        .then("sample", 200, empty_sample(V13, 900, 1000))
        .then("current", 200, later);
    let engine = start(&agent.url, dir.path());
    assert_eq!(wait_parts(dir.path(), 3).await, [41, 42, 77]);
    backplane_testkit::engine::eventually("the gap counted", LIMIT, || {
        (counter(&engine, "sequence_gap") > 0.0).then_some(())
    })
    .await;
    assert_eq!(
        agent.requests()[..3],
        ["probe", "sample?from=109&count=1000", "current"]
    );
    assert_eq!(counter(&engine, "sequence_gap"), (1000 - 109) as f64);
    assert_eq!(counter(&engine, "out_of_range"), 1.0);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_saved_cursor_of_an_agent_that_restarted_replays_its_new_buffer_and_counts_what_it_dropped() {
    let agent = ScriptedAgent::start().await;
    let dir = tempfile::tempdir().unwrap();
    first_run(&agent, dir.path()).await;

    // The agent restarted meanwhile (new instanceId) and already dropped sequences 1..=4.
    let b = V13 + 500;
    agent.reset();
    let refused = header_attr(
        &fixture("v1.3/error_out_of_range.xml"),
        "instanceId",
        &b.to_string(),
    );
    agent
        .then(
            "probe",
            200,
            header_attr(&fixture("v1.3/probe.xml"), "instanceId", &b.to_string()),
        )
        .then("sample", 400, refused)
        .then("sample", 200, part_sample(b, 5, 6, 8, 3))
        .then("sample", 200, empty_sample(b, 5, 8));
    let engine = start(&agent.url, dir.path());
    assert_eq!(wait_parts(dir.path(), 3).await, [41, 42, 3]);
    backplane_testkit::engine::eventually("the gap counted", LIMIT, || {
        (counter(&engine, "sequence_gap") > 0.0).then_some(())
    })
    .await;
    let requests = agent.requests();
    assert_eq!(requests[1], "sample?from=109&count=1000", "{requests:?}");
    assert!(
        requests.contains(&"sample?from=1&count=1000".to_owned()),
        "{requests:?}"
    );
    assert_eq!(counter(&engine, "agent_restarts"), 1.0);
    assert_eq!(
        counter(&engine, "sequence_gap"),
        4.0,
        "sequences 1..=4 the new instance dropped"
    );
    engine.shutdown().await;
    let saved = std::fs::read_to_string(dir.path().join("mtconnect/vmc.cursor")).unwrap();
    assert!(saved.contains(&format!("\"instance_id\":{b}")), "{saved}");
}
