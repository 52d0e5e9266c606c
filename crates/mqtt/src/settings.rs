//! Broker connection settings shared by every kind in this crate: broker address, MQTT
//! version, credentials and TLS. Read from the kind's TOML table by [`ConnectionSettings::parse`]
//! (no I/O); secrets and certificates are read by [`ConnectionSettings::resolve`] when a
//! component is built, so `backplane check` never needs them.

use std::sync::Arc;
use std::time::Duration;

use backplane_config::{Secret, SecretError, Table};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// MQTT protocol version spoken to the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

/// MQTT quality of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Qos {
    pub fn from_level(level: u64) -> Option<Qos> {
        match level {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }

    pub fn level(self) -> u8 {
        self as u8
    }
}

/// TLS references as written in the configuration (`file:PATH` or `env:NAME`, PEM text).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// Trusted CA certificates; the system's roots when absent.
    pub ca: Option<Secret>,
    /// Client certificate chain and key, for brokers that require client authentication.
    pub cert: Option<Secret>,
    pub key: Option<Secret>,
}

/// How to reach and log in to the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSettings {
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    /// `None`: a default derived from the gateway and component names.
    pub client_id: Option<String>,
    pub keep_alive: Duration,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: Option<TlsSettings>,
    /// Largest MQTT packet accepted from or sent to the broker.
    pub max_packet_bytes: usize,
    /// First and longest wait between connection attempts (exponential, with jitter).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// Secrets and certificates read, ready to connect.
#[derive(Clone, Debug)]
pub struct ResolvedConnection {
    pub settings: ConnectionSettings,
    pub password: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

const DEFAULT_MAX_PACKET: u64 = 1024 * 1024;

impl ConnectionSettings {
    /// Reads `broker`, `protocol`, `client_id`, `keep_alive`, `username`, `password`, `tls`,
    /// `max_packet_bytes`, `reconnect_min` and `reconnect_max`.
    pub fn parse(table: &mut Table<'_>) -> Option<ConnectionSettings> {
        let broker = table.required_str("broker");
        let protocol = match table.optional_str("protocol") {
            None | Some("3.1.1") => Protocol::V311,
            Some("5") | Some("5.0") => Protocol::V5,
            Some(other) => {
                table.error(
                    "protocol",
                    format!("unknown MQTT protocol version `{other}`"),
                    Some("one of: \"3.1.1\", \"5\"".into()),
                );
                Protocol::V311
            }
        };
        let client_id = table.optional_str("client_id").map(str::to_owned);
        if client_id.as_ref().is_some_and(|c| c.is_empty() || c.len() > 128) {
            table.error("client_id", "`client_id` must be 1 to 128 characters", None);
        }
        let keep_alive = table
            .optional_duration("keep_alive")
            .unwrap_or(Duration::from_secs(30));
        if keep_alive < Duration::from_secs(1) {
            table.error("keep_alive", "`keep_alive` must be at least 1s", None);
        }
        let username = table.optional_str("username").map(str::to_owned);
        let password = table.optional_secret("password");
        if password.is_some() && username.is_none() {
            table.error("password", "`password` needs a `username`", None);
        }
        let mut tls = match table.optional_table("tls") {
            Some(mut t) => {
                let settings = TlsSettings {
                    ca: t.optional_secret("ca"),
                    cert: t.optional_secret("cert"),
                    key: t.optional_secret("key"),
                };
                if settings.cert.is_some() != settings.key.is_some() {
                    t.error(
                        "cert",
                        "client authentication needs both `cert` and `key`",
                        Some("cert = \"file:client.pem\", key = \"file:client.key\"".into()),
                    );
                }
                t.finish();
                Some(settings)
            }
            None => None,
        };
        let max_packet_bytes = table
            .optional_u64("max_packet_bytes")
            .unwrap_or(DEFAULT_MAX_PACKET);
        if !(1024..=256 * 1024 * 1024).contains(&max_packet_bytes) {
            table.error(
                "max_packet_bytes",
                "`max_packet_bytes` must be between 1024 and 268435456",
                None,
            );
        }
        let reconnect_min = table
            .optional_duration("reconnect_min")
            .unwrap_or(Duration::from_millis(500));
        let reconnect_max = table
            .optional_duration("reconnect_max")
            .unwrap_or(Duration::from_secs(30));
        if reconnect_min.is_zero() || reconnect_min > reconnect_max {
            table.error(
                "reconnect_min",
                "`reconnect_min` must be above zero and not above `reconnect_max`",
                None,
            );
        }

        let (tls_scheme, host, port) = parse_broker(broker?)
            .map_err(|e| table.error("broker", e.to_string(), Some(BROKER_HINT.into())))
            .ok()?;
        if tls_scheme && tls.is_none() {
            tls = Some(TlsSettings {
                ca: None,
                cert: None,
                key: None,
            });
        }
        Some(ConnectionSettings {
            host,
            port,
            protocol,
            client_id,
            keep_alive,
            username,
            password,
            tls,
            max_packet_bytes: usize::try_from(max_packet_bytes).unwrap_or(usize::MAX),
            reconnect_min,
            reconnect_max,
        })
    }

