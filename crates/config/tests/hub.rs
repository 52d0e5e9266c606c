//! A hub's namespace: its own site plus the sites it mirrors, every asset path starting
//! with a site.

mod common;

use backplane_model::Level;
use common::{errors, load};

const HUB: &str = r#"[namespace]
enterprise = "acme"
site = "hq"
sites = ["plant-a", "plant-b"]

[models.Filler.attributes]
speed = { type = "float", unit = "bottle/min" }

[[sources]]
name = "plc"
kind = "simulator"
signals.speed = { kind = "const", value = 1.0 }
"#;

#[test]
fn a_hub_places_every_site_under_the_enterprise_and_assets_below_their_site() {
    let plan = load(&format!(
        "{HUB}\n[[assets]]\npath = \"plant-a/packaging\"\n\n[[assets]]\npath = \"plant-b/bottling\"\n\n[[assets]]\npath = \"plant-b/bottling/filler\"\nmodel = \"Filler\"\nsource = \"plc\"\nbindings.speed = {{ address = \"speed\" }}\n"
    ))
    .unwrap();
    let paths: Vec<(&str, Level)> = plan.assets.iter().map(|a| (a.path.as_str(), a.level)).collect();
    assert_eq!(
        &paths[..4],
        &[
            ("acme", Level::Enterprise),
            ("acme/hq", Level::Site),
            ("acme/plant-a", Level::Site),
            ("acme/plant-b", Level::Site),
        ]
    );
    assert_eq!(plan.asset("acme/plant-b/bottling").unwrap().level, Level::Area);
    assert!(plan.asset("acme/plant-b/bottling/filler").is_some());
    assert!(plan.namespace.is_hub());
}

#[test]
fn a_hub_asset_outside_every_site_is_an_error_naming_the_sites() {
    let d = errors(&format!("{HUB}\n[[assets]]\npath = \"packaging\"\n"));
    assert!(d[0].message.contains("`packaging` is not below a site"), "{d:?}");
    assert!(
        d[0].hint.as_deref().unwrap().contains("hq, plant-a, plant-b"),
        "{d:?}"
    );
}

#[test]
fn a_site_listed_twice_is_an_error() {
    let d = errors(&HUB.replace("[\"plant-a\", \"plant-b\"]", "[\"plant-a\", \"hq\"]"));
    assert!(d[0].message.contains("`hq` is listed twice"), "{d:?}");
}

#[test]
fn an_edge_keeps_asset_paths_below_its_own_site() {
    let plan = load(&format!(
        "{}\n[[assets]]\npath = \"packaging\"\n",
        HUB.replace("sites = [\"plant-a\", \"plant-b\"]\n", "")
    ))
    .unwrap();
    assert!(plan.asset("acme/hq/packaging").is_some());
    assert!(!plan.namespace.is_hub());
}
