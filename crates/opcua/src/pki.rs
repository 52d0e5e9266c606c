//! The gateway's OPC UA certificates: its application instance certificate (created on
//! first use) and the trust list of server certificates.
//!
//! Layout of a PKI directory (default `DATA_DIR/opcua/pki`):
//!
//! ```text
//! own/cert.der          this gateway's application instance certificate (give it to servers)
//! private/private.pem   its private key
//! trusted/              server certificates this gateway trusts
//! rejected/             server certificates it has seen and not trusted (yet)
//! ```
//!
//! A server certificate is trusted only when its file is in `trusted/`. An unknown one is
//! written to `rejected/` and the connection is refused, with a log that says which file to
//! move. Nothing is ever trusted automatically.

use std::path::{Path, PathBuf};

use opcua::crypto::{CertificateStore, SecurityPolicy, X509, X509Data, X509Error};
use opcua::types::{ByteString, StatusCode};

/// `DATA_DIR/opcua/pki`.
pub fn default_pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("opcua").join("pki")
}

/// The application URI of a gateway's OPC UA client; its certificate carries it.
pub fn application_uri(gateway: &str) -> String {
    format!("urn:backplane:{gateway}")
}

fn certificate_data(application_uri: &str, common_name: &str, hosts: Option<Vec<String>>) -> X509Data {
    let add_machine = hosts.is_none();
    X509Data {
        key_size: 2048,
        common_name: common_name.to_owned(),
        organization: "Backplane".to_owned(),
        organizational_unit: "OPC UA".to_owned(),
        country: "DE".to_owned(),
        state: "-".to_owned(),
        alt_host_names: X509Data::alt_host_names(application_uri, hosts, true, add_machine, true),
        certificate_duration_days: 3650,
    }
}

/// What [`ensure_application_certificate`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnCertificate {
    /// It existed and names this application URI.
    Existing(PathBuf),
    /// It was created now.
    Created(PathBuf),
    /// It exists but was made for another application URI; servers that check the URI
    /// will refuse the session. The message says what to do.
    Mismatch(PathBuf, String),
}

