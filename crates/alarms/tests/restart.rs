//! The stage as the engine runs it: built from a plan, fed samples, stopped, built again
//! from the same data directory: a raised, unacknowledged alarm is still there; and an
//! acknowledgement runs through the pipeline's command path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use backplane_alarms::{AckFailed, AckRefused, AlarmsHandle, AlarmsStageKind};
use backplane_config::Catalog;
use backplane_connector::{
    BuiltStage, CommandPath, Derived, PipelineInput, StageContext, StageKind, Topology,
};
use backplane_model::sample::EventKind;
use backplane_model::{LimitLevel, Quality, Sample, Timestamp, Value};
use tokio::sync::mpsc;

const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[models.Tank]
[models.Tank.attributes]
level = { type = "float", unit = "%", limits = { hi = 85.0, deadband = 1.0 } }
volume = { type = "float" }

[[assets]]
path = "tank-1"
model = "Tank"
"#;

fn topology() -> Arc<Topology> {
    let plan = backplane_config::load_str(CONFIG, Path::new("test.toml"), &Catalog::default()).unwrap();
    Arc::new(Topology::new(plan))
}

fn build(
    topology: &Arc<Topology>,
    dir: &Path,
    input: &mpsc::Sender<PipelineInput>,
) -> (BuiltStage, Arc<AlarmsHandle>) {
    let built = AlarmsStageKind
        .build(&StageContext {
            topology,
            data_dir: &dir.to_path_buf(),
            commands: CommandPath::new(input.downgrade()),
            counter: &|_| prometheus_client::metrics::counter::Counter::default(),
        })
        .unwrap();
    let handle = built.services.get::<AlarmsHandle>().unwrap();
    (built, handle)
}

fn level(topology: &Topology, value: f64) -> Sample {
    Sample {
        tag: topology.tag_by_path("acme/plant/tank-1/level").unwrap().id,
        value: Some(Value::Float(value)),
        quality: Quality::Good,
        source_time: None,
        gateway_time: Timestamp::from_unix_millis(1_000),
        context: Arc::default(),
    }
}

#[tokio::test]
async fn a_raised_alarm_survives_a_restart_and_is_acknowledged_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let topology = topology();
    let (input, mut pipeline) = mpsc::channel(8);
    let (mut built, handle) = build(&topology, dir.path(), &input);
    assert_eq!(handle.view().len(), 1, "one alarm: the attribute with limits");
    let mut out = Derived::default();
    built.stage.observe(&[level(&topology, 90.0)], &mut out);
    let [(asset, _, EventKind::Alarm(raised))] = out.events.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(asset.as_str(), "acme/plant/tank-1");
    assert_eq!(
        (raised.limit, raised.active, raised.acked),
        (Some(LimitLevel::Hi), true, Some(false))
    );
    built.stage.stop();
    drop(built);

    let (mut built, handle) = build(&topology, dir.path(), &input);
    let view = handle.view();
    assert_eq!(view[0].state.level, Some(LimitLevel::Hi), "restored");
    assert!(!view[0].state.acked);
    // Still active: a value inside by less than the deadband is no transition.
    let mut out = Derived::default();
    built.stage.observe(&[level(&topology, 84.5)], &mut out);
    assert!(out.events.is_empty(), "{out:?}");

    // The acknowledgement is a call the pipeline runs between two batches.
    let ack = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle
                .acknowledge("acme/plant/tank-1/level", "anna", Some("checked"))
                .await
        }
    });
    let Some(PipelineInput::Call(call)) = pipeline.recv().await else {
        panic!("no call");
    };
    let mut out = Derived::default();
    (call.0)(Timestamp::from_unix_millis(2_000), &mut out);
    assert_eq!(ack.await.unwrap(), Ok(()));
    let [(_, _, EventKind::Alarm(acked))] = out.events.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!((acked.acked, acked.by.as_deref()), (Some(true), Some("anna")));
    assert!(handle.view()[0].state.acked);

    let again = tokio::spawn({
        let handle = handle.clone();
        async move { handle.acknowledge("acme/plant/tank-1/level", "anna", None).await }
    });
    let Some(PipelineInput::Call(call)) = pipeline.recv().await else {
        panic!("no call");
    };
    (call.0)(Timestamp::from_unix_millis(3_000), &mut Derived::default());
    assert_eq!(
        again.await.unwrap(),
        Err(AckFailed::Refused(AckRefused::AlreadyAcked))
    );
}
