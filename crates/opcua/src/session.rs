//! Connection mechanics shared by the source and `browse`: the client with its PKI,
//! endpoint discovery and selection, the trust check of the server certificate before any
//! session exists, user identity, and the session's event loop on a task of its own.
//!
//! One [`Connection`] is one session. async-opcua's event loop reconnects it with
//! exponential backoff, one attempt at a time; on reconnect it first reactivates the
//! existing session, and creates a new one only when the server no longer knows it (after
//! a server restart), so a server never sees more than one session from a connection.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backplane_config::SecretError;
use futures::StreamExt;
use opcua::client::{Client, ClientBuilder, IdentityToken, Session, SessionConnectMode, SessionPollResult};
use opcua::core::comms::url::hostname_from_url;
use opcua::crypto::{PrivateKey, X509, X509Error};
use opcua::types::{
    DataValue, EndpointDescription, MessageSecurityMode, NamespaceMap, NodeId, ReadValueId, StatusCode,
    TimestampsToReturn, UserTokenType, VariableId,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{Identity, Mode, Policy, Security};
use crate::pki::{self, PkiError, TrustError};
use crate::plan::ServerLimits;

/// Why a session could not be started (or its namespace array read).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The blocking task that creates the application certificate did not finish.
    #[error("creating the application certificate: {0}")]
    CertificateTask(#[source] tokio::task::JoinError),
    /// The application certificate could not be created or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// async-opcua refused the client configuration; its reasons, as it words them.
    #[error("OPC UA client configuration: {}", .0.join("; "))]
    Client(Vec<String>),
    /// GetEndpoints failed (server unreachable, or it refused).
    #[error("cannot get the endpoints of {url}: {source}")]
    Endpoints {
        url: String,
        source: opcua::types::Error,
    },
    /// No endpoint fits the configured security and login.
    #[error(transparent)]
    NoEndpoint(#[from] NoEndpoint),
    /// The URL cannot be parsed or has no host. async-opcua's error type implements
    /// neither `Error` nor `Debug`, so its text is kept.
    #[error("{url}: {message}")]
    Hostname { url: String, message: String },
    /// The server's certificate is not trusted (yet), or fails a check.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The user's password, certificate or key could not be read.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// async-opcua could not set the session up for the endpoint.
    #[error("cannot open a session to {url}: {source}")]
    Open {
        url: String,
        source: opcua::types::Error,
    },
    /// The Read of the server's namespace array failed.
    #[error("reading the namespace array: {0}")]
    Namespaces(#[source] opcua::types::Error),
}

/// Everything needed to open a session, independent of the source's configuration format
/// (`browse` builds one from its command line).
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub url: String,
    pub security: Security,
    pub identity: Identity,
    pub pki_dir: std::path::PathBuf,
    pub application_uri: String,
    pub application_name: String,
    /// Shown in the server's session diagnostics.
    pub session_name: String,
    pub verify_server_certificate: bool,
    /// Where relative user certificate paths start (the gateway's data directory).
    pub base_dir: std::path::PathBuf,
    pub request_timeout: Duration,
    pub session_timeout: Duration,
    pub keep_alive: Duration,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
}

/// What the session's event loop reports.
#[derive(Debug)]
pub enum SessionEvent {
    /// Connected: a new session (first connect, or the server forgot the old one) or the
    /// same session reactivated on a new channel.
    Connected(SessionConnectMode),
    Lost(StatusCode),
    /// One reconnect attempt failed; the loop tries again after its backoff.
    Failed(StatusCode),
    /// The loop has stopped (closed, or it gave up).
    Ended(Option<StatusCode>),
}

/// One session to one endpoint and the task that drives it. Dropping it stops the task;
/// call [`Connection::close`] first to close the session on the server.
pub struct Connection {
    pub client: Client,
    pub session: Arc<Session>,
    pub endpoint: EndpointDescription,
    pub events: mpsc::UnboundedReceiver<SessionEvent>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The user token type an identity needs from the endpoint.
fn token_type(identity: &Identity) -> UserTokenType {
    match identity {
        Identity::Anonymous => UserTokenType::Anonymous,
        Identity::UserName { .. } => UserTokenType::UserName,
        Identity::Certificate { .. } => UserTokenType::Certificate,
    }
}

fn token_name(t: UserTokenType) -> &'static str {
    match t {
        UserTokenType::Anonymous => "anonymous",
        UserTokenType::UserName => "username",
        UserTokenType::Certificate => "certificate",
        UserTokenType::IssuedToken => "issued token",
    }
}

/// "Basic256Sha256/sign-and-encrypt (anonymous, username)" for every endpoint offered.
pub fn describe_endpoints(endpoints: &[EndpointDescription]) -> String {
    let mut out = String::new();
    for (i, e) in endpoints.iter().enumerate() {
        let policy = Policy::from_uri(e.security_policy_uri.as_ref()).map_or_else(
            || e.security_policy_uri.as_ref().to_owned(),
            |p| p.name().to_owned(),
        );
        let mode = Mode::from_opcua(e.security_mode).map_or("invalid", Mode::name);
        let tokens: Vec<&str> = e
            .user_identity_tokens
            .iter()
            .flatten()
            .map(|t| token_name(t.token_type))
            .collect();
        let _ = write!(
            out,
            "{}{policy}/{mode} ({})",
            if i == 0 { "" } else { ", " },
            tokens.join(", ")
        );
    }
    out
}

/// No endpoint of the server fits the configured security and login.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no endpoint offers {asked} with {login} login; the server offers: {offered}{hint}")]
pub struct NoEndpoint {
    /// The policy and mode asked for, in words.
    pub asked: String,
    /// The token type the identity needs (`anonymous`, `username`, `certificate`).
    pub login: &'static str,
    /// Every endpoint offered (see [`describe_endpoints`]).
    pub offered: String,
    /// Advice when the server offers no security at all; else empty.
    pub hint: &'static str,
}

/// Picks the endpoint to use: the configured policy and mode, or else the strongest
/// secure one (never policy None unless asked for), offering the identity's token type.
pub fn select_endpoint(
    endpoints: &[EndpointDescription],
    security: &Security,
    identity: &Identity,
) -> Result<EndpointDescription, NoEndpoint> {
    let wanted = token_type(identity);
    let rank = |e: &EndpointDescription| -> Option<(u8, usize, u8)> {
        let policy = Policy::from_uri(e.security_policy_uri.as_ref())?;
        let mode = Mode::from_opcua(e.security_mode)?;
        if policy == Policy::None && security.policy != Some(Policy::None) {
            return None;
        }
        if security.policy.is_some_and(|p| p != policy) || security.mode.is_some_and(|m| m != mode) {
            return None;
        }
        if (policy == Policy::None) != (mode == Mode::None) {
            return None;
        }
        if !e
            .user_identity_tokens
            .iter()
            .flatten()
            .any(|t| t.token_type == wanted)
        {
            return None;
        }
        let mode_rank = match mode {
            Mode::SignAndEncrypt => 2,
            Mode::Sign => 1,
            Mode::None => 0,
        };
        let policy_rank = Policy::SECURE
            .iter()
            .rev()
            .position(|p| *p == policy)
            .unwrap_or(0);
        Some((mode_rank, policy_rank, e.security_level))
    };
    endpoints
        .iter()
        .filter_map(|e| rank(e).map(|r| (r, e)))
        .max_by_key(|(r, _)| *r)
        .map(|(_, e)| e.clone())
        .ok_or_else(|| {
            let asked = match (security.policy, security.mode) {
                (None, None) => "a secure endpoint (Basic256Sha256 or an Aes policy)".to_owned(),
                (p, m) => format!(
                    "{}/{}",
                    p.map_or("any secure policy", Policy::name),
                    m.map_or("sign or sign-and-encrypt", Mode::name)
                ),
            };
            let hint = if security.policy.is_none()
                && endpoints
                    .iter()
                    .all(|e| Policy::from_uri(e.security_policy_uri.as_ref()) == Some(Policy::None))
            {
                "; the server offers no security: if that is acceptable on this network, write \
                 security_policy = \"None\" explicitly"
            } else {
                ""
            };
            NoEndpoint {
                asked,
                login: token_name(wanted),
                offered: describe_endpoints(endpoints),
                hint,
            }
        })
}

/// Why the user identity's secrets or certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The password secret could not be read.
    #[error("password of OPC UA user `{user}`: {source}")]
    Password { user: String, source: SecretError },
    /// The certificate file (relative to the data directory) could not be read.
    #[error("user certificate {}: {source}", path.display())]
    CertificateUnreadable { path: PathBuf, source: std::io::Error },
    /// The file holds neither a DER nor a PEM certificate.
    #[error("user certificate {}: not a DER or PEM certificate ({source})", path.display())]
    NotACertificate { path: PathBuf, source: X509Error },
    /// The private key secret could not be read.
    #[error("user private key: {0}")]
    KeySecret(#[source] SecretError),
    /// async-opcua's key error says nothing beyond its name, so it is not kept.
    #[error("user private key: not a PEM RSA private key")]
    NotAKey,
}

/// The identity token, with secrets read now. Relative certificate paths are relative to
/// `base_dir` (the gateway's data directory).
pub fn identity_token(identity: &Identity, base_dir: &Path) -> Result<IdentityToken, IdentityError> {
    match identity {
        Identity::Anonymous => Ok(IdentityToken::Anonymous),
        Identity::UserName { user, password } => {
            let password = password.resolve().map_err(|source| IdentityError::Password {
                user: user.clone(),
                source,
            })?;
            Ok(IdentityToken::new_user_name(user.clone(), password))
        }
        Identity::Certificate {
            certificate,
            private_key,
        } => {
            let path = base_dir.join(certificate);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(source) => return Err(IdentityError::CertificateUnreadable { path, source }),
            };
            let cert = match X509::from_der(&bytes).or_else(|_| X509::from_pem(&bytes)) {
                Ok(cert) => cert,
                Err(source) => return Err(IdentityError::NotACertificate { path, source }),
            };
            let key = private_key.resolve().map_err(IdentityError::KeySecret)?;
            let key = PrivateKey::from_pem(key.as_bytes()).map_err(|_| IdentityError::NotAKey)?;
            Ok(IdentityToken::new_x509(cert, key))
        }
    }
}

/// Status codes after which retrying cannot help until someone changes something; each
/// attempt would cost the server a session, so the connection stops instead. Returns the
/// hint for the engineer.
pub fn fatal_hint(status: StatusCode, options: &ConnectOptions) -> Option<String> {
    let own = options.pki_dir.join("own").join("cert.der");
    let user = match &options.identity {
        Identity::UserName { user, .. } => format!("user `{user}`"),
        Identity::Certificate { certificate, .. } => {
            format!("the user certificate {}", certificate.display())
        }
        Identity::Anonymous => "anonymous login".to_owned(),
    };
    let name = status.to_string();
    if matches!(
        status,
        StatusCode::BadUserAccessDenied
            | StatusCode::BadIdentityTokenInvalid
            | StatusCode::BadIdentityTokenRejected
            | StatusCode::BadUserSignatureInvalid
    ) {
        return Some(format!(
            "the server refused {user} ({name}): check the username and password (or certificate), \
             and that the user may log in"
        ));
    }
    if matches!(
        status,
        StatusCode::BadSecurityChecksFailed
            | StatusCode::BadCertificateUntrusted
            | StatusCode::BadCertificateInvalid
            | StatusCode::BadCertificateUriInvalid
            | StatusCode::BadCertificateHostNameInvalid
            | StatusCode::BadCertificateTimeInvalid
            | StatusCode::BadCertificateRevoked
            | StatusCode::BadCertificateUseNotAllowed
            | StatusCode::BadApplicationSignatureInvalid
            | StatusCode::BadSecurityPolicyRejected
            | StatusCode::BadSecurityModeRejected
    ) {
        return Some(format!(
            "the secure connection was refused ({name}). If the server does not trust this gateway yet, \
             trust its certificate {} on the server (many servers keep it in their rejected list until \
             an administrator moves it). If the server's own certificate changed, the new one is in {} \
             until you move it to {}",
            own.display(),
            options.pki_dir.join("rejected").display(),
            options.pki_dir.join("trusted").display()
        ));
    }
    None
}

impl ConnectOptions {
    fn client(&self) -> Result<Client, SessionError> {
        ClientBuilder::new()
            .application_name(self.application_name.clone())
            .application_uri(self.application_uri.clone())
            .product_uri("urn:backplane")
            .create_sample_keypair(false)
            .pki_dir(self.pki_dir.clone())
            // Never: unknown server certificates go to rejected/ (see pki.rs).
            .trust_server_certs(false)
            .verify_server_certs(self.verify_server_certificate)
            .session_retry_limit(-1)
            .session_retry_initial(self.reconnect_initial)
            .session_retry_max(self.reconnect_max)
            .keep_alive_interval(self.keep_alive)
            .max_failed_keep_alive_count(3)
            .request_timeout(self.request_timeout)
            .session_timeout(u32::try_from(self.session_timeout.as_millis()).unwrap_or(u32::MAX))
            .session_name(self.session_name.clone())
            // Subscriptions are restored by the source itself, within the server's limits.
            .recreate_subscriptions(false)
            .client()
            .map_err(SessionError::Client)
    }

    /// Discovers the endpoints, picks one, checks the server certificate against the trust
    /// list and starts the session's event loop. The first connection attempt happens on
    /// that loop: wait for [`SessionEvent::Connected`].
    pub async fn connect(&self) -> Result<Connection, SessionError> {
        let (dir, uri, name) = (
            self.pki_dir.clone(),
            self.application_uri.clone(),
            self.application_name.clone(),
        );
        // Creating an RSA key takes a moment: not on the runtime's threads.
        let own = tokio::task::spawn_blocking(move || pki::ensure_application_certificate(&dir, &uri, &name))
            .await
            .map_err(SessionError::CertificateTask)??;
        match own {
            pki::OwnCertificate::Created(path) => tracing::info!(
                "created the OPC UA application certificate {} for {}; servers that check clients must trust it",
                path.display(),
                self.application_uri
            ),
            pki::OwnCertificate::Mismatch(_, message) => tracing::warn!("{message}"),
            pki::OwnCertificate::Existing(_) => {}
        }
        let mut client = self.client()?;
        let endpoints = client
            .get_server_endpoints_from_url(self.url.as_str())
            .await
            .map_err(|source| SessionError::Endpoints {
                url: self.url.clone(),
                source,
            })?;
        let mut endpoint = select_endpoint(&endpoints, &self.security, &self.identity)?;
        // Servers often advertise a host name (or, behind NAT, a port forward or a proxy, a
        // port) the gateway cannot reach: keep ours.
        let hostname = hostname_from_url(&self.url).map_err(|e| SessionError::Hostname {
            url: self.url.clone(),
            message: e.to_string(),
        })?;
        endpoint.endpoint_url = reach_through(&self.url, endpoint.endpoint_url.as_ref()).into();
        let policy = Policy::from_uri(endpoint.security_policy_uri.as_ref()).unwrap_or(Policy::None);
        if policy != Policy::None {
            let store = client.certificate_store().read();
            pki::check_server_certificate(
                &store,
                &endpoint.server_certificate,
                policy.to_opcua(),
                &hostname,
                endpoint.server.application_uri.as_ref(),
            )?;
        }
        let identity = identity_token(&self.identity, &self.base_dir)?;
        let (session, event_loop) = client
            .connect_to_endpoint_directly(endpoint.clone(), identity)
            .map_err(|source| SessionError::Open {
                url: self.url.clone(),
                source,
            })?;
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let stream = event_loop.enter();
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                let event = match item {
                    Ok(SessionPollResult::Reconnected(mode)) => SessionEvent::Connected(mode),
                    Ok(SessionPollResult::ConnectionLost(status)) => SessionEvent::Lost(status),
                    Ok(SessionPollResult::ReconnectFailed(status)) => SessionEvent::Failed(status),
                    Ok(_) => continue,
                    Err(status) => {
                        let _ = tx.send(SessionEvent::Ended(Some(status)));
                        return;
                    }
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
            let _ = tx.send(SessionEvent::Ended(None));
        });
        Ok(Connection {
            client,
            session,
            endpoint,
            events,
            task,
        })
    }
}

