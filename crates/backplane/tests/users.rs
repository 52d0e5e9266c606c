//! `backplane users` as an administrator runs it, and a gateway started on the file it
//! wrote: users log in, tokens authenticate, nobody else gets in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use backplane_testkit::process::start_gateway;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");
const PASSWORD: &str = "correct horse battery";

/// Runs `backplane users --file FILE ARGS...` with `stdin` as its standard input.
fn users(file: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("users")
        .arg("--file")
        .arg(file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn users_are_added_changed_listed_and_removed_without_storing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let password = format!("{PASSWORD}\n");

    ok(&users(
        &file,
        &["add", "anna", "--role", "operator", "--password-stdin"],
        &password,
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    }
    let stderr = failed(&users(&file, &["add", "bob", "--role", "viewer"], "short\n"));
    assert!(stderr.contains("at least 10"), "{stderr}");
    let stderr = failed(&users(&file, &["add", "anna", "--role", "viewer"], &password));
    assert!(stderr.contains("exists"), "{stderr}");
    let stderr = failed(&users(&file, &["add", "bob", "--role", "boss"], &password));
    assert!(stderr.contains("boss"), "{stderr}");

    let token = ok(&users(&file, &["token-add", "mes", "--role", "engineer"], ""));
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains(token), "{text}");
    assert!(text.contains("$argon2id$"), "{text}");

    ok(&users(&file, &["role", "anna", "engineer"], ""));
    ok(&users(
        &file,
        &["passwd", "anna", "--password-stdin"],
        "another long password\n",
    ));
    let list = ok(&users(&file, &["list"], ""));
    assert!(
        list.contains("anna") && list.contains("engineer") && list.contains("mes"),
        "{list}"
    );
    assert!(!list.contains("$argon2") && !list.contains(token), "{list}");

    ok(&users(&file, &["remove", "anna"], ""));
    ok(&users(&file, &["token-remove", "mes"], ""));
    let list = ok(&users(&file, &["list"], ""));
    assert!(!list.contains("anna") && !list.contains("mes"), "{list}");
    let stderr = failed(&users(&file, &["remove", "anna"], ""));
    assert!(stderr.contains("no user `anna`"), "{stderr}");
}

const CONFIG: &str = r#"
[api]
users = "users.toml"

[namespace]
enterprise = "acme"
site = "plant-a"

[[assets]]
path = "line-1"
"#;

#[tokio::test]
async fn a_gateway_on_the_written_file_lets_its_users_and_tokens_in_and_no_one_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    ok(&users(
        &file,
        &["add", "anna", "--role", "operator", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    ));
    let token = ok(&users(&file, &["token-add", "mes", "--role", "engineer"], ""));
    let token = token.trim().to_owned();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let (_gateway, base, _) = start_gateway(
        Command::new(BIN)
            .args(["run", "--listen", "127.0.0.1:0"])
            .arg(&config)
            .current_dir(dir.path()),
        0,
    );

    let client = reqwest::Client::new();
    let assets = format!("{base}/api/v1/assets");
    assert_eq!(client.get(&assets).send().await.unwrap().status(), 401);
    assert_eq!(
        client
            .get(&assets)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(&assets)
            .bearer_auth("0".repeat(64))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let login = client
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"user": "anna", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me: Value = client
        .get(format!("{base}/api/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("anna"), Some("operator"))
    );

    // An operator may not change context.
    let context = client
        .put(format!("{base}/api/v1/context/acme/plant-a/line-1"))
        .basic_auth("anna", Some(PASSWORD))
        .json(&json!({"batch": "B-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(context.status(), 403);
}

#[test]
fn a_broken_users_file_stops_the_start_and_fails_check_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        "[tokens.mes]\nrole = \"engineer\"\nhash = \"not hex\"\n",
    )
    .unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, CONFIG).unwrap();
    for args in [&["run", "--listen", "127.0.0.1:0"][..], &["check"]] {
        let out = Command::new(BIN).args(args).arg(&config).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("users.toml:3:"), "{args:?}: {stderr}");
    }
}
