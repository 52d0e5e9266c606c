//! The `sql` source's configuration keys, read through the config crate's [`Table`] so
//! every key is checked and every error has a position. See docs/connectors/sql.md.

use std::str::FromStr;
use std::time::Duration;

use backplane_config::{Secret, Table};
pub use backplane_dbtls::TlsMode;
use backplane_model::ContextField;

pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);
pub const DEFAULT_BATCH: u32 = 500;
pub const MAX_BATCH: u64 = 10_000;
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_TEXT: usize = 4096;
pub const MAX_MAX_TEXT: u64 = 1 << 20;

/// Which database the URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    /// MariaDB or MySQL.
    MySql,
}

/// What is read: a table's columns, or the operator's query.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// `table` (optionally `schema.table`): the columns the source needs are selected.
    Table(String),
    /// `query`, with `{watermark}` where the predicate on the watermark goes.
    Query(String),
}

/// Where the rows' context goes and which column gives which field.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextMap {
    /// The asset path (as configured) whose own context the rows set.
    pub asset: String,
    pub fields: Vec<(ContextField, String)>,
}

/// Everything a `sql` source reads from its `[[sources]]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlSettings {
    pub dialect: Dialect,
    /// The connection URL, without a password.
    pub url: String,
    pub password: Option<Secret>,
    /// TLS to the database (`tls`/`ca`, or the PostgreSQL URL's `sslmode`).
    pub tls: TlsMode,
    pub target: Target,
    /// The column rows are read in order of (integer, timestamp or text).
    pub watermark: String,
    /// A unique column that orders rows sharing a watermark value (needed for a time).
    pub tiebreak: Option<String>,
    /// The column that gives the samples' source time.
    pub time: Option<String>,
    /// Only rows whose `time` is at least this old are read (late-commit mitigation).
    pub settle: Duration,
    pub period: Duration,
    pub batch: u32,
    pub query_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest text cell passed on, in bytes.
    pub max_text: usize,
    pub context: Option<ContextMap>,
}

impl SqlSettings {
    /// Every column the source reads besides the bound ones, without duplicates.
    pub fn own_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec![&self.watermark];
        out.extend(self.tiebreak.as_deref());
        out.extend(self.time.as_deref());
        if let Some(c) = &self.context {
            out.extend(c.fields.iter().map(|(_, col)| col.as_str()));
        }
        let mut seen = Vec::new();
        out.retain(|c| {
            let new = !seen.contains(c);
            seen.push(*c);
            new
        });
        out
    }
}

/// Whether `name` is a column name the source accepts: letters, digits and `_`, not
/// starting with a digit, optionally qualified once (`r.sampled_at`). Names are quoted in
/// the SQL the source writes, so they are never parsed as SQL.
pub fn is_column_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && !p.starts_with(|c: char| c.is_ascii_digit())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match name.split_once('.') {
        Some((a, b)) => part(a) && part(b),
        None => part(name),
    }
}

/// The name a column has in the result: the part after the qualifier.
pub fn result_name(column: &str) -> &str {
    column.rsplit_once('.').map_or(column, |(_, name)| name)
}

const COLUMN_HINT: &str = "letters, digits and `_`, optionally qualified once (`r.sampled_at`)";

/// Which database `url` names, or why it names none.
pub fn dialect(url: &str) -> Result<Dialect, (String, String)> {
    let hint =
        "e.g. \"postgresql://backplane@db.example:5432/lims\" or \"mysql://backplane@db.example:3306/erp\"";
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let dialect = match scheme.as_deref() {
        Some("postgresql" | "postgres") => Dialect::Postgres,
        Some("mysql" | "mariadb") => Dialect::MySql,
        _ => {
            return Err((
                format!("`{url}` is not a postgresql://, mysql:// or mariadb:// URL"),
                hint.into(),
            ));
        }
    };
    let has_password = match dialect {
        Dialect::Postgres => match tokio_postgres::Config::from_str(url) {
            Ok(c) => c.get_password().is_some(),
            Err(e) => return Err((format!("not a PostgreSQL connection URL: {e}"), hint.into())),
        },
        Dialect::MySql => match mysql_async::Opts::from_url(&mysql_url(url)) {
            Ok(o) => o.pass().is_some(),
            Err(e) => return Err((format!("not a MariaDB/MySQL connection URL: {e}"), hint.into())),
        },
    };
    if has_password {
        return Err((
            "the URL contains a password".into(),
            "remove it and write `password = \"env:NAME\"` or `password = \"file:PATH\"`".into(),
        ));
    }
    Ok(dialect)
}

