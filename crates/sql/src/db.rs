//! One connection to the database, whichever it is, and what a poll gets back: named
//! columns and rows of [`Cell`]s, already in Backplane's value types.

use std::time::Duration;

use backplane_model::{Timestamp, Value};

use crate::config::{Dialect, SqlSettings};
use crate::query::Statement;

/// One value of one row, as the source judges it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Value(Value),
    /// A column type the source does not map (e.g. bytea, numeric on PostgreSQL); the
    /// text names it.
    Unsupported(String),
    /// A value of a mapped type that cannot be passed on (text longer than `max_text`,
    /// bytes that are not UTF-8, an impossible date); the text says why.
    Invalid(String),
}

impl Cell {
    /// A text cell, bounded by `max_text` bytes.
    pub fn text(s: &str, max_text: usize) -> Cell {
        if s.len() > max_text {
            Cell::Invalid(format!(
                "text of {} bytes, more than max_text = {max_text}",
                s.len()
            ))
        } else {
            Cell::Value(Value::String(s.into()))
        }
    }
}

/// What one poll read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Why a poll failed; every failure ends the connection (a new one is opened after the
/// backoff), because after a timeout or a broken read its state is unknown.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("the query did not answer within {0:?}")]
    Timeout(Duration),
    #[error("query failed: {0}")]
    Query(String),
    /// Retrying cannot help (a missing column, a key column of the wrong type).
    #[error("{0}")]
    Config(String),
    /// The watermark could not be saved.
    #[error("{0}")]
    State(String),
}

/// One open connection.
#[derive(Debug)]
pub enum Db {
    Postgres(tokio_postgres::Client),
    MySql(mysql_async::Conn),
}

impl Db {
    /// Opens the source's one connection; `application` names it to the database
    /// (`pg_stat_activity`, MariaDB's program name).
    pub async fn connect(settings: &SqlSettings, application: &str) -> Result<Db, DbError> {
        let password = match &settings.password {
            Some(secret) => Some(
                secret
                    .resolve()
                    .map_err(|e| DbError::Config(format!("sql password: {e}")))?,
            ),
            None => None,
        };
        let connecting = async {
            match settings.dialect {
                Dialect::Postgres => crate::postgres::connect(settings, password, application)
                    .await
                    .map(Db::Postgres),
                Dialect::MySql => crate::mysql::connect(settings, password, application)
                    .await
                    .map(Db::MySql),
            }
        };
        tokio::time::timeout(settings.connect_timeout, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(DbError::Connect {
                    target: target(settings),
                    message: format!("no answer within {:?}", settings.connect_timeout),
                })
            })
    }

    /// Runs one poll's statement, bounded by `settings.query_timeout`.
    pub async fn fetch(&mut self, settings: &SqlSettings, statement: &Statement) -> Result<Rows, DbError> {
        let fetching = async {
            match self {
                Db::Postgres(client) => crate::postgres::fetch(client, statement, settings.max_text).await,
                Db::MySql(conn) => crate::mysql::fetch(conn, statement, settings.max_text).await,
            }
        };
        tokio::time::timeout(settings.query_timeout, fetching)
            .await
            .unwrap_or(Err(DbError::Timeout(settings.query_timeout)))
    }
}

/// The URL without user and password, for messages.
pub fn target(settings: &SqlSettings) -> String {
    match settings.url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => settings.url.clone(),
    }
}

/// A time from nanoseconds since 1970 as i128 (the database's range is wider than ours).
pub fn timestamp(nanos: i128) -> Cell {
    match i64::try_from(nanos) {
        Ok(n) => Cell::Value(Value::Timestamp(Timestamp::from_unix_nanos(n))),
        Err(_) => Cell::Invalid("a time outside 1677..2262".into()),
    }
}