/// Why a certificate or key could not be made, read or stored. async-opcua reports some
/// failures as text only; those variants carry its text.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// `own/`, `private/`, `trusted/` or `rejected/` could not be created.
    #[error("cannot create the OPC UA PKI folders in {}: {message}", dir.display())]
    Folders { dir: PathBuf, message: String },
    /// Like [`PkiError::Folders`], when trusting a certificate.
    #[error("cannot create {}: {message}", dir.display())]
    TrustFolders { dir: PathBuf, message: String },
    /// One of the pair is there but unreadable: it is never overwritten.
    #[error(
        "the OPC UA certificate {} or its key {} exists but cannot be read; fix or delete both \
         to create a new pair",
        cert.display(),
        key.display()
    )]
    Unreadable { cert: PathBuf, key: PathBuf },
    /// Generating or storing the application certificate and key failed.
    #[error("cannot create the OPC UA application certificate: {0}")]
    Create(String),
    /// A self-signed pair could not be generated.
    #[error("{0}")]
    Generate(String),
    /// A generated certificate could not be encoded as DER.
    #[error("encode certificate: {0}")]
    EncodeCertificate(#[source] X509Error),
    /// A generated key could not be encoded as PKCS#8 DER (the `pkcs8` error, which
    /// this crate cannot name).
    #[error("encode key: {0}")]
    EncodeKey(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Not a certificate in DER encoding.
    #[error("not a DER certificate: {0}")]
    NotDer(#[source] X509Error),
    /// A folder or file could not be written.
    #[error("{}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Creates the PKI folders and the application instance certificate when they are
/// missing. Never overwrites an existing certificate (servers trust it by its thumbprint).
pub fn ensure_application_certificate(
    pki_dir: &Path,
    application_uri: &str,
    application_name: &str,
) -> Result<OwnCertificate, PkiError> {
    // Several sources of one gateway share the PKI folder and start together: the first
    // creates the certificate, the others must find it complete, not half written.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _creating = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    let store = CertificateStore::new(pki_dir);
    store.ensure_pki_path().map_err(|message| PkiError::Folders {
        dir: pki_dir.to_owned(),
        message,
    })?;
    let cert_path = store.own_certificate_path();
    let key_path = store.own_private_key_path();
    // The folder first: the key is never readable by others, not even while it is written.
    let private_dir = key_path.parent().unwrap_or(pki_dir);
    std::fs::create_dir_all(private_dir).map_err(|source| PkiError::Write {
        path: private_dir.to_owned(),
        source,
    })?;
    restrict(private_dir, 0o700)?;
    if key_path.exists() {
        restrict(&key_path, 0o600)?;
    }
    if let (Ok(cert), Ok(_)) = (store.read_own_cert(), store.read_own_pkey()) {
        if cert.is_application_uri_valid(application_uri).is_err() {
            return Ok(OwnCertificate::Mismatch(
                cert_path.clone(),
                format!(
                    "the certificate {} was made for another application URI than `{application_uri}`; \
                     servers that check it refuse the session. To make a new one, delete {} and {} \
                     (then trust the new certificate on the servers)",
                    cert_path.display(),
                    cert_path.display(),
                    key_path.display()
                ),
            ));
        }
        return Ok(OwnCertificate::Existing(cert_path));
    }
    if cert_path.exists() || key_path.exists() {
        return Err(PkiError::Unreadable {
            cert: cert_path,
            key: key_path,
        });
    }
    let data = certificate_data(application_uri, application_name, None);
    CertificateStore::create_certificate_and_key(&data, false, &cert_path, &key_path)
        .map_err(PkiError::Create)?;
    restrict(&key_path, 0o600)?;
    Ok(OwnCertificate::Created(cert_path))
}

/// Owner-only permissions on a private key (0600) or its folder (0700); existing
/// installations are tightened at the next start.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| PkiError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> Result<(), PkiError> {
    Ok(())
}

/// Writes a self-signed certificate (DER) and its private key (PKCS#8 DER) for
/// `application_uri`, valid for `hosts`: for test peers and demo servers.
pub fn write_self_signed(
    cert_path: &Path,
    key_path: &Path,
    application_uri: &str,
    common_name: &str,
    hosts: &[&str],
) -> Result<(), PkiError> {
    let hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
    let data = certificate_data(application_uri, common_name, Some(hosts));
    let (cert, key) = X509::cert_and_pkey(&data).map_err(PkiError::Generate)?;
    let der = cert.to_der().map_err(PkiError::EncodeCertificate)?;
    let key = key.to_der().map_err(|e| PkiError::EncodeKey(Box::new(e)))?;
    for (path, bytes) in [(cert_path, der.as_slice()), (key_path, key.as_bytes())] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
                path: dir.to_owned(),
                source,
            })?;
        }
        std::fs::write(path, bytes).map_err(|source| PkiError::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    restrict(key_path, 0o600)?;
    Ok(())
}

/// Copies a certificate file (DER) into a PKI directory's `trusted/` folder, under the
/// name the trust list looks for.
pub fn trust_certificate(pki_dir: &Path, der: &[u8]) -> Result<PathBuf, PkiError> {
    let cert = X509::from_der(der).map_err(PkiError::NotDer)?;
    let store = CertificateStore::new(pki_dir);
    store
        .ensure_pki_path()
        .map_err(|message| PkiError::TrustFolders {
            dir: pki_dir.to_owned(),
            message,
        })?;
    let name = CertificateStore::cert_file_name(&cert);
    let path = store.trusted_certs_dir().join(&name);
    if let Err(source) = std::fs::write(&path, der) {
        return Err(PkiError::Write { path, source });
    }
    // Trusting it undoes an earlier rejection (the trust list checks rejected/ first).
    let _ = std::fs::remove_file(store.rejected_certs_dir().join(&name));
    Ok(path)
}

/// Why a server certificate is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Unknown or explicitly rejected: the file is in `rejected/`.
    #[error(
        "the server's certificate is not trusted; it was saved as {}. If this is the server \
         you expect (its certificate thumbprint is {thumbprint}), trust it by moving that file \
         into {} — Backplane retries on its own",
        file.display(),
        trusted_dir.display()
    )]
    Untrusted {
        file: PathBuf,
        trusted_dir: PathBuf,
        thumbprint: String,
    },
    /// Trusted, but fails a check (dates, host name, URI, key length) or cannot be read.
    #[error("the server's certificate is refused: {0}")]
    Invalid(String),
}

