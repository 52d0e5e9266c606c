//! Writes through the write gate to asyncua (Python), a server nobody on this team wrote:
//! refused while the source's `writes` is off, written and read back when on (through the
//! inverse of the binding's scale, into the node's own DataType), a node the server does
//! not let us write, and values that do not fit the node's type.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_engine::{Engine, EngineHandle, Failure, MachineWrite, Services, WriteReport, WriteStatus};
use backplane_model::Value;
use backplane_security::{AuditTrail, AuthMethod, Identity, MemoryRecorder, Outcome, Role};
use backplane_testkit::engine as support;
use backplane_testkit::fixtures::LabProbe;
use backplane_testkit::net::free_port;
use common::{Peer, eventually, registry};

const PROBE: &str = "acme/lab/area/line/probe";
const LOCKED_OUT: &str = "acme/lab/area/line/spare";

/// One probe on a source with `writes = true`, one (`spare`) on a source without.
fn config(port: u16) -> String {
    LabProbe {
        attributes: r#"
setpoint = { type = "float", unit = "bottle/min", range = [0, 1000] }
level = { type = "float" }
locked = { type = "float" }
count = { type = "int" }
label = { type = "string" }

[models.Probe.writes.setpoint]
[models.Probe.writes.level]
[models.Probe.writes.locked]
[models.Probe.writes.count]
[models.Probe.writes.label]
"#,
        bindings: r#"
bindings.setpoint = { address = "ns=2;s=Write.Int16", scale = { gain = 0.1 } }
bindings.level = { address = "ns=2;s=Write.Double" }
bindings.locked = { address = "ns=2;s=Write.Locked" }
bindings.count = { address = "nsu=urn:backplane:test;s=Write.Int16" }
bindings.label = { address = "ns=2;s=Write.Int16" }
"#,
        source: "peer",
        settings: &format!(
            r#"kind = "opcua"
url = "opc.tcp://127.0.0.1:{port}"
security_policy = "None"
period = "100ms"
writes = true

[[assets]]
path = "area/line/spare"
model = "Probe"
source = "readonly"
bindings.level = {{ address = "ns=2;s=Write.Double" }}

[[sources]]
name = "readonly"
kind = "opcua"
url = "opc.tcp://127.0.0.1:{port}"
security_policy = "None"
period = "100ms"
"#
        ),
    }
    .toml()
}

struct Rig {
    _peer: Peer,
    _dir: tempfile::TempDir,
    engine: Engine,
    handle: EngineHandle,
    trail: Arc<MemoryRecorder>,
}

