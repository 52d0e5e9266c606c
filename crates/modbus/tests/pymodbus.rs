//! The `modbus` source against pymodbus, a server nobody on this team wrote, through the
//! real pipeline (config → engine → transforms → latest-value cache): every type and word
//! order, exceptions, writes with read-back, and a server that stops and comes back.
//!
//! The server script (tests/peers/modbus_server.py) encodes its values with Python's
//! `struct`, independently of our decoder. The interpreter comes from `BACKPLANE_PYTHON`,
//! else from `scripts/install-peers` (which creates the venv once).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use backplane_engine::EngineHandle;
use backplane_model::{BadReason, Quality, UncertainReason, Value};
use backplane_testkit::fixtures::LabProbe;
use common::Peer;
use common::probe::{eventually, good, latest, start_engine, write};

const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

/// A probe asset bound to every register of the server map.
fn config(port: u16, writes: bool) -> String {
    let mut attributes = String::from(
        r#"
u16 = { type = "uint" }
i16 = { type = "int" }
i16_raw = { type = "int" }
u64 = { type = "uint" }
i64 = { type = "int" }
bit0 = { type = "bool" }
bit1 = { type = "bool" }
bit15 = { type = "bool" }
text = { type = "string" }
text_ba = { type = "string" }
temperature = { type = "float", unit = "degC" }
speed = { type = "float", unit = "bottle/min" }
hole_left = { type = "uint" }
hole = { type = "uint" }
hole_right = { type = "uint" }
failing = { type = "uint" }
missing = { type = "uint" }
coil0 = { type = "bool" }
coil1 = { type = "bool" }
coil5 = { type = "bool" }
di7 = { type = "bool" }
ir0 = { type = "uint" }
ir_f32 = { type = "float" }
unit2 = { type = "uint" }
w_raw = { type = "uint" }
w_f32 = { type = "float" }
w_coil = { type = "bool" }
w_text = { type = "string" }
"#,
    );
    let mut bindings = String::from(
        r#"
bindings.u16 = { address = "hr:0" }
bindings.i16 = { address = "hr:1:i16" }
bindings.i16_raw = { address = "hr:1", decode = "i16" }
bindings.u64 = { address = "hr:42:u64" }
bindings.i64 = { address = "hr:46:i64:CDAB" }
bindings.bit0 = { address = "hr:50.0" }
bindings.bit1 = { address = "hr:50.1" }
bindings.bit15 = { address = "hr:50.15" }
bindings.text = { address = "hr:51:str:5" }
bindings.text_ba = { address = "hr:56:str:3:BA" }
bindings.temperature = { address = "hr:60:i16", scale = { gain = 0.1 }, unit = "degF" }
bindings.speed = { address = "hr:61", scale = { gain = 0.1 } }
bindings.hole_left = { address = "hr:70" }
bindings.hole = { address = "hr:72" }
bindings.hole_right = { address = "hr:74" }
bindings.failing = { address = "hr:100" }
bindings.missing = { address = "hr:500" }
bindings.coil0 = { address = "coil:0" }
bindings.coil1 = { address = "coil:1" }
bindings.coil5 = { address = "coil:5" }
bindings.di7 = { address = "di:7" }
bindings.ir0 = { address = "ir:0" }
bindings.ir_f32 = { address = "ir:1:f32" }
bindings.unit2 = { address = "unit=2;hr:0@slow" }
bindings.w_raw = { address = "hr:120" }
bindings.w_f32 = { address = "hr:121:f32:CDAB" }
bindings.w_coil = { address = "coil:8" }
bindings.w_text = { address = "hr:124:str:3" }
"#,
    );
    for (i, order) in ORDERS.iter().enumerate() {
        let o = order.to_lowercase();
        attributes.push_str(&format!(
            "u32_{o} = {{ type = \"uint\" }}\ni32_{o} = {{ type = \"int\" }}\nf32_{o} = {{ type = \"float\" }}\nf64_{o} = {{ type = \"float\" }}\n"
        ));
        bindings.push_str(&format!(
            "bindings.u32_{o} = {{ address = \"hr:{}:u32:{order}\" }}\nbindings.i32_{o} = {{ address = \"hr:{}:i32:{order}\" }}\nbindings.f32_{o} = {{ address = \"hr:{}:f32:{order}\" }}\nbindings.f64_{o} = {{ address = \"hr:{}:f64:{order}\" }}\n",
            2 + 2 * i,
            10 + 2 * i,
            18 + 2 * i,
            26 + 4 * i
        ));
    }
    LabProbe {
        attributes: &attributes,
        bindings: &bindings,
        source: "peer",
        settings: &format!(
            r#"kind = "modbus"
url = "tcp://127.0.0.1:{port}"
unit = 1
address_base = 0
period = "100ms"
timeout = "300ms"
retries = 0
writes = {writes}
[sources.poll.slow]
period = "300ms"

[models.Probe.writes]
w_raw = {{ verify = true }}
w_f32 = {{}}
w_coil = {{}}
w_text = {{}}
ir0 = {{}}
missing = {{}}
"#
        ),
    }
    .toml()
}

