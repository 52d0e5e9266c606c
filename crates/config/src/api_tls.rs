//! `[api.tls]`: HTTPS for the API, with an optional client-certificate check.
//!
//! ```toml
//! [api.tls]
//! cert = "tls/api.pem"        # PEM chain and key, paths relative to this file
//! key = "tls/api.key"
//! # or: self_signed = true     (generated once into <data_dir>/api-tls/)
//! client_ca = "tls/ca.pem"    # verify client certificates issued by this CA
//! client_certs = "required"   # or "optional"; default "required" when client_ca is set
//!
//! [api.tls.clients]           # a verified certificate's subject CN -> role
//! "mes-01" = "operator"
//! ```
//!
//! Only paths are read here (no I/O), so `backplane check` never needs the files.

use std::path::{Path, PathBuf};

use backplane_security::Role;

use crate::Table;

/// Where the API's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiCertificate {
    /// `cert` and `key`: PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// `self_signed = true`: generated at the first start into `<data_dir>/api-tls/`.
    SelfSigned,
}

/// Whether a client must present a certificate (`client_certs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    /// Clients without a certificate are served (and authenticate otherwise); a presented
    /// certificate must verify against `client_ca`.
    Optional,
    /// The handshake fails without a certificate that verifies against `client_ca`.
    Required,
}

/// `[api.tls]`, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTls {
    pub certificate: ApiCertificate,
    /// CA certificates (PEM) that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    pub client_certs: ClientCerts,
    /// `[api.tls.clients]`: subject CN of a verified client certificate -> role.
    pub clients: Vec<(String, Role)>,
}

const CERT_HINT: &str = "write `cert = \"api.pem\"` and `key = \"api.key\"`, or `self_signed = true`";

/// Reads `[api.tls]`; relative paths are relative to `dir` (the configuration file's).
pub(crate) fn read_api_tls(mut t: Table<'_>, dir: &Path) -> Option<ApiTls> {
    let cert = t.optional_str("cert").map(|p| dir.join(p));
    let key = t.optional_str("key").map(|p| dir.join(p));
    let self_signed = t.optional_bool("self_signed").unwrap_or(false);
    let certificate = match (cert, key, self_signed) {
        (Some(cert), Some(key), false) => Some(ApiCertificate::Files { cert, key }),
        (None, None, true) => Some(ApiCertificate::SelfSigned),
        (Some(_), _, true) | (_, Some(_), true) => {
            t.error(
                "self_signed",
                "`self_signed = true` and `cert`/`key` exclude each other",
                Some(CERT_HINT.into()),
            );
            None
        }
        (Some(_), None, false) => {
            t.error("key", "`cert` needs a `key`", Some(CERT_HINT.into()));
            None
        }
        (None, Some(_), false) => {
            t.error("cert", "`key` needs a `cert`", Some(CERT_HINT.into()));
            None
        }
        (None, None, false) => {
            t.error("cert", "`[api.tls]` needs a certificate", Some(CERT_HINT.into()));
            None
        }
    };
    let client_ca = t.optional_str("client_ca").map(|p| dir.join(p));
    let client_certs = match t.optional_str("client_certs") {
        None | Some("required") => ClientCerts::Required,
        Some("optional") => ClientCerts::Optional,
        Some(other) => {
            t.error(
                "client_certs",
                format!("unknown `client_certs` value `{other}`"),
                Some("one of: \"required\", \"optional\"".into()),
            );
            ClientCerts::Required
        }
    };
    if client_ca.is_none() && t.has("client_certs") {
        t.error(
            "client_certs",
            "`client_certs` needs `client_ca`: the CA client certificates are checked against",
            Some("client_ca = \"ca.pem\"".into()),
        );
    }
    let mut clients = Vec::new();
    if let Some(mut table) = t.optional_table("clients") {
        if client_ca.is_none() {
            table.error(
                "",
                "`[api.tls.clients]` needs `client_ca`: only verified certificates are mapped to roles",
                Some("client_ca = \"ca.pem\"".into()),
            );
        }
        for (name, item) in table.take_remaining() {
            let Some(role) = item.expect_str() else { continue };
            match role.parse::<Role>() {
                Ok(role) if !name.name.is_empty() => clients.push((name.name.to_owned(), role)),
                Ok(_) => name.error("a client's common name cannot be empty", None),
                Err(e) => item.error(e.to_string(), None),
            }
        }
        table.finish();
    }
    t.finish();
    Some(ApiTls {
        certificate: certificate?,
        client_ca,
        client_certs,
        clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    fn api(extra: &str) -> Result<Option<ApiTls>, String> {
        let text =
            format!("[gateway]\nname = \"gw\"\n[namespace]\nenterprise = \"e\"\nsite = \"s\"\n{extra}");
        crate::load_str(&text, Path::new("/etc/backplane/gw.toml"), &Catalog::default())
            .map(|plan| plan.api.tls)
            .map_err(|errors| {
                errors
                    .iter()
                    .map(|d| d.render(None))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    }

    #[test]
    fn files_self_signed_and_client_certificates_are_read_with_paths_beside_the_file() {
        let tls = api("[api.tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nclient_ca = \"ca.pem\"\n[api.tls.clients]\n\"mes-01\" = \"operator\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            tls.certificate,
            ApiCertificate::Files {
                cert: "/etc/backplane/a.pem".into(),
                key: "/etc/backplane/a.key".into()
            }
        );
        assert_eq!(tls.client_ca, Some("/etc/backplane/ca.pem".into()));
        assert_eq!(tls.client_certs, ClientCerts::Required);
        assert_eq!(tls.clients, vec![("mes-01".to_owned(), Role::Operator)]);
        let tls = api("[api.tls]\nself_signed = true\n").unwrap().unwrap();
        assert_eq!(tls.certificate, ApiCertificate::SelfSigned);
        assert_eq!(api("").unwrap(), None);
    }

    #[test]
    fn incomplete_or_contradictory_tls_settings_are_refused_by_key() {
        for (extra, key) in [
            ("[api.tls]\n", "api.tls.cert"),
            ("[api.tls]\ncert = \"a.pem\"\n", "api.tls.key"),
            (
                "[api.tls]\nself_signed = true\ncert = \"a.pem\"\n",
                "api.tls.self_signed",
            ),
            (
                "[api.tls]\nself_signed = true\nclient_certs = \"required\"\n",
                "api.tls.client_certs",
            ),
            (
                "[api.tls]\nself_signed = true\nclient_ca = \"ca.pem\"\nclient_certs = \"sometimes\"\n",
                "api.tls.client_certs",
            ),
            (
                "[api.tls]\nself_signed = true\nclient_ca = \"ca.pem\"\n[api.tls.clients]\nmes = \"root\"\n",
                "api.tls.clients.mes",
            ),
            (
                "[api.tls]\nself_signed = true\n[api.tls.clients]\nmes = \"viewer\"\n",
                "api.tls.clients",
            ),
        ] {
            let errors = api(extra).expect_err(extra);
            assert!(errors.contains(key), "{extra}: {errors}");
        }
    }
}
