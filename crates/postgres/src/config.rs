//! The `postgresql` sink's settings and how they are read from one `[[sinks]]` table.
//! Every problem is reported through the [`Table`], so it names file, line and key.

use std::str::FromStr;
use std::time::Duration;

use backplane_config::Secret;
use backplane_config::Table;

use crate::partition::PartitionBy;

/// How rows reach the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Binary COPY into a staging table, then one `INSERT … SELECT … ON CONFLICT DO
    /// NOTHING` per table: the default, and the fast one.
    Copy,
    /// One prepared `INSERT … ON CONFLICT DO NOTHING` per row (pipelined); for comparison.
    Insert,
}

/// Transport security (shared with the `sql` source: `backplane_dbtls`).
pub use backplane_dbtls::TlsMode;

/// One `postgresql` sink's settings.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    /// Host, port, user, database (never a password: see `password`).
    pub connection: tokio_postgres::Config,
    pub password: Option<Secret>,
    pub tls: TlsMode,
    /// The schema every table and view lives in.
    pub schema: String,
    /// Rows (samples + events) gathered before a transaction is written.
    pub batch_rows: usize,
    /// Longest time a row waits for its transaction.
    pub flush_interval: Duration,
    pub partition: PartitionBy,
    /// Partitions whose whole range is older than this are dropped.
    pub retention: Option<Duration>,
    pub method: Method,
    /// The server cancels any statement that runs longer.
    pub statement_timeout: Option<Duration>,
    pub connect_timeout: Duration,
}

pub const DEFAULT_SCHEMA: &str = "backplane";
/// Measured with `benches/copy_vs_insert.rs`: 20 000 rows per transaction cost about 15 %
/// less server and client CPU per row than 5000 (per-flush round trips, the commit's
/// flush to disk); larger gains little more.
pub const DEFAULT_BATCH_ROWS: usize = 20_000;
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BATCH_ROWS: u64 = 1_000_000;

