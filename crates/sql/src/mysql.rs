//! MariaDB and MySQL through mysql_async: the session (UTC) and each column type's
//! mapping to a [`Cell`]. Statements run as prepared statements, so values come in the
//! binary protocol with their types, and keys are bound, never written into the text.

use backplane_dbtls::chain;
use backplane_model::Value;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Row, SslOpts};
use time::{Date, Month, PrimitiveDateTime, Time};

use crate::config::{SqlSettings, TlsMode, mysql_url};
use crate::db::{Cell, DbError, Rows, target};
use crate::query::Statement;
use crate::watermark::Mark;

/// The character set number of binary strings (BLOB, BINARY, VARBINARY).
const BINARY_CHARSET: u16 = 63;

pub async fn connect(
    settings: &SqlSettings,
    password: Option<String>,
    _application: &str,
) -> Result<Conn, DbError> {
    let fail = |message: String| DbError::Connect {
        target: target(settings),
        message,
    };
    let opts = Opts::from_url(&mysql_url(&settings.url)).map_err(|e| fail(e.to_string()))?;
    let mut builder = OptsBuilder::from_opts(opts);
    if let Some(p) = password {
        builder = builder.pass(Some(p));
    }
    // The `tls`/`ca` settings the `postgresql` sink reads too (backplane_dbtls); mysql_async
    // builds its own rustls configuration from them (ring, no built-in roots).
    let ssl = match &settings.tls {
        TlsMode::Disable => None,
        TlsMode::Require => Some(SslOpts::default().with_danger_accept_invalid_certs(true)),
        TlsMode::VerifyFull { ca } => {
            let (pem, _) = backplane_dbtls::ca_pem("sql", ca).map_err(DbError::Config)?;
            Some(
                SslOpts::default()
                    .with_disable_built_in_roots(true)
                    .with_root_certs(vec![pem.into_bytes().into()]),
            )
        }
    };
    builder = builder.ssl_opts(ssl);
    let mut conn = Conn::new(builder).await.map_err(|e| {
        let mut message = chain(&e);
        // MariaDB answers a plain login under `require_secure_transport` with "access
        // denied" (MySQL with 3159): say what may be missing.
        if settings.tls == TlsMode::Disable
            && let mysql_async::Error::Server(s) = &e
            && matches!(s.code, 1045 | 3159)
        {
            message.push_str(
                " (if the server requires secure transport, set `tls = \"require\"` or `\"verify-full\"`)",
            );
        }
        fail(message)
    })?;
    // TIMESTAMP columns and NOW() in UTC, like the times Backplane carries.
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .map_err(|e| fail(format!("session setup failed: {e}")))?;
    Ok(conn)
}

pub async fn fetch(conn: &mut Conn, statement: &Statement, max_text: usize) -> Result<Rows, DbError> {
    let params: Vec<mysql_async::Value> = statement.params.iter().map(param).collect();
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    let rows: Vec<Row> = conn
        .exec(statement.text.as_str(), params)
        .await
        .map_err(|e| DbError::Query(e.to_string()))?;
    let Some(first) = rows.first() else {
        return Ok(Rows::default());
    };
    let columns = first
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let rows = rows
        .iter()
        .map(|row| (0..row.len()).map(|i| cell(row, i, max_text)).collect())
        .collect();
    Ok(Rows { columns, rows })
}

fn param(mark: &Mark) -> mysql_async::Value {
    match mark {
        Mark::Int(i) => mysql_async::Value::Int(*i),
        Mark::Text(s) => mysql_async::Value::Bytes(s.as_bytes().to_vec()),
        Mark::Time(t) => match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.unix_nanos())) {
            Ok(d) => mysql_async::Value::Date(
                d.year().clamp(0, 9999) as u16,
                d.month() as u8,
                d.day(),
                d.hour(),
                d.minute(),
                d.second(),
                d.microsecond(),
            ),
            Err(_) => mysql_async::Value::NULL,
        },
    }
}

fn cell(row: &Row, i: usize, max_text: usize) -> Cell {
    let column = &row.columns_ref()[i];
    let Some(value) = row.as_ref(i) else {
        return Cell::Invalid("the value was taken already".into());
    };
    match value {
        mysql_async::Value::NULL => Cell::Null,
        mysql_async::Value::Int(v) => Cell::Value(Value::Int(*v)),
        mysql_async::Value::UInt(v) => Cell::Value(Value::UInt(*v)),
        mysql_async::Value::Float(v) => Cell::Value(Value::Float(f64::from(*v))),
        mysql_async::Value::Double(v) => Cell::Value(Value::Float(*v)),
        mysql_async::Value::Date(y, mo, d, h, mi, s, us) => date(*y, *mo, *d, *h, *mi, *s, *us),
        mysql_async::Value::Time(..) => Cell::Unsupported(
            "MariaDB/MySQL type TIME (a duration); cast it in a query (e.g. `TIME_TO_SEC(col)`)".into(),
        ),
        mysql_async::Value::Bytes(bytes) => match column.column_type() {
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                match std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    Some(f) => Cell::Value(Value::Float(f)),
                    None => Cell::Invalid("a DECIMAL that is not a number".into()),
                }
            }
            ColumnType::MYSQL_TYPE_BIT | ColumnType::MYSQL_TYPE_GEOMETRY => Cell::Unsupported(format!(
                "MariaDB/MySQL type {:?}; cast it in a query",
                column.column_type()
            )),
            _ if column.character_set() == BINARY_CHARSET => {
                Cell::Unsupported("binary string (BLOB/BINARY); cast it in a query (e.g. `HEX(col)`)".into())
            }
            _ => match std::str::from_utf8(bytes) {
                Ok(s) => Cell::text(s, max_text),
                Err(e) => Cell::Invalid(format!("text that is not UTF-8 ({e})")),
            },
        },
    }
}

/// DATETIME, TIMESTAMP and DATE values, in UTC (the session's time zone).
fn date(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Cell {
    let parsed = Month::try_from(mo).ok().and_then(|month| {
        let date = Date::from_calendar_date(i32::from(y), month, d).ok()?;
        let time = Time::from_hms_micro(h, mi, s, us).ok()?;
        Some(PrimitiveDateTime::new(date, time).assume_utc())
    });
    match parsed {
        Some(t) => crate::db::timestamp(t.unix_timestamp_nanos()),
        None => Cell::Invalid(format!(
            "the date {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} does not exist"
        )),
    }
}
