//! `include`: files merged in load order, paths relative to the including file, and the
//! errors of cycles, missing files and main-only sections in included files.

// Helpers outside `#[test]` functions are not covered by clippy's allow-*-in-tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use backplane_config::{Diagnostic, Plan};
use common::{assert_at, catalog};

/// Writes `files` (relative path, text) into a fresh directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn load(dir: &Path) -> Result<Plan, Vec<Diagnostic>> {
    backplane_config::load(&dir.join("main.toml"), &catalog())
}

const MAIN: &str = r#"include = ["conf/models.toml"]

[namespace]
enterprise = "acme"
site = "plant"

[[assets]]
path = "line-1"
"#;

const MODELS: &str = r#"include = ["sources/plc.toml"]

[models.Filler.attributes]
speed = { type = "float", unit = "bottle/min" }

[[assets]]
path = "line-1/filler"
model = "Filler"
source = "plc"
bindings.speed = { address = "hr:1" }
"#;

const PLC: &str = r#"[[sources]]
name = "plc"
kind = "simulator"
signals = { "hr:1" = {} }
"#;

#[test]
fn includes_merge_sections_in_load_order() {
    let dir = tree(&[
        ("main.toml", MAIN),
        ("conf/models.toml", MODELS),
        ("conf/sources/plc.toml", PLC),
    ]);
    let plan = load(dir.path()).unwrap();
    let files: Vec<PathBuf> = ["main.toml", "conf/models.toml", "conf/sources/plc.toml"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    assert_eq!(plan.files, files);
    let paths: Vec<&str> = plan.assets.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "acme",
            "acme/plant",
            "acme/plant/line-1",
            "acme/plant/line-1/filler"
        ]
    );
    assert_eq!(plan.models.len(), 1);
    assert_eq!(plan.sources[0].name, "plc");
    assert_eq!(plan.gateway.data_dir, dir.path().join("data"));
}

#[test]
fn version_covers_every_included_file() {
    let dir = tree(&[
        ("main.toml", MAIN),
        ("conf/models.toml", MODELS),
        ("conf/sources/plc.toml", PLC),
    ]);
    let before = load(dir.path()).unwrap().version;
    std::fs::write(
        dir.path().join("conf/sources/plc.toml"),
        format!("{PLC}seed = 2\n"),
    )
    .unwrap();
    let after = load(dir.path()).unwrap().version;
    assert_ne!(before, after);
    assert_eq!(after.len(), 64);
}

#[test]
fn include_paths_are_relative_to_the_including_file() {
    // `sources/plc.toml` exists only below `conf/`, not next to main.toml.
    let dir = tree(&[
        ("main.toml", MAIN),
        ("conf/models.toml", MODELS),
        ("sources/plc.toml", PLC),
    ]);
    let diagnostics = load(dir.path()).unwrap_err();
    let d = &diagnostics[0];
    assert!(
        d.message.starts_with("cannot read included file"),
        "{}",
        d.message
    );
    assert!(d.message.contains("conf/sources/plc.toml"), "{}", d.message);
    assert_eq!(d.location.file, dir.path().join("conf/models.toml"));
    assert_at(d, 1, 12, "include[0]");
}

#[test]
fn reports_missing_include_at_its_entry() {
    let main = MAIN.replace("[\"conf/models.toml\"]", "[\"conf/models.toml\", \"nope.toml\"]");
    let dir = tree(&[
        ("main.toml", &main),
        ("conf/models.toml", MODELS),
        ("conf/sources/plc.toml", PLC),
    ]);
    let diagnostics = load(dir.path()).unwrap_err();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(diagnostics[0].message.contains("nope.toml"));
    assert_eq!(diagnostics[0].location.file, dir.path().join("main.toml"));
    assert_at(&diagnostics[0], 1, 32, "include[1]");
}

#[test]
fn reports_include_cycle_at_the_entry_that_closes_it() {
    let plc = format!("include = [\"../../main.toml\"]\n{PLC}");
    let dir = tree(&[
        ("main.toml", MAIN),
        ("conf/models.toml", MODELS),
        ("conf/sources/plc.toml", &plc),
    ]);
    let diagnostics = load(dir.path()).unwrap_err();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(
        d.message,
        "include cycle: main.toml → models.toml → plc.toml → main.toml"
    );
    assert_eq!(d.location.file, dir.path().join("conf/sources/plc.toml"));
    assert_at(d, 1, 12, "include[0]");
}

#[test]
fn rejects_file_including_itself() {
    let main = MAIN.replace("[\"conf/models.toml\"]", "[\"./main.toml\"]");
    let dir = tree(&[("main.toml", &main)]);
    let d = &load(dir.path()).unwrap_err()[0];
    assert_eq!(d.message, "include cycle: main.toml → main.toml");
}

