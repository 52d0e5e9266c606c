//! Line 1 of the dairy demo read from the filler simulator through the real Modbus path,
//! with the `[[sources]]` and bindings proposed for examples/dairy.toml.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::time::Duration;

use backplane_engine::{Engine, EngineOptions};
use backplane_modbus::{ModbusKind, spawn_filler_simulator};
use backplane_model::Value;
use backplane_testkit::engine as support;
use backplane_testkit::fixtures::{DAIRY_FILLER_MODEL, DAIRY_LINE_1, DAIRY_NAMESPACE};

/// Line 1 of the demo on its own.
fn line_1() -> String {
    format!("{DAIRY_NAMESPACE}{DAIRY_FILLER_MODEL}{DAIRY_LINE_1}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_1_reads_the_filler_simulator_through_modbus() {
    let (addr, sim) = spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = line_1().replace("MODBUS_PORT", &addr.port().to_string());
    let mut registry = backplane_engine::builtins();
    registry.add_source("modbus", ModbusKind);
    let dir = tempfile::tempdir().unwrap();
    let plan = support::plan(&text, dir.path(), &registry);
    // What `backplane check` prints for the source: one read for the five tags.
    let source = plan.sources.iter().find(|s| s.name == "line1-plc").unwrap();
    let addresses = ["hr:100", "hr:101", "hr:102:u32", "hr:104", "hr:106:i16"];
    let settings = backplane_connector::kind::settings_of::<ModbusKind>(source).unwrap();
    let summary = backplane_modbus::poll_summary("line1-plc", settings, &addresses).unwrap();
    assert_eq!((summary.tags(), summary.requests()), (5, 1));

    let engine = Engine::start(plan, &registry, EngineOptions::default()).unwrap();
    let handle = engine.handle();
    let value = |attribute: &str| {
        let tag = handle
            .topology()
            .tag_by_path(&format!("acme-dairy/plant-a/packaging/line-1/filler/{attribute}"))
            .unwrap();
        handle
            .latest(tag.id)
            .filter(|l| l.sample.quality.is_good())
            .and_then(|l| l.sample.value)
    };
    let mut found = None;
    for _ in 0..500 {
        let all: Option<Vec<Value>> = [
            "state",
            "speed",
            "good_count",
            "reject_count",
            "product_temperature",
        ]
        .iter()
        .map(|a| value(a))
        .collect();
        if all.is_some() {
            found = all;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let values = found.expect("every attribute of line 1 turns good");
    assert!(
        matches!(&values[0], Value::String(s) if ["stopped", "idle", "running", "fault"].contains(&&**s))
    );
    assert!(matches!(values[1], Value::Float(s) if (0.0..=600.0).contains(&s)));
    // The u32 in CDAB starts just below 2^32: a wrong word order would read ~ 4 billion apart.
    assert!(
        matches!(values[2], Value::UInt(n) if !(100_000..4_294_960_000).contains(&n)),
        "{:?}",
        values[2]
    );
    assert!(matches!(values[3], Value::UInt(n) if !(1000..65_500).contains(&n)));
    // 38.5 to 40.5 °F, in °C.
    assert!(
        matches!(values[4], Value::Float(c) if (3.5..=4.8).contains(&c)),
        "{:?}",
        values[4]
    );
    // The planned single request per cycle is what the source actually sends.
    let metrics = handle.metrics_text();
    let count = |event: &str| -> f64 {
        let key = format!(
            "backplane_component_events_total{{component=\"source\",name=\"line1-plc\",event=\"{event}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {event} in\n{metrics}"))
    };
    let (cycles, requests) = (count("poll_cycles"), count("poll_requests"));
    assert!(cycles >= 1.0);
    assert!(
        (cycles - requests).abs() <= 1.0,
        "{requests} requests in {cycles} cycles"
    );
    // The simulator answers in time: no answer came after its request was given up.
    assert_eq!(count("late_answers"), 0.0);
    engine.shutdown().await;
    sim.abort();
}