fn float(handle: &EngineHandle, attribute: &str) -> f64 {
    match good(handle, attribute) {
        Some(Value::Float(x)) => x,
        other => panic!("{attribute}: expected a good float, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_word_order_decodes_to_its_engineering_value() {
    let peer = Peer::start(0);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(peer.port, false), dir.path());
    let handle = engine.handle();
    eventually("every good attribute to have a value", || {
        [
            "u16",
            "f64_dcba",
            "unit2",
            "hole_right",
            "di7",
            "ir_f32",
            "text_ba",
        ]
        .iter()
        .all(|a| good(&handle, a).is_some())
        .then_some(())
    })
    .await;

    assert_eq!(good(&handle, "u16"), Some(Value::UInt(54321)));
    assert_eq!(good(&handle, "i16"), Some(Value::Int(-1234)));
    assert_eq!(good(&handle, "i16_raw"), Some(Value::Int(-1234)));
    for order in ORDERS {
        let o = order.to_lowercase();
        assert_eq!(
            good(&handle, &format!("u32_{o}")),
            Some(Value::UInt(3_000_000_000)),
            "{order}"
        );
        assert_eq!(
            good(&handle, &format!("i32_{o}")),
            Some(Value::Int(-123_456_789)),
            "{order}"
        );
        assert_eq!(
            good(&handle, &format!("f32_{o}")),
            Some(Value::Float(-1234.5)),
            "{order}"
        );
        assert_eq!(
            good(&handle, &format!("f64_{o}")),
            Some(Value::Float(6.02214076e23)),
            "{order}"
        );
    }
    assert_eq!(
        good(&handle, "u64"),
        Some(Value::UInt(12_345_678_901_234_567_890))
    );
    assert_eq!(good(&handle, "i64"), Some(Value::Int(-1_234_567_890_123_456)));
    assert_eq!(good(&handle, "bit0"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "bit1"), Some(Value::Bool(false)));
    assert_eq!(good(&handle, "bit15"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "text"), Some(Value::String("PUMP-7".into())));
    assert_eq!(good(&handle, "text_ba"), Some(Value::String("ABCDE".into())));
    // 39.5 °F in tenths → °C after scale and unit conversion.
    assert!((float(&handle, "temperature") - (39.5 - 32.0) * 5.0 / 9.0).abs() < 1e-9);
    assert!((float(&handle, "speed") - 400.0).abs() < 1e-9);
    assert_eq!(good(&handle, "coil0"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "coil1"), Some(Value::Bool(false)));
    assert_eq!(good(&handle, "coil5"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "di7"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "ir0"), Some(Value::UInt(777)));
    assert_eq!(good(&handle, "ir_f32"), Some(Value::Float(3.25)));
    assert_eq!(good(&handle, "unit2"), Some(Value::UInt(222)));

    // hr:70..74 is one coalesced read; hr:72 does not exist, so it is split and only
    // hr:72 is bad, for a configuration reason.
    assert_eq!(good(&handle, "hole_left"), Some(Value::UInt(70)));
    assert_eq!(good(&handle, "hole_right"), Some(Value::UInt(74)));
    let hole = eventually("hr:72 to be bad", || latest(&handle, "hole")).await;
    assert_eq!(hole.sample.quality, Quality::Bad(BadReason::ConfigError));
    let missing = eventually("hr:500 to be read", || latest(&handle, "missing")).await;
    assert_eq!(missing.sample.quality, Quality::Bad(BadReason::ConfigError));
    // A server device failure exception is the device's fault.
    let failing = eventually("hr:100 to be read", || latest(&handle, "failing")).await;
    assert_eq!(failing.sample.quality, Quality::Bad(BadReason::DeviceFailure));
    assert_eq!(failing.sample.value, None);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_use_fc_5_6_15_16_and_return_the_value_read_back() {
    let peer = Peer::start(0);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(peer.port, true), dir.path());
    let handle = engine.handle();
    eventually("a first reading", || good(&handle, "w_raw")).await;

    // FC 6, FC 16 (two registers, word-swapped), FC 5, FC 16 (a string).
    assert_eq!(
        write(&handle, "w_raw", Value::UInt(4242)).await,
        Ok(Some(Value::UInt(4242)))
    );
    assert_eq!(
        write(&handle, "w_f32", Value::Float(-7.25)).await,
        Ok(Some(Value::Float(-7.25)))
    );
    assert_eq!(
        write(&handle, "w_coil", Value::Bool(true)).await,
        Ok(Some(Value::Bool(true)))
    );
    assert_eq!(
        write(&handle, "w_text", Value::String("OK-1".into())).await,
        Ok(Some(Value::String("OK-1".into())))
    );
    // The read-back is also the attribute's new value, after its transforms.
    eventually("the written value in the cache", || {
        (good(&handle, "w_f32") == Some(Value::Float(-7.25))).then_some(())
    })
    .await;
    // Refused locally, with the reason: read-only area, value out of range.
    let e = write(&handle, "ir0", Value::UInt(1)).await.unwrap_err();
    assert!(e.contains("read-only"), "{e}");
    let e = write(&handle, "w_raw", Value::Int(-1)).await.unwrap_err();
    assert!(e.contains("type: `w_raw` is uint"), "{e}");
    // Refused by the device, with the exception named.
    let e = write(&handle, "missing", Value::UInt(1)).await.unwrap_err();
    assert!(
        e.contains("refused the write: illegal data address (exception 2)"),
        "{e}"
    );
    engine.shutdown().await;

    // FC 15 and FC 16 for single values, for devices without FC 5 / 6.
    let text =
        config(peer.port, true).replace("writes = true", "writes = true\nwrite_functions = \"multiple\"");
    let engine = start_engine(&text, dir.path());
    let handle = engine.handle();
    eventually("a first reading", || good(&handle, "w_coil")).await;
    assert_eq!(
        write(&handle, "w_coil", Value::Bool(false)).await,
        Ok(Some(Value::Bool(false)))
    );
    assert_eq!(
        write(&handle, "w_raw", Value::UInt(7)).await,
        Ok(Some(Value::UInt(7)))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_unless_the_source_enables_them() {
    let peer = Peer::start(0);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(peer.port, false), dir.path());
    let handle = engine.handle();
    eventually("a first reading", || good(&handle, "w_raw")).await;
    let e = write(&handle, "w_raw", Value::UInt(1)).await.unwrap_err();
    assert!(e.contains("writes = true"), "{e}");
    assert_eq!(good(&handle, "w_raw"), Some(Value::UInt(0)));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_go_bad_when_the_server_stops_and_good_when_it_returns() {
    let mut peer = Peer::start(0);
    let port = peer.port;
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(port, false), dir.path());
    let handle = engine.handle();
    eventually("a good value", || good(&handle, "u16")).await;

    peer.stop();
    let bad = eventually("values to turn bad", || {
        latest(&handle, "u16").filter(|l| l.sample.quality == Quality::Bad(BadReason::CommFailure))
    })
    .await;
    // The last value is kept, marked bad.
    assert_eq!(bad.sample.value, Some(Value::UInt(54321)));
    let since = bad.sample.gateway_time;

    let _peer = Peer::start(port);
    let back = eventually("good values again", || {
        latest(&handle, "u16").filter(|l| l.sample.quality.is_good() && l.sample.gateway_time > since)
    })
    .await;
    assert_eq!(back.sample.value, Some(Value::UInt(54321)));
    assert!(good(&handle, "f32_cdab").is_some());
    let health = handle.health();
    let source = health.components.iter().find(|c| c.name == "peer").unwrap();
    assert!(source.restarts >= 1, "the supervisor reconnected the source");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_turn_stale_after_three_unanswered_polls_long_before_the_failed_cycle_makes_them_bad() {
    let peer = Peer::start(0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("samples.jsonl");
    // Polled every 100 ms, but each request of a cycle waits 1 s before it counts as
    // failed, one after the other: the cycle takes seconds to fail.
    let config = config(peer.port, false).replace("timeout = \"300ms\"", "timeout = \"1s\"")
        + &format!(
            "\n[[sinks]]\nname = \"file\"\nkind = \"jsonl\"\npath = {:?}\n",
            file.display().to_string()
        );
    assert!(config.contains("timeout = \"1s\""));
    let engine = start_engine(&config, dir.path());
    let handle = engine.handle();
    eventually("a good value", || good(&handle, "u16")).await;

    peer.freeze();
    let first = eventually("the value to stop being good", || {
        latest(&handle, "u16").filter(|l| !l.sample.quality.is_good())
    })
    .await;
    assert_eq!(
        first.sample.quality,
        Quality::Uncertain(UncertainReason::LastUsableValue),
        "stale (uncertain) first, not bad: {:?}",
        first.error
    );
    assert_eq!(
        first.sample.value,
        Some(Value::UInt(54321)),
        "the last value is kept"
    );
    assert!(
        first.error.as_deref().is_some_and(|e| e.starts_with("stale:")),
        "{:?}",
        first.error
    );
    eventually("the failed cycle to make it bad", || {
        latest(&handle, "u16").filter(|l| l.sample.quality.is_bad())
    })
    .await;

    peer.thaw();
    eventually("good values again", || good(&handle, "u16")).await;
    engine.shutdown().await;
    // Outputs carry the stale value like any other (here the jsonl sink).
    let written = std::fs::read_to_string(&file).unwrap();
    let stale_line = written
        .lines()
        .find(|l| l.contains("/probe/u16") && l.contains("\"quality_reason\":\"last_usable_value\""));
    assert!(
        stale_line.is_some_and(|l| l.contains("\"quality\":\"uncertain\"")),
        "no stale u16 sample in the jsonl output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_frames_over_tcp_decode_the_same_values() {
    let peer = Peer::start_framed(0, "rtu");
    let dir = tempfile::tempdir().unwrap();
    let text = config(peer.port, true).replace("url = \"tcp://", "url = \"rtu+tcp://");
    let engine = start_engine(&text, dir.path());
    let handle = engine.handle();
    eventually("values over RTU framing", || {
        ["u16", "f64_cdab", "unit2", "coil5", "text"]
            .iter()
            .all(|a| good(&handle, a).is_some())
            .then_some(())
    })
    .await;
    assert_eq!(good(&handle, "u16"), Some(Value::UInt(54321)));
    assert_eq!(good(&handle, "f32_badc"), Some(Value::Float(-1234.5)));
    assert_eq!(good(&handle, "f64_cdab"), Some(Value::Float(6.02214076e23)));
    assert_eq!(good(&handle, "unit2"), Some(Value::UInt(222)));
    assert_eq!(good(&handle, "coil5"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "text"), Some(Value::String("PUMP-7".into())));
    let missing = eventually("hr:500 to be read", || latest(&handle, "missing")).await;
    assert_eq!(missing.sample.quality, Quality::Bad(BadReason::ConfigError));
    assert_eq!(
        write(&handle, "w_f32", Value::Float(2.5)).await,
        Ok(Some(Value::Float(2.5)))
    );
    engine.shutdown().await;
}

/// pymodbus 3.16 answers only the first request of the bytes it receives at once (its
/// transport hands one frame to the server per read): with three requests in flight, sent
/// in one write, the first of each cycle is answered and the other two time out. They are
/// reported as timeouts, never given another request's registers; this is why `in_flight`
/// stays 1 unless the device is known to queue requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_answers_the_first_of_requests_sent_together_and_the_rest_time_out_unmixed() {
    use std::sync::Arc;

    let peer = Peer::start(0);
    let text = format!(
        "url = \"tcp://127.0.0.1:{}\"\naddress_base = 0\ntimeout = \"300ms\"\nretries = 0\nin_flight = 8\n",
        peer.port
    );
    let (settings, diagnostics) =
        backplane_config::reader::with_table(&text, std::path::Path::new("t.toml"), |mut t| {
            backplane_modbus::config::parse_settings(&mut t)
        });
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let addresses: Vec<Arc<str>> = ["hr:0", "hr:42:u64", "hr:61"].map(Arc::from).to_vec();
    let expected = [
        Value::UInt(54321),
        Value::UInt(12_345_678_901_234_567_890),
        Value::UInt(4000),
    ];
    let mut poller =
        backplane_modbus::Poller::new("pymodbus", Arc::new(settings.flatten().unwrap()), &addresses).unwrap();
    assert_eq!(poller.requests(0), 3);
    let mut pool = poller.connect().await.unwrap();
    let (mut good, mut timed_out) = (0, 0);
    for _ in 0..4 {
        // A cycle without any answer ends in Err (a reconnect, in the source).
        let Ok(readings) = poller.poll(0, &mut pool).await else {
            pool = poller.connect().await.unwrap();
            continue;
        };
        for r in readings {
            match r.quality {
                Quality::Good => {
                    assert_eq!(r.value.as_ref(), expected.get(r.address as usize), "{r:?}");
                    good += 1;
                }
                Quality::Bad(BadReason::Timeout) => timed_out += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    // One request at a time, all twelve would be good.
    assert_eq!((good, timed_out), (4, 8));
}
