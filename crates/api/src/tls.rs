//! HTTPS for the API: the server certificate (from PEM files, or self-signed once into the
//! data directory), the optional client-certificate check, and the identity a verified
//! client certificate stands for. [`crate::server`] runs the handshake per connection.
//!
//! rustls on ring (no process-wide default provider assumed, as in the MQTT crate).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use backplane_security::{AuthMethod, Identity, Role, create_private_dir, write_private};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Request extension: the request came over TLS (session cookies then get `Secure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tls;

/// Where the server certificate comes from.
#[derive(Clone, Debug)]
pub enum CertificateSource {
    /// PEM files: the chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated at the first start into `dir` (`cert.pem`, `key.pem`; the key 0600 in a
    /// 0700 directory) for these DNS names and IP addresses, reused afterwards.
    SelfSigned { dir: PathBuf, names: Vec<String> },
}

/// What [`TlsServer::new`] builds from.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub certificate: CertificateSource,
    /// CA certificates (PEM) client certificates must chain to; none: no client check.
    pub client_ca: Option<PathBuf>,
    /// Without a verified client certificate the handshake fails.
    pub require_client_cert: bool,
    /// Subject CN of a verified client certificate -> its role.
    pub clients: Vec<(String, Role)>,
}

/// Why TLS could not be set up; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{path}` holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("`{path}`: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("`{path}`: {source}")]
    BadCa { path: PathBuf, source: rustls::Error },
    #[error("client certificate check: {0}")]
    Verifier(String),
    #[error("the certificate and key do not go together: {0}")]
    Certificate(#[source] rustls::Error),
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The API's TLS side, ready to accept connections.
pub struct TlsServer {
    acceptor: tokio_rustls::TlsAcceptor,
    clients: HashMap<String, Role>,
    fingerprint: String,
    generated: bool,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("fingerprint", &self.fingerprint)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// TLS handshakes that failed or timed out (no or a wrong client certificate, a client
/// that does not trust the certificate, plain HTTP sent to the HTTPS port).
static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many TLS handshakes failed since start.
pub fn tls_handshake_failures() -> u64 {
    HANDSHAKE_FAILURES.load(Ordering::Relaxed)
}

pub(crate) fn count_handshake_failure() {
    HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
}

impl TlsServer {
    /// Reads (or generates) the certificate and the client CA.
    pub fn new(options: &TlsOptions) -> Result<TlsServer, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, key, generated) = match &options.certificate {
            CertificateSource::Files { cert, key } => {
                let (chain, key) = read_pair(cert, key)?;
                (chain, key, false)
            }
            CertificateSource::SelfSigned { dir, names } => self_signed(dir, names)?,
        };
        let fingerprint = chain.first().map(|c| fingerprint(c)).unwrap_or_default();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Certificate)?;
        let builder = match &options.client_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certificates(path)? {
                    roots.add(cert).map_err(|source| TlsError::BadCa {
                        path: path.clone(),
                        source,
                    })?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if options.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().map_err(|e| TlsError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(TlsError::Certificate)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsServer {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            clients: options.clients.iter().cloned().collect(),
            fingerprint,
            generated,
        })
    }

    /// SHA-256 of the served certificate, `AB:CD:...` as `openssl x509 -fingerprint -sha256`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether [`TlsServer::new`] generated the self-signed certificate just now.
    pub fn generated(&self) -> bool {
        self.generated
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }

    /// The identity of a verified client certificate: its subject CN with the role
    /// `[api.tls.clients]` gives it; none for a CN that is not listed.
    pub(crate) fn identity(&self, peer: Option<&[CertificateDer<'_>]>) -> Option<Identity> {
        let leaf = peer?.first()?;
        let cn = common_name(leaf)?;
        match self.clients.get(&cn) {
            Some(role) => Some(Identity::new(cn, *role, AuthMethod::ClientCertificate)),
            None => {
                tracing::debug!(cn = %cn, "API: verified client certificate with a CN not in [api.tls.clients]");
                None
            }
        }
    }
}

/// The subject's first common name, when it is text.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode;
    use x509_cert::der::asn1::{PrintableStringRef, Utf8StringRef};
    use x509_cert::der::oid::db::rfc4519::CN;
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != CN {
                continue;
            }
            if let Ok(s) = atv.value.decode_as::<Utf8StringRef<'_>>() {
                return Some(s.as_str().to_owned());
            }
            if let Ok(s) = atv.value.decode_as::<PrintableStringRef<'_>>() {
                return Some(s.as_str().to_owned());
            }
        }
    }
    None
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = read_certificates(cert)?;
    let key_pem = read_file(key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: key.to_owned(),
        message: format!("no private key: {e}"),
    })?;
    Ok((chain, key_der))
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, bool);

/// Reuses `dir/cert.pem` and `dir/key.pem`, or generates them.
fn self_signed(dir: &Path, names: &[String]) -> Result<Pair, TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        let (chain, key) = read_pair(&cert_path, &key_path)?;
        return Ok((chain, key, false));
    }
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    create_private_dir(dir).map_err(write_error(dir))?;
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cn = names.iter().find(|n| n.parse::<std::net::IpAddr>().is_err());
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Backplane API {}", cn.map_or("localhost", String::as_str)),
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    // The key first, never readable by others; the certificate last, so a start that
    // stopped between the two generates both again.
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(write_error(&key_path))?;
    std::fs::write(&cert_path, cert.pem()).map_err(write_error(&cert_path))?;
    let (chain, key) = read_pair(&cert_path, &key_path)?;
    Ok((chain, key, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_generated_once_with_a_private_key_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("api-tls");
        let options = TlsOptions {
            certificate: CertificateSource::SelfSigned {
                dir: tls_dir.clone(),
                names: vec!["localhost".into(), "127.0.0.1".into(), "gw-1".into()],
            },
            client_ca: None,
            require_client_cert: false,
            clients: vec![],
        };
        let first = TlsServer::new(&options).unwrap();
        assert!(first.generated());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&tls_dir), 0o700);
            assert_eq!(mode(&tls_dir.join("key.pem")), 0o600);
        }
        let second = TlsServer::new(&options).unwrap();
        assert!(!second.generated());
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
    }

    #[test]
    fn the_common_name_of_a_certificate_is_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mes-01");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), Some("mes-01".to_owned()));
    }

    #[test]
    fn missing_files_are_named() {
        let options = TlsOptions {
            certificate: CertificateSource::Files {
                cert: "/nonexistent/api.pem".into(),
                key: "/nonexistent/api.key".into(),
            },
            client_ca: None,
            require_client_cert: false,
            clients: vec![],
        };
        let err = TlsServer::new(&options).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/api.pem"), "{err}");
    }
}
