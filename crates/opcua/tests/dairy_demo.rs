//! Line 2 and the pasteurizer of the dairy demo read from the dairy simulator through the
//! real OPC UA path (Basic256Sha256, sign and encrypt, trust set up by the simulator), with
//! the `[[sources]]` and bindings proposed for examples/dairy.toml; and line 1 (Modbus,
//! vendor A) and line 2 (OPC UA, vendor B) give the same Filler payloads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::BTreeSet;

use backplane_engine::payload::SamplePayload;
use backplane_engine::{Engine, EngineHandle, EngineOptions};
use backplane_model::Value;
use backplane_testkit::engine::{self as support, latest};
use backplane_testkit::fixtures::{DAIRY_FILLER_MODEL, DAIRY_LINE_1, DAIRY_NAMESPACE};
use common::{eventually, source_health};

/// The pasteurizer with the bindings proposed for examples/dairy.toml; its source is at
/// the end of [`LINE_2`].
const PASTEURIZER: &str = r#"
[models.Pasteurizer.attributes]
hold_temperature = { type = "float", unit = "degC", range = [60, 90], description = "Temperature at the end of the holding tube" }
flow = { type = "float", unit = "L/h", range = [0, 30000], description = "Product flow" }
divert_valve = { type = "bool", description = "true while the flow diverts back to the balance tank" }

[[assets]]
path = "processing"
level = "area"

[[assets]]
path = "processing/pasteurizer"
model = "Pasteurizer"
source = "processing-plc"
bindings.hold_temperature = { address = "ns=2;s=HTST.HoldTemp", deadband = { percent = 0.1 } }
bindings.flow = { address = "ns=2;s=HTST.Flow", unit = "m3/h" }
bindings.divert_valve = { address = "ns=2;s=HTST.Status", bit = 2 }
"#;

/// Line 2 (in line 1's packaging area) and the OPC UA sources of line 2 and the
/// pasteurizer, as proposed for examples/dairy.toml.
const LINE_2: &str = r#"
[[assets]]
path = "packaging/line-2"
level = "line"

[[assets]]
path = "packaging/line-2/filler"
model = "Filler"
source = "line2-controller"
bindings.state = { address = "ns=2;s=Filler2.Status", map = { 0 = "stopped", 10 = "idle", 20 = "running", 90 = "fault" } }
bindings.speed = { address = "ns=2;s=Filler2.Speed", unit = "bottle/h" }
bindings.good_count = { address = "ns=2;s=Filler2.GoodCount" }
bindings.reject_count = { address = "ns=2;s=Filler2.RejectCount" }
bindings.product_temperature = { address = "ns=2;s=Filler2.ProductTemp" }

# Vendor B: OPC UA (`backplane demo` starts the dairy simulator on this port).
[[sources]]
name = "line2-controller"
kind = "opcua"
url = "opc.tcp://127.0.0.1:OPCUA_PORT"
security_policy = "Basic256Sha256"
security_mode = "sign-and-encrypt"
period = "500ms"

[[sources]]
name = "processing-plc"
kind = "opcua"
url = "opc.tcp://127.0.0.1:OPCUA_PORT"
security_policy = "Basic256Sha256"
security_mode = "sign-and-encrypt"
period = "500ms"
"#;

/// Line 1 (vendor A, Modbus) as in crates/modbus's filler test, line 2 and the pasteurizer
/// (vendor B, OPC UA); replace `MODBUS_PORT` and `OPCUA_PORT`.
fn dairy() -> String {
    format!("{DAIRY_NAMESPACE}{DAIRY_FILLER_MODEL}{PASTEURIZER}{DAIRY_LINE_1}{LINE_2}")
}

const FILLER: [&str; 5] = [
    "state",
    "speed",
    "good_count",
    "reject_count",
    "product_temperature",
];

fn good(handle: &EngineHandle, path: &str) -> Option<Value> {
    latest(handle, path)
        .filter(|l| l.sample.quality.is_good())
        .and_then(|l| l.sample.value)
}

