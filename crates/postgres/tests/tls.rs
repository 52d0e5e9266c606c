//! TLS to the local PostgreSQL: `tls = "require"` encrypts the session; `"verify-full"`
//! accepts the server's certificate only when it chains to `ca` and names the host.
//! Needs the server's `ssl = on`; the verify-full half needs the certificate Debian's
//! packages install (self-signed, for `localhost`). Each half says when it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_postgres::connect::connect;
use common::{TestDb, load};

async fn encrypted(client: &tokio_postgres::Client) -> bool {
    client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// The server's certificate file when TLS is on.
async fn server_certificate() -> Option<String> {
    let admin = common::connect(common::ADMIN).await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        return None;
    }
    Some(admin.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0))
}

/// Whether `path` is a PEM certificate naming `localhost` whose issuer is itself (a
/// crude look at the DER: the name appears twice, as issuer and as subject, and once
/// more in the subject alternative names).
fn self_signed_for_localhost(path: &str) -> bool {
    let Ok(pem) = std::fs::read(path) else {
        return false;
    };
    let Some(Ok(der)) = rustls_pemfile::certs(&mut pem.as_slice()).next() else {
        return false;
    };
    der.windows(9).filter(|w| *w == b"localhost").count() >= 3
}

#[tokio::test]
async fn tls_require_encrypts_and_verify_full_checks_the_authority_and_the_host_name() {
    let Some(cert) = server_certificate().await else {
        println!("skipped: the PostgreSQL on 127.0.0.1:5432 has ssl = off");
        return;
    };
    let db = TestDb::create("tls").await;
    let dir = tempfile::tempdir().unwrap();

    let (_, settings) = load(&common::config(&db.url(), "tls = \"require\""), dir.path());
    let client = connect(&settings, "tls-test").await.unwrap();
    assert!(encrypted(&client).await, "tls = \"require\" made a plain session");
    drop(client);

    if self_signed_for_localhost(&cert) {
        let url = format!(
            "postgresql://postgres@localhost:5432/{}?hostaddr=127.0.0.1",
            db.name
        );
        let extra = format!("tls = \"verify-full\"\nca = \"file:{cert}\"");
        let (_, settings) = load(&common::config(&url, &extra), dir.path());
        let client = connect(&settings, "tls-test").await.unwrap();
        assert!(encrypted(&client).await);
        drop(client);

        // The same certificate does not name 127.0.0.1: refused, as a retryable error.
        let (_, settings) = load(&common::config(&db.url(), &extra), dir.path());
        let e = connect(&settings, "tls-test").await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
    } else {
        println!(
            "verify-full part skipped: the server's certificate {cert} is not a self-signed one for localhost"
        );
    }
    db.drop().await;
}

/// The sink against a private server whose certificate a CA of the test's own signed
/// (testkit's `dbservers`, the one the `sql` source's TLS tests use: the TLS code is
/// shared, `backplane_dbtls`): `verify-full` with that CA opens an encrypted session to
/// 127.0.0.1 (an address in the certificate); another CA is refused as a retryable error
/// naming the cause.
#[tokio::test]
async fn verify_full_trusts_the_ca_given_and_no_other() {
    let server = match backplane_testkit::dbservers::postgres_tls() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres", server.port);
    let extra = |ca: &std::path::Path| format!("tls = \"verify-full\"\nca = \"file:{}\"", ca.display());

    let (_, settings) = load(&common::config(&url, &extra(&server.ca)), dir.path());
    let client = connect(&settings, "tls-test").await.unwrap();
    assert!(encrypted(&client).await);
    drop(client);

    let (_, settings) = load(&common::config(&url, &extra(&server.other_ca)), dir.path());
    let e = connect(&settings, "tls-test").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}
