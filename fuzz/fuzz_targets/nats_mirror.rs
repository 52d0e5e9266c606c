//! Messages a hub's `nats` source mirrors, as `Mirror::ingest` decodes them: any subject
//! and payload on the stream (whoever may publish under the prefix controls both). The
//! input is `subject`, a zero byte, then the payload. No input may panic.
//! `crates/nats/tests/mirror_prop.rs` checks the same (and what is refused) under
//! proptest on stable.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use backplane_connector::{Registry, Topology};
use backplane_nats::mirror::Mirror;
use libfuzzer_sys::fuzz_target;

const HUB: &str = r#"
[gateway]
name = "hub"
[namespace]
enterprise = "acme"
site = "hub"
sites = ["plant-b"]
[models.Mixed.attributes]
level = { type = "float", unit = "%" }
count = { type = "uint" }
recipe = { type = "string" }
started = { type = "timestamp" }
profile = { type = "float[]" }
[[assets]]
path = "plant-b/area"
level = "area"
[[assets]]
path = "plant-b/area/mixer-1"
model = "Mixed"
source = "plants"
bindings.level = { address = "acme/plant-b/area/mixer-1/level" }
bindings.count = { address = "acme/plant-b/area/mixer-1/count" }
bindings.recipe = { address = "acme/plant-b/area/mixer-1/recipe" }
bindings.started = { address = "acme/plant-b/area/mixer-1/started" }
bindings.profile = { address = "acme/plant-b/area/mixer-1/profile" }
[[sources]]
name = "plants"
kind = "nats"
url = "nats://127.0.0.1:4222"
stream = "UNS"
"#;

fn topology() -> &'static Arc<Topology> {
    static TOPOLOGY: OnceLock<Arc<Topology>> = OnceLock::new();
    TOPOLOGY.get_or_init(|| {
        let mut registry = Registry::default();
        backplane_nats::register(&mut registry);
        let plan = backplane_config::load_str(HUB, Path::new("hub.toml"), &registry.catalog())
            .unwrap_or_else(|_| panic!("the hub configuration loads"));
        Arc::new(Topology::new(plan))
    })
}

fuzz_target!(|data: &[u8]| {
    let (subject, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let subject = String::from_utf8_lossy(subject);
    let topology = topology();
    let Some(source) = topology.sources.iter().find(|s| s.name == "plants") else {
        return;
    };
    let mut mirror = Mirror::new(topology.clone(), "plants", &source.addresses, "uns");
    let mut out = Vec::new();
    // Twice: the second time through de-duplication and the remembered context.
    mirror.ingest(&subject, "edge-b", payload, &mut out);
    mirror.ingest(&subject, "edge-b", payload, &mut out);
});
