//! The archive of past configuration versions: which version was in force when, and the
//! files of each, exactly as hashed.

// Helpers outside `#[test]` functions are not covered by clippy's allow-*-in-tests.
#![allow(clippy::panic)]

mod common;

use std::fs;
use std::path::Path;

use backplane_config::Plan;
use backplane_config::archive::{Archive, KEEP_ACTIVATIONS, MAX_ACTIVATIONS};
use backplane_model::Timestamp;

const MAIN: &str = r#"
include = ["models.toml"]

[namespace]
enterprise = "acme"
site = "dairy"

[[sources]]
name = "plc"
kind = "simulator"
period = "1s"
signals.speed = {}

[[assets]]
path = "packaging"

[[assets]]
path = "packaging/filler"
model = "Filler"
bindings.speed = { source = "plc", address = "speed" }
"#;

const MODELS: &str = r#"
[models.Filler.attributes]
speed = { type = "float", unit = "bottle/min" }
"#;

fn load(dir: &Path) -> Plan {
    backplane_config::load(&dir.join("gw.toml"), &common::catalog()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn write(dir: &Path, models: &str) -> Plan {
    for (name, text) in [("gw.toml", MAIN), ("models.toml", models)] {
        fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    load(dir)
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_nanos(seconds * 1_000_000_000)
}

#[test]
fn each_version_is_in_force_from_its_activation_until_the_next_and_its_files_read_back_as_hashed() {
    let config = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let archive = Archive::new(data.path());
    let first = write(config.path(), MODELS);
    let (_, why) = archive.record(&first, t(100), "start").unwrap();
    assert_eq!(why, None);
    let second = write(config.path(), &MODELS.replace("bottle/min", "bottle/h"));
    assert_ne!(first.version, second.version);
    archive.record(&second, t(200), "reload").unwrap();
    archive.record(&second, t(300), "start").unwrap();

    let all = archive.activations().unwrap();
    let seen: Vec<(&str, Timestamp, Option<Timestamp>, &str)> = all
        .iter()
        .map(|a| (a.version.as_str(), a.from, a.until, a.reason.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (first.version.as_str(), t(100), Some(t(200)), "start"),
            (second.version.as_str(), t(200), Some(t(300)), "reload"),
            (second.version.as_str(), t(300), None, "start"),
        ]
    );
    assert_eq!(
        archive.at(t(150)).unwrap().map(|a| a.version),
        Some(first.version.clone())
    );
    assert_eq!(
        archive.at(t(200)).unwrap().map(|a| a.version),
        Some(second.version.clone())
    );
    assert_eq!(archive.at(t(99)).unwrap(), None);
    let during: Vec<Timestamp> = archive
        .overlapping(t(150), t(250))
        .unwrap()
        .iter()
        .map(|a| a.from)
        .collect();
    assert_eq!(during, [t(100), t(200)]);

    // The first version's files, although both have changed on disk since.
    let files = archive.files(&first.version).unwrap().expect("archived");
    assert_eq!(files.len(), 2);
    assert!(files[0].path.ends_with("gw.toml"), "{}", files[0].path);
    assert_eq!(files[0].text, MAIN);
    assert!(files[1].path.ends_with("models.toml"), "{}", files[1].path);
    assert_eq!(files[1].text, MODELS);
    assert_eq!(archive.files(&"0".repeat(64)).unwrap(), None);
    assert_eq!(archive.files("../../etc").unwrap(), None);
}

#[test]
fn a_file_changed_between_load_and_start_is_recorded_but_not_archived_as_that_version() {
    let config = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let archive = Archive::new(data.path());
    let plan = write(config.path(), MODELS);
    fs::write(config.path().join("models.toml"), MODELS.replace("float", "int")).unwrap();
    let (activation, why) = archive.record(&plan, t(1), "start").unwrap();
    assert!(!activation.archived);
    assert!(why.is_some_and(|w| w.contains("no longer read back")));
    assert_eq!(archive.files(&plan.version).unwrap(), None);
    assert_eq!(archive.activations().unwrap().len(), 1);
}

#[test]
fn the_journal_is_bounded_and_keeps_the_files_of_the_versions_it_still_names() {
    let config = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let archive = Archive::new(data.path());
    let old = write(config.path(), MODELS);
    archive.record(&old, t(0), "start").unwrap();
    let new = write(config.path(), &MODELS.replace("bottle/min", "bottle/h"));
    for i in 1..=MAX_ACTIVATIONS as i64 {
        archive.record(&new, t(i), "reload").unwrap();
    }
    let all = archive.activations().unwrap();
    assert_eq!(all.len(), KEEP_ACTIVATIONS);
    assert_eq!(all.last().unwrap().from, t(MAX_ACTIVATIONS as i64));
    assert_eq!(
        archive.files(&old.version).unwrap(),
        None,
        "no activation names it any more"
    );
    assert!(archive.files(&new.version).unwrap().is_some());
}

#[test]
fn a_torn_last_line_is_skipped_and_the_next_activation_still_counts() {
    let config = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let archive = Archive::new(data.path());
    let plan = write(config.path(), MODELS);
    archive.record(&plan, t(10), "start").unwrap();
    let journal = archive.dir().join("journal.tsv");
    let mut text = fs::read_to_string(&journal).unwrap();
    text.push_str("20000000000\tdeadbe");
    fs::write(&journal, text).unwrap();
    // The next append starts on a fresh line whatever the torn one left.
    archive.record(&plan, t(30), "start").unwrap();
    let froms: Vec<Timestamp> = archive.activations().unwrap().iter().map(|a| a.from).collect();
    assert_eq!(froms, [t(10), t(30)]);
}
