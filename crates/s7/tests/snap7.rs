//! The `s7` source against a real third-party S7 server: python-snap7's (pure Python since
//! 3.x; tests/peers/s7_server.py lays out DB1 with every supported type at known offsets).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_engine::{Engine, EngineHandle, MachineWrite, Services, WriteStatus};
use backplane_model::{BadReason, Quality, Timestamp, Value};
use backplane_s7::plan::{Limits, Span, plan_reads};
use backplane_s7::{Address, Poller, S7Kind};
use backplane_security::{AuditTrail, AuthMethod, Identity, MemoryRecorder, Role};
use backplane_testkit::engine as support;
use common::{Peer, addresses, settings};

const PROBE: &str = "acme/lab/area/probe";

/// Every type at its offset in the server's DB1 (and M, I, Q, T, C), with the value the
/// model should hold.
fn every_type() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let ts = |t: &str| Value::Timestamp(Timestamp::parse_rfc3339(t).unwrap());
    vec![
        ("bit0", "bool", "DB1.DBX0.0", Value::Bool(false)),
        ("bit1", "bool", "DB1.DBX0.1", Value::Bool(true)),
        ("bit3", "bool", "DB1.DBX0.3", Value::Bool(true)),
        ("byte", "uint", "DB1.DBB1", Value::UInt(0xAB)),
        ("int", "int", "DB1.DBW2:int", Value::Int(-1234)),
        ("word", "uint", "DB1.DBW4", Value::UInt(0xBEEF)),
        ("dint", "int", "DB1.DBD6:dint", Value::Int(-123_456)),
        ("dword", "uint", "DB1.DBD10", Value::UInt(0xDEAD_BEEF)),
        ("real", "float", "DB1.DBD14:real", Value::Float(23.5)),
        ("lreal", "float", "DB1.DBB18:lreal", Value::Float(-1.25e10)),
        ("sint", "int", "DB1.DBB26:sint", Value::Int(-5)),
        ("usint", "uint", "DB1.DBB27:usint", Value::UInt(200)),
        ("uint", "uint", "DB1.DBW28:uint", Value::UInt(60_000)),
        ("udint", "uint", "DB1.DBD30:udint", Value::UInt(4_000_000_000)),
        (
            "lint",
            "int",
            "DB1.DBB34:lint",
            Value::Int(-9_000_000_000_000_000),
        ),
        (
            "ulint",
            "uint",
            "DB1.DBB42:ulint",
            Value::UInt(18_000_000_000_000_000_000),
        ),
        ("char", "string", "DB1.DBB50:char", Value::String("Z".into())),
        (
            "text",
            "string",
            "DB1.DBB52:string[20]",
            Value::String("Tank A".into()),
        ),
        ("date", "timestamp", "DB1.DBW74:date", ts("2024-03-01T00:00:00Z")),
        ("tod", "uint", "DB1.DBD80:tod", Value::UInt(49_530_250)),
        ("dt", "timestamp", "DB1.DBB84:dt", ts("2024-03-01T13:45:30.123Z")),
        ("dtl", "timestamp", "DB1.DBB92:dtl", ts("2024-03-01T13:45:30.5Z")),
        ("s5time", "uint", "DB1.DBW104:s5time", Value::UInt(123_000)),
        ("marker", "bool", "M0.1", Value::Bool(true)),
        ("mw20", "int", "MW20:int", Value::Int(-7)),
        ("input", "bool", "I0.1", Value::Bool(true)),
        ("output", "uint", "QB4", Value::UInt(0x5A)),
        ("timer", "uint", "T3", Value::UInt(25_000)),
        ("counter", "uint", "C2", Value::UInt(123)),
    ]
}

/// A plant whose probe asset binds every type, plus two with transforms: a TIME in
/// seconds and an INT level scaled 0..27648 → 0..100 %.
fn config(url: &str, writes: bool) -> String {
    let mut attributes = String::new();
    let mut bindings = String::new();
    for (name, ty, address, _) in every_type() {
        attributes.push_str(&format!("{name} = {{ type = \"{ty}\" }}\n"));
        bindings.push_str(&format!("bindings.{name} = {{ address = \"{address}\" }}\n"));
    }
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "lab"

[models.Probe.attributes]
{attributes}duration = {{ type = "float", unit = "s" }}
level = {{ type = "float", unit = "%", range = [0, 100] }}
setpoint = {{ type = "float", unit = "degC", range = [0, 100] }}

[models.Probe.writes.setpoint]
role = "operator"

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/probe"
model = "Probe"
source = "plc"
{bindings}bindings.duration = {{ address = "DB1.DBD76:time", scale = {{ gain = 0.001 }} }}
bindings.level = {{ address = "DB1.DBW106:int", scale = {{ raw = [0, 27648], eng = [0, 100] }} }}
bindings.setpoint = {{ address = "DB2.DBD8:real" }}

[[sources]]
name = "plc"
kind = "s7"
url = "{url}"
period = "100ms"
timeout = "500ms"
writes = {writes}
"#
    )
}

