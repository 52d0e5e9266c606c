//! The `opcua` source against asyncua (Python), a server nobody on this team wrote, through
//! the real pipeline (config → engine → transforms → latest-value cache): built-in types
//! and arrays, timestamps and status codes, structures, polling, operation limits, and a
//! server that stops and comes back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use backplane_model::{BadReason, Quality, Timestamp, UncertainReason, Value};
use backplane_testkit::engine::latest;
use backplane_testkit::fixtures::LabProbe;
use backplane_testkit::net::free_port;
use common::{Peer, eventually, source_health, start_engine};

const PREFIX: &str = "acme/lab/area/line";

/// Every built-in type, array, status and structure the peer serves, one attribute each.
const TYPES_ATTRIBUTES: &str = r#"
boolean = { type = "bool" }
sbyte = { type = "int" }
byte = { type = "uint" }
int16 = { type = "int" }
uint16 = { type = "uint" }
int32 = { type = "int" }
uint32 = { type = "uint" }
int64 = { type = "int" }
uint64 = { type = "uint" }
float = { type = "float" }
double = { type = "float" }
string = { type = "string" }
datetime = { type = "timestamp" }
guid = { type = "string" }
bytes = { type = "uint[]" }
text = { type = "string" }
ints = { type = "int[]" }
doubles = { type = "float[]" }
strings = { type = "string[]" }
bools = { type = "bool[]" }
counter = { type = "uint" }
polled_counter = { type = "uint" }
uncertain = { type = "float" }
failed = { type = "float" }
motor_current = { type = "float" }
unknown_structure = { type = "float" }
missing = { type = "float" }
by_uri = { type = "float" }
"#;

/// Where the peer (tests/peers/opcua_server.py) serves them.
const TYPES_BINDINGS: &str = r#"
bindings.boolean = { address = "ns=2;s=Types.Boolean" }
bindings.sbyte = { address = "ns=2;s=Types.SByte" }
bindings.byte = { address = "ns=2;s=Types.Byte" }
bindings.int16 = { address = "ns=2;s=Types.Int16" }
bindings.uint16 = { address = "ns=2;s=Types.UInt16" }
bindings.int32 = { address = "ns=2;s=Types.Int32" }
bindings.uint32 = { address = "ns=2;s=Types.UInt32" }
bindings.int64 = { address = "ns=2;s=Types.Int64" }
bindings.uint64 = { address = "ns=2;s=Types.UInt64" }
bindings.float = { address = "ns=2;s=Types.Float" }
bindings.double = { address = "ns=2;s=Types.Double" }
bindings.string = { address = "ns=2;s=Types.String" }
bindings.datetime = { address = "ns=2;s=Types.DateTime" }
bindings.guid = { address = "ns=2;s=Types.Guid" }
bindings.bytes = { address = "ns=2;s=Types.ByteString" }
bindings.text = { address = "ns=2;s=Types.LocalizedText" }
bindings.ints = { address = "ns=2;s=Arrays.Int32" }
bindings.doubles = { address = "ns=2;s=Arrays.Double" }
bindings.strings = { address = "ns=2;s=Arrays.String" }
bindings.bools = { address = "ns=2;s=Arrays.Boolean" }
bindings.counter = { address = "ns=2;s=Counter" }
bindings.polled_counter = { address = "group=slow;ns=2;s=Counter" }
bindings.uncertain = { address = "ns=2;s=Status.Uncertain" }
bindings.failed = { address = "ns=2;s=Status.Bad" }
bindings.motor_current = { address = "field=Current;ns=2;s=Struct.Motor" }
bindings.unknown_structure = { address = "ns=2;s=Struct.Unknown" }
bindings.missing = { address = "ns=2;s=No.Such.Node" }
bindings.by_uri = { address = "nsu=urn:backplane:test;s=Types.Double" }
"#;

fn types_config(port: u16) -> String {
    LabProbe {
        attributes: TYPES_ATTRIBUTES,
        bindings: TYPES_BINDINGS,
        source: "peer",
        settings: &format!(
            r#"kind = "opcua"
url = "opc.tcp://127.0.0.1:{port}"
security_policy = "None"
period = "100ms"
[sources.groups.slow]
mode = "poll"
period = "300ms"
"#
        ),
    }
    .toml()
}

fn value(handle: &backplane_engine::EngineHandle, attribute: &str) -> Option<(Option<Value>, Quality)> {
    latest(handle, &format!("{PREFIX}/probe/{attribute}")).map(|l| (l.sample.value, l.sample.quality))
}

