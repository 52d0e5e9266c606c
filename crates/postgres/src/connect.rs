//! Opening a session: TLS by `tls` mode, the password from its secret, the application
//! name the database shows in `pg_stat_activity`, and the session settings every
//! statement relies on (`search_path`, `statement_timeout`).

use std::sync::Arc;

use backplane_connector::ComponentError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
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
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_config(mode)?);
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

/// An error with its causes, e.g. "error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer" (tokio-postgres shows only the first part).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_config(mode: &TlsMode) -> Result<rustls::ClientConfig, ComponentError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ComponentError::config_because(format!("postgresql tls: {e}"), e))?;
    match mode {
        TlsMode::VerifyFull { ca } => {
            let pem = ca
                .resolve()
                .map_err(|e| ComponentError::config_because(format!("postgresql tls ca: {e}"), e))?;
            let mut roots = rustls::RootCertStore::empty();
            let mut found = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                let cert = cert.map_err(|e| {
                    ComponentError::config_because(format!("postgresql tls ca `{ca}`: {e}"), e)
                })?;
                roots.add(cert).map_err(|e| {
                    ComponentError::config_because(format!("postgresql tls ca `{ca}`: {e}"), e)
                })?;
                found += 1;
            }
            if found == 0 {
                return Err(ComponentError::config(format!(
                    "postgresql tls ca `{ca}`: no BEGIN CERTIFICATE block"
                )));
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
        _ => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
            .with_no_client_auth()),
    }
}

/// `tls = "require"`: encrypt, but accept any certificate (libpq's `sslmode=require`).
/// Handshake signatures are still checked, so the session key is the server's.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
