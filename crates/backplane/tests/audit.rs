//! The audit trail of a running gateway, end to end: changes made over the API are
//! recorded durably (every acknowledged change survives `kill -9`), queried and exported
//! through the API, and `backplane audit verify` finds the chain intact, then a flipped
//! byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::process::Command;

use backplane_testkit::process::{Running, start_gateway};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");
const TOKEN: &str = "audit-test-token-0123456789";
const LINE: &str = "acme/plant-a/packaging/line-1";

const CONFIG: &str = r#"
[gateway]
name = "audit-test"
data_dir = "data"

[api]
token = "env:BACKPLANE_AUDIT_TEST_TOKEN"

[namespace]
enterprise = "acme"
site = "plant-a"

[models.Filler.attributes]
speed = { type = "float", unit = "bottle/min" }

[[assets]]
path = "packaging"

[[assets]]
path = "packaging/line-1"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
source = "plc"
bindings.speed = { address = "speed" }

[[sources]]
name = "plc"
kind = "simulator"
period = "100ms"
[sources.signals]
"speed" = { signal = "ramp", from = 0, to = 600, period = "60s" }
"#;

fn start(dir: &Path) -> (Running, String) {
    let (gateway, base, _) = start_gateway(
        Command::new(BIN)
            .arg("run")
            .arg(dir.join("gateway.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .env("BACKPLANE_AUDIT_TEST_TOKEN", TOKEN),
        0,
    );
    (gateway, base)
}

fn verify(config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn every_acknowledged_change_survives_kill_9_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let (mut gateway, base) = start(dir.path());
    let client = reqwest::Client::new();

    for n in 0..20 {
        let response = client
            .put(format!("{base}/api/v1/context/{LINE}"))
            .bearer_auth(TOKEN)
            .json(&json!({ "batch": format!("B-{n}") }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }
    let page: Value = client
        .get(format!(
            "{base}/api/v1/audit?action=context.&target={LINE}&limit=5"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["records"].as_array().unwrap().len(), 5, "{page}");
    assert_eq!(page["more"], true);
    assert_eq!(page["records"][0]["who"]["name"], "token", "{page}");
    assert_eq!(page["records"][0]["new"]["batch"], "B-0", "{page}");
    let export = client
        .get(format!("{base}/api/v1/audit/export"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(export.status().is_success());
    let exported = dir.path().join("exported.jsonl");
    std::fs::write(&exported, export.bytes().await.unwrap()).unwrap();

    // No graceful shutdown: whatever was acknowledged must already be on disk.
    Command::new("kill")
        .args(["-KILL", &gateway.0.id().to_string()])
        .status()
        .unwrap();
    gateway.0.wait().unwrap();

    let (intact, report) = verify(&config);
    assert!(intact, "{report}");
    let trail = dir.path().join("data/audit");
    let records: Vec<Value> = backplane_security::trail_files(&trail)
        .unwrap()
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    let batches: Vec<&str> = records
        .iter()
        .filter(|r| r["action"] == "context.set")
        .filter_map(|r| r["new"]["batch"].as_str())
        .collect();
    let wanted: Vec<String> = (0..20).map(|n| format!("B-{n}")).collect();
    assert_eq!(batches, wanted, "every acknowledged change, in order");

    // The export verifies on its own, and a flipped byte in it is found.
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&exported)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let mut bytes = std::fs::read(&exported).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&exported, &bytes).unwrap();
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&exported)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exported.jsonl:"));
}
