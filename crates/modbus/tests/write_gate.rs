//! The write gate in front of a real Modbus device (pymodbus): one test per rule, each
//! refused with its reason and recorded in the audit trail; a dry run that writes
//! nothing; an allowed write that reaches the device and reads back; a device that
//! clamps the value (read-back mismatch); and an audit trail that cannot be written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_engine::{
    Engine, EngineHandle, Failure, MachineWrite, Rule, Services, WriteReport, WriteStatus,
};
use backplane_modbus::ModbusKind;
use backplane_model::Value;
use backplane_security::{
    AuditEvent, AuditRecorder, AuditTrail, AuditUnavailable, AuthMethod, Identity, MemoryRecorder, Outcome,
    Role,
};
use backplane_testkit::engine as support;
use common::Peer;

const FILLER: &str = "acme/lab/area/line/filler";

/// A filler on the pymodbus server's write registers (hr:120..129 hold 0, hr:61 holds 4000).
fn config(port: u16) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "lab"

[models.Filler.attributes]
speed_setpoint = {{ type = "float", unit = "bottle/min", range = [0, 600] }}
mode = {{ type = "uint" }}
state = {{ type = "string", enum = ["idle", "running"] }}
stop_request = {{ type = "bool" }}
jog = {{ type = "bool" }}
purge = {{ type = "bool" }}
level = {{ type = "float" }}
limit = {{ type = "uint", range = [0, 6000] }}

[models.Filler.writes.speed_setpoint]
role = "operator"
max_step = 50.0
min_interval = "1h"
interlocks = ["mode == 4000", "state == 'idle'"]

[models.Filler.writes.jog]
interlocks = ["mode < 5"]

[models.Filler.writes.purge]
interlocks = ["level > 1"]

[models.Filler.writes.state]
role = "operator"

[models.Filler.writes.limit]
role = "operator"

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/line"
level = "line"

[[assets]]
path = "area/line/filler"
model = "Filler"
source = "plc"
bindings.speed_setpoint = {{ address = "hr:120", scale = {{ gain = 0.1 }} }}
bindings.mode = {{ address = "hr:61" }}
bindings.state = {{ address = "hr:122", map = {{ 0 = "idle", 1 = "running" }} }}
bindings.stop_request = {{ address = "coil:8" }}
bindings.jog = {{ address = "coil:9" }}
bindings.purge = {{ address = "coil:10" }}
bindings.limit = {{ address = "hr:129" }}

[[sources]]
name = "plc"
kind = "modbus"
url = "tcp://127.0.0.1:{port}"
unit = 1
address_base = 0
period = "100ms"
timeout = "300ms"
retries = 0
writes = true
"#
    )
}

/// A pymodbus server, an engine reading it, and the audit trail the engine's gate writes.
struct Rig {
    _peer: Peer,
    _dir: tempfile::TempDir,
    engine: Engine,
    handle: EngineHandle,
    trail: Arc<MemoryRecorder>,
}

impl Rig {
    async fn start() -> Rig {
        let trail = Arc::new(MemoryRecorder::default());
        Rig::start_with(trail.clone(), trail).await
    }

    async fn start_with(recorder: Arc<dyn AuditRecorder>, trail: Arc<MemoryRecorder>) -> Rig {
        let peer = Peer::start(0);
        let dir = tempfile::tempdir().unwrap();
        let mut registry = backplane_engine::builtins();
        registry.add_source("modbus", ModbusKind);
        let mut options = support::backoff(Duration::from_millis(100), Duration::from_millis(500));
        options.services = Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(recorder)));
        let engine = support::start_with(&config(peer.port), dir.path(), &registry, options);
        let handle = engine.handle();
        let rig = Rig {
            _peer: peer,
            _dir: dir,
            engine,
            handle,
            trail,
        };
        for a in ["speed_setpoint", "mode", "state", "jog", "limit", "stop_request"] {
            rig.good(a).await;
        }
        rig
    }

    /// The attribute's latest good value, waiting for the first one.
    async fn good(&self, attribute: &str) -> Value {
        let path = format!("{FILLER}/{attribute}");
        support::eventually_every(&path, Duration::from_secs(20), Duration::from_millis(20), || {
            support::latest(&self.handle, &path)
                .filter(|l| l.sample.quality.is_good())
                .and_then(|l| l.sample.value)
        })
        .await
    }

    async fn write(&self, who: &Identity, attribute: &str, value: Value, dry_run: bool) -> WriteReport {
        self.handle
            .write(MachineWrite {
                tag: format!("{FILLER}/{attribute}"),
                value,
                dry_run,
                who: who.clone(),
                from: "http 127.0.0.1:50000".into(),
            })
            .await
    }

    /// The final audit records of writes to `attribute`.
    fn audited(&self, attribute: &str) -> Vec<AuditEvent> {
        let target = format!("{FILLER}/{attribute}");
        self.trail
            .events()
            .into_iter()
            .filter(|e| e.action == "write" && e.target == target)
            .collect()
    }

    /// Asserts the write was refused by `rule` with a reason containing `why`, audited once
    /// as refused by that rule, with who and where from.
    fn assert_refused(&self, report: &WriteReport, attribute: &str, rule: Rule, why: &str) {
        match &report.status {
            WriteStatus::Refused { rule: r, reason } => {
                assert_eq!(*r, rule, "{reason}");
                assert!(reason.contains(why), "`{reason}` should say `{why}`");
            }
            other => panic!("expected a refusal by {rule}, got {other:?}"),
        }
        let events = self.audited(attribute);
        let [event] = events.as_slice() else {
            panic!("expected one audit record for {attribute}, got {events:#?}")
        };
        match &event.outcome {
            Outcome::Refused(reason) => assert!(reason.starts_with(&format!("{rule}: ")), "{reason}"),
            other => panic!("audited as {other:?}"),
        }
        assert_eq!(event.from, "http 127.0.0.1:50000");
        assert!(event.who.is_some());
        assert!(
            self.trail.events().iter().all(|e| e.action != "write.accepted"),
            "a refused write is never accepted"
        );
    }

    async fn stop(self) {
        self.engine.shutdown().await;
    }
}