fn good(handle: &backplane_engine::EngineHandle, attribute: &str) -> Option<Value> {
    match value(handle, attribute)? {
        (Some(v), Quality::Good) => Some(v),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_deliver_built_in_types_arrays_timestamps_and_quality() {
    let port = free_port();
    let _peer = Peer::start(port, &[]);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&types_config(port), dir.path());
    let handle = engine.handle();

    let expected: Vec<(&str, Value)> = vec![
        ("boolean", Value::Bool(true)),
        ("sbyte", Value::Int(-8)),
        ("byte", Value::UInt(200)),
        ("int16", Value::Int(-1234)),
        ("uint16", Value::UInt(65000)),
        ("int32", Value::Int(-70000)),
        ("uint32", Value::UInt(4_000_000_000)),
        ("int64", Value::Int(-5_000_000_000_000_000)),
        ("uint64", Value::UInt(18_000_000_000_000_000_000)),
        ("float", Value::Float(1.5)),
        ("double", Value::Float(3.25)),
        ("string", Value::String("Kühlraum 3".into())),
        (
            "datetime",
            Value::Timestamp(Timestamp::parse_rfc3339("2026-01-02T03:04:05.678Z").unwrap()),
        ),
        (
            "guid",
            Value::String("72962b91-fa75-4ae6-8d28-b404dc7daf63".into()),
        ),
        (
            "bytes",
            Value::Array(vec![Value::UInt(1), Value::UInt(2), Value::UInt(255)].into()),
        ),
        ("text", Value::String("läuft".into())),
        (
            "ints",
            Value::Array(vec![Value::Int(1), Value::Int(-2), Value::Int(3)].into()),
        ),
        (
            "doubles",
            Value::Array(vec![Value::Float(0.5), Value::Float(1.5)].into()),
        ),
        (
            "strings",
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())].into()),
        ),
        (
            "bools",
            Value::Array(vec![Value::Bool(true), Value::Bool(false)].into()),
        ),
        ("by_uri", Value::Float(3.25)),
    ];
    for (attribute, want) in &expected {
        let got = eventually(&format!("{attribute} turns good"), 60, || {
            good(&handle, attribute)
        })
        .await;
        assert_eq!(&got, want, "{attribute}");
    }

    // The counter changes every 100 ms: notifications keep coming, with the server's
    // source timestamps, which advance.
    let first = eventually("counter", 30, || {
        latest(&handle, &format!("{PREFIX}/probe/counter")).filter(|l| l.sample.quality.is_good())
    })
    .await;
    let later = eventually("the counter moves on", 30, || {
        latest(&handle, &format!("{PREFIX}/probe/counter")).filter(|l| {
            l.sample.value.as_ref().and_then(Value::as_u64)
                > first.sample.value.as_ref().and_then(Value::as_u64)
        })
    })
    .await;
    let (t0, t1) = (
        first.sample.source_time.unwrap(),
        later.sample.source_time.unwrap(),
    );
    assert!(t1 > t0, "source timestamps advance: {t0} then {t1}");
    let age = Timestamp::now().unix_nanos() - t1.unix_nanos();
    assert!(
        age.abs() < 60_000_000_000,
        "the source time is the server's clock, now-ish: {t1}"
    );
    // The polled group reads the same node on its own period.
    eventually("the polled counter", 30, || good(&handle, "polled_counter")).await;

    // Status codes become quality.
    let (_, q) = eventually("uncertain", 30, || {
        value(&handle, "uncertain").filter(|(_, q)| !q.is_good())
    })
    .await;
    assert_eq!(q, Quality::Uncertain(UncertainReason::LastUsableValue));
    let (_, q) = eventually("bad", 30, || value(&handle, "failed").filter(|(_, q)| q.is_bad())).await;
    assert_eq!(q, Quality::Bad(BadReason::SensorFailure));

    // A field of a server-defined structure, decoded after loading the server's types.
    let current = eventually("the motor current", 60, || good(&handle, "motor_current")).await;
    assert_eq!(current, Value::Float(12.5));

    // Per-tag errors leave the rest of the connection alone.
    let (_, q) = eventually("unknown structure is bad", 30, || {
        value(&handle, "unknown_structure").filter(|(_, q)| q.is_bad())
    })
    .await;
    assert_eq!(q, Quality::Bad(BadReason::TypeMismatch));
    let (_, q) = eventually("a missing node is bad", 30, || {
        value(&handle, "missing").filter(|(_, q)| q.is_bad())
    })
    .await;
    assert_eq!(q, Quality::Bad(BadReason::ConfigError));
    let (state, _) = source_health(&handle, "peer");
    assert_eq!(state, "Running");
    assert!(good(&handle, "double").is_some());
    engine.shutdown().await;
}

