//! Shared setup: a database of the test's own on the local PostgreSQL or MariaDB (dropped
//! at the end), a gateway whose `sql` source reads it and whose `jsonl` sink the test reads
//! back, and the samples' sequence numbers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use backplane_engine::{Engine, Registry};
use mysql_async::prelude::Queryable;

/// Which real database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Postgres,
    MariaDb,
}

/// A connection of the test's own (to make rows, kill sessions).
pub enum Conn {
    Postgres(tokio_postgres::Client),
    MariaDb(mysql_async::Conn),
}

impl Conn {
    pub async fn exec(&mut self, sql: &str) {
        match self {
            Conn::Postgres(c) => c
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Conn::MariaDb(c) => c.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The first column of the first row, as an integer.
    pub async fn int(&mut self, sql: &str) -> Option<i64> {
        match self {
            Conn::Postgres(c) => c.query_opt(sql, &[]).await.unwrap().map(|r| r.get::<_, i64>(0)),
            Conn::MariaDb(c) => c.query_first::<i64, _>(sql).await.unwrap(),
        }
    }
}

/// A database of the test's own.
pub struct TestDb {
    pub peer: Peer,
    pub name: String,
}

impl TestDb {
    pub async fn create(peer: Peer, what: &str) -> TestDb {
        let name = backplane_testkit::names::unique(&format!("bp_sql_{what}"))
            .replace('-', "_")
            .to_lowercase();
        let db = TestDb { peer, name };
        db.admin()
            .await
            .exec(&format!("CREATE DATABASE {}", db.name))
            .await;
        db
    }

    /// The source's URL (no password: trust / empty root password).
    pub fn url(&self) -> String {
        match self.peer {
            Peer::Postgres => format!("postgresql://postgres@127.0.0.1:5432/{}", self.name),
            Peer::MariaDb => format!("mysql://root@127.0.0.1:3306/{}", self.name),
        }
    }

    async fn admin(&self) -> Conn {
        match self.peer {
            Peer::Postgres => pg("host=127.0.0.1 port=5432 user=postgres dbname=postgres").await,
            Peer::MariaDb => Conn::MariaDb(
                mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306/")
                    .await
                    .unwrap(),
            ),
        }
    }

    pub async fn conn(&self) -> Conn {
        match self.peer {
            Peer::Postgres => {
                pg(&format!(
                    "host=127.0.0.1 port=5432 user=postgres dbname={}",
                    self.name
                ))
                .await
            }
            Peer::MariaDb => Conn::MariaDb(
                mysql_async::Conn::from_url(format!("mysql://root@127.0.0.1:3306/{}", self.name))
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Ends the source's session from connection `c`; `spare` (the test's other
    /// connection to the database) is left alone.
    pub async fn kill_source_session(&self, c: &mut Conn, spare: &mut Conn) -> bool {
        match self.peer {
            Peer::Postgres => c
                .int(&format!(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name LIKE 'backplane sql source%') t",
                    self.name
                ))
                .await
                .unwrap_or(0) > 0,
            Peer::MariaDb => {
                let spare = spare.int("SELECT CONNECTION_ID()").await.unwrap_or(0);
                let id = c
                    .int(&format!(
                        "SELECT id FROM information_schema.PROCESSLIST WHERE db = '{}' AND id <> CONNECTION_ID() AND id <> {spare} LIMIT 1",
                        self.name
                    ))
                    .await;
                match id {
                    Some(id) => {
                        if let Conn::MariaDb(m) = c {
                            // The session may have ended on its own meanwhile.
                            let _ = m.query_drop(format!("KILL {id}")).await;
                        }
                        true
                    }
                    None => false,
                }
            }
        }
    }

    pub async fn drop(self) {
        let mut admin = self.admin().await;
        match self.peer {
            Peer::Postgres => {
                admin
                    .exec(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                    .await
            }
            Peer::MariaDb => {
                admin
                    .exec(&format!("DROP DATABASE IF EXISTS {}", self.name))
                    .await
            }
        }
    }

    /// `CREATE TABLE results` with an id, a time, a reading and a text column, in the
    /// peer's dialect.
    pub async fn results_table(&self, c: &mut Conn) {
        let sql = match self.peer {
            Peer::Postgres => {
                "CREATE TABLE results (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now(), temp double precision, note text)"
            }
            Peer::MariaDb => {
                "CREATE TABLE results (id BIGINT AUTO_INCREMENT PRIMARY KEY, ts TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), temp DOUBLE, note VARCHAR(200))"
            }
        };
        c.exec(sql).await;
    }
}

async fn pg(conninfo: &str) -> Conn {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Conn::Postgres(client)
}

pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_source("sql", backplane_sql::SqlKind);
    registry
}

/// A gateway with a `LabResult` (seq from `id`, temp from `temp`) on `line-1/lab`, a `sql`
/// source `lims` reading `url` with the keys in `source`, and a jsonl sink `out.jsonl`.
pub fn config(url: &str, source: &str) -> String {
    format!(
        r#"
[gateway]
name = "gw-test"

[namespace]
enterprise = "acme"
site = "plant"

[models.LabResult.attributes]
seq = {{ type = "int" }}
temp = {{ type = "float", unit = "degC" }}

[[assets]]
path = "line-1"
level = "line"

[[assets]]
path = "line-1/lab"
model = "LabResult"
source = "lims"
bindings.seq = {{ address = "id" }}
bindings.temp = {{ address = "temp" }}

[[sources]]
name = "lims"
kind = "sql"
url = "{url}"
period = "20ms"
{source}

[[sinks]]
name = "out"
kind = "jsonl"
path = "out.jsonl"
"#
    )
}

pub fn start(config: &str, dir: &Path) -> Engine {
    backplane_testkit::engine::start(config, dir, &registry())
}

/// Every sample the jsonl sink wrote so far.
pub fn samples(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("out.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "sample")
        .collect()
}

/// The `seq` values read from rows (good samples; a value turning stale or bad when the
/// source stops is written again with that quality), in the order written.
pub fn seqs(dir: &Path) -> Vec<i64> {
    samples(dir)
        .iter()
        .filter(|s| s["attribute"] == "seq" && s["quality"] == "good")
        .filter_map(|s| s["value"].as_i64())
        .collect()
}

/// Waits until the sink wrote `n` seq samples (or more).
pub async fn wait_seqs(dir: &Path, n: usize) -> Vec<i64> {
    backplane_testkit::engine::eventually_every(
        &format!("{n} rows in the sink"),
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let s = seqs(dir);
            (s.len() >= n).then_some(s)
        },
    )
    .await
}

/// A source counter from the engine's metrics, e.g. `bad_cells`.
pub fn counter(engine: &Engine, event: &str) -> f64 {
    let text = engine.handle().metrics_text();
    text.lines()
        .filter(|l| l.contains(&format!("event=\"{event}\"")) && l.contains("\"lims\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
