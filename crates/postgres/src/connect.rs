//! Opening a session: TLS by `tls` mode (the rustls configuration of `backplane_dbtls`,
//! shared with the `sql` source), the password from its secret, the application
//! name the database shows in `pg_stat_activity`, and the session settings every
//! statement relies on (`search_path`, `statement_timeout`).

use backplane_connector::ComponentError;
use tokio_postgres::{Client, NoTls};

use crate::config::{PostgresSettings, TlsMode};

/// A connected client whose connection runs on its own task; `client.is_closed()` turns
/// true once the connection has ended.
pub async fn connect(settings: &PostgresSettings, application_name: &str) -> Result<Client, ComponentError> {
    let mut config = settings.connection.clone();
    config.application_name(application_name);
    config.connect_timeout(settings.connect_timeout);
    if let Some(secret) = &settings.password {
        let password = secret
            .resolve()
            .map_err(|e| ComponentError::config_because(format!("postgresql password: {e}"), e))?;
        config.password(password);
    }
    let target = describe(&config);
    let client = match &settings.tls {
        TlsMode::Disable => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = config.connect(NoTls).await.map_err(|e| {
                ComponentError::connect_because(format!("cannot connect to {target}: {}", chain(&e)), e)
            })?;
            spawn(connection);
            client
        }
        mode => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls =
                backplane_dbtls::postgres_connector("postgresql", mode).map_err(ComponentError::config)?;
            let (client, connection) = config.connect(tls).await.map_err(|e| {
                ComponentError::connect_because(format!("cannot connect to {target}: {}", chain(&e)), e)
            })?;
            spawn(connection);
            client
        }
    };
    let mut setup = format!("SET search_path TO {}, public", settings.schema);
    if let Some(t) = settings.statement_timeout {
        setup.push_str(&format!("; SET statement_timeout = {}", t.as_millis()));
    }
    client
        .batch_execute(&setup)
        .await
        .map_err(|e| ComponentError::connect_because(format!("{target}: session setup failed: {e}"), e))?;
    Ok(client)
}

use backplane_dbtls::chain;

/// `user@host:port/db`, for messages (never the password).
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

fn spawn<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgresql: connection ended");
        }
    });
}

/// Whether `e` means the session is gone (socket closed, server shut the backend down),
/// so the sink must reconnect, rather than a statement failing on a live session.
pub fn is_connection_lost(client: &Client, e: &tokio_postgres::Error) -> bool {
    if client.is_closed() || e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown,
        // cannot connect now.
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03"
        }
        None => e.as_db_error().is_none(),
    }
}

/// `e` as the sink reports it: `connect` when the session is gone (the supervisor
/// reconnects), `io` for a statement that failed on a live session (retried too).
pub fn classify(client: &Client, e: &tokio_postgres::Error, what: &str) -> ComponentError {
    let message = match e.as_db_error() {
        Some(db) => format!("postgresql: {what}: {} ({})", db.message(), db.code().code()),
        None => format!("postgresql: {what}: {e}"),
    };
    if is_connection_lost(client, e) {
        ComponentError::connect(message)
    } else {
        ComponentError::io(message)
    }
}