/// Reads the keys of one `[[sinks]]` table of kind `postgresql`.
pub fn parse(table: &mut Table<'_>) -> Option<PostgresSettings> {
    let mut ok = true;
    let url = table.optional_str("url");
    let host = table.optional_str("host");
    let port = table.optional_u64("port");
    let user = table.optional_str("user");
    let dbname = table.optional_str("dbname");
    let mut connection = match url {
        Some(url) => {
            if host.is_some() || port.is_some() || user.is_some() || dbname.is_some() {
                table.error(
                    "url",
                    "give either `url` or `host`/`port`/`user`/`dbname`, not both",
                    None,
                );
                ok = false;
            }
            match tokio_postgres::Config::from_str(url) {
                Ok(c) => {
                    if c.get_password().is_some() {
                        table.error(
                            "url",
                            "the URL contains a password",
                            Some(
                                "remove it and write `password = \"env:NAME\"` or `password = \"file:PATH\"`"
                                    .into(),
                            ),
                        );
                        ok = false;
                    }
                    c
                }
                Err(e) => {
                    table.error(
                        "url",
                        format!("not a PostgreSQL connection URL: {e}"),
                        Some("e.g. \"postgresql://backplane@db.example:5432/plant\"".into()),
                    );
                    ok = false;
                    tokio_postgres::Config::new()
                }
            }
        }
        None => {
            let mut c = tokio_postgres::Config::new();
            c.host(host.unwrap_or("127.0.0.1"));
            match port.map(u16::try_from) {
                None => {
                    c.port(5432);
                }
                Some(Ok(p)) if p > 0 => {
                    c.port(p);
                }
                Some(_) => {
                    table.error("port", "`port` must be between 1 and 65535", None);
                    ok = false;
                }
            }
            c.user(user.unwrap_or("backplane"));
            c.dbname(dbname.unwrap_or("backplane"));
            c
        }
    };
    if connection.get_user().is_none() {
        connection.user("backplane");
    }
    let password = table.optional_secret("password");
    let tls = match backplane_dbtls::parse(table) {
        Some(t) => t,
        None => {
            ok = false;
            TlsMode::Disable
        }
    };
    let schema = table.optional_str("schema").unwrap_or(DEFAULT_SCHEMA);
    if !is_identifier(schema) {
        table.error(
            "schema",
            format!("`{schema}` is not a plain schema name"),
            Some("lower-case letters, digits and `_`, starting with a letter, at most 48 characters".into()),
        );
        ok = false;
    }
    let batch_rows = match table.optional_u64("batch_rows") {
        None => DEFAULT_BATCH_ROWS,
        Some(n) if (1..=MAX_BATCH_ROWS).contains(&n) => usize::try_from(n).unwrap_or(DEFAULT_BATCH_ROWS),
        Some(_) => {
            table.error(
                "batch_rows",
                format!("`batch_rows` must be between 1 and {MAX_BATCH_ROWS}"),
                None,
            );
            ok = false;
            DEFAULT_BATCH_ROWS
        }
    };
    let flush_interval = table
        .optional_duration("flush_interval")
        .unwrap_or(DEFAULT_FLUSH_INTERVAL);
    ok &= within(
        table,
        "flush_interval",
        flush_interval,
        Duration::from_millis(10),
        Duration::from_secs(600),
    );
    let partition = match table.optional_str("partition").map(PartitionBy::parse) {
        None => PartitionBy::Day,
        Some(Some(p)) => p,
        Some(None) => {
            table.error(
                "partition",
                "`partition` must be \"day\", \"week\" or \"month\"",
                None,
            );
            ok = false;
            PartitionBy::Day
        }
    };
    let retention = table.optional_duration("retention");
    if let Some(r) = retention {
        ok &= within(
            table,
            "retention",
            r,
            Duration::from_secs(86_400),
            Duration::from_secs(100 * 366 * 86_400),
        );
    }
    let method = match table.optional_str("method") {
        None | Some("copy") => Method::Copy,
        Some("insert") => Method::Insert,
        Some(other) => {
            table.error(
                "method",
                format!("`method` must be \"copy\" or \"insert\", not \"{other}\""),
                None,
            );
            ok = false;
            Method::Copy
        }
    };
    let statement_timeout = table.optional_duration("statement_timeout");
    if let Some(t) = statement_timeout {
        ok &= within(
            table,
            "statement_timeout",
            t,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
    }
    let connect_timeout = table
        .optional_duration("connect_timeout")
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    ok &= within(
        table,
        "connect_timeout",
        connect_timeout,
        Duration::from_millis(100),
        Duration::from_secs(300),
    );
    ok.then(|| PostgresSettings {
        connection,
        password,
        tls,
        schema: schema.to_owned(),
        batch_rows,
        flush_interval,
        partition,
        retention,
        method,
        statement_timeout,
        connect_timeout,
    })
}

/// A name safe to splice into SQL unquoted: `[a-z][a-z0-9_]*`, at most 48 bytes (room
/// for the partition suffixes within PostgreSQL's 63).
pub fn is_identifier(name: &str) -> bool {
    name.len() <= 48
        && name.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn within(table: &Table<'_>, key: &str, d: Duration, min: Duration, max: Duration) -> bool {
    if d < min || d > max {
        table.error(key, format!("`{key}` must be between {min:?} and {max:?}"), None);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use backplane_config::reader::with_table;
    use std::path::Path;

    fn read(text: &str) -> (Option<PostgresSettings>, Vec<String>) {
        let (settings, diagnostics) = with_table(text, Path::new("test.toml"), |mut t| {
            let s = parse(&mut t);
            t.finish();
            s
        });
        (
            settings.flatten(),
            diagnostics.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let (s, errors) = read("");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.schema, "backplane");
        assert_eq!(s.batch_rows, 20_000);
        assert_eq!(s.flush_interval, Duration::from_secs(1));
        assert_eq!(s.partition, PartitionBy::Day);
        assert_eq!(s.method, Method::Copy);
        assert_eq!(s.tls, TlsMode::Disable);
        assert_eq!(s.retention, None);
        assert_eq!(s.connection.get_ports(), &[5432]);
        assert_eq!(s.connection.get_user(), Some("backplane"));
    }

    #[test]
    fn every_key_is_read() {
        let (s, errors) = read(
            r#"
url = "postgresql://gw@db.example:6543/plant"
password = "env:PG_PASSWORD"
tls = "verify-full"
ca = "file:ca.pem"
schema = "mes"
batch_rows = 50000
flush_interval = "250ms"
partition = "month"
retention = "90d"
method = "insert"
statement_timeout = "30s"
connect_timeout = "3s"
"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.connection.get_ports(), &[6543]);
        assert_eq!(s.connection.get_dbname(), Some("plant"));
        assert_eq!(s.password.unwrap().reference(), "env:PG_PASSWORD");
        assert!(matches!(&s.tls, TlsMode::VerifyFull { ca } if ca.reference() == "file:ca.pem"));
        assert_eq!(s.schema, "mes");
        assert_eq!(s.batch_rows, 50_000);
        assert_eq!(s.partition, PartitionBy::Month);
        assert_eq!(s.retention, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(s.method, Method::Insert);
        assert_eq!(s.statement_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn wrong_values_and_unknown_keys_are_errors_naming_the_key() {
        for (text, key) in [
            ("url = \"postgresql://u:secret@h/db\"", "url"),
            ("url = \"postgresql://h/db\"\nhost = \"x\"", "url"),
            ("password = \"hunter2\"", "password"),
            ("tls = \"prefer\"", "tls"),
            ("tls = \"verify-full\"", "ca"),
            ("schema = \"Bad-Name\"", "schema"),
            ("batch_rows = 0", "batch_rows"),
            ("partition = \"hour\"", "partition"),
            ("retention = \"1h\"", "retention"),
            ("method = \"bulk\"", "method"),
            ("port = 70000", "port"),
            ("sslmode = \"require\"", "sslmode"),
        ] {
            let (s, errors) = read(text);
            assert!(s.is_none() || !errors.is_empty(), "{text}");
            assert_eq!(errors.len(), 1, "{text}: {errors:?}");
            assert!(errors[0].contains(key), "{text}: {errors:?}");
        }
    }
}