/// The payload of a tag as JSON, without what legitimately differs between two machines
/// (value, times, path, asset).
fn shape(handle: &EngineHandle, path: &str) -> serde_json::Value {
    let topology = handle.topology();
    let l = latest(handle, path).unwrap();
    let payload = SamplePayload::new(topology, &l.sample).unwrap();
    let mut json = serde_json::to_value(&payload).unwrap();
    let value_kind = match &json["value"] {
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(n) if n.is_u64() => "uint",
        serde_json::Value::Number(_) => "number",
        other => panic!("unexpected value {other}"),
    };
    let object = json.as_object_mut().unwrap();
    for key in ["value", "source_time", "gateway_time", "path", "asset"] {
        object.remove(key);
    }
    object.insert("value_kind".into(), value_kind.into());
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_2_and_the_pasteurizer_read_the_dairy_simulator_and_match_line_1() {
    let dir = tempfile::tempdir().unwrap();
    let pki = backplane_opcua::pki::default_pki_dir(dir.path());
    let (opcua_addr, simulator) =
        backplane_opcua::spawn_dairy_simulator("127.0.0.1:0".parse().unwrap(), &pki)
            .await
            .unwrap();
    let (modbus_addr, modbus) = backplane_modbus::spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = dairy()
        .replace("OPCUA_PORT", &opcua_addr.port().to_string())
        .replace("MODBUS_PORT", &modbus_addr.port().to_string());
    let mut registry = common::registry();
    registry.add_source("modbus", backplane_modbus::ModbusKind);
    let plan = support::plan(&text, dir.path(), &registry);
    let engine = Engine::start(plan, &registry, EngineOptions::default()).unwrap();
    let handle = engine.handle();

    let line = |n: u8, a: &str| format!("acme-dairy/plant-a/packaging/line-{n}/filler/{a}");
    let all_good = || {
        FILLER
            .iter()
            .all(|a| good(&handle, &line(1, a)).is_some() && good(&handle, &line(2, a)).is_some())
            .then_some(())
    };
    eventually("both fillers deliver good values", 60, all_good).await;

    // Vendor B's raw data, normalized: the same attributes, types, units and value kinds as
    // vendor A's Modbus registers.
    for a in FILLER {
        assert_eq!(shape(&handle, &line(1, a)), shape(&handle, &line(2, a)), "{a}");
    }
    let value = |a: &str| good(&handle, &line(2, a)).unwrap();
    assert!(
        matches!(value("state"), Value::String(s) if ["stopped", "idle", "running", "fault"].contains(&&*s))
    );
    // 24 000 bottles per hour are 400 per minute.
    assert!(
        matches!(value("speed"), Value::Float(s) if s == 0.0 || (390.0..=410.0).contains(&s)),
        "{:?}",
        value("speed")
    );
    assert!(matches!(value("good_count"), Value::UInt(n) if n >= 120_000));
    assert!(matches!(value("reject_count"), Value::UInt(n) if n >= 310));
    assert!(matches!(value("product_temperature"), Value::Float(c) if (3.5..=4.8).contains(&c)));

    let pasteurizer = |a: &str| format!("acme-dairy/plant-a/processing/pasteurizer/{a}");
    eventually("the pasteurizer delivers good values", 30, || {
        ["hold_temperature", "flow", "divert_valve"]
            .iter()
            .all(|a| good(&handle, &pasteurizer(a)).is_some())
            .then_some(())
    })
    .await;
    assert!(
        matches!(good(&handle, &pasteurizer("hold_temperature")), Some(Value::Float(t)) if (72.0..=73.2).contains(&t))
    );
    // m³/h to L/h.
    assert!(
        matches!(good(&handle, &pasteurizer("flow")), Some(Value::Float(f)) if (16_000.0..=20_000.0).contains(&f))
    );
    assert!(matches!(
        good(&handle, &pasteurizer("divert_valve")),
        Some(Value::Bool(_))
    ));

    // Security worked out of the box: nothing rejected, both sources running.
    let rejected = std::fs::read_dir(pki.join("rejected")).unwrap().count();
    assert_eq!(rejected, 0);
    for source in ["line2-controller", "processing-plc"] {
        assert_eq!(source_health(&handle, source).0, "Running");
    }
    let names: BTreeSet<String> = std::fs::read_dir(pki.join("trusted"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "only the simulator is trusted: {names:?}");
    engine.shutdown().await;
    simulator.stopped().await;
    modbus.abort();
}

/// async-opcua's server (the simulator's) takes at most 1000 monitored items per
/// subscription without stating it: the source learns the cap from the refusal and
/// spreads 2500 items over more subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstated_subscription_cap_is_learned_and_every_item_subscribed() {
    const ITEMS: usize = 2500;
    let dir = tempfile::tempdir().unwrap();
    let pki = backplane_opcua::pki::default_pki_dir(dir.path());
    let (addr, simulator) = backplane_opcua::spawn_simulator("127.0.0.1:0".parse().unwrap(), &pki, ITEMS)
        .await
        .unwrap();
    let mut config = String::from(
        "[namespace]\nenterprise = \"acme\"\nsite = \"lab\"\n[[assets]]\npath = \"area\"\nlevel = \"area\"\n\
         [[assets]]\npath = \"area/line\"\nlevel = \"line\"\n[models.Bank.attributes]\n",
    );
    for a in 0..100 {
        config.push_str(&format!("v{a:03} = {{ type = \"uint\" }}\n"));
    }
    for b in 0..ITEMS / 100 {
        config.push_str(&format!(
            "[[assets]]\npath = \"area/line/bank-{b:02}\"\nmodel = \"Bank\"\nsource = \"sim\"\n"
        ));
        for a in 0..100 {
            config.push_str(&format!(
                "bindings.v{a:03} = {{ address = \"ns=2;s=Load.{:05}\" }}\n",
                b * 100 + a
            ));
        }
    }
    config.push_str(&format!(
        "[[sources]]\nname = \"sim\"\nkind = \"opcua\"\nurl = \"opc.tcp://127.0.0.1:{}\"\nperiod = \"200ms\"\n",
        addr.port()
    ));
    let engine = common::start_engine(&config, dir.path());
    let handle = engine.handle();
    eventually("all items good", 120, || {
        (0..ITEMS / 100)
            .all(|b| {
                (0..100).all(|a| good(&handle, &format!("acme/lab/area/line/bank-{b:02}/v{a:03}")).is_some())
            })
            .then_some(())
    })
    .await;
    assert_eq!(source_health(&handle, "sim").0, "Running");
    engine.shutdown().await;
    simulator.stopped().await;
}
