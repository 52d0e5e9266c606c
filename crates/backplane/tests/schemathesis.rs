//! The served OpenAPI document holds for the running gateway: schemathesis (a third-party
//! property-based API tester) reads `/api/v1/openapi.json`, generates valid and invalid
//! requests from it and checks every answer against it (no server errors, documented status
//! codes, content types and bodies, invalid input refused, valid input accepted, required
//! credentials enforced). Once against the demo in open mode, once against a gateway with
//! a token. Each run is bounded by `--max-time` with a fixed seed.
//!
//! Needs `BACKPLANE_PYTHON` (scripts/test sets it) with schemathesis installed from
//! tests/peers/requirements.txt; without it the test says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

use backplane_testkit::process::{Running, start_gateway};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");

/// Seconds each run may take; fuzzing repeats until the budget is spent.
const DEMO_SECONDS: &str = "60";
const TOKEN_SECONDS: &str = "40";

/// Per-operation exceptions, each with why. Only constraints OpenAPI cannot state are
/// excepted, and only on the operations that have them; every other check runs everywhere.
const CONFIG: &str = r#"
# `positive_data_acceptance` expects every schema-valid request to succeed. These
# operations have constraints between parameters that OpenAPI parameters cannot express
# (each is stated in the operation's description): `from` before `to`, `since` before
# `until`; one of `tag`, `asset` and `model`; `attribute` only with `asset` or `model`. A
# request breaking one gets a 400 naming the parameter, so 400 is accepted there.
[[operations]]
include-name-regex = "^GET /api/v1/(history/|benchmark/|production/downtimes$|audit$)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]

# Production changes name configured things (assets, downtime reasons, form fields) and
# must fit the current state (a work order's or lot's life cycle, `scheduled_end` after
# `scheduled_start`); a schema cannot know either, so a 400 naming the field is accepted.
[[operations]]
include-name-regex = "^POST /api/v1/(production/|forms/)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]

# Discovery connects to the URL it is given: a schema-valid string is rarely a device that
# answers (no kind browses its scheme: 400 naming `url`; nothing listens: 422), and one
# discovery runs at a time (429).
[[operations]]
include-name-regex = "^POST /api/v1/discover$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "422", "429", "504"]

# A plain HTTP request to the WebSocket endpoint is answered 426 (schemathesis does not
# perform WebSocket handshakes); every other check still runs on it.
[[operations]]
include-name-regex = "^GET /api/v1/stream/ws$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "426", "429", "5xx"]
"#;

fn python() -> Option<PathBuf> {
    match std::env::var_os("BACKPLANE_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!(
                "skipped: BACKPLANE_PYTHON is not set (export BACKPLANE_PYTHON=$(scripts/install-peers | tail -n 1))"
            );
            None
        }
    }
}

/// Starts `backplane ARGS` in `dir` and returns it with the API's base URL.
fn start(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> (Running, String) {
    let (running, base, _) = start_gateway(
        Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied()),
        0,
    );
    (running, base)
}

/// Runs schemathesis with every check against `base`; panics with its report unless it
/// found nothing.
fn schemathesis(python: &Path, base: &str, seconds: &str, dir: &Path, extra: &[&str]) {
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(python)
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(&config)
        .args(["run", &format!("{base}/api/v1/openapi.json")])
        .args([
            "--checks",
            "all",
            "--max-time",
            seconds,
            "--seed",
            "18",
            "--workers",
            "1",
        ])
        // Stay under the gateway's per-client rate limit (50/s) so requests are answered,
        // not refused with 429.
        .args(["--request-timeout", "10", "--rate-limit", "40/s"])
        .args(extra)
        // Hypothesis keeps its example database in the working directory.
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
}

#[test]
fn the_open_demo_answers_as_its_served_openapi_document_says() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_demo, base) = start(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
        &[],
    );
    schemathesis(&python, &base, DEMO_SECONDS, dir.path(), &[]);
}

/// A gateway with a token, a historian and production: every endpoint but health and login
/// refuses requests without the token, and answers as documented with it. It has no user
/// with a password, so its served document offers only `bearer`; `ignored_auth` then sends
/// missing and wrong tokens (which must get 401), never Basic guesses that would trip the
/// login throttle (429 for 15 minutes, by design).
const TOKEN_GATEWAY: &str = r#"
[gateway]
name = "conformance"
data_dir = "data"

[api]
token = "env:BACKPLANE_API_TOKEN"

[namespace]
enterprise = "acme"
site = "plant-a"

[models.Silo.attributes]
level = { type = "float", unit = "%", range = [0, 100] }
lot_number = { type = "uint" }

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/silo-1"
model = "Silo"
source = "plc"
bindings.level = { address = "level" }
bindings.lot_number = { address = "lot" }

[[context_rules]]
asset = "reception/silo-1"
attribute = "lot_number"
field = "lot"
format = "S1-{value}"
material = "raw-milk"

[downtime_reasons]
mechanical = { description = "Mechanical", reasons = { jam = "Bottle jam" } }

[forms.lab]
assets = ["reception"]
fields.fat = { type = "float", unit = "%", range = [2.5, 6.0], required = true, label = "Fat" }

[[sources]]
name = "plc"
kind = "simulator"
seed = 1
period = "200ms"
[sources.signals]
"level" = { signal = "random_walk", start = 50, step = 1, min = 0, max = 100 }
"lot" = { signal = "counter", start = 1, increment = 1, every = 5 }

[[sinks]]
name = "history"
kind = "historian"
path = "history"
"#;

#[test]
fn a_gateway_with_a_token_answers_as_its_served_openapi_document_says() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, TOKEN_GATEWAY).unwrap();
    let token = "conformance-token-0123456789abcdef";
    let (_gateway, base) = start(
        &["run", "--listen", "127.0.0.1:0", config.to_str().unwrap()],
        dir.path(),
        &[("BACKPLANE_API_TOKEN", token)],
    );
    let header = format!("Authorization: Bearer {token}");
    schemathesis(&python, &base, TOKEN_SECONDS, dir.path(), &["-H", &header]);
}
