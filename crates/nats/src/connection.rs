//! How to reach and log in to a NATS server, shared by the sink and the source: servers,
//! client name, credentials (creds file, nkey seed, user and password, token), TLS and
//! timeouts. Read from the kind's TOML table by [`ConnectionSettings::parse`] (no I/O);
//! secrets and certificates are read by [`ConnectionSettings::connect`], so
//! `backplane check` never needs them.

use std::sync::Arc;
use std::time::Duration;

use async_nats::rustls;
use backplane_config::{Secret, Table};
use backplane_connector::ComponentError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS references as written (`file:PATH` or `env:NAME`, PEM text).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// Trusted CA certificates; the system's roots when absent.
    pub ca: Option<Secret>,
    /// Client certificate chain and key, for servers that verify clients.
    pub cert: Option<Secret>,
    pub key: Option<Secret>,
    /// Refuse to talk to a server that does not offer TLS.
    pub required: bool,
}

/// How to log in.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    None,
    /// A `.creds` file (user JWT and nkey seed), by reference.
    Credentials(Secret),
    /// An nkey seed (`SU...`), by reference.
    Nkey(Secret),
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
}

/// Connection settings of one `nats` sink or source.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSettings {
    /// `nats://host:port` (or `tls://`), one or more.
    pub servers: Vec<String>,
    /// The client name the server shows (`None`: `backplane-{gateway}-{component}`).
    pub name: Option<String>,
    pub auth: Auth,
    pub tls: Option<TlsSettings>,
    pub connect_timeout: Duration,
}

const URL_HINT: &str =
    "write e.g. url = \"nats://127.0.0.1:4222\", or servers = [\"nats://a:4222\", \"nats://b:4222\"]";

