//! The `ethernetip` source against cpppo's EtherNet/IP server (a Logix-style CIP server
//! nobody on this team wrote), through the real pipeline (config → engine → transforms →
//! latest-value cache). Values are set with cpppo's own client, so our decoder is checked
//! against an independent encoder.
//!
//! cpppo 5.2.5 answers RegisterSession, Forward Open and Large Forward Open, SendRRData
//! (with and without Unconnected Send), SendUnitData, Multiple Service Packets, Read Tag
//! and Write Tag, and resolves dotted names (`Pallet.Count`) as one tag. It has no Symbol
//! object (no tag list) and never refuses Forward Open: the tag list and the unconnected
//! fallback after a refused Forward Open are tested against our simulator
//! (tests/fallbacks.rs), the tag list's absence here (browse).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;

use backplane_connector::Options;
use backplane_ethernetip::client::Mode;
use backplane_ethernetip::plan::{Footprint, Limits, plan_packets, reply_estimate};
use backplane_ethernetip::{CipType, EnipSettings, Poller};
use backplane_model::{BadReason, Quality, Value};
use backplane_testkit::fixtures::LabProbe;
use common::{Cpppo, eventually, good, latest, start_engine, write};

const TAGS: &[&str] = &[
    "Speed=REAL",
    "Count=DINT[10]",
    "Temp=INT",
    "Small=SINT",
    "Byte=USINT",
    "Word=UINT",
    "Double=UDINT",
    "Big=LINT",
    "Huge=ULINT",
    "Ratio=LREAL",
    "Running=BOOL",
    "Name=SSTRING",
    "Text=STRING",
    "Pallet.Count=DINT",
    "Setpoint=REAL",
];

fn config(port: u16, writes: bool, extra_bindings: &str) -> String {
    let attributes = r#"
speed = { type = "float", unit = "bottle/min" }
count = { type = "int[]" }
count3 = { type = "int" }
temperature = { type = "float", unit = "degC" }
small = { type = "int" }
byte = { type = "uint" }
word = { type = "uint" }
double = { type = "uint" }
big = { type = "int" }
huge = { type = "uint" }
ratio = { type = "float" }
running = { type = "bool" }
name = { type = "string" }
text = { type = "string" }
pallets = { type = "uint" }
setpoint = { type = "float", range = [0, 1000] }
missing = { type = "int" }
"#;
    let bindings = format!(
        r#"
bindings.speed = {{ address = "Speed", scale = {{ gain = 0.1 }} }}
bindings.count = {{ address = "Count[0]{{4}}" }}
bindings.count3 = {{ address = "Count[3]" }}
bindings.temperature = {{ address = "Temp", scale = {{ gain = 0.1 }}, unit = "degF" }}
bindings.small = {{ address = "Small" }}
bindings.byte = {{ address = "Byte" }}
bindings.word = {{ address = "Word" }}
bindings.double = {{ address = "Double" }}
bindings.big = {{ address = "Big" }}
bindings.huge = {{ address = "Huge" }}
bindings.ratio = {{ address = "Ratio" }}
bindings.running = {{ address = "Running" }}
bindings.name = {{ address = "Name" }}
bindings.text = {{ address = "Text" }}
bindings.pallets = {{ address = "Pallet.Count" }}
bindings.setpoint = {{ address = "Setpoint" }}
{extra_bindings}"#
    );
    LabProbe {
        attributes,
        bindings: &bindings,
        source: "peer",
        settings: &format!(
            r#"kind = "ethernetip"
url = "enip://127.0.0.1:{port}"
period = "100ms"
timeout = "500ms"
retries = 0
writes = {writes}

[models.Probe.writes]
setpoint = {{}}
"#
        ),
    }
    .toml()
}

