//! The `modbus` source on a real serial line: `rtu:///path?baud=…` opens a tty with
//! tokio-serial, and pymodbus's serial RTU server (tests/peers/modbus_server.py, the same
//! register map as the TCP tests) answers on the other end of a socat null modem. Through
//! the real pipeline (config → engine → latest-value cache): typed registers, coils, inputs,
//! unit ids on one bus, exceptions, a unit id no device answers, the device going away and
//! coming back, and writes with read-back.
//!
//! Needs `socat` (Debian package; .ci/run installs it) and the peers' python
//! (`BACKPLANE_PYTHON`, else `scripts/install-peers`); neither is ever skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::Path;

use backplane_model::{BadReason, Quality, Value};
use backplane_testkit::fixtures::LabProbe;
use backplane_testkit::pty::NullModem;
use common::Peer;
use common::probe::{eventually, good, latest, start_engine, write};

/// A probe on the serial line `port` (19200 8N2, as the server opens its end): unit 1 by
/// default, unit 2 and unit 9 (no such device) by address. `extra` adds bindings.
fn config(port: &Path, writes: bool, extra: &str) -> String {
    LabProbe {
        attributes: r#"
u16 = { type = "uint" }
i16 = { type = "int" }
u32 = { type = "uint" }
i32 = { type = "int" }
f32 = { type = "float" }
f64 = { type = "float" }
i64 = { type = "int" }
bit15 = { type = "bool" }
text = { type = "string" }
speed = { type = "float", unit = "bottle/min" }
coil0 = { type = "bool" }
coil1 = { type = "bool" }
coil5 = { type = "bool" }
di7 = { type = "bool" }
ir0 = { type = "uint" }
ir_f32 = { type = "float" }
unit2 = { type = "uint" }
nobody = { type = "uint" }
failing = { type = "uint" }
missing = { type = "uint" }
hole = { type = "uint" }
hole_right = { type = "uint" }
w_raw = { type = "uint" }
w_f32 = { type = "float" }
w_coil = { type = "bool" }
"#,
        bindings: &format!(
            r#"
bindings.u16 = {{ address = "hr:0" }}
bindings.i16 = {{ address = "hr:1:i16" }}
bindings.u32 = {{ address = "hr:4:u32:CDAB" }}
bindings.i32 = {{ address = "hr:10:i32" }}
bindings.f32 = {{ address = "hr:22:f32:BADC" }}
bindings.f64 = {{ address = "hr:38:f64:DCBA" }}
bindings.i64 = {{ address = "hr:46:i64:CDAB" }}
bindings.bit15 = {{ address = "hr:50.15" }}
bindings.text = {{ address = "hr:51:str:5" }}
bindings.speed = {{ address = "hr:61", scale = {{ gain = 0.1 }} }}
bindings.coil0 = {{ address = "coil:0" }}
bindings.coil1 = {{ address = "coil:1" }}
bindings.coil5 = {{ address = "coil:5" }}
bindings.di7 = {{ address = "di:7" }}
bindings.ir0 = {{ address = "ir:0" }}
bindings.ir_f32 = {{ address = "ir:1:f32" }}
bindings.unit2 = {{ address = "unit=2;hr:0" }}
bindings.failing = {{ address = "hr:100" }}
bindings.missing = {{ address = "hr:500" }}
bindings.hole = {{ address = "hr:72" }}
bindings.hole_right = {{ address = "hr:74" }}
bindings.w_raw = {{ address = "hr:120" }}
bindings.w_f32 = {{ address = "hr:121:f32:CDAB" }}
bindings.w_coil = {{ address = "coil:8" }}
{extra}"#
        ),
        source: "bus",
        settings: &format!(
            r#"kind = "modbus"
url = "rtu://{}?baud=19200&parity=N&data_bits=8&stop_bits=2"
unit = 1
address_base = 0
period = "100ms"
timeout = "1s"
retries = 0
writes = {writes}

[models.Probe.writes]
w_raw = {{ verify = true }}
w_f32 = {{}}
w_coil = {{}}
missing = {{}}
"#,
            port.display()
        ),
    }
    .toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_rtu_reads_typed_registers_coils_and_inputs_of_two_units() {
    let modem = NullModem::new();
    let _device = Peer::start_serial(&modem.b());
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(&modem.a(), false, ""), dir.path());
    let handle = engine.handle();
    eventually("every good attribute to have a value", || {
        [
            "u16",
            "f64",
            "text",
            "coil5",
            "di7",
            "ir_f32",
            "unit2",
            "hole_right",
        ]
        .iter()
        .all(|a| good(&handle, a).is_some())
        .then_some(())
    })
    .await;

    assert_eq!(good(&handle, "u16"), Some(Value::UInt(54321)));
    assert_eq!(good(&handle, "i16"), Some(Value::Int(-1234)));
    assert_eq!(good(&handle, "u32"), Some(Value::UInt(3_000_000_000)));
    assert_eq!(good(&handle, "i32"), Some(Value::Int(-123_456_789)));
    assert_eq!(good(&handle, "f32"), Some(Value::Float(-1234.5)));
    assert_eq!(good(&handle, "f64"), Some(Value::Float(6.02214076e23)));
    assert_eq!(good(&handle, "i64"), Some(Value::Int(-1_234_567_890_123_456)));
    assert_eq!(good(&handle, "bit15"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "text"), Some(Value::String("PUMP-7".into())));
    assert_eq!(good(&handle, "speed"), Some(Value::Float(400.0)));
    assert_eq!(good(&handle, "coil0"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "coil1"), Some(Value::Bool(false)));
    assert_eq!(good(&handle, "coil5"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "di7"), Some(Value::Bool(true)));
    assert_eq!(good(&handle, "ir0"), Some(Value::UInt(777)));
    assert_eq!(good(&handle, "ir_f32"), Some(Value::Float(3.25)));
    // Unit 2 on the same bus has its own registers.
    assert_eq!(good(&handle, "unit2"), Some(Value::UInt(222)));
    assert_eq!(good(&handle, "hole_right"), Some(Value::UInt(74)));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_rtu_exceptions_become_bad_quality_with_their_reason() {
    let modem = NullModem::new();
    let _device = Peer::start_serial(&modem.b());
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(&modem.a(), false, ""), dir.path());
    let handle = engine.handle();
    // Exception 2 (illegal data address): the configuration names a register the device
    // does not have, also inside a coalesced read (hr:70..74, split after the exception).
    let missing = eventually("hr:500 to be read", || latest(&handle, "missing")).await;
    assert_eq!(missing.sample.quality, Quality::Bad(BadReason::ConfigError));
    assert_eq!(missing.sample.value, None);
    let hole = eventually("hr:72 to be read", || latest(&handle, "hole")).await;
    assert_eq!(hole.sample.quality, Quality::Bad(BadReason::ConfigError));
    // Exception 4 (server device failure): the device's fault.
    let failing = eventually("hr:100 to be read", || latest(&handle, "failing")).await;
    assert_eq!(failing.sample.quality, Quality::Bad(BadReason::DeviceFailure));
    assert_eq!(failing.sample.value, None);
    // The others on the same line are unaffected.
    let neighbour = eventually("hr:74 to be good", || good(&handle, "hole_right")).await;
    assert_eq!(neighbour, Value::UInt(74));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_id_no_device_answers_times_out_and_the_others_keep_updating() {
    let modem = NullModem::new();
    let _device = Peer::start_serial(&modem.b());
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &modem.a(),
        false,
        "bindings.nobody = { address = \"unit=9;hr:0\" }\n",
    );
    let engine = start_engine(&text, dir.path());
    let handle = engine.handle();
    // No device on the bus has id 9: silence, so the reading is a timeout, not an answer.
    let nobody = eventually("unit 9 to be read", || latest(&handle, "nobody")).await;
    assert_eq!(nobody.sample.quality, Quality::Bad(BadReason::Timeout));
    assert_eq!(nobody.sample.value, None);
    // Units 1 and 2 keep being polled: their readings get newer after unit 9 failed.
    let since = nobody.sample.gateway_time;
    for attribute in ["u16", "unit2"] {
        let fresh = eventually("a newer good reading", || {
            latest(&handle, attribute).filter(|l| l.sample.quality.is_good() && l.sample.gateway_time > since)
        })
        .await;
        assert!(fresh.sample.value.is_some(), "{attribute}");
    }
    assert_eq!(good(&handle, "unit2"), Some(Value::UInt(222)));
    assert_eq!(
        latest(&handle, "nobody").unwrap().sample.quality,
        Quality::Bad(BadReason::Timeout)
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_time_out_while_the_device_is_off_and_recover_when_it_is_back() {
    let modem = NullModem::new();
    let mut device = Peer::start_serial(&modem.b());
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(&modem.a(), false, ""), dir.path());
    let handle = engine.handle();
    eventually("a good value", || good(&handle, "u16")).await;

    // The device goes away; the serial port (our end) stays open, so requests go
    // unanswered rather than failing to send.
    device.stop();
    // Stale (uncertain) after three unanswered polls, then bad once the request times out.
    let off = eventually("values to turn bad", || {
        latest(&handle, "u16").filter(|l| l.sample.quality.is_bad())
    })
    .await;
    assert_eq!(off.sample.quality, Quality::Bad(BadReason::Timeout));
    // The last value is kept, marked bad.
    assert_eq!(off.sample.value, Some(Value::UInt(54321)));
    let since = off.sample.gateway_time;

    let _device = Peer::start_serial(&modem.b());
    let back = eventually("good values again", || {
        latest(&handle, "u16").filter(|l| l.sample.quality.is_good() && l.sample.gateway_time > since)
    })
    .await;
    assert_eq!(back.sample.value, Some(Value::UInt(54321)));
    eventually("unit 2 good again", || {
        latest(&handle, "unit2").filter(|l| l.sample.quality.is_good() && l.sample.gateway_time > since)
    })
    .await;
    // Each answer's values arrive on their own (a cycle is not one batch): wait for this one.
    let f64_back = eventually("f64 good again", || {
        latest(&handle, "f64").filter(|l| l.sample.quality.is_good() && l.sample.gateway_time > since)
    })
    .await;
    assert_eq!(f64_back.sample.value, Some(Value::Float(6.02214076e23)));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_rtu_writes_are_read_back_and_device_refusals_named() {
    let modem = NullModem::new();
    let _device = Peer::start_serial(&modem.b());
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(&modem.a(), true, ""), dir.path());
    let handle = engine.handle();
    eventually("a first reading", || good(&handle, "w_raw")).await;

    // FC 6, FC 16 (two registers, word-swapped), FC 5; each read back over the line.
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
    eventually("the written value in the cache", || {
        (good(&handle, "w_f32") == Some(Value::Float(-7.25))).then_some(())
    })
    .await;
    // Refused by the device, with the exception named.
    let e = write(&handle, "missing", Value::UInt(1)).await.unwrap_err();
    assert!(
        e.contains("refused the write: illegal data address (exception 2)"),
        "{e}"
    );
    engine.shutdown().await;
}
