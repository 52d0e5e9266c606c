//! PostgreSQL through tokio-postgres: the session (UTC, a server-side statement timeout)
//! and each column type's mapping to a [`Cell`].

use std::str::FromStr;
use std::time::SystemTime;

use backplane_dbtls::chain;
use backplane_model::Value;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row};

use crate::config::{SqlSettings, TlsMode};
use crate::db::{Cell, DbError, Rows, target};
use crate::query::Statement;
use crate::watermark::Mark;

pub async fn connect(
    settings: &SqlSettings,
    password: Option<String>,
    application: &str,
) -> Result<Client, DbError> {
    let fail = |message: String| DbError::Connect {
        target: target(settings),
        message,
    };
    let mut config = tokio_postgres::Config::from_str(&settings.url).map_err(|e| fail(e.to_string()))?;
    config.application_name(application);
    if let Some(p) = password {
        config.password(p);
    }
    let client = match &settings.tls {
        TlsMode::Disable => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config.connect(NoTls).await.map_err(|e| fail(chain(&e)))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        mode => {
            // The `postgresql` sink's rustls configuration (backplane_dbtls).
            config.ssl_mode(SslMode::Require);
            let tls = backplane_dbtls::postgres_connector("sql", mode).map_err(DbError::Config)?;
            let (client, connection) = config.connect(tls).await.map_err(|e| fail(chain(&e)))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
    };
    // Times compare and read in UTC; the server stops a query the client gave up on.
    client
        .batch_execute(&format!(
            "SET TIME ZONE 'UTC'; SET statement_timeout = {}",
            settings.query_timeout.as_millis()
        ))
        .await
        .map_err(|e| fail(format!("session setup failed: {e}")))?;
    Ok(client)
}

pub async fn fetch(client: &Client, statement: &Statement, max_text: usize) -> Result<Rows, DbError> {
    // Every key is bound as text and cast in the statement, so a key read from an int4,
    // int8 or timestamp column binds the same way.
    let texts: Vec<String> = statement
        .params
        .iter()
        .map(|m| match m {
            Mark::Int(i) => i.to_string(),
            Mark::Time(t) => t.to_rfc3339(),
            Mark::Text(s) => s.clone(),
        })
        .collect();
    let params: Vec<&(dyn ToSql + Sync)> = texts.iter().map(|t| t as &(dyn ToSql + Sync)).collect();
    let rows = client
        .query(statement.text.as_str(), &params)
        .await
        .map_err(|e| DbError::Query(chain(&e)))?;
    let Some(first) = rows.first() else {
        return Ok(Rows::default());
    };
    let columns = first.columns().iter().map(|c| c.name().to_owned()).collect();
    let rows = rows
        .iter()
        .map(|row| (0..row.len()).map(|i| cell(row, i, max_text)).collect())
        .collect();
    Ok(Rows { columns, rows })
}

fn cell(row: &Row, i: usize, max_text: usize) -> Cell {
    let ty = row.columns()[i].type_().clone();
    macro_rules! get {
        ($t:ty, $map:expr) => {
            match row.try_get::<_, Option<$t>>(i) {
                Ok(None) => Cell::Null,
                Ok(Some(v)) => $map(v),
                Err(e) => Cell::Invalid(chain(&e)),
            }
        };
    }
    match ty {
        Type::BOOL => get!(bool, |v| Cell::Value(Value::Bool(v))),
        Type::INT2 => get!(i16, |v: i16| Cell::Value(Value::Int(v.into()))),
        Type::INT4 => get!(i32, |v: i32| Cell::Value(Value::Int(v.into()))),
        Type::INT8 => get!(i64, |v| Cell::Value(Value::Int(v))),
        Type::OID => get!(u32, |v: u32| Cell::Value(Value::UInt(v.into()))),
        Type::FLOAT4 => get!(f32, |v: f32| Cell::Value(Value::Float(v.into()))),
        Type::FLOAT8 => get!(f64, |v| Cell::Value(Value::Float(v))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get!(&str, |v: &str| Cell::text(v, max_text))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get!(SystemTime, |v: SystemTime| {
            let nanos = match v.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => d.as_nanos() as i128,
                Err(e) => -(e.duration().as_nanos() as i128),
            };
            crate::db::timestamp(nanos)
        }),
        other => {
            // A NULL of any type is still a NULL.
            match row.try_get::<_, Option<RawNull>>(i) {
                Ok(None) => Cell::Null,
                _ => Cell::Unsupported(format!(
                    "PostgreSQL type {}; cast it in a query (e.g. `::float8`, `::text`)",
                    other.name()
                )),
            }
        }
    }
}

/// Accepts every type and reads nothing: tells a NULL apart from a value of a type the
/// source does not map.
struct RawNull;

impl<'a> tokio_postgres::types::FromSql<'a> for RawNull {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<RawNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawNull)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