/// Checks a server certificate against the trust list before any session is created;
/// an unknown certificate is written to `rejected/`.
pub fn check_server_certificate(
    store: &CertificateStore,
    certificate: &ByteString,
    policy: SecurityPolicy,
    hostname: &str,
    application_uri: &str,
) -> Result<(), TrustError> {
    let cert = X509::from_byte_string(certificate)
        .map_err(|e| TrustError::Invalid(format!("the endpoint carries no readable certificate ({e})")))?;
    let name = CertificateStore::cert_file_name(&cert);
    let untrusted = || TrustError::Untrusted {
        file: store.rejected_certs_dir().join(&name),
        trusted_dir: store.trusted_certs_dir(),
        thumbprint: cert.thumbprint().as_hex_string(),
    };
    let (rejected, trusted) = (
        store.rejected_certs_dir().join(&name),
        store.trusted_certs_dir().join(&name),
    );
    if rejected.exists() {
        if !trusted.exists() {
            return Err(untrusted());
        }
        // Copied to trusted/ rather than moved: the engineer's decision to trust wins (the
        // trust list would otherwise still refuse it for being in rejected/).
        if std::fs::remove_file(&rejected).is_ok() {
            tracing::info!(
                "{} is trusted now; removed its copy in rejected/",
                trusted.display()
            );
        }
    }
    match store.validate_or_reject_application_instance_cert(
        &cert,
        policy,
        Some(hostname),
        Some(application_uri),
    ) {
        Ok(()) => Ok(()),
        Err(e) if e.status() == StatusCode::BadCertificateUntrusted => Err(untrusted()),
        Err(e) => Err(TrustError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn application_certificate_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let first = ensure_application_certificate(&pki, "urn:backplane:test", "Backplane test").unwrap();
        assert!(matches!(first, OwnCertificate::Created(_)));
        let der = std::fs::read(pki.join("own/cert.der")).unwrap();
        assert!(pki.join("trusted").is_dir() && pki.join("rejected").is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&pki.join("private")), 0o700);
            let key = std::fs::read_dir(pki.join("private"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            assert_eq!(mode(&key), 0o600, "{}", key.display());
            // An older installation's loose key is tightened at the next start.
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::set_permissions(pki.join("private"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let again = ensure_application_certificate(&pki, "urn:backplane:test", "Backplane test").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&pki.join("private")), 0o700);
            let key = std::fs::read_dir(pki.join("private"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            assert_eq!(mode(&key), 0o600);
        }
        assert!(matches!(again, OwnCertificate::Existing(_)));
        assert_eq!(std::fs::read(pki.join("own/cert.der")).unwrap(), der);
        let other = ensure_application_certificate(&pki, "urn:backplane:other", "x").unwrap();
        assert!(matches!(other, OwnCertificate::Mismatch(_, m) if m.contains("delete")));
    }

    #[test]
    fn unknown_server_certificates_go_to_rejected_until_moved_to_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let (cert, key) = (dir.path().join("s.der"), dir.path().join("s.key"));
        write_self_signed(&cert, &key, "urn:server", "server", &["127.0.0.1"]).unwrap();
        let der = std::fs::read(&cert).unwrap();
        let bytes = ByteString::from(der.clone());
        let mut store = CertificateStore::new(&pki);
        store.ensure_pki_path().unwrap();
        store.set_check_time(true);
        let policy = SecurityPolicy::Basic256Sha256;
        let err = check_server_certificate(&store, &bytes, policy, "127.0.0.1", "urn:server").unwrap_err();
        let TrustError::Untrusted {
            file, trusted_dir, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert!(file.exists(), "{err}");
        assert!(err.to_string().contains("trust it by moving that file"));
        // Still refused on the next attempt, without the engineer's move.
        assert!(check_server_certificate(&store, &bytes, policy, "127.0.0.1", "urn:server").is_err());
        // Copied rather than moved: trusted wins.
        std::fs::copy(file, trusted_dir.join(file.file_name().unwrap())).unwrap();
        check_server_certificate(&store, &bytes, policy, "127.0.0.1", "urn:server").unwrap();
        assert!(!file.exists());
        // The wrong host is refused even when trusted.
        let wrong = check_server_certificate(&store, &bytes, policy, "10.9.9.9", "urn:server").unwrap_err();
        assert!(matches!(wrong, TrustError::Invalid(_)), "{wrong:?}");
    }
}