/// 5,000 variables on a server that takes at most 100 items per CreateMonitoredItems call,
/// 250 nodes per Read and 1,000 items per subscription, and refuses anything larger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_operation_limits_still_subscribe_five_thousand_items() {
    const ASSETS: usize = 50;
    const PER_ASSET: usize = 100;
    let port = free_port();
    let mut peer = Peer::start(
        port,
        &[
            "--many".into(),
            "5000".into(),
            "--limits".into(),
            "100,250,1000,20".into(),
        ],
    );
    let mut config = String::from(
        "[namespace]\nenterprise = \"acme\"\nsite = \"lab\"\n[[assets]]\npath = \"area\"\nlevel = \"area\"\n\
         [[assets]]\npath = \"area/line\"\nlevel = \"line\"\n[models.Bank.attributes]\n",
    );
    for a in 0..PER_ASSET {
        config.push_str(&format!("v{a:03} = {{ type = \"float\" }}\n"));
    }
    for b in 0..ASSETS {
        config.push_str(&format!(
            "[[assets]]\npath = \"area/line/bank-{b:02}\"\nmodel = \"Bank\"\nsource = \"peer\"\n"
        ));
        for a in 0..PER_ASSET {
            let i = b * PER_ASSET + a;
            config.push_str(&format!(
                "bindings.v{a:03} = {{ address = \"ns=2;s=Many.{i:05}\" }}\n"
            ));
        }
    }
    config.push_str(&format!(
        "[[sources]]\nname = \"peer\"\nkind = \"opcua\"\nurl = \"opc.tcp://127.0.0.1:{port}\"\n\
         security_policy = \"None\"\nperiod = \"200ms\"\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config, dir.path());
    let handle = engine.handle();
    let all_good = || {
        (0..ASSETS).all(|b| {
            (0..PER_ASSET).all(|a| {
                latest(&handle, &format!("{PREFIX}/bank-{b:02}/v{a:03}")).is_some_and(|l| {
                    l.sample.quality.is_good()
                        && l.sample.value == Some(Value::Float((b * PER_ASSET + a) as f64))
                })
            })
        })
    };
    eventually("all 5000 items good with their values", 120, || {
        all_good().then_some(())
    })
    .await;
    let stats = peer.stats();
    assert_eq!(stats["refused"], 0, "no call above the limits: {stats}");
    assert!(stats["max_create_items"].as_u64().unwrap() <= 100, "{stats}");
    assert!(stats["max_read"].as_u64().unwrap() <= 250, "{stats}");
    // 5000 items in calls of 100.
    assert!(stats["create_calls"].as_u64().unwrap() >= 50, "{stats}");
    assert_eq!(stats["sessions_created"], 1, "{stats}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_turns_values_bad_then_good_with_one_session() {
    let port = free_port();
    let mut peer = Peer::start(port, &[]);
    let config = types_config(port);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config, dir.path());
    let handle = engine.handle();
    eventually("double good", 60, || good(&handle, "double")).await;
    assert_eq!(peer.stats()["sessions_created"], 1);

    peer.stop();
    let (_, q) = eventually("values turn bad", 30, || {
        value(&handle, "double").filter(|(_, q)| q.is_bad())
    })
    .await;
    assert_eq!(q, Quality::Bad(BadReason::CommFailure));
    let (state, error) = source_health(&handle, "peer");
    assert_eq!(state, "Degraded", "{error:?}");
    // Let a few reconnect attempts fail while the server is away.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut peer = Peer::start(port, &[]);
    eventually("double good again", 90, || good(&handle, "double")).await;
    // Subscriptions were restored: the counter moves again.
    let before = eventually("counter good", 30, || good(&handle, "counter")).await;
    eventually("the counter moves after the restart", 30, || {
        good(&handle, "counter").filter(|v| v.as_u64() > before.as_u64())
    })
    .await;
    // Give a flood time to show, then count: one session on the new server.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = peer.stats();
    assert_eq!(stats["sessions_created"], 1, "{stats}");
    assert_eq!(stats["active_sessions"], 1, "{stats}");
    assert_eq!(source_health(&handle, "peer").0, "Running");
    engine.shutdown().await;
    // Shutdown closes the session on the server.
    eventually("the session is closed", 10, || {
        (peer.stats()["active_sessions"] == 0).then_some(())
    })
    .await;
}
