//! TLS to the databases, against private servers of the test's own (testkit's
//! `dbservers`: a certificate signed by a CA made here, and only TLS admitted: PostgreSQL's
//! `hostssl`, MariaDB's `require_secure_transport`): `verify-full` with the CA and
//! `require` read rows; a certificate of another CA is refused; a plain connection is
//! refused; each refusal is an error naming the source. Skipped, saying so, where a
//! server's binaries are not installed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use backplane_engine::Engine;
use backplane_testkit::dbservers::{DbServer, mariadb_tls, postgres_tls};
use common::{config, seqs, start, wait_seqs};
use mysql_async::prelude::Queryable;

const ROWS: &str = "INSERT INTO results (temp, note) VALUES (1.5, 'a'), (2.5, 'b'), (3.5, 'c')";

/// The private PostgreSQL with a `results` table of three rows, through its socket.
async fn postgres_with_rows() -> Option<DbServer> {
    let server = match postgres_tls() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return None;
        }
    };
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname=postgres",
            server.dir().display(),
            server.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE TABLE results (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now(), temp double precision, note text); {ROWS}"
        ))
        .await
        .unwrap();
    Some(server)
}

/// The private MariaDB with a database `bp` and its `results` table of three rows,
/// through its socket (which counts as secure transport).
async fn mariadb_with_rows() -> Option<DbServer> {
    let server = match mariadb_tls() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return None;
        }
    };
    let opts = mysql_async::OptsBuilder::default()
        .user(Some("root"))
        .socket(Some(server.dir().join("sock").display().to_string()));
    let mut c = mysql_async::Conn::new(opts).await.unwrap();
    c.query_drop("CREATE DATABASE bp").await.unwrap();
    c.query_drop("CREATE TABLE bp.results (id BIGINT AUTO_INCREMENT PRIMARY KEY, ts TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), temp DOUBLE, note VARCHAR(200))")
        .await
        .unwrap();
    c.query_drop(ROWS.replace("INTO results", "INTO bp.results"))
        .await
        .unwrap();
    c.disconnect().await.unwrap();
    Some(server)
}

fn pg_url(server: &DbServer, query: &str) -> String {
    format!("postgresql://postgres@127.0.0.1:{}/postgres{query}", server.port)
}

fn maria_url(server: &DbServer) -> String {
    format!("mysql://root@127.0.0.1:{}/bp", server.port)
}

fn source(extra: &str) -> String {
    format!("table = \"results\"\nwatermark = \"id\"\nconnect_timeout = \"3s\"\n{extra}")
}

fn ca(path: &Path) -> String {
    format!("ca = \"file:{}\"", path.display())
}

/// Reads the three rows through a whole engine with source keys `keys`.
async fn reads_rows(url: &str, keys: &str) {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(url, &source(keys)), dir.path());
    assert_eq!(wait_seqs(dir.path(), 3).await, [1, 2, 3]);
    engine.shutdown().await;
}

/// The source's last error once it has one; nothing read meanwhile.
async fn refused(url: &str, keys: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let engine: Engine = start(&config(url, &source(keys)), dir.path());
    let error = backplane_testkit::engine::eventually_every(
        "the source's error",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || engine.handle().health().components[0].last_error.clone(),
    )
    .await;
    assert!(seqs(dir.path()).is_empty(), "rows read: {:?}", seqs(dir.path()));
    engine.shutdown().await;
    assert!(error.contains("sql source `lims`"), "{error}");
    println!("refused as expected: {error}");
    error
}

#[tokio::test]
async fn postgresql_over_tls_reads_rows_with_sslmode_require_and_verify_full() {
    let Some(server) = postgres_with_rows().await else {
        return;
    };
    reads_rows(&pg_url(&server, "?sslmode=require"), "").await;
    reads_rows(&pg_url(&server, "?sslmode=verify-full"), &ca(&server.ca)).await;
    reads_rows(
        &pg_url(&server, ""),
        &format!("tls = \"verify-full\"\n{}", ca(&server.ca)),
    )
    .await;
}

#[tokio::test]
async fn postgresql_refuses_a_certificate_of_another_ca_and_a_plain_connection_is_refused() {
    let Some(server) = postgres_with_rows().await else {
        return;
    };
    let e = refused(&pg_url(&server, "?sslmode=verify-full"), &ca(&server.other_ca)).await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = refused(&pg_url(&server, ""), "").await;
    assert!(e.contains("no encryption"), "{e}");
}

#[tokio::test]
async fn mariadb_over_tls_reads_rows_with_require_and_verify_full() {
    let Some(server) = mariadb_with_rows().await else {
        return;
    };
    reads_rows(&maria_url(&server), "tls = \"require\"").await;
    reads_rows(
        &maria_url(&server),
        &format!("tls = \"verify-full\"\n{}", ca(&server.ca)),
    )
    .await;
}

#[tokio::test]
async fn mariadb_refuses_a_certificate_of_another_ca_and_a_plain_connection_is_refused() {
    let Some(server) = mariadb_with_rows().await else {
        return;
    };
    let e = refused(
        &maria_url(&server),
        &format!("tls = \"verify-full\"\n{}", ca(&server.other_ca)),
    )
    .await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = refused(&maria_url(&server), "").await;
    assert!(e.contains("requires secure transport"), "{e}");
}
