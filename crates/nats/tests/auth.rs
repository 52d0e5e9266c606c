//! Logging in: a private nats-server that demands mutual TLS and an nkey, the sink given
//! both by secret reference (`file:`), and the clear errors when the key or the server's
//! certificate authority is wrong. Certificates are made with the `openssl` command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backplane_testkit::net::{free_port, wait_for_port};
use common::harness::Harness;
use common::{names, read_all};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    // Extensions make them X.509 v3, which rustls requires.
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend([
            format!("{name}.pem"),
            "-extfile".to_owned(),
            format!("{name}.ext"),
        ]);
        openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// nats-server with JetStream, mutual TLS and one nkey user.
struct SecureNats {
    port: u16,
    child: Child,
}

impl SecureNats {
    fn start(dir: &Path, user: &str) -> SecureNats {
        let port = free_port();
        let conf = format!(
            r#"listen: "127.0.0.1:{port}"
jetstream {{ store_dir: "{store}" }}
tls {{
  cert_file: "{d}/server.pem"
  key_file: "{d}/server.key"
  ca_file: "{d}/ca.pem"
  verify: true
}}
authorization {{ users = [ {{ nkey: "{user}" }} ] }}
"#,
            store = dir.join("store").display(),
            d = dir.display(),
        );
        std::fs::write(dir.join("nats.conf"), conf).unwrap();
        let child = Command::new(std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into()))
            .arg("-c")
            .arg(dir.join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed");
        assert!(wait_for_port(port, Duration::from_secs(10)));
        SecureNats { port, child }
    }
}

impl Drop for SecureNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16, stream: &str, prefix: &str, seed: &Path, ca: &Path, dir: &Path) -> String {
    format!(
        r#"
[gateway]
name = "edge-gw"

[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = {{ type = "float", unit = "%" }}
temp = {{ type = "float", unit = "degC" }}

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}
bindings.temp = {{ address = "t" }}

[[sources]]
name = "sim"
kind = "simulator"
signals.l = {{ signal = "constant", value = 1.0 }}
signals.t = {{ signal = "constant", value = 4.5 }}

[[sinks]]
name = "js"
kind = "nats"
url = "tls://127.0.0.1:{port}"
prefix = "{prefix}"
nkey = "file:{seed}"
tls = {{ ca = "file:{ca}", cert = "file:{d}/client.pem", key = "file:{d}/client.key" }}
connect_timeout = "3s"
stream = {{ name = "{stream}", storage = "memory" }}
"#,
        seed = seed.display(),
        ca = ca.display(),
        d = dir.display(),
    )
}

struct Setup {
    dir: tempfile::TempDir,
    server: SecureNats,
    seed: PathBuf,
    user_seed: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let user = nkeys::KeyPair::new_user();
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, user.seed().unwrap()).unwrap();
    let server = SecureNats::start(dir.path(), &user.public_key());
    Setup {
        server,
        seed,
        user_seed: user.seed().unwrap(),
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_logs_in_with_an_nkey_over_mutual_tls_and_publishes() {
    let s = setup();
    let d = s.dir.path();
    let (stream, prefix) = names("auth");
    let h = Harness::new(&config(
        s.server.port,
        &stream,
        &prefix,
        &s.seed,
        &d.join("ca.pem"),
        d,
    ));
    for r in 0..3u64 {
        h.feed.push(h.delivery(r + 1, r * 2 + 1, r as f64, false));
    }
    h.feed.close();
    tokio::time::timeout(Duration::from_secs(20), h.sink().run(h.io.clone()))
        .await
        .expect("the sink stops once its input ended")
        .expect("it logged in and published");
    assert_eq!(h.feed.acked(), vec![1, 2, 3]);

    let client = async_nats::ConnectOptions::with_nkey(s.user_seed.clone())
        .add_root_certificates(d.join("ca.pem"))
        .add_client_certificate(d.join("client.pem"), d.join("client.key"))
        .require_tls(true)
        .connect(format!("tls://127.0.0.1:{}", s.server.port))
        .await
        .unwrap();
    let stored = read_all(&async_nats::jetstream::new(client), &stream, 100).await;
    let seqs: Vec<u64> = stored.iter().filter_map(|m| m.json["seq"].as_u64()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_nkey_or_an_untrusted_server_certificate_is_refused_with_a_clear_error() {
    let s = setup();
    let d = s.dir.path();
    let (stream, prefix) = names("auth");

    let stranger = d.join("stranger.nk");
    std::fs::write(&stranger, nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
    let h = Harness::new(&config(
        s.server.port,
        &stream,
        &prefix,
        &stranger,
        &d.join("ca.pem"),
        d,
    ));
    h.feed.push(h.delivery(1, 1, 0.0, false));
    let error = tokio::time::timeout(Duration::from_secs(20), h.sink().run(h.io.clone()))
        .await
        .expect("a refused login ends the sink")
        .expect_err("an unknown nkey is refused");
    let text = error.to_string().to_lowercase();
    assert!(text.contains("authorization violation"), "{text}");
    assert!(h.feed.acked().is_empty(), "nothing acknowledged");

    // A server whose certificate no configured authority signed.
    let other = tempfile::tempdir().unwrap();
    openssl(
        other.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=other-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    let h = Harness::new(&config(
        s.server.port,
        &stream,
        &prefix,
        &s.seed,
        &other.path().join("ca.pem"),
        d,
    ));
    h.feed.push(h.delivery(1, 1, 0.0, false));
    let error = tokio::time::timeout(Duration::from_secs(20), h.sink().run(h.io.clone()))
        .await
        .expect("a failed handshake ends the sink")
        .expect_err("an untrusted server is refused");
    let text = error.to_string().to_lowercase();
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(h.feed.acked().is_empty(), "nothing acknowledged");
}
