//! The web UI in a real browser: each test runs one file of `tests/ui/` with Node's test
//! runner, which starts this build's gateway (the dairy demo) and drives Debian's Chromium
//! with playwright-core. They need `BACKPLANE_UI_TESTS` (the directory `scripts/install-ui-peers`
//! prints; `scripts/test` sets it) and `/usr/bin/chromium`; without them they say so and pass,
//! like the other peer tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

fn ui_tests() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("BACKPLANE_UI_TESTS").map(PathBuf::from) else {
        eprintln!("BACKPLANE_UI_TESTS is not set (run scripts/test): the browser tests were not run");
        return None;
    };
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "BACKPLANE_UI_TESTS={} has no node_modules/playwright-core: run scripts/install-ui-peers",
        dir.display()
    );
    let chromium = std::env::var("BACKPLANE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "no browser at {chromium}: `apt-get install chromium` (or set BACKPLANE_CHROMIUM)"
    );
    Some(dir)
}

/// Runs `node --test FILE` in the UI test directory and fails with its output.
fn run(file: &str) {
    let Some(dir) = ui_tests() else { return };
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(&dir)
        .env("BACKPLANE_BIN", env!("CARGO_BIN_EXE_backplane"))
        .output()
        .expect("node (Node.js 20) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{file} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
}

#[test]
fn plant_tree_live_values_and_lineage_work_in_a_browser() {
    run("plant.test.mjs");
}

#[test]
fn production_actions_and_views_work_in_a_browser() {
    run("production.test.mjs");
}

#[test]
fn login_roles_and_csrf_work_in_a_browser() {
    run("login.test.mjs");
}

#[test]
fn trend_chart_draws_what_the_history_api_answers() {
    run("trends.test.mjs");
}

#[test]
fn operator_forms_validate_and_survive_a_gateway_restart() {
    run("forms.test.mjs");
}

#[test]
fn connections_show_every_source_and_sink_with_state() {
    run("connections.test.mjs");
}

#[test]
fn discover_scans_a_device_and_gives_bindings() {
    run("discover.test.mjs");
}