/// `url` without its `sslmode` parameter (PostgreSQL: libpq's names, some of which
/// tokio-postgres does not read), and that parameter's value. `sslrootcert` is refused:
/// the CA is the `ca` key, a secret reference like the `postgresql` sink's.
pub fn split_sslmode(url: &str) -> Result<(String, Option<String>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut mode = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert" | "sslcert" | "sslkey", _)) => {
                return Err(format!(
                    "`{}` in the URL is not read: give the authority's certificate as `ca = \"file:PATH\"` with `tls = \"verify-full\"` (client certificates are not supported)",
                    pair.split('=').next().unwrap_or(pair)
                ));
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, mode))
}

/// mysql_async knows the `mysql://` scheme only.
pub fn mysql_url(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => format!("mysql://{rest}"),
        None => url.to_owned(),
    }
}

/// Reads the keys of one `[[sources]]` table of kind `sql`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<SqlSettings> {
    let mut ok = true;
    let url = table.required_str("url");
    let (url, sslmode) = match url.map(split_sslmode) {
        Some(Ok((url, mode))) => (Some(url), mode),
        Some(Err(message)) => {
            table.error("url", message, None);
            (None, None)
        }
        None => (None, None),
    };
    let dialect = url.as_deref().and_then(|url| match dialect(url) {
        Ok(d) => Some(d),
        Err((message, hint)) => {
            table.error("url", message, Some(hint));
            None
        }
    });
    let password = table.optional_secret("password");
    let tls_key = table.optional_str("tls");
    let ca = table.optional_secret("ca");
    if let (Some(mode), Some(Dialect::MySql)) = (&sslmode, dialect) {
        table.error(
            "url",
            format!("`sslmode={mode}` is PostgreSQL's; for MariaDB/MySQL write `tls = \"{mode}\"`"),
            None,
        );
        ok = false;
    }
    if let (Some(key), Some(mode)) = (tls_key, &sslmode)
        && key != mode
    {
        table.error(
            "tls",
            format!("`tls = \"{key}\"` but the URL says `sslmode={mode}`"),
            Some("give one of them".into()),
        );
        ok = false;
    }
    let tls = backplane_dbtls::resolve(table, tls_key.or(sslmode.as_deref()).unwrap_or("disable"), ca);
    ok &= tls.is_some();
    let target = match (table.optional_str("table"), table.optional_str("query")) {
        (Some(t), None) => {
            if !is_column_name(t) {
                table.error(
                    "table",
                    format!("`{t}` is not a table name"),
                    Some("letters, digits and `_`, optionally `schema.table`".into()),
                );
                ok = false;
            }
            Some(Target::Table(t.to_owned()))
        }
        (None, Some(q)) => {
            if q.matches("{watermark}").count() != 1 {
                table.error(
                    "query",
                    "the query must contain `{watermark}` exactly once",
                    Some(
                        "write it where the source's condition goes, e.g. `SELECT ... FROM results r WHERE {watermark}`; the source appends ORDER BY and LIMIT"
                            .into(),
                    ),
                );
                ok = false;
            }
            Some(Target::Query(q.to_owned()))
        }
        (Some(_), Some(_)) => {
            table.error("query", "give either `table` or `query`, not both", None);
            None
        }
        (None, None) => {
            table.error(
                "table",
                "missing `table` (or `query`)",
                Some("name the table to read, or write a query with `{watermark}`".into()),
            );
            None
        }
    };
    let mut column = |table: &mut Table<'_>, key: &str, required: bool| {
        let name = if required {
            table.required_str(key)
        } else {
            table.optional_str(key)
        }?;
        if !is_column_name(name) {
            table.error(
                key,
                format!("`{name}` is not a column name"),
                Some(COLUMN_HINT.into()),
            );
            ok = false;
        }
        Some(name.to_owned())
    };
    let watermark = column(table, "watermark", true);
    let tiebreak = column(table, "tiebreak", false);
    let time = column(table, "time", false);
    let settle = table.optional_duration("settle").unwrap_or(Duration::ZERO);
    if !settle.is_zero() && time.is_none() {
        table.error(
            "settle",
            "`settle` needs `time`: the column whose age is compared",
            Some("name the rows' time column, e.g. `time = \"created_at\"`".into()),
        );
        ok = false;
    }
    let period = table.optional_duration("period").unwrap_or(DEFAULT_PERIOD);
    if period < Duration::from_millis(10) {
        table.error("period", "`period` must be at least 10ms", None);
        ok = false;
    }
    let batch = match table.optional_u64("batch") {
        None => DEFAULT_BATCH,
        Some(b) if (1..=MAX_BATCH).contains(&b) => b as u32,
        Some(b) => {
            table.error("batch", format!("`batch` = {b} is outside 1..={MAX_BATCH}"), None);
            ok = false;
            DEFAULT_BATCH
        }
    };
    let query_timeout = table
        .optional_duration("query_timeout")
        .unwrap_or(DEFAULT_QUERY_TIMEOUT);
    let connect_timeout = table
        .optional_duration("connect_timeout")
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    for (key, d) in [
        ("query_timeout", query_timeout),
        ("connect_timeout", connect_timeout),
    ] {
        if d < Duration::from_millis(100) {
            table.error(key, format!("`{key}` must be at least 100ms"), None);
            ok = false;
        }
    }
    let max_text = match table.optional_bytes("max_text") {
        None => DEFAULT_MAX_TEXT,
        Some(m) if (1..=MAX_MAX_TEXT).contains(&m) => m as usize,
        Some(m) => {
            table.error(
                "max_text",
                format!("`max_text` = {m} is outside 1..={MAX_MAX_TEXT} bytes"),
                None,
            );
            ok = false;
            DEFAULT_MAX_TEXT
        }
    };
    let context_asset = table.optional_str("context_asset");
    let context = match table.optional_table("context") {
        None => {
            if context_asset.is_some() {
                table.error(
                    "context_asset",
                    "`context_asset` without `context`",
                    Some(
                        "map context fields to columns, e.g. `context = { work_order = \"order_no\" }`"
                            .into(),
                    ),
                );
                ok = false;
            }
            None
        }
        Some(mut fields_table) => {
            let mut fields = Vec::new();
            for (key, item) in fields_table.take_remaining() {
                let Some(field) = ContextField::parse(key.name) else {
                    let names: Vec<&str> = ContextField::ALL.iter().map(|f| f.name()).collect();
                    item.error(
                        format!("`{}` is not a context field", key.name),
                        Some(format!("one of {}", names.join(", "))),
                    );
                    ok = false;
                    continue;
                };
                let Some(col) = item.as_str() else {
                    item.error("expected a column name (a string)", None);
                    ok = false;
                    continue;
                };
                if !is_column_name(col) {
                    item.error(format!("`{col}` is not a column name"), Some(COLUMN_HINT.into()));
                    ok = false;
                    continue;
                }
                fields.push((field, col.to_owned()));
            }
            match context_asset {
                Some(asset) => Some(ContextMap {
                    asset: asset.to_owned(),
                    fields,
                }),
                None => {
                    table.error(
                        "context_asset",
                        "`context` needs `context_asset`: the asset whose context the rows set",
                        Some("e.g. `context_asset = \"packaging/line-1\"`".into()),
                    );
                    ok = false;
                    None
                }
            }
        }
    };
    if !ok {
        return None;
    }
    Some(SqlSettings {
        dialect: dialect?,
        url: url?,
        password,
        tls: tls?,
        target: target?,
        watermark: watermark?,
        tiebreak,
        time,
        settle,
        period,
        batch,
        query_timeout,
        connect_timeout,
        max_text,
        context,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(body: &str) -> (Option<SqlSettings>, Vec<String>) {
        backplane_testkit::settings::parse(body, parse_settings)
    }

    #[test]
    fn a_table_source_reads_its_keys_and_defaults() {
        let (s, errors) = parse(
            "url = \"postgresql://gw@db/lims\"\ntable = \"lims.results\"\nwatermark = \"sampled_at\"\ntiebreak = \"id\"\ntime = \"sampled_at\"\nsettle = \"5s\"\ncontext_asset = \"line-1\"\ncontext = { work_order = \"order_no\", batch = \"lot\" }",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.dialect, Dialect::Postgres);
        assert_eq!(s.target, Target::Table("lims.results".into()));
        assert_eq!(s.settle, Duration::from_secs(5));
        assert_eq!(s.batch, DEFAULT_BATCH);
        assert_eq!(s.own_columns(), ["sampled_at", "id", "order_no", "lot"]);
    }

    #[test]
    fn bad_keys_are_named() {
        for (body, key) in [
            (
                "url = \"mysql://root:pw@h/erp\"\ntable = \"t\"\nwatermark = \"id\"",
                "url",
            ),
            (
                "url = \"oracle://h/erp\"\ntable = \"t\"\nwatermark = \"id\"",
                "url",
            ),
            (
                "url = \"mysql://h/erp\"\ntable = \"t; DROP\"\nwatermark = \"id\"",
                "table",
            ),
            (
                "url = \"mysql://h/erp\"\nquery = \"SELECT 1\"\nwatermark = \"id\"",
                "query",
            ),
            (
                "url = \"mysql://h/erp\"\ntable = \"t\"\nwatermark = \"id\\\"x\"",
                "watermark",
            ),
            (
                "url = \"mysql://h/erp\"\ntable = \"t\"\nwatermark = \"id\"\nsettle = \"2s\"",
                "settle",
            ),
            (
                "url = \"mysql://h/erp\"\ntable = \"t\"\nwatermark = \"id\"\nbatch = 0",
                "batch",
            ),
            (
                "url = \"mysql://h/erp\"\ntable = \"t\"\nwatermark = \"id\"\ncontext = { wo = \"x\" }",
                "wo",
            ),
        ] {
            let (s, errors) = parse(body);
            assert!(s.is_none(), "{body}");
            assert!(errors.iter().any(|e| e.contains(key)), "{body}: {errors:?}");
        }
    }

    #[test]
    fn tls_comes_from_the_tls_key_or_the_postgresql_url_s_sslmode() {
        let base = "table = \"t\"\nwatermark = \"id\"";
        let (s, errors) = parse(&format!(
            "url = \"postgresql://gw@db/lims?sslmode=require&application_name=x\"\n{base}"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.tls, TlsMode::Require);
        assert_eq!(s.url, "postgresql://gw@db/lims?application_name=x");
        let (s, errors) = parse(&format!(
            "url = \"postgres://gw@db/lims?sslmode=verify-full\"\nca = \"file:ca.pem\"\n{base}"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(&s.unwrap().tls, TlsMode::VerifyFull { ca } if ca.reference() == "file:ca.pem"));
        let (s, errors) = parse(&format!(
            "url = \"mariadb://gw@db/erp\"\ntls = \"verify-full\"\nca = \"file:ca.pem\"\n{base}"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(s.unwrap().tls, TlsMode::VerifyFull { .. }));
        let (s, _) = parse(&format!("url = \"mysql://gw@db/erp\"\n{base}"));
        assert_eq!(s.unwrap().tls, TlsMode::Disable);
        for (body, key) in [
            ("url = \"postgresql://gw@db/l?sslmode=verify-full\"", "ca"),
            ("url = \"postgresql://gw@db/l\"\ntls = \"prefer\"", "tls"),
            (
                "url = \"postgresql://gw@db/l?sslmode=require\"\ntls = \"disable\"",
                "tls",
            ),
            ("url = \"postgresql://gw@db/l\"\nca = \"file:ca.pem\"", "ca"),
            ("url = \"postgresql://gw@db/l?sslrootcert=/ca.pem\"", "url"),
            ("url = \"mysql://gw@db/erp?sslmode=require\"", "url"),
        ] {
            let (s, errors) = parse(&format!("{body}\n{base}"));
            assert!(s.is_none(), "{body}");
            assert!(errors.iter().any(|e| e.contains(key)), "{body}: {errors:?}");
        }
    }
}