fn operator() -> Identity {
    Identity::new("olga", Role::Operator, AuthMethod::Password)
}

fn engineer() -> Identity {
    Identity::new("erik", Role::Engineer, AuthMethod::Token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_write_reaches_the_device_reads_back_and_is_audited() {
    let rig = Rig::start().await;
    let report = rig
        .write(&operator(), "speed_setpoint", Value::Float(42.5), false)
        .await;
    assert_eq!(report.status, WriteStatus::Done, "{report:?}");
    // 42.5 bottle/min through the inverse of `scale = { gain = 0.1 }`: register value 425.
    assert_eq!(report.raw, Some(Value::UInt(425)));
    assert_eq!(report.read_back, Some(Value::Float(42.5)));
    assert_eq!(report.source.as_deref(), Some("plc"));
    assert_eq!(report.address.as_deref(), Some("hr:120"));
    // The device holds it: the next polls read it.
    support::eventually_every(
        "the written value to be read",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            (support::latest(&rig.handle, &format!("{FILLER}/speed_setpoint"))?
                .sample
                .value
                == Some(Value::Float(42.5)))
            .then_some(())
        },
    )
    .await;
    let events = rig.trail.events();
    let accepted: Vec<_> = events.iter().filter(|e| e.action == "write.accepted").collect();
    assert_eq!(accepted.len(), 1, "the acceptance is recorded before the write");
    let done = rig.audited("speed_setpoint");
    assert_eq!(done.len(), 1);
    let e = &done[0];
    assert_eq!(e.outcome, Outcome::Done);
    assert_eq!(e.who.as_ref().map(|w| w.name.as_str()), Some("olga"));
    assert_eq!(e.old, Some(serde_json::json!(0.0)));
    assert_eq!(e.new, Some(serde_json::json!(42.5)));
    assert_eq!(report.audit, Some(events.len() as u64));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_checks_everything_and_writes_nothing() {
    let rig = Rig::start().await;
    let report = rig
        .write(&operator(), "speed_setpoint", Value::Float(42.5), true)
        .await;
    assert_eq!(report.status, WriteStatus::DryRun, "{report:?}");
    assert_eq!(report.raw, Some(Value::UInt(425)));
    assert_eq!(
        (report.source.as_deref(), report.address.as_deref()),
        (Some("plc"), Some("hr:120"))
    );
    assert_eq!(rig.audited("speed_setpoint")[0].outcome, Outcome::DryRun);
    // A dry run is not an accepted write: the real one right after is not "too fast".
    let since = Rig::sample_time(&rig);
    support::eventually_every(
        "a poll after the dry run",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let l = support::latest(&rig.handle, &format!("{FILLER}/speed_setpoint"))?;
            (l.sample.gateway_time > since).then_some(())
        },
    )
    .await;
    assert_eq!(
        rig.good("speed_setpoint").await,
        Value::Float(0.0),
        "nothing was written"
    );
    let real = rig
        .write(&operator(), "speed_setpoint", Value::Float(10.0), false)
        .await;
    assert_eq!(real.status, WriteStatus::Done, "{real:?}");
    rig.stop().await;
}

impl Rig {
    fn sample_time(&self) -> backplane_model::Timestamp {
        support::latest(&self.handle, &format!("{FILLER}/speed_setpoint"))
            .unwrap()
            .sample
            .gateway_time
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attribute_not_in_the_allowlist_is_refused() {
    let rig = Rig::start().await;
    let report = rig
        .write(&engineer(), "stop_request", Value::Bool(true), false)
        .await;
    rig.assert_refused(
        &report,
        "stop_request",
        Rule::NotAllowlisted,
        "[models.Filler.writes.stop_request]",
    );
    assert_eq!(rig.good("stop_request").await, Value::Bool(false));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_outside_the_attribute_range_is_refused() {
    let rig = Rig::start().await;
    let report = rig.write(&operator(), "limit", Value::UInt(65535), false).await;
    rig.assert_refused(&report, "limit", Rule::Range, "outside the range [0, 6000]");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_the_wrong_type_is_refused() {
    let rig = Rig::start().await;
    let report = rig
        .write(&operator(), "speed_setpoint", Value::String("fast".into()), false)
        .await;
    rig.assert_refused(&report, "speed_setpoint", Rule::Type, "is float");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_too_large_is_refused() {
    let rig = Rig::start().await;
    let report = rig
        .write(&operator(), "speed_setpoint", Value::Float(100.0), false)
        .await;
    rig.assert_refused(&report, "speed_setpoint", Rule::MaxStep, "more than max_step 50");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_write_within_min_interval_is_refused() {
    let rig = Rig::start().await;
    let first = rig
        .write(&operator(), "speed_setpoint", Value::Float(20.0), false)
        .await;
    assert_eq!(first.status, WriteStatus::Done, "{first:?}");
    let second = rig
        .write(&operator(), "speed_setpoint", Value::Float(30.0), false)
        .await;
    match &second.status {
        WriteStatus::Refused {
            rule: Rule::MinInterval,
            reason,
        } => assert!(reason.contains("min_interval"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let events = rig.audited("speed_setpoint");
    assert!(
        matches!(&events[1].outcome, Outcome::Refused(r) if r.starts_with("min_interval: ")),
        "{events:#?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_interlock_is_refused() {
    let rig = Rig::start().await;
    // mode (hr:61) is 4000, and jog needs `mode < 5`.
    let report = rig.write(&engineer(), "jog", Value::Bool(true), false).await;
    rig.assert_refused(
        &report,
        "jog",
        Rule::Interlock,
        "interlock `mode < 5` is false: `mode` is 4000",
    );
    assert_eq!(rig.good("jog").await, Value::Bool(false));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interlock_on_a_value_never_read_is_unknown_and_refused() {
    let rig = Rig::start().await;
    let report = rig.write(&engineer(), "purge", Value::Bool(true), false).await;
    rig.assert_refused(
        &report,
        "purge",
        Rule::Interlock,
        "interlock `level > 1` is unknown",
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_below_the_rule_is_refused() {
    let rig = Rig::start().await;
    let report = rig.write(&operator(), "jog", Value::Bool(true), false).await;
    rig.assert_refused(&report, "jog", Rule::Role, "it needs the engineer role");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_identity_is_refused_whatever_its_role() {
    let rig = Rig::start().await;
    let anonymous = Identity::new("anonymous", Role::Admin, AuthMethod::Anonymous);
    let report = rig
        .write(&anonymous, "speed_setpoint", Value::Float(10.0), false)
        .await;
    rig.assert_refused(
        &report,
        "speed_setpoint",
        Rule::Anonymous,
        "authenticated identity",
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_without_an_inverse_is_refused() {
    let rig = Rig::start().await;
    // `state` is a code mapped to labels: a label is not written back as a code.
    let report = rig
        .write(&operator(), "state", Value::String("running".into()), false)
        .await;
    rig.assert_refused(&report, "state", Rule::NoInverse, "`map` step has no inverse");
    assert_eq!(rig.good("state").await, Value::String("idle".into()));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_holds_another_value_than_written_fails_the_write() {
    let rig = Rig::start().await;
    // hr:129 clamps writes to 1000, as a PLC limiting a setpoint would.
    let report = rig.write(&operator(), "limit", Value::UInt(5000), false).await;
    match &report.status {
        WriteStatus::Failed {
            failure: Failure::ReadBack,
            reason,
        } => assert!(reason.contains("read back 1000"), "{reason}"),
        other => panic!("expected a read-back failure, got {other:?}"),
    }
    let events = rig.audited("limit");
    assert!(
        matches!(&events[0].outcome, Outcome::Failed(r) if r.contains("asked for 5000")),
        "{events:#?}"
    );
    rig.stop().await;
}

/// A trail whose disk is gone.
#[derive(Debug)]
struct Unwritable;

impl AuditRecorder for Unwritable {
    fn record(&self, _event: AuditEvent) -> Result<u64, AuditUnavailable> {
        Err(AuditUnavailable("no space left on device".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_audit_record_cannot_be_written_is_refused_and_not_made() {
    let rig = Rig::start_with(Arc::new(Unwritable), Arc::new(MemoryRecorder::default())).await;
    let report = rig
        .write(&operator(), "speed_setpoint", Value::Float(20.0), false)
        .await;
    assert!(
        matches!(&report.status, WriteStatus::Refused { rule: Rule::Audit, reason } if reason.contains("no space left")),
        "{report:?}"
    );
    // A dry run answers as the write would.
    let dry = rig
        .write(&operator(), "speed_setpoint", Value::Float(20.0), true)
        .await;
    assert!(
        matches!(
            &dry.status,
            WriteStatus::Refused {
                rule: Rule::Audit,
                ..
            }
        ),
        "{dry:?}"
    );
    let since = rig.sample_time();
    support::eventually_every(
        "a poll after the refusal",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let l = support::latest(&rig.handle, &format!("{FILLER}/speed_setpoint"))?;
            (l.sample.gateway_time > since).then_some(())
        },
    )
    .await;
    assert_eq!(rig.good("speed_setpoint").await, Value::Float(0.0));
    rig.stop().await;
}
