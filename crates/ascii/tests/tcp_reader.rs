//! The `ascii` source over raw TCP against a barcode reader (tests/peers/ascii_device.py's
//! TCP server, which sends the lines the test gives it), through the real pipeline
//! (config → engine → live stream and latest-value cache): good lines, every kind of bad
//! line counted with the good lines around it delivered, and the reader restarting.
//!
//! Needs the peers' python (`BACKPLANE_PYTHON`, else `scripts/install-peers`); never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use backplane_engine::ComponentState;
use backplane_model::{BadReason, Quality, Value};
use backplane_testkit::fixtures::LabProbe;
use common::{Device, counter, eventually, good, latest, record, start_engine, with_xor};

/// A barcode reader at `port`: `SYMBOLOGY:CODE QTY*HH` lines ending in CRLF, the XOR of
/// everything before `*` as two hex digits, at most 64 bytes.
fn config(port: u16) -> String {
    LabProbe {
        attributes: r#"
code = { type = "string" }
symbology = { type = "string" }
quantity = { type = "uint" }
"#,
        bindings: r#"
bindings.code = { address = "code" }
bindings.symbology = { address = "symbology" }
bindings.quantity = { address = "qty" }
"#,
        source: "reader",
        settings: &format!(
            r#"kind = "ascii"
url = "tcp://127.0.0.1:{port}"
framing = "crlf"
max_line = 64
pattern = '^(?P<symbology>EAN13|CODE128|QR):(?P<code>\S+) (?P<qty>\S+)$'
reconnect_min = "50ms"
reconnect_max = "200ms"
[sources.checksum]
algorithm = "xor"
separator = "*"
"#
        ),
    }
    .toml()
}

fn line(text: &str) -> Vec<u8> {
    format!("{}\r\n", with_xor(text)).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_counted_and_the_good_lines_around_them_arrive() {
    let mut reader = Device::tcp(0);
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(reader.port), dir.path());
    let handle = engine.handle();
    let codes = record(&handle, "code");
    // The first line once the source is connected.
    eventually("the first scan", || {
        reader.send(&line("EAN13:4006381333931 1"));
        good(&handle, "code")
    })
    .await;
    assert_eq!(good(&handle, "symbology"), Some(Value::String("EAN13".into())));
    assert_eq!(good(&handle, "quantity"), Some(Value::UInt(1)));

    let mut burst = Vec::new();
    burst.extend(line("CODE128:BEFORE 2"));
    burst.extend(b"CODE128:CORRUPT 2*00\r\n"); // bad checksum
    burst.extend(line("HELLO WORLD")); // matches no pattern
    burst.extend(line(&format!("QR:{} 1", "X".repeat(100)))); // over max_line
    burst.extend(line("QR:UNPARSEABLE two")); // qty is no uint
    burst.extend(line("EAN13:AFTER 3"));
    reader.send(&burst);
    eventually("the line after the bad ones", || {
        (good(&handle, "code") == Some(Value::String("AFTER".into()))).then_some(())
    })
    .await;

    // Every good line arrived, in order; the broken ones gave nothing, the line with an
    // unparseable quantity still gave its code.
    let seen: Vec<Value> = codes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(v, _)| v.clone())
        .collect();
    let tail: Vec<&Value> = seen
        .iter()
        .skip_while(|v| **v != Value::String("BEFORE".into()))
        .collect();
    assert_eq!(
        tail,
        vec![
            &Value::String("BEFORE".into()),
            &Value::String("UNPARSEABLE".into()),
            &Value::String("AFTER".into())
        ],
        "all codes seen: {seen:?}"
    );
    assert_eq!(good(&handle, "quantity"), Some(Value::UInt(3)));
    for (event, want) in [
        ("checksum_errors", 1),
        ("lines_unmatched", 1),
        ("lines_too_long", 1),
        ("captures_unparseable", 1),
    ] {
        assert_eq!(counter(&handle, "reader", event), want, "{event}");
    }
    assert!(counter(&handle, "reader", "lines") >= 4);

    // The unparseable quantity was bad (type_mismatch) in between.
    reader.send(&line("QR:AGAIN x"));
    eventually("the unparseable quantity to turn bad", || {
        latest(&handle, "quantity")
            .filter(|l| l.sample.quality == Quality::Bad(BadReason::TypeMismatch))
            .map(|_| ())
    })
    .await;
    assert_eq!(counter(&handle, "reader", "captures_unparseable"), 2);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_reconnects_after_the_reader_restarts() {
    let mut reader = Device::tcp(0);
    let port = reader.port;
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(port), dir.path());
    let handle = engine.handle();
    eventually("the first scan", || {
        reader.send(&line("EAN13:FIRST 1"));
        good(&handle, "code")
    })
    .await;

    reader.stop();
    eventually("the values to turn bad while the reader is away", || {
        latest(&handle, "code")
            .filter(|l| l.sample.quality == Quality::Bad(BadReason::CommFailure))
            .map(|_| ())
    })
    .await;
    assert!(
        engine
            .handle()
            .health()
            .components
            .iter()
            .any(|c| c.name == "reader" && c.state == ComponentState::Degraded),
        "health shows the source degraded"
    );

    let mut reader = Device::tcp(port);
    eventually("a scan after the restart", || {
        reader.send(&line("EAN13:SECOND 1"));
        (good(&handle, "code") == Some(Value::String("SECOND".into()))).then_some(())
    })
    .await;
    assert!(counter(&handle, "reader", "reconnects") >= 1);
    engine.shutdown().await;
}

/// A label printer's status over TCP in STX/ETX frames with a raw sum byte after the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stx_etx_frames_with_a_sum_byte_are_read_and_noise_between_them_is_counted() {
    let mut printer = Device::tcp(0);
    let dir = tempfile::tempdir().unwrap();
    let config = LabProbe {
        attributes: "state = { type = \"string\" }\nlabels = { type = \"uint\" }\n",
        bindings: "bindings.state = { address = \"state\" }\nbindings.labels = { address = \"labels\" }\n",
        source: "printer",
        settings: &format!(
            r#"kind = "ascii"
url = "tcp://127.0.0.1:{}"
framing = "stx-etx"
pattern = '^(?P<state>[A-Z]+) (?P<labels>\d+)$'
[sources.checksum]
algorithm = "sum"
encoding = "byte"
"#,
            printer.port
        ),
    }
    .toml();
    let engine = start_engine(&config, dir.path());
    let handle = engine.handle();
    let frame = |text: &str| {
        let sum = text.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        let mut f = vec![0x02];
        f.extend(text.as_bytes());
        f.push(sum);
        f.push(0x03);
        f
    };
    eventually("the first status", || {
        printer.send(&frame("READY 12"));
        good(&handle, "state")
    })
    .await;
    let mut burst = b"\r\n@@".to_vec(); // CR LF ignored, `@@` counted
    burst.extend(frame("PAUSED 13"));
    printer.send(&burst);
    eventually("the status after the noise", || {
        (good(&handle, "state") == Some(Value::String("PAUSED".into()))).then_some(())
    })
    .await;
    assert_eq!(good(&handle, "labels"), Some(Value::UInt(13)));
    assert_eq!(counter(&handle, "printer", "framing_errors"), 1);
    engine.shutdown().await;
}
