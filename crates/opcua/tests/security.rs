//! Security against asyncua: a Basic256Sha256 SignAndEncrypt session with a username and
//! password works only after the server's certificate is trusted (it is refused before,
//! without ever creating a session, and the certificate waits in `rejected/`), the server
//! trusts the gateway's certificate in turn, and a wrong password is refused clearly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use backplane_model::Value;
use backplane_testkit::engine::latest;
use backplane_testkit::fixtures::LabProbe;
use backplane_testkit::net::free_port;
use common::{Peer, eventually, source_health, start_engine};

const GATEWAY: &str = "test-gw";

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    server_cert: PathBuf,
    peer_args: Vec<String>,
}

/// Server key pair, the gateway's own certificate (created as the source would) trusted by
/// the server, and a password file.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("server");
    let (cert, key) = (server.join("cert.der"), server.join("key.der"));
    backplane_opcua::pki::write_self_signed(
        &cert,
        &key,
        "urn:backplane:test-peer",
        "asyncua test peer",
        &["localhost", "127.0.0.1"],
    )
    .unwrap();
    let pki = backplane_opcua::pki::default_pki_dir(dir.path());
    backplane_opcua::pki::ensure_application_certificate(
        &pki,
        &backplane_opcua::pki::application_uri(GATEWAY),
        "Backplane test",
    )
    .unwrap();
    let trusted = server.join("trusted");
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::copy(pki.join("own/cert.der"), trusted.join("gateway.der")).unwrap();
    std::fs::write(dir.path().join("password.txt"), "s3cret\n").unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_owned();
    let peer_args = vec![
        "--security".into(),
        "basic256sha256".into(),
        "--cert".into(),
        arg(&cert),
        "--key".into(),
        arg(&key),
        "--trusted".into(),
        arg(&trusted),
        "--user".into(),
        "operator:s3cret".into(),
    ];
    Setup {
        port: free_port(),
        server_cert: cert,
        peer_args,
        dir,
    }
}

fn config(setup: &Setup, password_file: &str) -> String {
    let probe = LabProbe {
        attributes: r#"double = { type = "float" }"#,
        bindings: r#"bindings.double = { address = "ns=2;s=Types.Double" }"#,
        source: "secure",
        settings: &format!(
            r#"kind = "opcua"
url = "opc.tcp://127.0.0.1:{port}"
security_policy = "Basic256Sha256"
security_mode = "sign-and-encrypt"
username = "operator"
password = "file:{password}"
period = "200ms"
"#,
            port = setup.port,
            password = setup.dir.path().join(password_file).display(),
        ),
    };
    format!("\n[gateway]\nname = \"{GATEWAY}\"{}", probe.toml())
}

fn double(handle: &backplane_engine::EngineHandle) -> Option<Value> {
    latest(handle, "acme/lab/area/line/probe/double")
        .filter(|l| l.sample.quality.is_good())
        .and_then(|l| l.sample.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_and_encrypt_session_with_username_works_once_the_server_certificate_is_trusted() {
    let setup = setup();
    let mut peer = Peer::start(setup.port, &setup.peer_args);
    let engine = start_engine(&config(&setup, "password.txt"), setup.dir.path());
    let handle = engine.handle();
    let pki = backplane_opcua::pki::default_pki_dir(setup.dir.path());

    // Refused: the unknown certificate is parked in rejected/ with instructions.
    let error = eventually("the source reports the untrusted certificate", 60, || {
        source_health(&handle, "secure")
            .1
            .filter(|e| e.contains("not trusted"))
    })
    .await;
    assert!(error.contains("trust it by moving that file"), "{error}");
    let rejected: Vec<PathBuf> = std::fs::read_dir(pki.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(error.contains(&rejected[0].display().to_string()), "{error}");
    assert_eq!(
        std::fs::read(&rejected[0]).unwrap(),
        std::fs::read(&setup.server_cert).unwrap()
    );
    // Retries happen, but never reach the server as sessions.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(double(&handle).is_none());
    assert_eq!(peer.stats()["sessions_created"], 0);

    // The engineer trusts it: the supervisor's next attempt connects.
    let name = rejected[0].file_name().unwrap();
    std::fs::rename(&rejected[0], pki.join("trusted").join(name)).unwrap();
    let value = eventually("values over the secure session", 60, || double(&handle)).await;
    assert_eq!(value, Value::Float(3.25));
    assert_eq!(source_health(&handle, "secure").0, "Running");
    assert_eq!(peer.stats()["sessions_created"], 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_a_clear_error() {
    let setup = setup();
    let pki = backplane_opcua::pki::default_pki_dir(setup.dir.path());
    backplane_opcua::pki::trust_certificate(&pki, &std::fs::read(&setup.server_cert).unwrap()).unwrap();
    std::fs::write(setup.dir.path().join("wrong.txt"), "guess").unwrap();
    let _peer = Peer::start(setup.port, &setup.peer_args);
    let engine = start_engine(&config(&setup, "wrong.txt"), setup.dir.path());
    let handle = engine.handle();
    let error = eventually("the refusal shows in health", 60, || {
        source_health(&handle, "secure")
            .1
            .filter(|e| e.contains("refused"))
    })
    .await;
    assert!(error.contains("user `operator`"), "{error}");
    assert!(double(&handle).is_none());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x509_user_certificate_logs_in() {
    let setup = setup();
    let pki = backplane_opcua::pki::default_pki_dir(setup.dir.path());
    backplane_opcua::pki::trust_certificate(&pki, &std::fs::read(&setup.server_cert).unwrap()).unwrap();
    let users = setup.dir.path().join("users");
    let (cert, key_der) = (users.join("operator.der"), users.join("operator.key"));
    backplane_opcua::pki::write_self_signed(&cert, &key_der, "urn:acme:operator", "operator", &[]).unwrap();
    // The source takes the key as PEM (a secret reference).
    let base64 = opcua::types::ByteString::from(std::fs::read(&key_der).unwrap()).as_base64();
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    std::fs::write(users.join("operator.pem"), pem).unwrap();

    let mut args: Vec<String> = setup.peer_args[..8].to_vec();
    args.extend(["--x509-user".to_owned(), cert.to_str().unwrap().to_owned()]);
    let _peer = Peer::start(setup.port, &args);
    let text = config(&setup, "password.txt").replace(
        "username = \"operator\"\n",
        &format!(
            "user_certificate = \"users/operator.der\"\nuser_private_key = \"file:{}\"\n",
            users.join("operator.pem").display()
        ),
    );
    let text = text
        .lines()
        .filter(|l| !l.starts_with("password"))
        .collect::<Vec<_>>()
        .join("\n");
    let engine = start_engine(&text, setup.dir.path());
    let handle = engine.handle();
    let value = eventually("values with an X.509 login", 60, || double(&handle)).await;
    assert_eq!(value, Value::Float(3.25));
    engine.shutdown().await;
}
