//! `POST /api/v1/discover` on a running gateway: engineers scan a real pymodbus device and
//! get its registers as signals with bindings; viewers are refused; options naming the
//! gateway's files and serial devices are refused; every attempt is in the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::process::Command;

use backplane_testkit::peers::plant_b_filler;
use backplane_testkit::process::start_gateway;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");

const CONFIG: &str = r#"
[api]
users = "users.toml"

[namespace]
enterprise = "acme"
site = "plant-a"

[[assets]]
path = "line-1"
"#;

/// A machine token of `role` added to the users file.
fn token(file: &Path, name: &str, role: &str) -> String {
    let out = Command::new(BIN)
        .args(["users", "--file"])
        .arg(file)
        .args(["token-add", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn engineers_scan_a_modbus_device_and_get_signals_viewers_are_refused_and_all_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let engineer = token(&users, "commissioning", "engineer");
    let viewer = token(&users, "dashboard", "viewer");
    std::fs::write(dir.path().join("gateway.toml"), CONFIG).unwrap();
    let (_gateway, base, _) = start_gateway(
        Command::new(BIN)
            .args(["run", "--listen", "127.0.0.1:0", "gateway.toml"])
            .current_dir(dir.path()),
        0,
    );
    let (_device, port) = plant_b_filler();
    let url = format!("tcp://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let discover = |who: &str, body: Value| {
        client
            .post(format!("{base}/api/v1/discover"))
            .bearer_auth(who)
            .json(&body)
            .send()
    };

    let body = json!({"url": url, "options": {"range": "hr:0-6"}});
    let refused = discover(&viewer, body.clone()).await.unwrap();
    assert_eq!(refused.status(), 403);

    let reply = discover(&engineer, body).await.unwrap();
    assert_eq!(reply.status(), 200);
    let report: Value = reply.json().await.unwrap();
    let addresses: Vec<&str> = report["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        ["hr:0", "hr:1", "hr:2", "hr:3", "hr:4", "hr:5", "hr:6"]
    );
    // The speed register pair reads as a plausible float first: 21600 bottles per hour.
    let speed = &report["signals"][1];
    assert_eq!(speed["name"], "hr_1");
    assert_eq!(
        speed["decodings"][0],
        json!({
            "label": "f32 ABCD",
            "attribute_type": "float",
            "value": "21600",
            "binding": "bindings.hr_1 = { address = \"hr:1:f32:ABCD\" }",
        }),
        "{report}"
    );
    assert!(
        report["source"]
            .as_str()
            .unwrap()
            .contains(&format!("url = \"{url}\"")),
        "{report}"
    );
    // `backplane browse` prints the same table.
    assert!(
        report["text"].as_str().unwrap().contains("7 answered"),
        "{report}"
    );

    // What names the gateway's own files, and serial lines, are not for the API.
    let reply = discover(
        &engineer,
        json!({"url": "opc.tcp://127.0.0.1:4840", "options": {"pki-dir": "/etc"}}),
    )
    .await
    .unwrap();
    assert_eq!(reply.status(), 400);
    let error: Value = reply.json().await.unwrap();
    assert_eq!(error["error"]["field"], "options.pki-dir", "{error}");
    let reply = discover(&engineer, json!({"url": "rtu:///dev/ttyS0"}))
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);

    // A caller who hangs up mid-scan still leaves a record: a device that accepts the
    // connection and never answers, and a client that gives up after 100 ms.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("tcp://{}", silent.local_addr().unwrap());
    let hung_up = client
        .post(format!("{base}/api/v1/discover"))
        .bearer_auth(&engineer)
        .timeout(std::time::Duration::from_millis(100))
        .json(&json!({"url": silent_url, "options": {"range": "hr:0-0", "timeout": "700ms", "retries": "0"}}))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client gave up: {hung_up:?}");

    // Each attempt is in the audit trail: who, and which URL.
    let mut audit = Value::Null;
    for _ in 0..50 {
        audit = client
            .get(format!("{base}/api/v1/audit?action=discover"))
            .bearer_auth(&engineer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if audit["records"].as_array().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(silent);
    let records = audit["records"].as_array().unwrap();
    let targets: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["who"]["name"].as_str().unwrap_or_default(),
                r["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("commissioning", url.as_str()),
            ("commissioning", "opc.tcp://127.0.0.1:4840"),
            ("commissioning", "rtu:///dev/ttyS0"),
            ("commissioning", silent_url.as_str()),
        ],
        "{audit}"
    );
}
