//! Certificates for TLS tests: a CA in the test's directory and leaf certificates it signs.

use std::path::{Path, PathBuf};

pub use rcgen::ExtendedKeyUsagePurpose as Usage;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA, written as `<name>-ca.pem`, that signs leaf certificates.
#[derive(Debug)]
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub path: PathBuf,
}

/// A new CA named `name`, its certificate written into `dir`.
pub fn ca(dir: &Path, name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&path, issuer.pem()).unwrap();
    Ca { issuer, path }
}

/// A leaf certificate for subject CN `name` and the given SANs, signed by `ca`, written as
/// `<name>.pem` and `<name>.key`; returns their paths.
pub fn leaf(dir: &Path, ca: &Ca, name: &str, sans: &[&str], usage: Usage) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}
