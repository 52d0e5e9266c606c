//! MQTT over TLS against a Mosquitto of the test's own with a TLS listener that requires
//! client certificates (issue 18). Certificates are made with rcgen (testkit `pki`). One gateway
//! publishes its namespace through the `mqtt` sink and reads it back through an `mqtt`
//! source, both over TLS with a client certificate; a source trusting another CA is
//! refused with an error that says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::Path;
use std::time::Duration;

use backplane_model::{Quality, Value};
use backplane_testkit::engine::{eventually, latest};
use backplane_testkit::pki::{Ca, Usage as ExtendedKeyUsagePurpose, ca, leaf};
use common::{Mosquitto, start};

/// Mosquitto whose listener requires a client certificate from `ca`.
fn tls_broker(dir: &Path, ca: &Ca) -> Mosquitto {
    let (cert, key) = leaf(
        dir,
        ca,
        "broker",
        &["127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    // `user root`: started as root, Mosquitto would switch to its own user, which cannot
    // read the test's private directory.
    Mosquitto::start_with(format!(
        "user root\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        ca.path.display(),
        cert.display(),
        key.display()
    ))
}

/// A tank fed by the simulator, published by the sink; an echo asset fed by the source
/// from the sink's own topic.
fn config(port: u16, tls: &str) -> String {
    format!(
        r#"
[gateway]
name = "tls-gw"

[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = {{ type = "float" }}

[models.Echo.attributes]
level = {{ type = "float" }}

[[assets]]
path = "tank"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}

[[assets]]
path = "echo"
model = "Echo"
source = "back"
bindings.level = {{ address = "acme/plant/tank/level#$.value" }}

[[sources]]
name = "sim"
kind = "simulator"
period = "50ms"
signals.l = {{ signal = "constant", value = 42.5 }}

[[sources]]
name = "back"
kind = "mqtt"
broker = "mqtts://127.0.0.1:{port}"
reconnect_min = "100ms"
reconnect_max = "500ms"
tls = {tls}

[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtts://127.0.0.1:{port}"
reconnect_min = "100ms"
reconnect_max = "500ms"
tls = {tls}
"#
    )
}

fn tls(ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "{{ ca = \"file:{}\", cert = \"file:{}\", key = \"file:{}\" }}",
        ca.display(),
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_and_the_source_exchange_data_over_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let plant = ca(dir.path(), "plant");
    let broker = tls_broker(dir.path(), &plant);
    let (cert, key) = leaf(
        dir.path(),
        &plant,
        "gateway",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let data = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &tls(&plant.path, &cert, &key)), data.path());
    let handle = engine.handle();
    let echo = eventually("the echo of the tank level", Duration::from_secs(15), || {
        latest(&handle, "acme/plant/echo/level").filter(|l| l.sample.quality == Quality::Good)
    })
    .await;
    assert_eq!(echo.sample.value, Some(Value::Float(42.5)));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let plant = ca(dir.path(), "plant");
    let other = ca(dir.path(), "other");
    let broker = tls_broker(dir.path(), &plant);
    let (cert, key) = leaf(
        dir.path(),
        &plant,
        "gateway",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let data = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &tls(&other.path, &cert, &key)), data.path());
    let handle = engine.handle();
    let error = eventually("the source's connection error", Duration::from_secs(15), || {
        handle
            .health()
            .components
            .into_iter()
            .find(|c| c.name == "back")
            .and_then(|c| c.last_error)
    })
    .await;
    assert!(error.contains("not signed by a CA in tls.ca"), "{error}");
    assert!(latest(&handle, "acme/plant/echo/level").is_none_or(|l| l.sample.quality != Quality::Good));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_requiring_client_certificates_refuses_a_gateway_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let plant = ca(dir.path(), "plant");
    let broker = tls_broker(dir.path(), &plant);
    let data = tempfile::tempdir().unwrap();
    let tls = format!("{{ ca = \"file:{}\" }}", plant.path.display());
    let engine = start(&config(broker.port, &tls), data.path());
    let handle = engine.handle();
    let error = eventually("the source's connection error", Duration::from_secs(15), || {
        handle
            .health()
            .components
            .into_iter()
            .find(|c| c.name == "back")
            .and_then(|c| c.last_error)
    })
    .await;
    assert!(error.contains("client certificate"), "{error}");
    engine.shutdown().await;
}
