//! HTTPS on the API (issue 18), checked with real clients: `curl` for requests and
//! `openssl s_client` for the served certificate. Certificates are made with rcgen (testkit `pki`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use backplane_api::{CertificateSource, ServeLimits, Tls, TlsOptions, TlsServer};
use backplane_security::{Identity, Role};
use backplane_testkit::pki::{Ca, Usage as ExtendedKeyUsagePurpose, ca, leaf};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// A route that tells what the connection put on the request.
fn whoami_router() -> Router {
    Router::new().route(
        "/whoami",
        get(|request: axum::extract::Request| async move {
            let tls = request.extensions().get::<Tls>().is_some();
            let who = request
                .extensions()
                .get::<Identity>()
                .map_or("anonymous".to_owned(), |i| {
                    format!("{}:{}:{:?}", i.name, i.role, i.method)
                });
            format!("tls={tls} who={who}")
        }),
    )
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(tls: TlsServer) -> Server {
    start_with(
        tls,
        ServeLimits {
            max_connections: 16,
            header_read_timeout: Duration::from_millis(500),
        },
    )
    .await
}

async fn start_with(tls: TlsServer, limits: ServeLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(backplane_api::serve_tls(
        listener,
        whoami_router(),
        limits,
        Some(Arc::new(tls)),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop: Some(stop),
    }
}

/// `curl https://localhost:PORT/whoami` with extra arguments, off the runtime's threads.
async fn curl(addr: SocketAddr, args: &[&str]) -> Output {
    let url = format!("https://localhost:{}/whoami", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let mut all: Vec<String> = vec![
        "-sS".into(),
        "--max-time".into(),
        "10".into(),
        "--resolve".into(),
        resolve,
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all.push(url);
    tokio::task::spawn_blocking(move || Command::new("curl").args(&all).output().unwrap())
        .await
        .unwrap()
}

fn body(out: &Output) -> String {
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn a_self_signed_start_serves_the_certificate_whose_fingerprint_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("api-tls");
    let tls = TlsServer::new(&TlsOptions {
        certificate: CertificateSource::SelfSigned {
            dir: tls_dir.clone(),
            names: vec!["localhost".into(), "127.0.0.1".into(), "gw-1".into()],
        },
        client_ca: None,
        require_client_cert: false,
        clients: vec![],
    })
    .unwrap();
    let reported = tls.fingerprint().to_owned();
    let server = start(tls).await;

    // What a client is actually served, seen by openssl.
    let port = server.addr.port();
    let served = tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null \
                 | openssl x509 -noout -fingerprint -sha256"
            ))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let served = String::from_utf8_lossy(&served.stdout).trim().to_owned();
    let served = served.rsplit('=').next().unwrap_or_default();
    assert_eq!(served, reported);

    // The generated certificate is what a client trusts: curl verifies against it.
    let cert = tls_dir.join("cert.pem");
    let out = curl(server.addr, &["--cacert", path(&cert)]).await;
    assert_eq!(body(&out), "tls=true who=anonymous");
    // And a client that does not trust it is refused.
    let out = curl(server.addr, &[]).await;
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn a_certificate_from_files_is_served_and_only_its_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let plant = ca(dir.path(), "plant");
    let other = ca(dir.path(), "other");
    let (cert, key) = leaf(
        dir.path(),
        &plant,
        "gateway",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let tls = TlsServer::new(&TlsOptions {
        certificate: CertificateSource::Files { cert, key },
        client_ca: None,
        require_client_cert: false,
        clients: vec![],
    })
    .unwrap();
    let server = start(tls).await;
    let out = curl(server.addr, &["--cacert", path(&plant.path)]).await;
    assert_eq!(body(&out), "tls=true who=anonymous");
    // HTTP/2 is offered by ALPN and served.
    let out = curl(
        server.addr,
        &[
            "--cacert",
            path(&plant.path),
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
        ],
    )
    .await;
    assert_eq!(body(&out), "2");
    let out = curl(server.addr, &["--cacert", path(&other.path)]).await;
    assert!(
        !out.status.success(),
        "a client trusting another CA refuses the server"
    );
}

fn client_tls(dir: &Path, server_ca: &Ca, client_ca: &Ca, required: bool) -> TlsServer {
    let (cert, key) = leaf(
        dir,
        server_ca,
        "gateway",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    TlsServer::new(&TlsOptions {
        certificate: CertificateSource::Files { cert, key },
        client_ca: Some(client_ca.path.clone()),
        require_client_cert: required,
        clients: vec![("mes-01".into(), Role::Operator)],
    })
    .unwrap()
}

#[tokio::test]
async fn required_client_certificates_refuse_clients_without_one_and_name_those_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca(dir.path(), "server");
    let client_ca = ca(dir.path(), "clients");
    let rogue_ca = ca(dir.path(), "rogue");
    let server = start(client_tls(dir.path(), &server_ca, &client_ca, true)).await;
    let (mes_cert, mes_key) = leaf(
        dir.path(),
        &client_ca,
        "mes-01",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (rogue_cert, rogue_key) = leaf(
        dir.path(),
        &rogue_ca,
        "mes-01-rogue",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (other_cert, other_key) = leaf(
        dir.path(),
        &client_ca,
        "historian-02",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let trust = ["--cacert", path(&server_ca.path)];

    let out = curl(server.addr, &trust).await;
    assert!(
        !out.status.success(),
        "no client certificate: the handshake fails ({})",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = curl(
        server.addr,
        &[
            trust[0],
            trust[1],
            "--cert",
            path(&mes_cert),
            "--key",
            path(&mes_key),
        ],
    )
    .await;
    assert_eq!(body(&out), "tls=true who=mes-01:operator:ClientCertificate");

    // Issued by a CA the server does not trust: refused, whatever its CN.
    let out = curl(
        server.addr,
        &[
            trust[0],
            trust[1],
            "--cert",
            path(&rogue_cert),
            "--key",
            path(&rogue_key),
        ],
    )
    .await;
    assert!(!out.status.success(), "a certificate from another CA is refused");

    // Verified but not listed in [api.tls.clients]: served, with no identity.
    let out = curl(
        server.addr,
        &[
            trust[0],
            trust[1],
            "--cert",
            path(&other_cert),
            "--key",
            path(&other_key),
        ],
    )
    .await;
    assert_eq!(body(&out), "tls=true who=anonymous");
}

#[tokio::test]
async fn optional_client_certificates_serve_clients_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca(dir.path(), "server");
    let client_ca = ca(dir.path(), "clients");
    let server = start(client_tls(dir.path(), &server_ca, &client_ca, false)).await;
    let (mes_cert, mes_key) = leaf(
        dir.path(),
        &client_ca,
        "mes-01",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let out = curl(server.addr, &["--cacert", path(&server_ca.path)]).await;
    assert_eq!(body(&out), "tls=true who=anonymous");
    let out = curl(
        server.addr,
        &[
            "--cacert",
            path(&server_ca.path),
            "--cert",
            path(&mes_cert),
            "--key",
            path(&mes_key),
        ],
    )
    .await;
    assert_eq!(body(&out), "tls=true who=mes-01:operator:ClientCertificate");
}

#[tokio::test]
async fn a_socket_that_never_completes_the_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsServer::new(&TlsOptions {
        certificate: CertificateSource::SelfSigned {
            dir: dir.path().join("api-tls"),
            names: vec!["localhost".into()],
        },
        client_ca: None,
        require_client_cert: false,
        clients: vec![],
    })
    .unwrap();
    let failures_before = backplane_api::tls_handshake_failures();
    let server = start(tls).await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), socket.read_to_end(&mut got))
        .await
        .expect("the server closes a silent socket")
        .ok();
    assert!(got.is_empty());
    assert!(backplane_api::tls_handshake_failures() > failures_before);
}

#[tokio::test]
async fn a_pending_handshake_holds_one_of_the_capped_connections() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsServer::new(&TlsOptions {
        certificate: CertificateSource::SelfSigned {
            dir: dir.path().join("api-tls"),
            names: vec!["localhost".into()],
        },
        client_ca: None,
        require_client_cert: false,
        clients: vec![],
    })
    .unwrap();
    let server = start_with(
        tls,
        ServeLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(60),
        },
    )
    .await;
    let addr = server.addr;
    let refused_before = backplane_api::refused_connections();
    // Holds the only permit: connected, handshake never started.
    let _holder = TcpStream::connect(addr).await.unwrap();
    // The next one is closed at accept, without a handshake.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), second.read_to_end(&mut got))
        .await
        .expect("the server closes the connection over the cap")
        .ok();
    assert!(got.is_empty());
    assert!(backplane_api::refused_connections() > refused_before);
}