impl Rig {
    async fn start() -> Rig {
        let port = free_port();
        let peer = Peer::start(port, &[]);
        let dir = tempfile::tempdir().unwrap();
        let trail = Arc::new(MemoryRecorder::default());
        let mut options = support::backoff(Duration::from_millis(200), Duration::from_millis(1000));
        options.services = Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(trail.clone())));
        let engine = support::start_with(&config(port), dir.path(), &registry(), options);
        let handle = engine.handle();
        let rig = Rig {
            _peer: peer,
            _dir: dir,
            engine,
            handle,
            trail,
        };
        for path in [
            format!("{PROBE}/setpoint"),
            format!("{PROBE}/level"),
            format!("{PROBE}/locked"),
            format!("{LOCKED_OUT}/level"),
        ] {
            rig.good(&path).await;
        }
        rig
    }

    async fn good(&self, path: &str) -> Value {
        eventually(path, 60, || {
            support::latest(&self.handle, path)
                .filter(|l| l.sample.quality.is_good())
                .and_then(|l| l.sample.value)
        })
        .await
    }

    async fn write(&self, path: &str, value: Value) -> WriteReport {
        self.handle
            .write(MachineWrite {
                tag: path.to_owned(),
                value,
                dry_run: false,
                who: Identity::new("erik", Role::Engineer, AuthMethod::Token),
                from: "http 127.0.0.1:50000".into(),
            })
            .await
    }

    /// The reason of a write that failed at the device; panics on any other outcome.
    fn failed(report: &WriteReport) -> &str {
        match &report.status {
            WriteStatus::Failed {
                failure: Failure::Device,
                reason,
            } => reason,
            other => panic!("expected a device failure, got {other:?}"),
        }
    }

    /// The outcome of the last audit record of writes to `path`.
    fn audited(&self, path: &str) -> Outcome {
        self.trail
            .events()
            .into_iter()
            .rfind(|e| e.action == "write" && e.target == path)
            .expect("the write is audited")
            .outcome
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_while_the_source_has_writes_off() {
    let rig = Rig::start().await;
    let path = format!("{LOCKED_OUT}/level");
    let report = rig.write(&path, Value::Float(7.0)).await;
    let reason = Rig::failed(&report);
    assert!(
        reason.contains("writes are disabled on opcua source `readonly`") && reason.contains("writes = true"),
        "{reason}"
    );
    assert!(matches!(rig.audited(&path), Outcome::Failed(_)));
    // Nothing reached the server: the node still holds 0.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.good(&path).await, Value::Float(0.0));
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_write_reaches_the_node_in_its_own_type_and_reads_back() {
    let rig = Rig::start().await;
    // 42.5 bottle/min through the inverse of `scale = { gain = 0.1 }`: 425, sent as the
    // node's Int16 (asyncua refuses any other variant type with BadTypeMismatch).
    let setpoint = format!("{PROBE}/setpoint");
    let report = rig.write(&setpoint, Value::Float(42.5)).await;
    assert_eq!(report.status, WriteStatus::Done, "{report:?}");
    assert_eq!(
        report.raw.as_ref().and_then(Value::as_f64),
        Some(425.0),
        "{report:?}"
    );
    assert_eq!(report.read_back, Some(Value::Float(42.5)));
    assert_eq!(report.address.as_deref(), Some("ns=2;s=Write.Int16"));
    assert_eq!(rig.audited(&setpoint), Outcome::Done);
    // The subscription sees the new value too.
    eventually("the written setpoint is delivered", 30, || {
        (support::latest(&rig.handle, &setpoint)?.sample.value == Some(Value::Float(42.5))).then_some(())
    })
    .await;

    let level = format!("{PROBE}/level");
    let report = rig.write(&level, Value::Float(-3.25)).await;
    assert_eq!(report.status, WriteStatus::Done, "{report:?}");
    assert_eq!(report.read_back, Some(Value::Float(-3.25)));
    // The other source, reading the same node, sees the value the first one wrote.
    eventually("the other session sees it", 30, || {
        (support::latest(&rig.handle, &format!("{LOCKED_OUT}/level"))?
            .sample
            .value
            == Some(Value::Float(-3.25)))
        .then_some(())
    })
    .await;
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_the_server_does_not_let_us_write_fails_naming_the_node() {
    let rig = Rig::start().await;
    let path = format!("{PROBE}/locked");
    let report = rig.write(&path, Value::Float(2.0)).await;
    let reason = Rig::failed(&report);
    assert!(
        reason.contains("ns=2;s=Write.Locked") && reason.contains("BadUserAccessDenied"),
        "{reason}"
    );
    assert!(reason.contains("does not let this user write"), "{reason}");
    match rig.audited(&path) {
        Outcome::Failed(r) => assert!(r.contains("BadUserAccessDenied"), "{r}"),
        other => panic!("audited as {other:?}"),
    }
    assert_eq!(rig.good(&path).await, Value::Float(1.0));
    rig.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_fit_the_nodes_type_are_refused_before_sending() {
    let rig = Rig::start().await;
    // An Int16 node: 70000 does not fit.
    let count = format!("{PROBE}/count");
    let report = rig.write(&count, Value::Int(70_000)).await;
    let reason = Rig::failed(&report);
    assert!(
        reason.contains("Write.Int16") && reason.contains("outside the range of Int16"),
        "{reason}"
    );
    // A string to an Int16 node.
    let label = format!("{PROBE}/label");
    let report = rig.write(&label, Value::String("fast".into())).await;
    let reason = Rig::failed(&report);
    assert!(
        reason.contains("Write.Int16") && reason.contains("cannot be written to a Int16 node"),
        "{reason}"
    );
    // Neither reached the server; a value that fits does.
    let report = rig.write(&count, Value::Int(-1234)).await;
    assert_eq!(report.status, WriteStatus::Done, "{report:?}");
    assert_eq!(report.read_back, Some(Value::Int(-1234)));
    rig.engine.shutdown().await;
}