impl ConnectionSettings {
    /// Reads `url` or `servers`, `name`, `credentials`, `nkey`, `user`, `password`,
    /// `token`, `tls` and `connect_timeout`.
    pub fn parse(table: &mut Table<'_>) -> Option<ConnectionSettings> {
        let mut servers = Vec::new();
        let url = table.optional_str("url");
        let list = table.optional_item("servers");
        match (url, list) {
            (Some(_), Some(_)) => {
                table.error(
                    "servers",
                    "write either `url` or `servers`, not both",
                    Some(URL_HINT.into()),
                );
            }
            (Some(url), None) => servers.push(url.to_owned()),
            (None, Some(item)) => match item.as_array() {
                Some(items) => {
                    for i in items {
                        match i.as_str() {
                            Some(s) => servers.push(s.to_owned()),
                            None => i.error("`servers` must list URL strings", Some(URL_HINT.into())),
                        }
                    }
                }
                None => item.error("`servers` must be a list of URLs", Some(URL_HINT.into())),
            },
            (None, None) => servers.push("nats://127.0.0.1:4222".to_owned()),
        }
        if servers.is_empty() {
            table.error("servers", "`servers` lists no server", Some(URL_HINT.into()));
        }
        for s in &servers {
            if let Err(e) = check_url(s) {
                table.error(
                    if url.is_some() { "url" } else { "servers" },
                    e,
                    Some(URL_HINT.into()),
                );
            }
        }
        let name = table.optional_str("name").map(str::to_owned);
        let credentials = table.optional_secret("credentials");
        let nkey = table.optional_secret("nkey");
        let user = table.optional_str("user").map(str::to_owned);
        let password = table.optional_secret("password");
        let token = table.optional_secret("token");
        let chosen = [
            credentials.is_some(),
            nkey.is_some(),
            user.is_some() || password.is_some(),
            token.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen > 1 {
            table.error(
                "credentials",
                "choose one way to log in: `credentials`, `nkey`, `user` + `password`, or `token`",
                None,
            );
        }
        let auth = match (credentials, nkey, user, password, token) {
            (Some(c), ..) => Auth::Credentials(c),
            (None, Some(n), ..) => Auth::Nkey(n),
            (None, None, Some(user), Some(password), _) => Auth::UserPassword { user, password },
            (None, None, Some(_), None, _) => {
                table.error("user", "`user` needs a `password` (a secret reference)", None);
                Auth::None
            }
            (None, None, None, Some(_), _) => {
                table.error("password", "`password` needs a `user`", None);
                Auth::None
            }
            (None, None, None, None, Some(t)) => Auth::Token(t),
            _ => Auth::None,
        };
        let mut tls = match table.optional_table("tls") {
            Some(mut t) => {
                let settings = TlsSettings {
                    ca: t.optional_secret("ca"),
                    cert: t.optional_secret("cert"),
                    key: t.optional_secret("key"),
                    required: t.optional_bool("required").unwrap_or(true),
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
        if tls.is_none() && servers.iter().any(|s| s.starts_with("tls://")) {
            tls = Some(TlsSettings {
                ca: None,
                cert: None,
                key: None,
                required: true,
            });
        }
        let connect_timeout = table
            .optional_duration("connect_timeout")
            .unwrap_or(Duration::from_secs(5));
        if connect_timeout.is_zero() {
            table.error("connect_timeout", "`connect_timeout` must be above zero", None);
        }
        Some(ConnectionSettings {
            servers,
            name,
            auth,
            tls,
            connect_timeout,
        })
    }

    /// Reads secrets and certificates and connects. The sink ends at the first
    /// `Disconnected` event and drops the client, so its supervisor reconnects with
    /// backoff and replays whatever JetStream had not acknowledged; the source's fetches
    /// simply resume after the client's own reconnect (the consumer is durable). The
    /// client's reconnect limit cannot express "never" (async-nats reads 0 as unlimited),
    /// so it stays at the default and the components decide. `subscription_capacity`:
    /// messages a subscription may hold unread before the client drops them (default
    /// 65536).
    pub async fn connect(
        &self,
        default_name: &str,
        events: Option<tokio::sync::mpsc::UnboundedSender<async_nats::Event>>,
        subscription_capacity: Option<usize>,
    ) -> Result<async_nats::Client, ComponentError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(self.name.clone().unwrap_or_else(|| default_name.to_owned()))
            .connection_timeout(self.connect_timeout)
            .ignore_discovered_servers();
        if let Some(capacity) = subscription_capacity {
            options = options.subscription_capacity(capacity);
        }
        options = match &self.auth {
            Auth::None => options,
            Auth::Credentials(secret) => {
                let text = secret
                    .resolve()
                    .map_err(|e| ComponentError::config(format!("nats `credentials`: {e}")))?;
                options.credentials(&text).map_err(|e| {
                    ComponentError::config(format!("nats `credentials` `{}`: {e}", secret.reference()))
                })?
            }
            Auth::Nkey(secret) => options.nkey(
                secret
                    .resolve()
                    .map_err(|e| ComponentError::config(format!("nats `nkey`: {e}")))?
                    .trim()
                    .to_owned(),
            ),
            Auth::UserPassword { user, password } => options.user_and_password(
                user.clone(),
                password
                    .resolve()
                    .map_err(|e| ComponentError::config(format!("nats `password`: {e}")))?,
            ),
            Auth::Token(secret) => options.token(
                secret
                    .resolve()
                    .map_err(|e| ComponentError::config(format!("nats `token`: {e}")))?
                    .trim()
                    .to_owned(),
            ),
        };
        if let Some(tls) = &self.tls {
            options = options.require_tls(tls.required);
            if tls.ca.is_some() || tls.cert.is_some() {
                options = options.tls_client_config(tls_config(tls)?);
            }
        }
        if let Some(events) = events {
            options = options.event_callback(move |event| {
                let events = events.clone();
                async move {
                    let _ = events.send(event);
                }
            });
        }
        let servers: Vec<async_nats::ServerAddr> = self
            .servers
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| ComponentError::config(format!("nats server URL: {e}")))?;
        options.connect(servers).await.map_err(|e| {
            ComponentError::connect(format!(
                "nats: cannot connect to {}: {e}",
                self.servers.join(", ")
            ))
        })
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = ["nats://", "tls://", "ws://", "wss://"]
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .ok_or_else(|| format!("`{url}` is not a NATS URL (nats://, tls://, ws:// or wss://)"))?;
    if rest.is_empty() || rest.starts_with(':') || rest.starts_with('/') {
        return Err(format!("`{url}` has no host"));
    }
    url.parse::<async_nats::ServerAddr>()
        .map(|_| ())
        .map_err(|e| format!("`{url}`: {e}"))
}

/// A rustls client configuration on the ring provider, from the PEM references.
fn tls_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, ComponentError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let pem = ca
                .resolve()
                .map_err(|e| ComponentError::config(format!("nats tls.ca: {e}")))?;
            let mut any = false;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert
                    .map_err(|e| ComponentError::config(format!("nats tls.ca `{}`: {e}", ca.reference())))?;
                roots
                    .add(cert)
                    .map_err(|e| ComponentError::config(format!("nats tls.ca `{}`: {e}", ca.reference())))?;
                any = true;
            }
            if !any {
                return Err(ComponentError::config(format!(
                    "nats tls.ca `{}` holds no PEM certificate",
                    ca.reference()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ComponentError::config(
                    "nats tls: no system CA certificates found; set `tls.ca`",
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ComponentError::config(format!("nats tls: {e}")))?
        .with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let pem = cert
                .resolve()
                .map_err(|e| ComponentError::config(format!("nats tls.cert: {e}")))?;
            let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ComponentError::config(format!("nats tls.cert `{}`: {e}", cert.reference())))?;
            if chain.is_empty() {
                return Err(ComponentError::config(format!(
                    "nats tls.cert `{}` holds no PEM certificate",
                    cert.reference()
                )));
            }
            let key_pem = key
                .resolve()
                .map_err(|e| ComponentError::config(format!("nats tls.key: {e}")))?;
            let private = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| ComponentError::config(format!("nats tls.key `{}`: {e}", key.reference())))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| ComponentError::config(format!("nats tls client certificate: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_a_nats_scheme_and_a_host() {
        assert!(check_url("nats://127.0.0.1:4222").is_ok());
        assert!(check_url("tls://nats.example:4222").is_ok());
        assert!(check_url("http://x").is_err());
        assert!(check_url("nats://").is_err());
        assert!(check_url("127.0.0.1:4222").is_err());
    }
}