#[test]
fn rejects_gateway_in_an_included_file() {
    let plc = format!("[gateway]\nname = \"edge\"\n\n{PLC}");
    let dir = tree(&[
        ("main.toml", MAIN),
        ("conf/models.toml", MODELS),
        ("conf/sources/plc.toml", &plc),
    ]);
    let diagnostics = load(dir.path()).unwrap_err();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(d.message, "`gateway` is only allowed in the main file");
    assert_eq!(d.location.file, dir.path().join("conf/sources/plc.toml"));
    assert_at(d, 1, 1, "gateway");
}

#[test]
fn rejects_model_defined_again_in_an_included_file() {
    let plc = format!("{PLC}\n[models.Filler.attributes]\nspeed = {{ type = \"float\" }}\n");
    let dir = tree(&[
        ("main.toml", MAIN),
        ("conf/models.toml", MODELS),
        ("conf/sources/plc.toml", &plc),
    ]);
    let diagnostics = load(dir.path()).unwrap_err();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(d.message, "model `Filler` is defined twice");
    let first = dir.path().join("conf/models.toml");
    assert_eq!(
        d.hint.as_deref(),
        Some(&*format!("first defined at {}:3:9", first.display()))
    );
    assert_eq!(d.location.file, dir.path().join("conf/sources/plc.toml"));
    assert_at(d, 6, 9, "models.Filler");
}

#[test]
fn sorts_errors_of_all_files_by_file_then_position() {
    let models = MODELS.replace("model = \"Filler\"", "model = \"Filer\"");
    let plc = PLC.replace("kind = \"simulator\"", "kind = \"simulator\"\nperod = \"1s\"");
    let main = MAIN.replace("site = \"plant\"", "site = \"Plant\"");
    let dir = tree(&[
        ("main.toml", &main),
        ("conf/models.toml", &models),
        ("conf/sources/plc.toml", &plc),
    ]);
    let diagnostics = load(dir.path()).unwrap_err();
    let at: Vec<(PathBuf, usize)> = diagnostics
        .iter()
        .map(|d| (d.location.file.clone(), d.location.line))
        .collect();
    assert_eq!(
        at,
        [
            (dir.path().join("main.toml"), 5),
            (dir.path().join("conf/models.toml"), 8),
            (dir.path().join("conf/sources/plc.toml"), 4),
        ]
    );
}

#[test]
fn reports_syntax_error_of_an_included_file_and_goes_on() {
    let models = MODELS.replace("[models.Filler.attributes]", "[models.Filler.attributes");
    let plc = PLC.replace("kind = \"simulator\"", "kind = \"simulator\"\nperod = \"1s\"");
    let dir = tree(&[
        ("main.toml", MAIN),
        ("conf/models.toml", &models),
        ("sources.toml", &plc),
    ]);
    let main = MAIN.replace(
        "[\"conf/models.toml\"]",
        "[\"conf/models.toml\", \"sources.toml\"]",
    );
    std::fs::write(dir.path().join("main.toml"), main).unwrap();
    let diagnostics = load(dir.path()).unwrap_err();
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("TOML syntax error"));
    assert_eq!(diagnostics[0].location.file, dir.path().join("conf/models.toml"));
    assert_eq!(messages[1], "unknown key `perod` in sources[0]");
}

#[test]
fn rejects_file_included_twice() {
    let main = MAIN.replace(
        "[\"conf/models.toml\"]",
        "[\"conf/models.toml\", \"conf/sources/plc.toml\"]",
    );
    let dir = tree(&[
        ("main.toml", &main),
        ("conf/models.toml", MODELS),
        ("conf/sources/plc.toml", PLC),
    ]);
    let diagnostics = load(dir.path()).unwrap_err();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(
        diagnostics[0].message,
        "`conf/sources/plc.toml` is included more than once"
    );
    assert_eq!(diagnostics[0].location.file, dir.path().join("main.toml"));
    assert_at(&diagnostics[0], 1, 32, "include[1]");
}

#[test]
fn a_models_production_rules_may_stand_in_another_file_than_the_model() {
    let production =
        "[models.Filler.production]\nstate = { attribute = \"state\", map = { running = \"execute\" } }\n";
    let models = MODELS.replace(
        "speed = { type = \"float\", unit = \"bottle/min\" }",
        "speed = { type = \"float\", unit = \"bottle/min\" }\nstate = { type = \"string\" }",
    );
    let dir = tree(&[
        (
            "main.toml",
            &MAIN.replace(
                "[\"conf/models.toml\"]",
                "[\"conf/models.toml\", \"production.toml\"]",
            ),
        ),
        ("conf/models.toml", &models),
        ("conf/sources/plc.toml", PLC),
        ("production.toml", production),
    ]);
    let plan = load(dir.path()).unwrap();
    assert_eq!(plan.models.len(), 1);
    assert_eq!(plan.models[0].attributes.len(), 2);
    assert!(plan.production.model("Filler").is_some());

    // Without the model anywhere, the lone production table is a model without attributes.
    let dir = tree(&[("main.toml", &format!("{MAIN}\n{production}"))]);
    let errors = load(dir.path()).unwrap_err();
    assert!(
        errors.iter().any(|d| d.message.contains("attributes")),
        "{errors:?}"
    );
}
