//! Secrets by reference. A configuration names where a secret lives (`env:NAME` or
//! `file:PATH`), never the secret itself, so config files can be kept in Git and printed in
//! diagnostics. The value is read only when a component needs it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A reference to a secret. `Debug` shows the reference, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    reference: String,
    location: SecretLocation,
}

#[derive(Clone, PartialEq, Eq)]
enum SecretLocation {
    Env(String),
    /// Already joined with the config file's directory when the reference was relative.
    File(PathBuf),
}

/// Why a secret reference is invalid or could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither `env:NAME` nor `file:PATH`. The text itself is not repeated: it may be the
    /// secret, written inline by mistake.
    #[error("a secret must be written as `env:NAME` or `file:PATH`")]
    InvalidReference,
    #[error("environment variable `{name}` (secret `env:{name}`) is not set")]
    EnvMissing { name: String },
    #[error("environment variable `{name}` (secret `env:{name}`) is not valid UTF-8")]
    EnvNotUnicode { name: String },
    #[error("cannot read secret file `{}`: {source}", path.display())]
    FileUnreadable { path: PathBuf, source: std::io::Error },
    /// An empty secret would make, e.g., an API token check pass for an empty header.
    #[error("secret `{reference}` is empty")]
    Empty { reference: String },
}

impl Secret {
    /// Parses `env:NAME` or `file:PATH`; a relative `PATH` is taken relative to `base_dir`
    /// (the directory of the config file that names it).
    pub fn parse(reference: &str, base_dir: &Path) -> Result<Secret, SecretError> {
        let location = if let Some(name) = reference.strip_prefix("env:") {
            let valid = !name.is_empty()
                && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                && !name.as_bytes().first().is_some_and(u8::is_ascii_digit);
            if !valid {
                return Err(SecretError::InvalidReference);
            }
            SecretLocation::Env(name.to_owned())
        } else if let Some(path) = reference.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SecretError::InvalidReference);
            }
            SecretLocation::File(base_dir.join(path))
        } else {
            return Err(SecretError::InvalidReference);
        };
        Ok(Secret {
            reference: reference.to_owned(),
            location,
        })
    }

    /// The reference as written, e.g. `env:API_TOKEN`.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Reads the secret now. A file's content loses one trailing newline (editors add one).
    pub fn resolve(&self) -> Result<String, SecretError> {
        let value = match &self.location {
            SecretLocation::Env(name) => std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => SecretError::EnvMissing { name: name.clone() },
                std::env::VarError::NotUnicode(_) => SecretError::EnvNotUnicode { name: name.clone() },
            })?,
            SecretLocation::File(path) => {
                let mut text =
                    std::fs::read_to_string(path).map_err(|source| SecretError::FileUnreadable {
                        path: path.clone(),
                        source,
                    })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty {
                reference: self.reference.clone(),
            });
        }
        Ok(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret").field(&self.reference).finish()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_must_name_env_or_file() {
        let base = Path::new("/etc/backplane");
        assert!(Secret::parse("env:API_TOKEN", base).is_ok());
        assert!(Secret::parse("file:token.txt", base).is_ok());
        assert!(matches!(
            Secret::parse("hunter2", base),
            Err(SecretError::InvalidReference)
        ));
        assert!(matches!(
            Secret::parse("env:", base),
            Err(SecretError::InvalidReference)
        ));
        assert!(matches!(
            Secret::parse("env:A-B", base),
            Err(SecretError::InvalidReference)
        ));
        assert!(matches!(
            Secret::parse("file:", base),
            Err(SecretError::InvalidReference)
        ));
    }

    #[test]
    fn relative_files_are_relative_to_the_config_directory() {
        let secret = Secret::parse("file:token.txt", Path::new("/etc/backplane")).unwrap();
        let err = secret.resolve().unwrap_err();
        assert!(err.to_string().contains("/etc/backplane/token.txt"), "{err}");
    }

    #[test]
    fn debug_shows_only_the_reference() {
        let secret = Secret::parse("env:PATH", Path::new(".")).unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(\"env:PATH\")");
    }
}