impl Connection {
    /// "Basic256Sha256/sign-and-encrypt".
    pub fn security(&self) -> String {
        let policy = Policy::from_uri(self.endpoint.security_policy_uri.as_ref()).map_or("?", Policy::name);
        let mode = Mode::from_opcua(self.endpoint.security_mode).map_or("?", Mode::name);
        format!("{policy}/{mode}")
    }

    /// Closes the session on the server (so it does not linger until its timeout) and
    /// stops the event loop.
    pub async fn close(mut self) {
        let session = self.session.clone();
        let _ = tokio::time::timeout(Duration::from_secs(3), session.disconnect()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(event) = self.events.recv().await {
                if matches!(event, SessionEvent::Ended(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// The server's namespace array (index of every URI).
pub async fn read_namespaces(session: &Session) -> Result<NamespaceMap, SessionError> {
    session
        .read_namespace_array()
        .await
        .map_err(SessionError::Namespaces)
}

/// The server's operation limits; absent or unreadable ones are `None`.
pub async fn read_limits(session: &Session) -> ServerLimits {
    let ids = [
        VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
        VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        VariableId::Server_ServerCapabilities_MaxMonitoredItemsPerSubscription,
        VariableId::Server_ServerCapabilities_MaxSubscriptionsPerSession,
    ];
    let nodes: Vec<ReadValueId> = ids
        .iter()
        .map(|id| ReadValueId::from(NodeId::from(*id)))
        .collect();
    let mut out = [None; 4];
    if let Ok(values) = session.read(&nodes, TimestampsToReturn::Neither, 0.0).await {
        for (slot, dv) in out.iter_mut().zip(values) {
            *slot = limit_value(&dv);
        }
    }
    out
}

fn limit_value(dv: &DataValue) -> Option<u32> {
    if dv.status.is_some_and(|s| s.is_bad()) {
        return None;
    }
    dv.value
        .as_ref()
        .and_then(|v| v.clone().try_cast_to::<u32>().ok())
}

/// Whether a message security mode signs or encrypts.
pub fn is_secure(mode: MessageSecurityMode) -> bool {
    matches!(
        mode,
        MessageSecurityMode::Sign | MessageSecurityMode::SignAndEncrypt
    )
}

/// The advertised endpoint URL reached through the configured one: its path, our host and
/// port (`opc.tcp://plc:4840` and `opc.tcp://PLC-7:4840/ua` give `opc.tcp://plc:4840/ua`).
fn reach_through(configured: &str, advertised: &str) -> String {
    let authority = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        match rest.split_once('/') {
            Some((authority, path)) => (authority.to_owned(), format!("/{path}")),
            None => (rest.to_owned(), String::new()),
        }
    };
    let (ours, _) = authority(configured);
    let (_, path) = authority(advertised);
    format!("opc.tcp://{ours}{path}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use opcua::types::{UAString, UserTokenPolicy};

    #[test]
    fn advertised_endpoints_are_reached_through_the_configured_host_and_port() {
        assert_eq!(
            reach_through("opc.tcp://plc:4840", "opc.tcp://PLC-7:4840/ua"),
            "opc.tcp://plc:4840/ua"
        );
        assert_eq!(
            reach_through("opc.tcp://10.0.0.5:14840/x", "opc.tcp://127.0.0.1:4840/"),
            "opc.tcp://10.0.0.5:14840/"
        );
        assert_eq!(
            reach_through("opc.tcp://[::1]:4840", "opc.tcp://srv:4840"),
            "opc.tcp://[::1]:4840"
        );
    }

    fn endpoint(
        policy: Policy,
        mode: MessageSecurityMode,
        tokens: &[UserTokenType],
        level: u8,
    ) -> EndpointDescription {
        EndpointDescription {
            endpoint_url: UAString::from("opc.tcp://server:4840"),
            security_mode: mode,
            security_policy_uri: UAString::from(policy.to_opcua().to_uri()),
            user_identity_tokens: Some(
                tokens
                    .iter()
                    .map(|t| UserTokenPolicy {
                        token_type: *t,
                        ..Default::default()
                    })
                    .collect(),
            ),
            security_level: level,
            ..Default::default()
        }
    }

    fn offered() -> Vec<EndpointDescription> {
        use MessageSecurityMode as M;
        use UserTokenType as T;
        vec![
            endpoint(Policy::None, M::None, &[T::Anonymous, T::UserName], 0),
            endpoint(Policy::Basic256Sha256, M::Sign, &[T::Anonymous], 3),
            endpoint(
                Policy::Basic256Sha256,
                M::SignAndEncrypt,
                &[T::Anonymous, T::UserName],
                4,
            ),
            endpoint(Policy::Aes256Sha256RsaPss, M::Sign, &[T::Anonymous], 5),
        ]
    }

    fn pick(
        policy: Option<Policy>,
        mode: Option<Mode>,
        identity: &Identity,
    ) -> Result<(Policy, Mode), NoEndpoint> {
        select_endpoint(&offered(), &Security { policy, mode }, identity).map(|e| {
            (
                Policy::from_uri(e.security_policy_uri.as_ref()).unwrap(),
                Mode::from_opcua(e.security_mode).unwrap(),
            )
        })
    }

    #[test]
    fn auto_picks_encryption_first_and_never_policy_none() {
        assert_eq!(
            pick(None, None, &Identity::Anonymous),
            Ok((Policy::Basic256Sha256, Mode::SignAndEncrypt))
        );
        assert_eq!(
            pick(None, Some(Mode::Sign), &Identity::Anonymous),
            Ok((Policy::Aes256Sha256RsaPss, Mode::Sign))
        );
        assert_eq!(
            pick(Some(Policy::None), Some(Mode::None), &Identity::Anonymous),
            Ok((Policy::None, Mode::None))
        );
    }

    #[test]
    fn the_identity_needs_a_matching_token_policy() {
        let cert = Identity::Certificate {
            certificate: "u.der".into(),
            private_key: backplane_config::Secret::parse("env:K", Path::new(".")).unwrap(),
        };
        let e = pick(None, None, &cert).unwrap_err().to_string();
        assert!(e.contains("certificate login"), "{e}");
        assert!(
            e.contains("Basic256Sha256/sign-and-encrypt (anonymous, username)"),
            "{e}"
        );
        let e = pick(Some(Policy::Aes128Sha256RsaOaep), None, &Identity::Anonymous)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Aes128_Sha256_RsaOaep"), "{e}");
    }

    #[test]
    fn an_unsecured_server_gets_an_explicit_hint() {
        let only_none = vec![endpoint(
            Policy::None,
            MessageSecurityMode::None,
            &[UserTokenType::Anonymous],
            0,
        )];
        let e = select_endpoint(
            &only_none,
            &Security {
                policy: None,
                mode: None,
            },
            &Identity::Anonymous,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("write security_policy = \"None\" explicitly"), "{e}");
    }
}
