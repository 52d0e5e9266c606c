//! The `ascii` source on a real serial line: `serial:///path?baud=9600` opens a tty with
//! tokio-serial, and a Mettler Toledo style scale (tests/peers/ascii_device.py, pyserial at
//! 9600 8N1, paced at the line's speed) answers MT-SICS `S` commands on the other end of a
//! socat null modem. Through the real pipeline: the poll answered, an unstable weight
//! (`S D`) uncertain, a scale that stops answering, bad lines between good ones, and the
//! cable pulled and plugged back.
//!
//! Needs `socat` (Debian package; .ci/run installs it) and the peers' python
//! (`BACKPLANE_PYTHON`, else `scripts/install-peers`); neither is ever skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::Path;

use backplane_model::{BadReason, Quality, UncertainReason, Value};
use backplane_testkit::fixtures::LabProbe;
use backplane_testkit::pty::NullModem;
use common::{Device, counter, eventually, good, latest, record, start_engine};

/// The scale on `port`, polled with SICS `S` every 100 ms (reply timeout 500 ms) unless
/// `polled` is false (a scale in continuous-send mode).
fn config(port: &Path, polled: bool) -> String {
    let poll = if polled {
        "[sources.poll]\ncommand = \"S\\r\\n\"\nperiod = \"100ms\"\ntimeout = \"500ms\"\n"
    } else {
        ""
    };
    LabProbe {
        attributes: r#"
weight = { type = "float", unit = "kg" }
unit = { type = "string" }
"#,
        bindings: r#"
bindings.weight = { address = "weight" }
bindings.unit = { address = "unit" }
"#,
        source: "scale",
        settings: &format!(
            r#"kind = "ascii"
url = "serial://{}?baud=9600&parity=N&data_bits=8&stop_bits=1"
framing = "crlf"
max_line = 40
pattern = '^S (?P<stability>[SD]) +(?P<weight>\S+) (?P<unit>\S+)$'
reconnect_min = "50ms"
reconnect_max = "200ms"
[sources.quality]
capture = "stability"
good = ["S"]
uncertain = ["D"]
{poll}"#,
            port.display()
        ),
    }
    .toml()
}

fn quality(handle: &backplane_engine::EngineHandle, attribute: &str) -> Option<(Option<Value>, Quality)> {
    latest(handle, attribute).map(|l| (l.sample.value, l.sample.quality))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_scale_answers_sics_and_an_unstable_weight_is_uncertain() {
    let modem = NullModem::new();
    let mut scale = Device::serial(&modem.b());
    scale.weight("S", "12.34", "kg");
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(&modem.a(), true), dir.path());
    let handle = engine.handle();
    eventually("the stable weight", || {
        (good(&handle, "weight") == Some(Value::Float(12.34))).then_some(())
    })
    .await;
    assert_eq!(good(&handle, "unit"), Some(Value::String("kg".into())));
    assert!(scale.polls() >= 1, "the scale was asked with S");

    // Moving load: SICS answers `S D`; the value arrives, uncertain, never good.
    scale.weight("D", "12.50", "kg");
    eventually("the unstable weight, uncertain", || {
        (quality(&handle, "weight")
            == Some((
                Some(Value::Float(12.5)),
                Quality::Uncertain(UncertainReason::SensorNotAccurate),
            )))
        .then_some(())
    })
    .await;
    scale.weight("S", "12.50", "kg");
    eventually("the weight stable again", || {
        (good(&handle, "weight") == Some(Value::Float(12.5))).then_some(())
    })
    .await;

    // A scale that stops answering: every value turns bad (timeout), then recovers.
    scale.command("MUTE");
    eventually("the values to time out", || {
        (quality(&handle, "weight").map(|q| q.1) == Some(Quality::Bad(BadReason::Timeout))).then_some(())
    })
    .await;
    assert!(counter(&handle, "scale", "poll_timeouts") >= 1);
    scale.command("UNMUTE");
    eventually("answers again", || good(&handle, "weight")).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_scale_lines_are_counted_and_the_good_lines_around_them_arrive() {
    let modem = NullModem::new();
    let mut scale = Device::serial(&modem.b());
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(&modem.a(), false), dir.path());
    let handle = engine.handle();
    let weights = record(&handle, "weight");
    eventually("the first weight", || {
        scale.send(b"S S      1.00 kg\r\n");
        good(&handle, "weight")
    })
    .await;

    let mut burst = Vec::new();
    burst.extend(b"S S      2.00 kg\r\n");
    burst.extend(b"S +\r\n"); // overload: matches no pattern
    burst.extend(format!("S S {} kg\r\n", "9".repeat(60)).as_bytes()); // over max_line = 40
    burst.extend(b"S S      3,00 kg\r\n"); // a comma: no float
    burst.extend(b"S S      4.00 kg\r\n");
    scale.send(&burst);
    eventually("the weight after the bad lines", || {
        (good(&handle, "weight") == Some(Value::Float(4.0))).then_some(())
    })
    .await;
    let seen: Vec<(Option<Value>, Quality)> = weights
        .lock()
        .unwrap()
        .iter()
        .skip_while(|(v, _)| *v != Some(Value::Float(2.0)))
        .cloned()
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some(Value::Float(2.0)), Quality::Good),
            // The unparseable weight: bad, keeping the last good value.
            (Some(Value::Float(2.0)), Quality::Bad(BadReason::TypeMismatch)),
            (Some(Value::Float(4.0)), Quality::Good),
        ]
    );
    for (event, want) in [
        ("lines_unmatched", 1),
        ("lines_too_long", 1),
        ("captures_unparseable", 1),
        ("checksum_errors", 0),
    ] {
        assert_eq!(counter(&handle, "scale", event), want, "{event}");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serial_port_is_reopened_after_the_cable_is_pulled() {
    let mut modem = NullModem::new();
    let mut scale = Device::serial(&modem.b());
    scale.weight("S", "5.00", "kg");
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(&config(&modem.a(), true), dir.path());
    let handle = engine.handle();
    eventually("the weight", || good(&handle, "weight")).await;

    // Both ptys vanish; the scale reopens its end when it is back, as does the source.
    modem.restart();
    eventually("the values to turn bad while the port is gone", || {
        (quality(&handle, "weight").map(|q| q.1) == Some(Quality::Bad(BadReason::CommFailure))).then_some(())
    })
    .await;
    scale.weight("S", "7.25", "kg");
    eventually("the weight through the new port", || {
        (good(&handle, "weight") == Some(Value::Float(7.25))).then_some(())
    })
    .await;
    assert!(counter(&handle, "scale", "reconnects") >= 1);
    engine.shutdown().await;
}
