//! `[api.tls] self_signed = true` end to end: the binary generates its certificate into
//! the data directory, prints its fingerprint, serves HTTPS with it (checked with curl and
//! openssl), and reuses it on the next start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::process::Command;

use backplane_testkit::process::{Running, start_gateway};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");

/// Starts the gateway; returns it with its base URL and the fingerprint it printed.
fn start(config: &Path) -> (Running, String, String) {
    let (running, base, lines) = start_gateway(Command::new(BIN).arg("run").arg(config), 1);
    let fingerprint = lines[0]
        .strip_prefix("API TLS certificate SHA-256 fingerprint: ")
        .unwrap_or_else(|| panic!("{}", lines[0]))
        .to_owned();
    (running, base, fingerprint)
}

fn file_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    text.rsplit('=').next().unwrap().to_owned()
}

#[test]
fn a_self_signed_gateway_serves_https_with_the_certificate_whose_fingerprint_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        "[gateway]\nname = \"gw-tls\"\ndata_dir = \"data\"\n\n[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\nhosts = [\"gateway.plant.example\"]\n\n[api.tls]\nself_signed = true\n",
    )
    .unwrap();
    let cert = dir.path().join("data/api-tls/cert.pem");

    let (gateway, base, printed) = start(&config);
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    assert_eq!(printed, file_fingerprint(&cert));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&cert)
        .arg(format!("{base}/api/v1/health"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"status\""));
    // The names a client may reach it by are in the certificate.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for name in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "DNS:gw-tls",
        "DNS:gateway.plant.example",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    drop(gateway);

    // The next start serves the same certificate.
    let (_gateway, _, again) = start(&config);
    assert_eq!(again, printed);
}