fn seed(peer: &Cpppo) {
    peer.client(&[
        "Speed=(REAL)4045",
        "Count[0-3]=(DINT)7,-2,300000,41",
        "Temp=(INT)-395",
        "Small=(SINT)-100",
        "Byte=(USINT)200",
        "Word=(UINT)65000",
        "Double=(UDINT)4000000000",
        "Big=(LINT)-9000000000",
        "Huge=(ULINT)18000000000000000000",
        "Ratio=(LREAL)0.1",
        "Running=(BOOL)1",
        "Name=(SSTRING)PAL-7",
        "Text=(STRING)hello",
        "Pallet.Count=(DINT)12",
        "Setpoint=(REAL)250",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_array_string_and_member_tags_decode_to_engineering_values() {
    let peer = Cpppo::start(0, TAGS);
    seed(&peer);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(peer.port, false, ""), dir.path());
    let handle = engine.handle();
    eventually("a first reading", || good(&handle, "text")).await;
    let expect = [
        ("speed", Value::Float(404.5)),
        ("count3", Value::Int(41)),
        ("small", Value::Int(-100)),
        ("byte", Value::UInt(200)),
        ("word", Value::UInt(65000)),
        ("double", Value::UInt(4_000_000_000)),
        ("big", Value::Int(-9_000_000_000)),
        ("huge", Value::UInt(18_000_000_000_000_000_000)),
        ("ratio", Value::Float(0.1)),
        ("running", Value::Bool(true)),
        ("name", Value::String("PAL-7".into())),
        ("text", Value::String("hello".into())),
        ("pallets", Value::UInt(12)),
    ];
    for (attribute, value) in expect {
        assert_eq!(good(&handle, attribute), Some(value), "{attribute}");
    }
    assert_eq!(
        good(&handle, "count"),
        Some(Value::Array(
            vec![Value::Int(7), Value::Int(-2), Value::Int(300_000), Value::Int(41)].into()
        ))
    );
    // -39.5 °F in °C.
    match good(&handle, "temperature") {
        Some(Value::Float(c)) => assert!((c - (-39.5 - 32.0) / 1.8).abs() < 1e-9, "{c}"),
        other => panic!("temperature: {other:?}"),
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_unless_enabled_then_written_and_read_back() {
    let peer = Cpppo::start(0, TAGS);
    seed(&peer);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(peer.port, false, ""), dir.path());
    let handle = engine.handle();
    eventually("a first reading", || good(&handle, "setpoint")).await;
    let e = write(&handle, "setpoint", Value::Float(300.0)).await.unwrap_err();
    assert!(e.contains("writes = true"), "{e}");
    assert!(
        peer.client(&["Setpoint"]).contains("[250.0]"),
        "nothing was written"
    );
    engine.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(peer.port, true, ""), dir.path());
    let handle = engine.handle();
    eventually("a first reading", || good(&handle, "setpoint")).await;
    let read_back = write(&handle, "setpoint", Value::Float(312.5)).await.unwrap();
    assert_eq!(read_back, Some(Value::Float(312.5)));
    // cpppo's own client sees the new value.
    let seen = peer.client(&["Setpoint"]);
    assert!(seen.contains("[312.5]"), "{seen}");
    eventually("the new value in the cache", || {
        good(&handle, "setpoint").filter(|v| *v == Value::Float(312.5))
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_go_bad_when_the_server_stops_and_good_when_it_returns() {
    let mut peer = Cpppo::start(0, TAGS);
    seed(&peer);
    let port = peer.port;
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(port, false, ""), dir.path());
    let handle = engine.handle();
    eventually("a good value", || good(&handle, "pallets")).await;

    peer.stop();
    let bad = eventually("values to turn bad", || {
        latest(&handle, "pallets").filter(|l| l.sample.quality == Quality::Bad(BadReason::CommFailure))
    })
    .await;
    assert_eq!(
        bad.sample.value,
        Some(Value::UInt(12)),
        "the last value is kept, marked bad"
    );
    let since = bad.sample.gateway_time;

    let peer = Cpppo::start(port, TAGS);
    peer.client(&["Pallet.Count=(DINT)13"]);
    let back = eventually("good values again", || {
        latest(&handle, "pallets").filter(|l| l.sample.quality.is_good() && l.sample.gateway_time > since)
    })
    .await;
    assert!(matches!(
        back.sample.value,
        Some(Value::UInt(12 | 13)) | Some(Value::UInt(0))
    ));
    eventually("the new count", || {
        good(&handle, "pallets").filter(|v| *v == Value::UInt(13))
    })
    .await;
    let health = handle.health();
    let source = health.components.iter().find(|c| c.name == "peer").unwrap();
    assert!(source.restarts >= 1, "the supervisor reconnected the source");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tag_is_bad_alone_while_its_packet_neighbours_stay_good() {
    let peer = Cpppo::start(0, TAGS);
    seed(&peer);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        &config(
            peer.port,
            false,
            "bindings.missing = { address = \"NoSuchTag\" }\n",
        ),
        dir.path(),
    );
    let handle = engine.handle();
    let missing = eventually("the unknown tag's reading", || latest(&handle, "missing")).await;
    assert_eq!(missing.sample.quality, Quality::Bad(BadReason::ConfigError));
    // Read in the same Multiple Service Packet, and still good, cycle after cycle.
    for _ in 0..3 {
        let since = latest(&handle, "speed").unwrap().sample.gateway_time;
        let speed = eventually("a fresh speed", || {
            latest(&handle, "speed").filter(|l| l.sample.gateway_time > since)
        })
        .await;
        assert!(speed.sample.quality.is_good());
        assert_eq!(good(&handle, "pallets"), Some(Value::UInt(12)));
        assert_eq!(
            latest(&handle, "missing").unwrap().sample.quality,
            Quality::Bad(BadReason::ConfigError)
        );
    }
    engine.shutdown().await;
}

fn settings(port: u16, messaging: &str, connection_size: u16) -> Arc<EnipSettings> {
    common::settings(&format!(
        "url = \"enip://127.0.0.1:{port}\"\ntimeout = \"2s\"\nmessaging = \"{messaging}\"\nconnection_size = {connection_size}\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_per_cycle_are_the_planners_over_connected_and_unconnected_messaging() {
    let peer = Cpppo::start(0, &["Data=DINT[300]", "Speed=REAL"]);
    let mut addresses: Vec<Arc<str>> = (0..300).map(|i| Arc::from(format!("Data[{i}]"))).collect();
    addresses.push(Arc::from("Speed"));
    for (messaging, size, mode_connected) in [
        ("connected", 4002, true),
        ("connected", 504, true),
        ("unconnected", 504, false),
    ] {
        let mut poller = Poller::new("peer", settings(peer.port, messaging, size), &addresses).unwrap();
        let mut conn = poller.connect().await.unwrap();
        assert_eq!(
            matches!(conn.mode(), Mode::Connected { .. }),
            mode_connected,
            "{messaging} {size}"
        );
        assert_eq!(conn.size(), size);
        for _ in 0..2 {
            let readings = poller.poll(&mut conn).await.unwrap();
            assert_eq!(readings.len(), addresses.len());
            assert!(readings.iter().all(|r| r.quality.is_good()), "{messaging} {size}");
        }
        // The types are known now: the plan is the property-tested planner's over the
        // tags' exact sizes.
        let footprints: Vec<Footprint> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let path = backplane_ethernetip::TagPath::parse(a).unwrap();
                let ty = if i < 300 { CipType::Dint } else { CipType::Real };
                assert_eq!(poller.type_of(i), Some(ty));
                Footprint {
                    request: backplane_ethernetip::cip::read_tag_len(path.epath_len()),
                    reply: reply_estimate(Some(ty), 1),
                }
            })
            .collect();
        let limits = Limits {
            max_request: usize::from(size) - conn.request_overhead(),
            max_reply: usize::from(size),
            max_services: 200,
        };
        let expected = plan_packets(&footprints, limits).len();
        assert_eq!(poller.packets(&conn), expected, "{messaging} {size}");
        assert!(expected > 1 && expected < addresses.len() / 10, "{expected}");
        conn.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_says_cpppo_has_no_tag_list_and_reads_the_tags_it_is_given() {
    let peer = Cpppo::start(0, TAGS);
    seed(&peer);
    let mut options = Options::default();
    options.push("tag", "Speed,Count[0]{4},Pallet.Count,Text");
    let report = backplane_ethernetip::browse::browse(&format!("enip://127.0.0.1:{}", peer.port), &options)
        .await
        .unwrap();
    assert!(report.text.contains("lists no tags"), "{}", report.text);
    assert!(
        report.text.contains("service not supported") || report.text.contains("status 0x"),
        "{}",
        report.text
    );
    let speed = report.signals.iter().find(|s| s.address == "Speed").unwrap();
    assert_eq!(speed.decodings[0].attribute_type.as_deref(), Some("float"));
    assert_eq!(speed.decodings[0].value, "4045");
    assert!(
        report
            .text
            .contains("bindings.pallet_count = { address = \"Pallet.Count\" }"),
        "{}",
        report.text
    );
}
