//! TLS to databases, one implementation for the `postgresql` sink and the `sql` source
//! (PostgreSQL and MariaDB/MySQL): the `tls` and `ca` keys of a `[[sinks]]` or
//! `[[sources]]` table ([`parse`]) and the rustls client configuration they come to
//! ([`client_config`], ring like the rest of the workspace; no OpenSSL).
//!
//! The modes are libpq's `sslmode` names: `disable`, `require` (encrypted, the
//! certificate not checked, as libpq does) and `verify-full` (the certificate must chain
//! to `ca` and name the host).

use std::sync::Arc;

use backplane_config::{Secret, Table};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Transport security, as libpq's `sslmode` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS without checking the server's certificate (encryption only).
    Require,
    /// TLS; the certificate must chain to the `ca` (PEM, by secret reference) and name
    /// the host.
    VerifyFull { ca: Secret },
}

impl TlsMode {
    /// The mode named `name` (`disable`, `require`, `verify-full`), `ca` for the last.
    pub fn named(name: &str, ca: Option<Secret>) -> Result<TlsMode, ModeError> {
        match (name, ca) {
            ("disable", None) => Ok(TlsMode::Disable),
            ("require", None) => Ok(TlsMode::Require),
            ("verify-full", Some(ca)) => Ok(TlsMode::VerifyFull { ca }),
            ("verify-full", None) => Err(ModeError::NoCa),
            ("disable" | "require", Some(_)) => Err(ModeError::CaUnused),
            (other, _) => Err(ModeError::Unknown(other.to_owned())),
        }
    }

    /// For `backplane check` and health: what the connection will be.
    pub fn describe(&self) -> String {
        match self {
            TlsMode::Disable => "no TLS".to_owned(),
            TlsMode::Require => "TLS (certificate not checked)".to_owned(),
            TlsMode::VerifyFull { ca } => format!("TLS verified against {ca}"),
        }
    }
}

/// Why a `tls`/`ca` pair is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeError {
    NoCa,
    CaUnused,
    Unknown(String),
}

/// Reads `tls` (default `disable`) and `ca` from `table`, reporting problems under the
/// key they concern. `None` when they are refused.
pub fn parse(table: &mut Table<'_>) -> Option<TlsMode> {
    let name = table.optional_str("tls");
    let ca = table.optional_secret("ca");
    resolve(table, name.unwrap_or("disable"), ca)
}

/// The mode `name` with `ca` (both read from `table` by the caller, `name` perhaps from a
/// URL's `sslmode`), problems reported under the key they concern.
pub fn resolve(table: &Table<'_>, name: &str, ca: Option<Secret>) -> Option<TlsMode> {
    TlsMode::named(name, ca).map_err(|e| report(table, &e)).ok()
}

fn report(table: &Table<'_>, e: &ModeError) {
    match e {
        ModeError::NoCa => table.error(
            "ca",
            "`tls = \"verify-full\"` needs `ca`",
            Some("`ca = \"file:PATH\"`: the PEM certificate of the authority that signed the server's certificate".into()),
        ),
        ModeError::CaUnused => table.error("ca", "`ca` is only used with `tls = \"verify-full\"`", None),
        ModeError::Unknown(other) => table.error(
            "tls",
            format!("`tls` must be \"disable\", \"require\" or \"verify-full\", not \"{other}\""),
            None,
        ),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM text of `ca` with at least one certificate, or why not (`what` names the
/// connection, e.g. "sql source `lims`").
pub fn ca_pem(what: &str, ca: &Secret) -> Result<(String, Vec<CertificateDer<'static>>), String> {
    let pem = ca.resolve().map_err(|e| format!("{what}: tls ca: {e}"))?;
    let mut certs = Vec::new();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        certs.push(cert.map_err(|e| format!("{what}: tls ca `{ca}`: {e}"))?);
    }
    if certs.is_empty() {
        return Err(format!("{what}: tls ca `{ca}`: no BEGIN CERTIFICATE block"));
    }
    Ok((pem, certs))
}

/// The rustls client configuration for `mode` (not for [`TlsMode::Disable`], which needs
/// none: it gets `require`'s). Errors name `what` and are configuration errors.
pub fn client_config(what: &str, mode: &TlsMode) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{what}: tls: {e}"))?;
    match mode {
        TlsMode::VerifyFull { ca } => {
            let (_, certs) = ca_pem(what, ca)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{what}: tls ca `{ca}`: {e}"))?;
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
        _ => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
            .with_no_client_auth()),
    }
}

/// The connector tokio-postgres takes for `mode`.
pub fn postgres_connector(
    what: &str,
    mode: &TlsMode,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(client_config(
        what, mode,
    )?))
}

/// An error with its causes, e.g. "error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer" (tokio-postgres and mysql_async show only the first part).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
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
