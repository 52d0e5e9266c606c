//! The compiled topology of a loaded plan: what its tags share rather than copy (memory
//! per tag, docs/performance.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::sync::Arc;

use backplane_engine::Topology;

const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = { type = "float" }
temp = { type = "float" }
[[assets]]
path = "tank-1"
model = "Tank"
source = "plc"
bindings.level = { address = "l1" }
bindings.temp = { address = "t1" }
[[assets]]
path = "tank-2"
model = "Tank"
source = "plc"
bindings.level = { address = "l2" }
bindings.temp = { address = "t2", scale = { gain = 2, offset = 0 } }
[[sources]]
name = "plc"
kind = "simulator"
signals.l1 = { signal = "constant", value = 0 }
signals.t1 = { signal = "constant", value = 0 }
signals.l2 = { signal = "constant", value = 0 }
signals.t2 = { signal = "constant", value = 0 }
"#;

fn topology() -> Topology {
    let registry = backplane_engine::builtins();
    let plan = backplane_config::load_str(CONFIG, Path::new("t.toml"), &registry.catalog()).unwrap();
    Topology::new(plan)
}

#[test]
fn bindings_move_into_the_tags_and_the_plan_keeps_no_second_copy() {
    let topology = topology();
    assert_eq!(topology.tags.len(), 4);
    assert!(topology.tags.iter().all(|t| t.binding.is_some()));
    assert!(topology.plan.assets.iter().all(|a| a.bindings.is_empty()));
    let t2 = topology.tag_by_path("acme/plant/tank-2/temp").unwrap();
    assert_eq!(&*t2.binding.as_ref().unwrap().address, "t2");
    assert_eq!(t2.source, Some(0));
}

#[test]
fn the_bound_plan_gives_back_every_binding_as_configured() {
    let registry = backplane_engine::builtins();
    let plan = backplane_config::load_str(CONFIG, Path::new("t.toml"), &registry.catalog()).unwrap();
    let bound = Topology::new(plan.clone()).bound_plan();
    assert_eq!(bound.assets.len(), plan.assets.len());
    let sorted = |mut b: Vec<backplane_model::model::Binding>| {
        b.sort_by(|x, y| x.attribute.cmp(&y.attribute));
        b
    };
    for (given, back) in plan.assets.iter().zip(&bound.assets) {
        assert_eq!(
            sorted(back.bindings.clone()),
            sorted(given.bindings.clone()),
            "{}",
            given.path
        );
    }
    assert!(bound.assets.iter().map(|a| a.bindings.len()).sum::<usize>() == 4);
}

#[test]
fn tags_are_found_by_path_and_unknown_paths_are_not() {
    let topology = topology();
    for tag in &topology.tags {
        assert_eq!(
            topology
                .tag_by_path(&topology.path(tag).to_string())
                .map(|t| t.id),
            Some(tag.id)
        );
    }
    assert!(topology.tag_by_path("acme/plant/tank-2").is_none());
    assert!(topology.tag_by_path("acme/plant/tank-2/temp/").is_none());
    assert!(topology.tag_by_path("").is_none());
}

#[test]
fn tags_share_names_equal_transform_chains_and_their_source_address() {
    let topology = topology();
    let binding = |path: &str| topology.tag_by_path(path).unwrap().binding.as_ref().unwrap();
    let (l1, l2, t2) = (
        binding("acme/plant/tank-1/level"),
        binding("acme/plant/tank-2/level"),
        binding("acme/plant/tank-2/temp"),
    );
    assert!(Arc::ptr_eq(&l1.transforms, &l2.transforms));
    // The same chain, deadband and age limit: one rule for both bindings.
    assert!(Arc::ptr_eq(&l1.rule, &l2.rule));
    assert!(!Arc::ptr_eq(&l2.rule, &t2.rule));
    assert!(
        !Arc::ptr_eq(&l2.transforms, &t2.transforms),
        "a scale makes another chain"
    );
    let (m1, m2) = (
        &topology.assets[topology.tag_by_path("acme/plant/tank-1/level").unwrap().asset].model,
        &topology.assets[topology.tag_by_path("acme/plant/tank-2/temp").unwrap().asset].model,
    );
    assert!(Arc::ptr_eq(m1.as_ref().unwrap(), m2.as_ref().unwrap()));
    let plc = &topology.sources[0];
    let at = plc.addresses.iter().position(|a| &**a == "l2").unwrap();
    assert!(Arc::ptr_eq(&plc.addresses[at], &l2.address));
}
