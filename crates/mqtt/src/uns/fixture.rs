//! The plan the unit tests of this module share: one tank with two attributes, and an
//! `mqtt` sink with a prefix that publishes both payload forms.

use std::path::Path;
use std::sync::Arc;

use backplane_connector::Topology;
use backplane_model::{Context, Quality, Sample, Timestamp, Value};

use super::{MqttSinkKind, MqttSinkSettings};

pub(super) const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = { type = "float", unit = "%" }
temperature = { type = "float", unit = "degC" }
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = { address = "l" }
bindings.temperature = { address = "t" }
[[sources]]
name = "sim"
kind = "simulator"
signals.l = { signal = "constant", value = 1.0 }
signals.t = { signal = "constant", value = 4.0 }
[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:1883"
topic_prefix = "v1/"
payload = "both"
"#;

pub(super) fn topology() -> (Arc<Topology>, MqttSinkSettings) {
    let mut registry = backplane_engine::builtins();
    registry.add_sink("mqtt", MqttSinkKind);
    let plan = backplane_config::load_str(CONFIG, Path::new("t.toml"), &registry.catalog()).unwrap();
    let settings = plan.sinks[0]
        .settings
        .downcast_ref::<MqttSinkSettings>()
        .unwrap()
        .clone();
    (Arc::new(Topology::new(plan)), settings)
}

pub(super) fn sample(topology: &Topology, path: &str, value: f64, at: i64) -> Sample {
    Sample {
        tag: topology.tag_by_path(path).unwrap().id,
        value: Some(Value::Float(value)),
        quality: Quality::Good,
        source_time: None,
        gateway_time: Timestamp::from_unix_nanos(at),
        context: Arc::new(Context::default()),
    }
}
