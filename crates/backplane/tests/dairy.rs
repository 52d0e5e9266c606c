//! The demo plant (examples/dairy.toml) through the engine with every kind this build
//! registers: both fillers, from two vendors and two kinds of source, normalize to the same
//! Filler shape and units.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::time::Duration;

use backplane_engine::Engine;
use backplane_model::Value;
use backplane_testkit::engine::{self as support, latest};

fn start(config: &str, data_dir: &Path) -> Engine {
    support::start(config, data_dir, &backplane::registry())
}

/// Up to 30 s (secure OPC UA sessions on a loaded 2-core CI machine); the bound is a
/// safety net, not a timing assertion.
async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::eventually(what, Duration::from_secs(30), check).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dairy_fillers_normalize_to_the_same_units_and_types() {
    let dir = tempfile::tempdir().unwrap();
    // Line 1 reads the vendor-A filler over real Modbus TCP, line 2 and the pasteurizer
    // vendor B's OPC UA server (Basic256Sha256, trusted through the data dir), as in the demo.
    let (address, simulator) = backplane_modbus::spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let pki = backplane_opcua::pki::default_pki_dir(dir.path());
    let (opcua, opcua_server) = backplane_opcua::spawn_dairy_simulator("127.0.0.1:0".parse().unwrap(), &pki)
        .await
        .unwrap();
    // The reception silos' S7 PLC, as in the demo.
    let (s7, silos) = backplane_s7::spawn_silo_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (palletizer, palletizer_task) =
        backplane_ethernetip::spawn_palletizer("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    // The maintenance shop's CNC mill behind its MTConnect agent.
    let (cnc, cnc_task) = backplane_mtconnect::spawn_cnc_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // Faster periods; same devices, signals and bindings.
    // Without the OPC UA server: parallel tests would all claim its port.
    let text = backplane_testkit::dairy::without_opcua_server(backplane::DAIRY)
        .replace(backplane::DAIRY_PALLETIZER_URL, &format!("enip://{palletizer}"))
        .replace(backplane::DAIRY_FILLER_URL, &format!("tcp://{address}"))
        .replace(backplane::DAIRY_OPCUA_URL, &format!("opc.tcp://{opcua}"))
        .replace(backplane::DAIRY_S7_URL, &format!("s7://{s7}"))
        .replace(backplane::DAIRY_CNC_URL, &format!("http://{cnc}"))
        .replace("period = \"500ms\"", "period = \"20ms\"")
        .replace("period = \"1s\"", "period = \"20ms\"");
    let engine = start(&text, dir.path());
    let handle = engine.handle();
    let topology = handle.topology().clone();
    let attributes = [
        "state",
        "speed",
        "good_count",
        "reject_count",
        "product_temperature",
    ];
    for line in ["line-1", "line-2"] {
        for attribute in attributes {
            let path = format!("acme-dairy/plant-a/packaging/{line}/filler/{attribute}");
            // Sessions (and the first run's certificates) take a moment: wait for good data.
            let l = eventually(&path, || {
                latest(&handle, &path).filter(|l| l.sample.quality.is_good())
            })
            .await;
            assert!(
                l.sample.quality.is_good(),
                "{path}: {:?} {:?}",
                l.sample.quality,
                l.error
            );
            let info = topology.tag_by_path(&path).unwrap();
            let value = l.sample.value.unwrap();
            match attribute {
                "state" => {
                    let Value::String(s) = &value else {
                        panic!("{path}: {value:?}")
                    };
                    assert!(
                        ["stopped", "idle", "running", "fault"].contains(&&**s),
                        "{path}: {s}"
                    );
                }
                "good_count" | "reject_count" => {
                    assert!(matches!(value, Value::UInt(_)), "{path}: {value:?}")
                }
                "speed" => {
                    let v = value.as_f64().unwrap();
                    // Within the model range (a stopped filler reports 0).
                    assert!((0.0..=600.0).contains(&v), "{path}: {v} bottle/min");
                }
                _ => {
                    // Line 1 serves tenths of °F (~39.5 °F), line 2 °C: both ~4 °C after normalization.
                    let v = value.as_f64().unwrap();
                    assert!((2.0..=7.0).contains(&v), "{path}: {v} degC");
                }
            }
            assert_eq!(topology.model_name(info), "Filler");
        }
    }
    // The silos come from the S7 PLC: a level in %, a temperature in °C, the tanker's lot.
    for (silo, lot) in [("silo-1", 2301), ("silo-2", 5101)] {
        let value = |attribute: &str| {
            let path = format!("acme-dairy/plant-a/reception/{silo}/{attribute}");
            let handle = handle.clone();
            async move {
                eventually(&path, || {
                    latest(&handle, &path).filter(|l| l.sample.quality.is_good())
                })
                .await
                .sample
                .value
                .unwrap()
            }
        };
        let level = value("level").await.as_f64().unwrap();
        assert!((0.0..=100.0).contains(&level), "{silo}: level {level} %");
        let temperature = value("temperature").await.as_f64().unwrap();
        assert!((2.0..=6.0).contains(&temperature), "{silo}: {temperature} degC");
        assert_eq!(value("lot_number").await, Value::UInt(lot), "{silo}");
    }
    // The palletizer, over EtherNet/IP: its Logix tags through the Palletizer model.
    let path = |a: &str| format!("acme-dairy/plant-a/packaging/palletizer/{a}");
    let good = |a: &str| {
        latest(&handle, &path(a))
            .filter(|l| l.sample.quality.is_good())
            .and_then(|l| l.sample.value)
    };
    let state = eventually("the palletizer's state", || good("state")).await;
    assert!(
        matches!(&state, Value::String(s) if ["stopped", "idle", "running", "fault"].contains(&&**s)),
        "{state:?}"
    );
    assert_eq!(
        eventually("the recipe", || good("recipe")).await,
        Value::String("MILK-1L-6x4".into())
    );
    assert!(
        matches!(eventually("the pallet count", || good("pallet_count")).await, Value::UInt(n) if n >= 1200)
    );
    assert!(
        matches!(eventually("the case rate", || good("case_rate")).await, Value::Float(r) if (0.0..=120.0).contains(&r))
    );
    engine.shutdown().await;
    palletizer_task.abort();
    cnc_task.abort();
    simulator.abort();
    silos.abort();
    opcua_server.stop();
}