struct Rig {
    _dir: tempfile::TempDir,
    engine: Engine,
    handle: EngineHandle,
}

impl Rig {
    fn start(peer: &Peer, writes: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = backplane_engine::builtins();
        registry.add_source("s7", S7Kind);
        let mut options = support::backoff(Duration::from_millis(100), Duration::from_millis(500));
        let trail = Arc::new(MemoryRecorder::default());
        options.services = Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(trail)));
        let engine = support::start_with(&config(&peer.url(), writes), dir.path(), &registry, options);
        let handle = engine.handle();
        Rig {
            _dir: dir,
            engine,
            handle,
        }
    }

    /// The attribute's latest sample matching `check`, waiting for it.
    async fn wait(
        &self,
        attribute: &str,
        what: &str,
        check: impl Fn(&Quality, Option<&Value>) -> bool,
    ) -> Option<Value> {
        let path = format!("{PROBE}/{attribute}");
        support::eventually_every(
            &format!("{path} {what}"),
            Duration::from_secs(30),
            Duration::from_millis(20),
            || {
                let l = support::latest(&self.handle, &path)?;
                check(&l.sample.quality, l.sample.value.as_ref()).then_some(l.sample.value)
            },
        )
        .await
    }

    async fn good(&self, attribute: &str) -> Value {
        self.wait(attribute, "good", |q, _| q.is_good()).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_type_decodes_to_its_engineering_value_through_the_model() {
    let peer = Peer::start();
    let rig = Rig::start(&peer, false);
    for (name, _, address, expected) in every_type() {
        assert_eq!(rig.good(name).await, expected, "{name} at {address}");
    }
    // TIME -90000 ms at gain 0.001; INT 13824 of 27648 is half full.
    assert_eq!(rig.good("duration").await, Value::Float(-90.0));
    assert_eq!(rig.good("level").await, Value::Float(50.0));
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_turns_values_bad_and_a_restarted_one_good_again() {
    let mut peer = Peer::start();
    let rig = Rig::start(&peer, false);
    assert_eq!(rig.good("real").await, Value::Float(23.5));
    assert_eq!(peer.command("stop"), "STOPPED");
    rig.wait("real", "bad", |q, _| !q.is_good()).await;
    assert_eq!(peer.command("set DB1 14 41c80000"), "OK"); // 25.0
    assert_eq!(peer.command("start"), "STARTED");
    rig.wait("real", "good and new", |q, v| {
        q.is_good() && v == Some(&Value::Float(25.0))
    })
    .await;
    rig.engine.shutdown().await;
}

fn operator() -> Identity {
    Identity::new("olga", Role::Operator, AuthMethod::Password)
}

async fn write(rig: &Rig, value: Value) -> backplane_engine::WriteReport {
    rig.handle
        .write(MachineWrite {
            tag: format!("{PROBE}/setpoint"),
            value,
            dry_run: false,
            who: operator(),
            from: "test".into(),
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_unless_enabled_then_written_and_read_back() {
    let mut peer = Peer::start();
    let rig = Rig::start(&peer, false);
    assert_eq!(rig.good("setpoint").await, Value::Float(0.0));
    let report = write(&rig, Value::Float(71.5)).await;
    match &report.status {
        WriteStatus::Failed { reason, .. } => assert!(reason.contains("writes are disabled"), "{reason}"),
        other => panic!("expected the source to refuse, got {other:?}"),
    }
    assert_eq!(
        peer.command("get DB2 8 4"),
        "00000000",
        "nothing reached the server"
    );
    rig.engine.shutdown().await;

    let rig = Rig::start(&peer, true);
    assert_eq!(rig.good("setpoint").await, Value::Float(0.0));
    let report = write(&rig, Value::Float(71.5)).await;
    assert_eq!(report.status, WriteStatus::Done, "{report:?}");
    assert_eq!(report.read_back, Some(Value::Float(71.5)));
    assert_eq!(
        peer.command("get DB2 8 4"),
        "428f0000",
        "71.5 as a big-endian REAL"
    );
    rig.wait("setpoint", "the written value", |q, v| {
        q.is_good() && v == Some(&Value::Float(71.5))
    })
    .await;
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_area_the_server_refuses_makes_only_its_tags_bad() {
    let peer = Peer::start();
    let list = [
        "DB1.DBW2:int",
        "DB99.DBW0",
        "DB2.DBW100",
        "MW20:int",
        "DB1.DBD14:real",
    ];
    let mut poller = Poller::new("plc", settings(&peer.url(), ""), &addresses(&list)).unwrap();
    let mut conn = poller.connect().await.unwrap();
    assert_eq!(poller.requests(), 1, "one request, each area its own variable");
    let mut readings = poller.poll(&mut conn).await.unwrap();
    readings.sort_by_key(|r| r.address);
    let got: Vec<(Quality, Option<Value>)> = readings.into_iter().map(|r| (r.quality, r.value)).collect();
    assert_eq!(
        got,
        [
            (Quality::Good, Some(Value::Int(-1234))),
            // No DB99: "object does not exist"; DB2 has 64 bytes: "address out of range".
            (Quality::Bad(BadReason::ConfigError), None),
            (Quality::Bad(BadReason::ConfigError), None),
            (Quality::Good, Some(Value::Int(-7))),
            (Quality::Good, Some(Value::Float(23.5))),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdu_sizes_are_negotiated_and_each_cycle_sends_the_planned_requests() {
    let mut peer = Peer::start();
    // 500 DINTs: all 2000 bytes of DB3 (byte i holds i % 251).
    let list: Vec<String> = (0..500).map(|i| format!("DB3.DBD{}:udint", i * 4)).collect();
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    // python-snap7 grants at most 480.
    for (asked, granted, requests) in [(240u16, 240u16, 10usize), (480, 480, 5), (960, 480, 5)] {
        let mut poller = Poller::new(
            "plc",
            settings(&peer.url(), &format!("pdu_size = {asked}\n")),
            &addresses(&list),
        )
        .unwrap();
        let mut conn = poller.connect().await.unwrap();
        assert_eq!(conn.pdu(), granted);
        // What the planner (and its property test) says for the granted PDU: 55 DINTs per
        // answer at 240 (222 data bytes), 115 at 480 (462).
        let spans: Vec<Span> = list
            .iter()
            .map(|a| Span::from(&Address::parse(a).unwrap()))
            .collect();
        let planned = plan_reads(
            &spans,
            Limits {
                pdu: granted,
                max_gap: 16,
                max_items: 20,
            },
        );
        assert_eq!((poller.requests(), planned.requests.len()), (requests, requests));
        for _ in 0..2 {
            let before = peer.reads();
            let readings = poller.poll(&mut conn).await.unwrap();
            assert_eq!(
                peer.reads() - before,
                requests as u64,
                "requests per cycle at PDU {granted}"
            );
            assert_eq!(readings.len(), 500);
            for r in &readings {
                assert_eq!(r.quality, Quality::Good);
                let b = |k: u32| (r.address * 4 + k) % 251;
                let expected = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
                assert_eq!(
                    r.value,
                    Some(Value::UInt(u64::from(expected))),
                    "DB3.DBD{}",
                    r.address * 4
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_shows_candidate_decodings_and_where_a_db_ends() {
    let mut peer = Peer::start();
    assert_eq!(peer.command("set DB2 0 41bc0000"), "OK"); // 23.5 as REAL
    let settings = settings(&peer.url(), "pdu_size = 240\n");
    let emit = vec!["DB2.DBD0:real".to_owned()];
    let report = backplane_s7::browse::browse((*settings).clone(), backplane_s7::Area::Db(2), 0, 299, emit)
        .await
        .unwrap();
    // DB2 holds 64 bytes: the rest is refused, isolated by halving chunks of 222 bytes.
    assert_eq!(report.bytes.len(), 64);
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert_eq!((report.refused[0].0, report.refused[0].1), (64, 299));
    assert!(
        report.refused[0].2.contains("address out of range"),
        "{}",
        report.refused[0].2
    );
    let signals = report.signals();
    assert_eq!(signals.len(), 32);
    assert_eq!(signals[0].decodings[0].label, "real");
    assert_eq!(signals[0].decodings[0].value, "23.5");
    assert!(
        report
            .toml()
            .unwrap()
            .contains(r#"bindings.db2_dbd0_real = { address = "DB2.DBD0:real" }   # now 23.5"#)
    );
    // DB1's STRING[20] "Tank A" at byte 52 is recognised as one.
    let report =
        backplane_s7::browse::browse((*settings).clone(), backplane_s7::Area::Db(1), 48, 79, Vec::new())
            .await
            .unwrap();
    let text = report
        .signals()
        .into_iter()
        .find(|s| s.address == "DB1.DBW52")
        .unwrap();
    assert_eq!(
        (text.decodings[0].label.as_str(), text.decodings[0].value.as_str()),
        ("string[20]", "\"Tank A\"")
    );
}