    /// Reads the password and certificates. Errors name the reference, never the secret.
    pub fn resolve(&self) -> Result<ResolvedConnection, ResolveError> {
        let password = match &self.password {
            Some(secret) => Some(secret.resolve().map_err(ResolveError::Password)?),
            None => None,
        };
        let tls = match &self.tls {
            Some(tls) => Some(Arc::new(tls_config(tls)?)),
            None => None,
        };
        Ok(ResolvedConnection {
            settings: self.clone(),
            password,
            tls,
        })
    }
}

const BROKER_HINT: &str = "write e.g. \"mqtt://127.0.0.1:1883\" or \"mqtts://broker.example:8883\"";

/// Why a broker URL is not `mqtt[s]://host[:port]`; each names the URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    /// A scheme other than `mqtt://`, `mqtts://`, `tcp://` and `ssl://`.
    #[error("`{url}` is not an MQTT broker URL")]
    Scheme { url: String },
    /// An IPv6 host without its closing `]`.
    #[error("`{url}`: unclosed `[` in the host")]
    UnclosedBracket { url: String },
    /// Something other than `:port` after a bracketed IPv6 host.
    #[error("`{url}`: unexpected `{tail}` after the host")]
    AfterHost { url: String, tail: String },
    /// An empty host, or one with a path.
    #[error("`{url}` has no valid host")]
    Host { url: String },
    /// A port that is not a number from 1 to 65535.
    #[error("`{url}`: port `{port}` is not a number from 1 to 65535")]
    Port { url: String, port: String },
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` (also `tcp://`, `ssl://`); returns whether
/// the scheme asks for TLS.
pub fn parse_broker(text: &str) -> Result<(bool, String, u16), BrokerUrlError> {
    let url = || text.to_owned();
    let (tls, rest) = if let Some(r) = text
        .strip_prefix("mqtt://")
        .or_else(|| text.strip_prefix("tcp://"))
    {
        (false, r)
    } else if let Some(r) = text
        .strip_prefix("mqtts://")
        .or_else(|| text.strip_prefix("ssl://"))
    {
        (true, r)
    } else {
        return Err(BrokerUrlError::Scheme { url: url() });
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if tls { 8883 } else { 1883 };
    // `[v6]:port`, `host:port` or `host`.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, tail) = v6
            .split_once(']')
            .ok_or_else(|| BrokerUrlError::UnclosedBracket { url: url() })?;
        match tail.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if tail.is_empty() => (host, None),
            None => {
                return Err(BrokerUrlError::AfterHost {
                    url: url(),
                    tail: tail.to_owned(),
                });
            }
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains('/') {
        return Err(BrokerUrlError::Host { url: url() });
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| BrokerUrlError::Port {
                url: url(),
                port: p.to_owned(),
            })?,
        None => default_port,
    };
    Ok((tls, host.to_owned(), port))
}

/// Why the password or a TLS certificate or key could not be read. Each names the
/// setting and, where one is at fault, the reference (`file:...`), never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The password secret could not be read.
    #[error("password: {0}")]
    Password(#[source] SecretError),
    /// The `tls.ca` secret could not be read.
    #[error("tls.ca: {0}")]
    CaSecret(#[source] SecretError),
    /// A PEM block of the CA file that cannot be read.
    #[error("tls.ca `{reference}`: {source}")]
    CaPem { reference: String, source: pem::Error },
    /// A CA certificate rustls does not accept as a trust anchor.
    #[error("tls.ca `{reference}`: {source}")]
    CaCertificate {
        reference: String,
        source: rustls::Error,
    },
    /// The `tls.ca` text has no `BEGIN CERTIFICATE` block.
    #[error("tls.ca `{reference}` holds no PEM certificate")]
    NoCaCertificate { reference: String },
    /// No `tls.ca`, and the system has no CA certificates either.
    #[error("tls: no system CA certificates found; set `tls.ca`")]
    NoSystemRoots,
    /// The crypto provider supports none of the safe protocol versions.
    #[error("tls: {0}")]
    Protocols(#[source] rustls::Error),
    /// The `tls.cert` secret could not be read.
    #[error("tls.cert: {0}")]
    CertSecret(#[source] SecretError),
    /// A PEM block of the client certificate chain that cannot be read.
    #[error("tls.cert `{reference}`: {source}")]
    CertPem { reference: String, source: pem::Error },
    /// The `tls.cert` text has no `BEGIN CERTIFICATE` block.
    #[error("tls.cert `{reference}` holds no PEM certificate")]
    NoCertificate { reference: String },
    /// The `tls.key` secret could not be read.
    #[error("tls.key: {0}")]
    KeySecret(#[source] SecretError),
    /// The `tls.key` text holds no private key PEM can read.
    #[error("tls.key `{reference}`: {source}")]
    KeyPem { reference: String, source: pem::Error },
    /// The client certificate and key do not go together, or rustls refuses them.
    #[error("tls client certificate: {0}")]
    ClientAuth(#[source] rustls::Error),
}

/// A rustls client configuration on the ring provider (no process-wide default provider
/// is assumed, so this works whatever else the binary links).
fn tls_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, ResolveError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let pem = ca.resolve().map_err(ResolveError::CaSecret)?;
            let reference = || ca.reference().to_string();
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|source| ResolveError::CaPem {
                    reference: reference(),
                    source,
                })?;
                roots.add(cert).map_err(|source| ResolveError::CaCertificate {
                    reference: reference(),
                    source,
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(ResolveError::NoCaCertificate {
                    reference: reference(),
                });
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A malformed system certificate should not stop the others from being used.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ResolveError::NoSystemRoots);
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ResolveError::Protocols)?
        .with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain_pem = cert.resolve().map_err(ResolveError::CertSecret)?;
            let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| ResolveError::CertPem {
                    reference: cert.reference().to_string(),
                    source,
                })?;
            if chain.is_empty() {
                return Err(ResolveError::NoCertificate {
                    reference: cert.reference().to_string(),
                });
            }
            let key_pem = key.resolve().map_err(ResolveError::KeySecret)?;
            let key_der =
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| ResolveError::KeyPem {
                    reference: key.reference().to_string(),
                    source,
                })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(ResolveError::ClientAuth)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_give_scheme_host_and_default_ports() {
        assert_eq!(
            parse_broker("mqtt://127.0.0.1"),
            Ok((false, "127.0.0.1".into(), 1883))
        );
        assert_eq!(
            parse_broker("mqtts://broker.example:9883"),
            Ok((true, "broker.example".into(), 9883))
        );
        assert_eq!(parse_broker("ssl://[::1]"), Ok((true, "::1".into(), 8883)));
        assert!(parse_broker("http://x").is_err());
        assert!(parse_broker("mqtt://x:0").is_err());
        assert!(parse_broker("mqtt://:1883").is_err());
        assert!(parse_broker("mqtt://x:99999").is_err());
    }

    #[test]
    fn a_ca_reference_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let tls = TlsSettings {
            ca: Some(Secret::parse("file:ca.pem", dir.path()).unwrap()),
            cert: None,
            key: None,
        };
        let err = tls_config(&tls).unwrap_err().to_string();
        assert!(err.contains("file:ca.pem"), "{err}");
    }
}
